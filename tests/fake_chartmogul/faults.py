"""Fault injection: make chosen requests fail the way real networks and servers do.

Tests use this to prove the target survives lost responses (write done, answer
lost), refused writes, timeouts and throttling without duplicating data.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

FAULT_KINDS = (
    "error_before",
    "error_after",
    "drop_before",
    "drop_after",
    "latency",
    "status_429",
    "status_503",
)
DEFAULT_STATUS = {"error_before": 500, "error_after": 502, "status_429": 429, "status_503": 503}
WRITE_FIRST_KINDS = ("error_after", "drop_after")


@dataclass
class Fault:
    """One injected misbehaviour; fires ``times`` times on matching requests."""

    kind: str
    method: str | None = None
    path_regex: str | None = None
    times: int = 1
    status: int | None = None
    delay: float = 0.0
    # Retry-After seconds for a status_429; None sends no header (no recorded 429 carries one)
    # unless the server's own ``retry_after`` switch is set.
    retry_after: float | None = None
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        self._pattern = re.compile(self.path_regex) if self.path_regex else None

    @property
    def effective_status(self) -> int:
        """The status this fault answers with (when it answers at all)."""
        return self.status if self.status is not None else DEFAULT_STATUS.get(self.kind, 500)

    @property
    def writes_first(self) -> bool:
        """True when the request's write happens before the fault shows."""
        return self.kind in WRITE_FIRST_KINDS

    def matches(self, method: str, path: str) -> bool:
        """Match on method and ``re.search`` of the path (no /v1, no query)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._pattern is None or self._pattern.search(path) is not None


@dataclass
class _RandomPlan:
    """Settings for seeded random faults."""

    rate: float
    kinds: tuple[str, ...]
    methods: tuple[str, ...]
    pattern: re.Pattern[str] | None
    delay: float
    rng: random.Random


class FaultBook:
    """Thread-safe queue of injected faults plus optional seeded random faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random: _RandomPlan | None = None

    def inject(self, fault: Fault) -> None:
        """Queue a fault; faults are consumed in insertion order."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Drop queued faults and switch random faults off."""
        with self._lock:
            self._faults.clear()
            self._random = None

    def pending(self) -> list[Fault]:
        """Faults that have not fired their last time yet."""
        with self._lock:
            return list(self._faults)

    def set_random(
        self,
        rate: float,
        kinds: Iterable[str],
        seed: int,
        methods: Iterable[str],
        path_regex: str | None = None,
        delay: float = 0.5,
    ) -> None:
        """Fail a seeded-random fraction ``rate`` of matching requests."""
        kinds = tuple(kinds)
        for kind in kinds:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
        if not kinds:
            raise ValueError("kinds must not be empty")
        with self._lock:
            self._random = _RandomPlan(
                rate=rate,
                kinds=kinds,
                methods=tuple(m.upper() for m in methods),
                pattern=re.compile(path_regex) if path_regex else None,
                delay=delay,
                rng=random.Random(seed),
            )

    def take(self, method: str, path: str) -> Fault | None:
        """Return the fault to apply to this request, consuming it, or None."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[index]
                    return fault
            plan = self._random
            if plan is None or method.upper() not in plan.methods:
                return None
            if plan.pattern is not None and plan.pattern.search(path) is None:
                return None
            # Two draws per matching request keep the sequence deterministic.
            roll = plan.rng.random()
            kind = plan.rng.choice(plan.kinds)
            if roll >= plan.rate:
                return None
            return Fault(kind=kind, delay=plan.delay)
