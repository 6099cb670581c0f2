"""Booleans as ChartMogul reads them, and nothing looser.

`bool("false")` is True: reading a text column with `bool()` once sent
`prorated: "false"` as true. Only the spellings below are accepted.
"""

from __future__ import annotations

import decimal
import typing as t

from target_chartmogul.errors import RecordRejected

TRUE_WORDS = frozenset({"true", "t", "1"})
FALSE_WORDS = frozenset({"false", "f", "0"})


def boolean(value: t.Any, field: str) -> bool:
    """true/false, "true"/"false", "t"/"f" (any case, spaces ignored) or 1/0; anything else rejects the record."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) or (isinstance(value, decimal.Decimal) and value.is_finite()):
        if value in (0, 1):
            return bool(value)
    elif isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise RecordRejected(
        f"field '{field}' must be a boolean (true/false, t/f or 1/0), got {str(value)[:40]!r}", field=field
    )
