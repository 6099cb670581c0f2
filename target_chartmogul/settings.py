"""The target's settings: the JSON schema users see in `--about`, and per-stream options.

Setting names are the public interface (README, meltano.yml and the Hub file repeat
them); change them only together.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from singer_sdk import typing as th

from target_chartmogul.errors import FatalError

OBJECTS = ("plans", "customers", "invoices", "transactions")
DEFAULT_API_URL = "https://api.chartmogul.com/v1"
DEFAULT_REJECTS_PATH = ".target-chartmogul/rejects.jsonl"
DEFAULT_LEDGER_URL = "sqlite:///.target-chartmogul/ledger.db"

MODES: dict[str, dict[str, tuple[str, ...]]] = {
    # object -> mode -> allowed match_by (first is the default)
    "customers": {
        "upsert": ("external_id", "email"),
        "update": ("external_id", "uuid"),
        "insert": ("external_id",),
    },
    "plans": {"upsert": ("external_id",), "insert": ("external_id",)},
    "invoices": {"insert": ("external_id",)},
    "transactions": {"insert": ("external_id",)},
}
TAGS_MODES = ("managed", "exact")
DEFAULT_MODE = {"customers": "upsert", "plans": "upsert", "invoices": "insert", "transactions": "insert"}

STREAM_OPTIONS = th.ObjectType(
    th.Property(
        "object",
        th.StringType(allowed_values=list(OBJECTS)),
        description="ChartMogul object this stream writes: customers, plans, invoices or transactions.",
    ),
    th.Property(
        "mode",
        th.StringType,
        description="upsert, update or insert (customers); upsert (plans); insert (invoices, transactions).",
    ),
    th.Property(
        "match_by",
        th.StringType,
        description="Matching key: external_id (default), email (customers upsert) or uuid (customers update).",
    ),
    th.Property(
        "custom_attributes",
        th.CustomType({"type": ["array", "string"], "items": {"type": "string"}}),
        description='Columns sent as typed custom attributes (customers): a list of names, or "*" for every non-standard column.',
    ),
    th.Property(
        "remove_null_custom_attributes",
        th.BooleanType,
        description="Remove (DELETE) a custom attribute whose value became null, instead of setting it to null.",
    ),
    th.Property(
        "tags_mode",
        th.StringType(allowed_values=list(TAGS_MODES)),
        description="Customers: managed (default) removes only tags the loader set from this column earlier, keeping "
        "tags ChartMogul or people add; exact makes ChartMogul's tags mirror the column, removing every other tag.",
    ),
    th.Property(
        "invoices_per_request", th.IntegerType, description="Invoices of one customer per import call (default 50)."
    ),
    th.Property(
        "delete_missing",
        th.BooleanType,
        description="Customers: delete on _sdc_deleted_at, and those absent from a complete full-table version.",
    ),
    th.Property(
        "max_delete_fraction",
        th.NumberType,
        description="Customers: a version that would delete more than this share of the stream's customers "
        "deletes none (default 0.2).",
    ),
    additional_properties=True,
)

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        required=True,
        secret=True,
        description="ChartMogul API key (sent as the basic-auth user).",
    ),
    th.Property("api_url", th.StringType, default=DEFAULT_API_URL, description="ChartMogul API base URL."),
    th.Property("data_source_uuid", th.StringType, description="Data source (ds_…) for records that carry none."),
    th.Property(
        "streams",
        th.ObjectType(additional_properties=STREAM_OPTIONS),
        description="Per incoming stream: {object, mode, match_by, custom_attributes, …}. Unlisted streams map by name.",
    ),
    th.Property(
        "max_requests_per_second",
        th.NumberType,
        default=40,
        description="Client-side request rate cap (ChartMogul allows 40/s).",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType,
        default=10,
        description="Parallel requests (capped at 20, ChartMogul's connection limit).",
    ),
    th.Property("request_timeout", th.NumberType, default=30, description="Seconds to wait for each HTTP answer."),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=8,
        description="Retries of a transient failure (429, 5xx, timeout, dropped connection).",
    ),
    th.Property(
        "rejects_path",
        th.StringType,
        default=DEFAULT_REJECTS_PATH,
        description="JSON-lines file receiving every refused record with its reason.",
    ),
    th.Property(
        "on_reject",
        th.StringType(allowed_values=["continue", "fail"]),
        default="continue",
        description="continue: log and go on; fail: still write every good record, then exit non-zero if any was rejected.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description="Read but never write: log every write it would make and summarise would-create/update/delete.",
    ),
    th.Property(
        "request_log",
        th.StringType,
        description="File receiving one JSON line per HTTP attempt (bodies cut at 4000 characters; never the key).",
    ),
    th.Property(
        "progress_interval",
        th.NumberType,
        default=10,
        description="Seconds between progress lines on long runs (0 turns them off).",
    ),
    th.Property(
        "ledger_url",
        th.StringType,
        default=DEFAULT_LEDGER_URL,
        description="SQLAlchemy URL of the sync memory (sqlite:///… or postgresql://…); holds no secrets.",
    ),
).to_dict()


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """What one incoming stream writes and how; `object` None means the stream is skipped."""

    stream_name: str
    object: str | None
    mode: str = "upsert"
    match_by: str = "external_id"
    custom_attributes: tuple[str, ...] | t.Literal["*"] = ()
    remove_null_custom_attributes: bool = False
    tags_mode: str = "managed"
    invoices_per_request: int = 50
    delete_missing: bool = False
    max_delete_fraction: float = 0.2
    options: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)


def object_for_name(stream_name: str) -> str | None:
    """Customers for `customers`, `public-customers` or `billing.customers`; else None."""
    lowered = stream_name.lower()
    if lowered in OBJECTS:
        return lowered
    last = re.split(r"[-.]", lowered)[-1]
    return last if last in OBJECTS else None


def _fail(stream_name: str, option: str, message: str) -> t.NoReturn:
    msg = f"Invalid setting streams.{stream_name}.{option}: {message}"
    raise FatalError(msg)


def stream_settings(stream_name: str, streams_config: t.Mapping[str, t.Any] | None) -> StreamSettings:
    """Resolve and check one stream's options; a bad option is a one-line FatalError."""
    entry = dict((streams_config or {}).get(stream_name) or {})
    obj = entry.get("object") or object_for_name(stream_name)
    if obj is None:
        if stream_name in (streams_config or {}):
            _fail(stream_name, "object", f"missing; expected one of {', '.join(OBJECTS)}")
        return StreamSettings(stream_name, None)
    if obj not in OBJECTS:
        _fail(stream_name, "object", f"unknown object {obj!r}; expected one of {', '.join(OBJECTS)}")
    modes = MODES[obj]
    mode = entry.get("mode") or DEFAULT_MODE[obj]
    if mode not in modes:
        _fail(stream_name, "mode", f"{mode!r} is not a mode of {obj}; expected one of {', '.join(modes)}")
    match_by = entry.get("match_by") or modes[mode][0]
    if match_by not in modes[mode]:
        _fail(
            stream_name,
            "match_by",
            f"{match_by!r} does not go with mode {mode}; expected one of {', '.join(modes[mode])}",
        )
    custom = entry.get("custom_attributes") or ()
    if custom != "*":
        if isinstance(custom, str) or not all(isinstance(c, str) for c in custom):
            _fail(stream_name, "custom_attributes", 'expected a list of column names or "*"')
        custom = tuple(custom)
    tags_mode = entry.get("tags_mode") or "managed"
    if tags_mode not in TAGS_MODES:
        _fail(stream_name, "tags_mode", f"{tags_mode!r}; expected one of {', '.join(TAGS_MODES)}")
    per_request = entry.get("invoices_per_request", 50)
    if not isinstance(per_request, int) or per_request < 1:
        _fail(stream_name, "invoices_per_request", "expected a positive integer")
    delete_missing = bool(entry.get("delete_missing", False))
    if delete_missing and (obj != "customers" or match_by != "external_id"):
        _fail(stream_name, "delete_missing", "only customers matched by external_id can be deleted")
    fraction = entry.get("max_delete_fraction", 0.2)
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        _fail(stream_name, "max_delete_fraction", "expected a number from 0 to 1")
    return StreamSettings(
        stream_name=stream_name,
        object=obj,
        mode=mode,
        match_by=match_by,
        custom_attributes=custom,
        remove_null_custom_attributes=bool(entry.get("remove_null_custom_attributes", False)),
        tags_mode=tags_mode,
        invoices_per_request=per_request,
        delete_missing=delete_missing,
        max_delete_fraction=fraction,
        options=entry,
    )
