"""Settings nothing reads are refused before any input is read, with the closest valid name.

Without this a misspelt option is ignored in silence: `streams.X.custom_atributes` drops
every custom attribute and the run still exits 0. The accepted names are this target's
settings schema, which also holds the SDK's own settings (stream maps, flattening,
validation, batch size, ...), plus names starting with `_`, Meltano's convention for
extras and comments. `load_method`, the SDK's generic loader setting, means nothing here
(every write is keyed by external id) and is refused with what to use instead.
"""

from __future__ import annotations

import difflib
import re
import typing as t
from urllib.parse import urlsplit

from target_chartmogul.config.input import ENV_PREFIX
from target_chartmogul.errors import FatalError

REFUSED = {
    "load_method": "load_method is not a setting of target-chartmogul: every write is keyed by external id, so "
    "nothing is appended twice or overwritten wholesale; choose how each stream writes with "
    "streams.<stream>.mode (upsert, update or insert)",
}

# Settings of the whole run that a stream's entry might be expected to take, with what to do instead.
PER_RUN = {
    name: f"a run has one default data source, set at the top level ({name}); a record's own data_source_uuid "
    "column overrides it (a stream map can add one to every record of a stream)"
    for name in ("data_source_uuid", "data_source_name")
}


def did_you_mean(name: str, candidates: t.Iterable[str]) -> str:
    """` (did you mean `x`?)` for the closest candidate, or '' when none is close."""
    names = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.6)
    return f" (did you mean `{names[close[0]]}`?)" if close else ""


def _top_level(name: str, accepted: t.Collection[str], stream_options: t.Collection[str]) -> str | None:
    """The problem with one top-level key, or None when it is accepted."""
    if name in REFUSED:
        return REFUSED[name]
    if name in accepted or name.startswith("_"):
        return None
    if name in stream_options:
        return f"unknown setting `{name}`: it is an option of one stream; set it under streams.<stream name>.{name}"
    hint = did_you_mean(name, accepted) or " (`target-chartmogul --about` lists the settings)"
    return f"unknown setting `{name}`{hint}"


def _stream_entry(stream: str, entry: t.Any, stream_options: t.Collection[str]) -> list[str]:
    """The unknown options of one entry of `streams` (a non-object entry is left to the schema check)."""
    if not isinstance(entry, t.Mapping):
        return []
    problems = []
    for option in entry:
        if option in stream_options or str(option).startswith("_"):
            continue
        if option in PER_RUN:
            problems.append(f"`streams.{stream}.{option}` is not an option of a stream: {PER_RUN[option]}")
            continue
        hint = did_you_mean(str(option), stream_options) or f" (a stream's options are: {', '.join(stream_options)})"
        problems.append(f"unknown setting `streams.{stream}.{option}`{hint}")
    return problems


def _api_url(config: t.Mapping[str, t.Any]) -> list[str]:
    """`api_url` must be an http(s) URL with a host: otherwise every call fails with a transport error."""
    url = config.get("api_url")
    if url is None:
        return []
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = str(url).rsplit("@", 1)[-1]  # never a user or password written into the URL
        return [f"api_url {shown!r} is not an http:// or https:// URL (such as https://api.chartmogul.com/v1)"]
    return []


def problems_of(
    config: t.Mapping[str, t.Any],
    accepted: t.Collection[str],
    stream_options: t.Collection[str],
) -> list[str]:
    """Every unknown or refused setting of `config`, top level and per stream."""
    problems = [problem for name in config if (problem := _top_level(str(name), accepted, stream_options))]
    streams = config.get("streams")
    if isinstance(streams, t.Mapping):
        for stream, entry in streams.items():
            problems += _stream_entry(str(stream), entry, stream_options)
    return problems + _api_url(config)


def check_settings(
    config: t.Mapping[str, t.Any],
    accepted: t.Collection[str],
    stream_options: t.Collection[str],
) -> None:
    """Refuse unknown settings: one FatalError line listing each with the closest valid name."""
    problems = problems_of(config, accepted, stream_options)
    if problems:
        raise FatalError("; ".join(problems))


def check_variables(variables: t.Sequence[str], prefix: str, accepted: t.Collection[str]) -> None:
    """Refuse TARGET_CHARTMOGUL_* variables (read for `--config ENV`) that name no setting."""
    problems = []
    for variable in variables:
        name = variable[len(prefix) :].lower()
        if name in REFUSED:
            problems.append(f"{variable}: {REFUSED[name]}")
            continue
        close = did_you_mean(name, accepted)
        hint = f" (did you mean `{prefix}{close.split('`')[1].upper()}`?)" if close else ""
        problems.append(f"environment variable {variable} names no setting{hint}")
    if problems:
        raise FatalError("; ".join(problems))


_REQUIRED = re.compile(r"^'(?P<name>[^']+)' is a required property$")
_NOT_ONE_OF = re.compile(r"^'(?P<value>[^']*)' is not one of \[(?P<options>[^\]]*)\]")
_WHERE = re.compile(r" in config((?:\[[^\]]+\])+)$")


def invalid_values(errors: t.Sequence[str]) -> str:
    """The SDK's schema errors about setting values as one line: each names its setting as it is written in the
    config (`streams.x.object`), and a value that is not one of the allowed ones gets the closest of them.
    """
    explained = []
    for error in errors:
        where = _WHERE.search(error)
        setting = ".".join(part.strip("'\"") for part in re.findall(r"\[([^\]]+)\]", where.group(1))) if where else ""
        text = error[: where.start()] if where else error
        required = _REQUIRED.match(text)
        if required is not None and not setting:  # a top-level setting: say both ways of giving it
            name = required.group("name")
            explained.append(f"setting {name} is required: set it in the config file, or as the environment variable "
                             f"{ENV_PREFIX}{name.upper()} with --config ENV")
            continue
        wrong = _NOT_ONE_OF.match(text)
        if wrong is not None:
            options = [option.strip().strip("'\"") for option in wrong.group("options").split(",")]
            text += did_you_mean(wrong.group("value"), options)
        explained.append(f"invalid setting {setting}: {text}" if setting else f"invalid settings: {text}")
    return "; ".join(explained) or "the settings do not match the settings schema"
