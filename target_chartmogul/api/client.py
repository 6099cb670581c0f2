"""The one HTTP client every sink shares: connection pooling, pacing, retries.

Layering follows `requests`: sinks call `ChartMogulClient.request` (or a verb helper),
which paces each attempt through `Pacer`, retries transient failures and turns refusals into
`APIError`. Retries go through the `backoff` library (as singer-sdk's REST streams do):
`backoff.on_exception` runs the attempts, `retry_waits` says how long to wait (`backoff.expo`
with `backoff.full_jitter`, never less than Retry-After). The wait itself is spent on the
stop event (`Clock.wait`), not in backoff's `time.sleep`, so that a SIGTERM ends it at once
(`stop_requested`). An API that cannot be reached at all fails at once
(`connection.unreachable`).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import threading
import time
import typing as t

import backoff
import requests
from requests.adapters import HTTPAdapter

from target_chartmogul import __version__
from target_chartmogul.api.connection import unreachable, unreachable_message
from target_chartmogul.api.errors import APIError, parse_error_body
from target_chartmogul.api.pacing import Pacer
from target_chartmogul.errors import (
    AuthenticationError,
    FatalError,
    RetriesExhaustedError,
    StoppedError,
    TargetChartMogulError,
    UncertainWrite,
)
from target_chartmogul.values.encoding import dumps

LOGGER = logging.getLogger("target_chartmogul.api.client")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 524})
# Refusals before any work: the rate limit (429) and too many parallel connections (503). Any other transient
# failure of a write may come after ChartMogul wrote it.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
BACKOFF_BASE = 0.5  # seconds: the first retry's ceiling, doubling from there (tests/conftest.py lowers it)
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 120.0


@dataclasses.dataclass
class Response:
    """A successful answer: status, parsed JSON body (None for 202/204) and attempts made."""

    status: int
    body: t.Any
    attempts: int


@dataclasses.dataclass
class Attempt:
    """One HTTP attempt, as handed to observers (request log, counters). Never holds the key.

    `dry_run`: a write `DryRunClient` answered without sending it; `status` is None (nothing
    was sent) and `response_text` the answer ChartMogul would have given.
    """

    method: str
    path: str
    params: dict[str, t.Any] | None
    body: t.Any
    attempt: int
    status: int | None
    duration: float
    response_text: str | None
    error: str | None
    dry_run: bool = False


@dataclasses.dataclass
class _Call:
    """One logical request and the number of attempts made at it so far."""

    method: str
    path: str
    params: dict[str, t.Any] | None
    body: t.Any
    data: bytes | None
    attempts: int = 0
    once: bool = False  # a write that must not be repeated blindly: an attempt that may have landed is not retried


class _Transient(Exception):
    """An attempt that may succeed if repeated; carries the server's Retry-After and the status (None: no answer).

    `call`: the call it failed, set by `_attempt`, so that backoff's hooks (which see only the
    failure) can name the call and tell a write that must not be repeated.
    """

    def __init__(self, description: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
        self.status = status
        self.call: _Call | None = None

    @property
    def uncertain(self) -> bool:
        """A write that must not be repeated blindly failed in a way after which it may have landed."""
        return self.call is not None and self.call.once and self.status not in NOT_PROCESSED_STATUSES


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None


def _json_body(response: requests.Response) -> t.Any:
    """The parsed body of a success; None for 202/204 (no usable body) and for non-JSON text."""
    if not response.text or response.status_code in (202, 204):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _log_retry(call: _Call, exc: _Transient, wait: float) -> None:
    LOGGER.info("%s %s attempt %d failed (%s); retrying in %.1fs", call.method, call.path, call.attempts, exc.description, wait)


def _log_give_up(call: _Call, exc: _Transient) -> None:
    LOGGER.warning("%s %s gave up after %d attempts: %s", call.method, call.path, call.attempts, exc.description)


def retry_waits(base: float, cap: float = MAX_BACKOFF_SECONDS) -> t.Generator[float, t.Any, None]:
    """A backoff wait generator: full-jitter exponential waits, never shorter than the server's Retry-After.

    Ceilings come from `backoff.expo` (base, twice it, four times, … up to `cap`) and each wait is
    `backoff.full_jitter` of its ceiling (anywhere from 0 to it), so clients that failed together
    do not retry together. backoff sends each failure into the generator, which is how
    Retry-After reaches it; jitter is applied here (backoff gets `jitter=None`) so that it
    cannot undercut Retry-After.
    """
    ceilings = backoff.expo(factor=base, max_value=cap)
    next(ceilings)  # expo's priming value
    failure = yield 0.0  # backoff primes the generator with send(None)
    while True:
        wait = backoff.full_jitter(next(ceilings))
        retry_after = getattr(failure, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, retry_after)
        failure = yield wait


class Clock:
    """How the client waits between attempts: until the time passed or a stop was requested.

    Tests hand the client a clock that does not sleep (tests/clocks.py).
    """

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds`; True when `stop` was set (at once if it already was)."""
        return stop.wait(seconds)


