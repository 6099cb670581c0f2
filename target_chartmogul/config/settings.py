"""The target's settings: the JSON schema users see in `--about`, and per-stream options.

Setting names are the public interface (README, meltano.yml and the Hub file repeat
them); change them only together.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from singer_sdk import typing as th

from target_chartmogul.config.registry import REGISTRY
from target_chartmogul.errors import FatalError

# Derived from the one entry per object in `target_chartmogul/config/registry.py`; in write order.
OBJECTS = tuple(entry.name for entry in REGISTRY)
DEFAULT_API_URL = "https://api.chartmogul.com/v1"
DEFAULT_REJECTS_PATH = ".target-chartmogul/rejects.jsonl"
DEFAULT_LEDGER_URL = "sqlite:///.target-chartmogul/ledger.db"

# object -> mode -> allowed match_by (first is the default)
MODES: dict[str, dict[str, tuple[str, ...]]] = {entry.name: dict(entry.modes) for entry in REGISTRY}
# objects `delete_missing` applies to
DELETABLE = {entry.name for entry in REGISTRY if entry.deletable}
AMOUNT_UNITS = ("cents", "units")
INVOICE_CHANGES = ("apply", "keep")
TAGS_MODES = ("managed", "exact")
DEFAULT_MODE = {entry.name: entry.default_mode for entry in REGISTRY}

STREAM_OPTIONS = th.ObjectType(
    th.Property(
        "object",
        th.StringType(allowed_values=list(OBJECTS)),
        description="ChartMogul object this stream writes: customers, plans, invoices, line_items (the lines of "
        "invoices, from their own table), transactions, subscription_events or contacts.",
    ),
    th.Property(
        "mode",
        th.StringType,
        description="upsert (default), update or insert (customers); upsert (default) or insert (plans); insert "
        "(invoices, transactions); upsert (subscription_events, contacts).",
    ),
    th.Property(
        "match_by",
        th.StringType,
        description="Matching key: external_id (the default of every mode), email (customers upsert; contacts, "
        "within their customer) or uuid (customers update).",
    ),
    th.Property(
        "custom_attributes",
        th.CustomType({"type": ["array", "string"], "items": {"type": "string"}}),
        default=[],
        description='Columns sent as custom attributes (customers, typed; contacts): a list of names, or "*" for every '
        "non-standard column.",
    ),
    th.Property(
        "remove_null_custom_attributes",
        th.BooleanType,
        default=False,
        description="Remove (DELETE) a custom attribute whose value became null, instead of setting it to null.",
    ),
    th.Property(
        "tags_mode",
        th.StringType(allowed_values=list(TAGS_MODES)),
        default="managed",
        description="Customers: managed removes only tags the loader set from this column earlier, keeping "
        "tags ChartMogul or people add; exact makes ChartMogul's tags mirror the column, removing every other tag.",
    ),
    th.Property("invoices_per_request", th.IntegerType, default=50, description="Invoices of one customer per import call."),
    th.Property(
        "amount_unit",
        th.StringType(allowed_values=list(AMOUNT_UNITS)),
        default="cents",
        description="Invoices, line items, transactions, subscription events: amounts in integer cents, or in "
        "currency units (99.90) "
        "converted exactly to cents (zero-decimal currencies such as JPY stay whole).",
    ),
    th.Property(
        "invoice_changes",
        th.StringType(allowed_values=list(INVOICE_CHANGES)),
        default="apply",
        description="Invoices: apply corrections to an imported invoice (update, or replace keeping its payments), "
        "or keep it untouched and warn (counted changed_not_applied).",
    ),
    th.Property(
        "delete_missing",
        th.BooleanType,
        default=False,
        description="Customers, invoices, line items, transactions, subscription events, contacts (matched by "
        "external_id): delete on _sdc_deleted_at, and those absent from a complete full-table version.",
    ),
    th.Property(
        "max_delete_fraction",
        th.NumberType,
        default=0.2,
        description="A full-table version that would delete more than this share of the objects the stream wrote "
        "deletes none.",
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
        "data_source_name",
        th.StringType,
        description="Instead of data_source_uuid: the data source with this name, found (GET /data_sources) or "
        "created once when the account has none. With data_source_uuid too, both must name the same data source.",
    ),
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
    th.Property(
        "bulk_import",
        th.StringType(allowed_values=["auto", "always", "never"]),
        default="auto",
        description="New customers, invoices (with lines and payments) and subscription events through ChartMogul's "
        "bulk JSON import: auto (when at least bulk_min_records wait), always, or never (one REST call each).",
    ),
    th.Property(
        "bulk_min_records",
        th.IntegerType,
        default=200,
        description="With bulk_import auto: fewer new records than this go through REST.",
    ),
    th.Property(
        "bulk_poll_timeout",
        th.NumberType,
        default=3600,
        description="Seconds to wait for a bulk import to finish; then the run fails and the next run polls it again.",
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
        "summary_path",
        th.StringType,
        description="JSON file written at the end of every run: status (succeeded, succeeded_with_rejects, failed, "
        "stopped; running while it runs; succeeded_with_differences when a reconcile run found some), exit code, "
        "figures, and per stream the summary's counts. Unset: none.",
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
        "reconcile",
        th.BooleanType,
        default=False,
        description="Compare, never write: read the input and ChartMogul, ignore the sync memory, and report what "
        "ChartMogul lacks (missing), holds otherwise (different, per field), holds beyond a complete full-table "
        "stream (extra) and the monthly revenue of both sides; exit 3 when they differ, 0 when they agree.",
    ),
    th.Property(
        "reconcile_path",
        th.StringType,
        description="JSON-lines file of a reconcile run's differences (default: reconcile.jsonl in the rejects "
        "file's folder); the HTML page with the revenue chart is written next to it (.html).",
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
        description="SQLAlchemy URL of the sync memory (sqlite:///… or postgresql://…, which needs "
        "target-chartmogul[postgres]); holds no secrets.",
    ),
    th.Property(
        "metrics_log_level",
        th.StringType(allowed_values=["DEBUG", "INFO", "WARNING", "ERROR"]),
        description="Level of singer-sdk's METRIC log lines: INFO shows them. Unset: hidden, unless "
        "SINGER_SDK_LOG_CONFIG (the SDK's logging config file) is set.",
    ),
).to_dict()


STREAM_OPTION_NAMES: tuple[str, ...] = tuple(STREAM_OPTIONS.to_dict()["properties"])
STREAM_DEFAULTS: dict[str, t.Any] = {
    name: spec["default"] for name, spec in STREAM_OPTIONS.to_dict()["properties"].items() if "default" in spec
}


def setting(config: t.Mapping[str, t.Any], name: str) -> t.Any:
    """A top-level setting: the configured value, else its default from the schema (the one source of defaults)."""
    value = config.get(name)
    return value if value is not None else CONFIG_SCHEMA["properties"][name].get("default")


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """What one incoming stream writes and how; `object` None means the stream is skipped.

    Built by `stream_settings`, which fills every option from the stream's entry or the
    schema's default: the fields here have no defaults of their own.
    """

    stream_name: str
    object: str | None
    mode: str
    match_by: str
    custom_attributes: tuple[str, ...] | t.Literal["*"]
    remove_null_custom_attributes: bool
    tags_mode: str
    amount_unit: str
    invoice_changes: str
    invoices_per_request: int
    delete_missing: bool
    max_delete_fraction: float
    options: t.Mapping[str, t.Any]


def skipped(stream_name: str, entry: t.Mapping[str, t.Any]) -> StreamSettings:
    """Settings of a stream that maps to no object (every option at its default, nothing written)."""
    fields = {f.name for f in dataclasses.fields(StreamSettings)} - {"stream_name", "object", "mode", "match_by", "options"}
    defaults: dict[str, t.Any] = {name: STREAM_DEFAULTS.get(name) for name in fields}
    defaults["custom_attributes"] = tuple(defaults["custom_attributes"] or ())
    return StreamSettings(stream_name=stream_name, object=None, mode="", match_by="", options=entry, **defaults)


def object_for_name(stream_name: str) -> str | None:
    """Customers for `customers`, `public-customers` or `billing.customers`; else None."""
    lowered = stream_name.lower()
    if lowered in OBJECTS:
        return lowered
    last = re.split(r"[-.]", lowered)[-1]
    return last if last in OBJECTS else None


class _Options:
    """One stream's entry of `streams`, read option by option; a bad one is a one-line FatalError."""

    def __init__(self, stream_name: str, entry: t.Mapping[str, t.Any], *, listed: bool) -> None:
        self.stream_name = stream_name
        self.entry = entry
        self.listed = listed

    def fail(self, option: str, message: str) -> t.NoReturn:
        msg = f"Invalid setting streams.{self.stream_name}.{option}: {message}"
        raise FatalError(msg)

    def get(self, option: str) -> t.Any:
        value = self.entry.get(option)
        return STREAM_DEFAULTS.get(option) if value is None else value

    def one_of(self, option: str, allowed: t.Sequence[str], default: str, what: str = "") -> str:
        value = self.entry.get(option) or default
        if value not in allowed:
            self.fail(option, f"{value!r} {what or 'is not allowed'}; expected one of {', '.join(allowed)}")
        return str(value)

    def object(self) -> str | None:
        obj = self.entry.get("object") or object_for_name(self.stream_name)
        if obj is None and self.listed:
            self.fail("object", f"missing; expected one of {', '.join(OBJECTS)}")
        if obj is not None and obj not in OBJECTS:
            self.fail("object", f"unknown object {obj!r}; expected one of {', '.join(OBJECTS)}")
        return obj

    def custom_attributes(self) -> tuple[str, ...] | t.Literal["*"]:
        custom = self.get("custom_attributes")
        if custom == "*":
            return "*"
        if isinstance(custom, str) or not all(isinstance(c, str) for c in custom):
            self.fail("custom_attributes", 'expected a list of column names or "*"')
        return tuple(custom)

    def positive_integer(self, option: str) -> int:
        value = self.get(option)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(option, "expected a positive integer")
        return value

    def fraction(self, option: str) -> float:
        value = self.get(option)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            self.fail(option, "expected a number from 0 to 1")
        return float(value)


def stream_settings(stream_name: str, streams_config: t.Mapping[str, t.Any] | None) -> StreamSettings:
    """Resolve and check one stream's options; a bad option is a one-line FatalError."""
    entry = dict((streams_config or {}).get(stream_name) or {})
    options = _Options(stream_name, entry, listed=stream_name in (streams_config or {}))
    obj = options.object()
    if obj is None:
        return skipped(stream_name, entry)
    modes = MODES[obj]
    mode = options.one_of("mode", list(modes), DEFAULT_MODE[obj], f"is not a mode of {obj}")
    match_by = options.one_of("match_by", modes[mode], modes[mode][0], f"does not go with mode {mode}")
    delete_missing = bool(options.get("delete_missing"))
    if delete_missing and (obj not in DELETABLE or match_by != "external_id"):
        deletable = ", ".join(sorted(DELETABLE))
        options.fail("delete_missing", f"only {deletable} matched by external_id can be deleted")
    return StreamSettings(
        stream_name=stream_name,
        object=obj,
        mode=mode,
        match_by=match_by,
        custom_attributes=options.custom_attributes(),
        remove_null_custom_attributes=bool(options.get("remove_null_custom_attributes")),
        tags_mode=options.one_of("tags_mode", TAGS_MODES, STREAM_DEFAULTS["tags_mode"]),
        amount_unit=options.one_of("amount_unit", AMOUNT_UNITS, STREAM_DEFAULTS["amount_unit"]),
        invoice_changes=options.one_of("invoice_changes", INVOICE_CHANGES, STREAM_DEFAULTS["invoice_changes"]),
        invoices_per_request=options.positive_integer("invoices_per_request"),
        delete_missing=delete_missing,
        max_delete_fraction=options.fraction("max_delete_fraction"),
        options=entry,
    )