class ChartMogulClient:
    """Thread-safe ChartMogul REST client shared by all sinks of a run.

    Every request is sent (dry runs use `target_chartmogul.api.dry_run.DryRunClient`, which
    answers writes itself).
    """

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        max_requests_per_second: float | None = 40,
        max_concurrency: int = 10,
        timeout: float = 30.0,
        max_retries: int = 8,
        backoff_base: float | None = None,
        observers: t.Sequence[t.Callable[[Attempt], None]] = (),
        stop_requested: threading.Event | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.base_url = api_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = BACKOFF_BASE if backoff_base is None else backoff_base
        self.clock = clock or Clock()
        # Built once (building it per request costs ~8 µs, docs/benchmarks.md): the attempts of one call, retried
        # by backoff; max_tries is read at each call (the first attempt and max_retries more).
        self._retrying = backoff.on_exception(
            self._pauses,
            _Transient,
            max_tries=lambda: self.max_retries + 1,
            jitter=None,  # retry_waits jitters, under its Retry-After floor
            giveup=lambda failure: failure.uncertain,
            logger=None,  # _pauses and _send_with_retries log, naming the call
        )(self._attempt)
        self.pacer = Pacer(max_requests_per_second, max_concurrency)
        self.observers = list(observers)
        # Set by the stop guard on SIGTERM/SIGINT: a retry wait ends at once and the call fails.
        self.stop_requested = stop_requested or threading.Event()
        self._answered = False  # whether the API has answered once: before that, unreachable means a wrong api_url
        self.preflight: t.Callable[[], None] | None = None
        self._preflight_lock = threading.RLock()
        self._preflight_done = False
        self._preflight_error: FatalError | None = None
        self.session = self._session(api_key)

    def _session(self, api_key: str) -> requests.Session:
        """A pooled session that carries the key; its headers are never logged or raised with."""
        session = requests.Session()
        # Read the environment once (proxies, CA bundle), not on every request: requests would
        # otherwise look for ~/.netrc and proxy settings per call, a measurable CPU cost.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        pool = self.pacer.max_concurrency
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool, pool_block=True, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
        # Set on the session, never on a request object we log or raise with.
        session.headers.update(
            {
                "Authorization": f"Basic {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"target-chartmogul/{__version__}",
            },
        )
        return session

    def _send_with_retries(self, call: _Call) -> Response:
        """`_attempt` until it succeeds, is refused, has been retried `max_retries` times, or a stop is requested.

        backoff runs the attempts and gives up at once on a write of `once` that may have
        landed (`UncertainWrite`; a 429 or 503 is still retried). A refused first connection is
        a `FatalError`, which backoff does not retry. A SIGTERM during a wait (or before it)
        abandons the call with `StoppedError` instead of keeping the run alive through minutes
        of retries.
        """
        try:
            return t.cast("Response", self._retrying(call))
        except _Transient as exc:
            if exc.uncertain:
                msg = f"{call.method} {call.path}: {exc.description}; it may have reached ChartMogul"
                raise UncertainWrite(msg) from None
            _log_give_up(call, exc)
            raise

    def _pauses(self) -> t.Generator[float, t.Any, None]:
        """The wait generator backoff drives for one call: each wait of `retry_waits` is spent here.

        backoff would sleep with `time.sleep`, which no signal ends; so the wait is spent on
        `stop_requested` through the clock, and backoff is handed 0. A stop requested before
        or during the wait raises `StoppedError` out of backoff's loop.
        """
        waits = retry_waits(self.backoff_base)
        failure = yield next(waits)
        while True:
            wait = waits.send(failure)
            call = failure.call
            if not self.stop_requested.is_set():
                _log_retry(call, failure, wait)
            if self.clock.wait(self.stop_requested, wait):
                msg = (
                    f"stopped by a signal while retrying {call.method} {call.path} (last: {failure.description}); "
                    "records not written are not covered by STATE"
                )
                raise StoppedError(msg)
            failure = yield 0.0

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()

    # Verb helpers -----------------------------------------------------------------
    def get(self, path: str, params: dict[str, t.Any] | None = None) -> Response:
        """GET `path` (relative to the API URL)."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: t.Any, params: dict[str, t.Any] | None = None) -> Response:
        """POST a JSON body."""
        return self.request("POST", path, body=body, params=params)

    def patch(self, path: str, body: t.Any) -> Response:
        """PATCH a JSON body."""
        return self.request("PATCH", path, body=body)

    def put(self, path: str, body: t.Any) -> Response:
        """PUT a JSON body."""
        return self.request("PUT", path, body=body)

    def delete(self, path: str, body: t.Any = None) -> Response:
        """DELETE, with an optional JSON body (custom attributes and tags take one)."""
        return self.request("DELETE", path, body=body)

    def paginate(
        self,
        path: str,
        root_key: str,
        params: dict[str, t.Any] | None = None,
    ) -> t.Iterator[dict[str, t.Any]]:
        """Yield every entry of a cursor-paginated list (`cursor` may end as null or a string)."""
        query = dict(params or {})
        query.setdefault("per_page", 200)
        while True:
            page = self.get(path, query).body or {}
            yield from page.get(root_key) or []
            cursor = page.get("cursor")
            if not page.get("has_more") or not cursor:
                return
            query["cursor"] = cursor

    # Core -------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, t.Any] | None = None,
        body: t.Any = None,
        data: bytes | None = None,
        once: bool = False,
    ) -> Response:
        """Send one logical request, retrying transient failures.

        `data`: the body already encoded (sent as it is; `body` then only names it to observers). `once`: a write
        that may not be sent twice: a failure after which it may have landed raises `UncertainWrite` instead of
        being retried (the rate limit and a refused connection are still retried).
        Raises APIError for a refusal, AuthenticationError for 401/403, and
        RetriesExhaustedError when transient failures outlast `max_retries`.
        """
        self._run_preflight()
        if data is None and body is not None:
            data = dumps(body).encode("utf-8")
        call = _Call(method, path, params, body if body is not None else data, data, once=once)
        try:
            return self._send_with_retries(call)
        except _Transient as exc:
            msg = (
                f"ChartMogul did not answer {method} {path} after {call.attempts} attempts "
                f"(last: {exc.description}); stopping so that nothing is marked done that was not written"
            )
            raise RetriesExhaustedError(msg) from None

    def _run_preflight(self) -> None:
        """Run the account check once, before the first real call (none when no call is needed).

        Other threads wait for it; the check's own calls (same thread) pass through the
        re-entrant lock. If it fails, every later call fails the same way and none is sent.
        """
        if not self._preflight_done:
            with self._preflight_lock:
                if not self._preflight_done and self.preflight is not None:
                    check, self.preflight = self.preflight, None
                    try:
                        check()
                    except FatalError as exc:
                        self._preflight_error = exc
                    finally:
                        self._preflight_done = True
        if self._preflight_error is not None:
            raise self._preflight_error

    def _attempt(self, call: _Call) -> Response:
        """One attempt: send it, then read the answer (the retry policy repeats this)."""
        call.attempts += 1
        try:
            return self._classify(call, self._send(call))
        except _Transient as exc:
            exc.call = call
            raise

    def _send(self, call: _Call) -> requests.Response:
        """Put one attempt on the wire (paced) and tell the observers, whatever happens.

        A timeout or a failed connection is transient; any other transport failure is fatal.
        """
        url = f"{self.base_url}/{call.path.lstrip('/')}"
        started = time.monotonic()
        status: int | None = None
        text: str | None = None
        error: str | None = None
        try:
            with self.pacer.slot():
                started = time.monotonic()
                response = self.session.request(call.method, url, params=call.params, data=call.data, timeout=self.timeout)
                status = response.status_code
                text = response.text
                self._answered = True
        except requests.Timeout:
            error = f"no answer within {self.timeout:g}s"
            raise _Transient(error) from None
        except requests.ConnectionError as exc:
            error = f"connection failed: {type(exc).__name__}"
            reason = None if self._answered else unreachable(exc)
            if reason is not None:  # a wrong api_url or no network: retrying only delays saying so
                raise FatalError(unreachable_message(self.base_url, reason)) from None
            raise _Transient(error) from None
        except requests.RequestException as exc:
            error = f"request failed: {type(exc).__name__}"
            raise FatalError(f"{call.method} {call.path}: {error}") from None
        finally:
            duration = time.monotonic() - started
            self._notify(Attempt(call.method, call.path, call.params, call.body, call.attempts, status, duration, text, error))
        return response

    def _classify(self, call: _Call, response: requests.Response) -> Response:
        """A success, a transient failure to retry (`_Transient`), or a refusal (raised)."""
        status = response.status_code
        if status in RETRY_STATUSES:
            raise _Transient(f"HTTP {status}", _retry_after(response), status)
        if 200 <= status < 300:
            return Response(status, _json_body(response), call.attempts)
        raise self._refusal(call.method, call.path, status, response.text or "", call.attempts)

    @staticmethod
    def _refusal(method: str, path: str, status: int, text: str, attempts: int) -> TargetChartMogulError:
        """The error for a non-retryable answer: AuthenticationError for 401/403, else APIError.

        Built from ChartMogul's body only: the request's headers (the key) never reach it.
        """
        message, fields, parsed_body = parse_error_body(status, text)
        if status in (401, 403):
            msg = f"ChartMogul refused the API key (HTTP {status}: {message}). Check the api_key setting."
            return AuthenticationError(msg)
        return APIError(status, message, fields=fields, body=parsed_body, method=method, path=path, attempts=attempts)

    def _notify(self, attempt: Attempt) -> None:
        for observer in self.observers:
            try:
                observer(attempt)
            except Exception:  # an observer must never break a write
                LOGGER.exception("request observer failed")
