"""`--config`: JSON files and `ENV` (TARGET_CHARTMOGUL_* variables, and `.env` in the working directory).

The SDK reads these in its click callback, where a missing file or a trailing comma escapes
as a 40-line traceback; it looks for `.env` next to the installed package (python-dotenv's
`find_dotenv` starts from the caller's file), not where the user runs the command; and it
turns TARGET_CHARTMOGUL_MAX_CONCURRENCY=ten into a bare `ValueError`. Here each of those is
a `FatalError` of one line naming the file or the setting and its variable.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import typing as t

from dotenv import dotenv_values

from target_chartmogul.errors import FatalError

ENV_PREFIX = "TARGET_CHARTMOGUL_"
DOTENV = ".env"
# Variables with the prefix that are not settings: the SDK's log level, Meltano's extras (`__X`).
NOT_SETTINGS = frozenset({"LOGLEVEL"})
TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
FALSE = frozenset({"false", "0", "no", "off", "f", "n", ""})


@dataclasses.dataclass
class ConfigInput:
    """What `--config` gave, in the shape the SDK's `Target.invoke` reads.

    `parse_env` stays False: `ENV` was already read here, with `.env` from the working
    directory and typed values, so the SDK must not read the environment again.
    """

    config: dict[str, t.Any] = dataclasses.field(default_factory=dict)
    parse_env: bool = False


def read_config_file(path: str) -> dict[str, t.Any]:
    """One JSON config file; missing, unreadable, invalid or not an object is one line naming it."""
    file = pathlib.Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FatalError(f"config file '{path}' was not found (working directory {pathlib.Path.cwd()})") from None
    except IsADirectoryError:
        raise FatalError(f"config file '{path}' is a directory, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise FatalError(f"config file '{path}' cannot be read: {reason}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"config file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise FatalError(msg) from None
    if not isinstance(config, dict):
        raise FatalError(f"config file '{path}' must hold a JSON object of settings, not a {type(config).__name__}")
    return config


def _types(spec: t.Mapping[str, t.Any]) -> set[str]:
    kind = spec.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for option in spec.get("anyOf") or []:
        kinds |= _types(option)
    return kinds - {"null"}


def _bad(name: str, variable: str, expected: str, value: str, spec: t.Mapping[str, t.Any]) -> FatalError:
    shown = "a value" if spec.get("secret") or spec.get("writeOnly") else repr(value)
    return FatalError(f"setting {name} (from {variable}) must be {expected}, got {shown}")


def _typed(name: str, variable: str, value: str, spec: t.Mapping[str, t.Any]) -> t.Any:
    """The variable's text as the setting's JSON type; a value that is not of it is one line naming both."""
    kinds = _types(spec)
    if "string" in kinds or not kinds:
        return value
    if "boolean" in kinds:
        if value.strip().lower() in TRUE | FALSE:
            return value.strip().lower() in TRUE
        raise _bad(name, variable, "true or false", value, spec)
    if "integer" in kinds:
        try:
            return int(value.strip())
        except ValueError:
            raise _bad(name, variable, "a whole number", value, spec) from None
    if "number" in kinds:
        try:
            return float(value.strip())
        except ValueError:
            raise _bad(name, variable, "a number", value, spec) from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if "object" in kinds and isinstance(parsed, dict):
        return parsed
    if "array" in kinds and isinstance(parsed, list):
        return parsed
    raise _bad(name, variable, "JSON (an object)" if "object" in kinds else "a JSON array", value, spec)


def environment(cwd: pathlib.Path | None = None) -> dict[str, str]:
    """The process environment over `.env` of the working directory (a variable set in the shell wins, as in Meltano)."""
    dotenv_file = (cwd or pathlib.Path.cwd()) / DOTENV
    values = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None} if dotenv_file.is_file() else {}
    return {**values, **os.environ}


def env_settings(schema: t.Mapping[str, t.Any], environ: t.Mapping[str, str]) -> dict[str, t.Any]:
    """Settings from TARGET_CHARTMOGUL_<NAME> variables, typed by the settings schema."""
    properties: t.Mapping[str, t.Any] = schema.get("properties") or {}
    config: dict[str, t.Any] = {}
    for name, spec in properties.items():
        variable = ENV_PREFIX + name.upper().replace("-", "_")
        if variable in environ:
            config[name] = _typed(name, variable, environ[variable], spec)
    return config


def unknown_variables(schema: t.Mapping[str, t.Any], environ: t.Mapping[str, str]) -> list[str]:
    """TARGET_CHARTMOGUL_* variables that name no setting (a misspelling is otherwise ignored in silence)."""
    known = {ENV_PREFIX + name.upper().replace("-", "_") for name in schema.get("properties") or {}}
    return sorted(
        variable
        for variable in environ
        if variable.startswith(ENV_PREFIX)
        and variable not in known
        and variable[len(ENV_PREFIX) :] not in NOT_SETTINGS
        and not variable[len(ENV_PREFIX) :].startswith("_")
    )


def from_cli_args(paths: t.Sequence[str], schema: t.Mapping[str, t.Any]) -> tuple[ConfigInput, list[str]]:
    """Merge `--config` arguments in order (a later one wins, as in the SDK); `ENV` reads the environment.

    Returns the config and the TARGET_CHARTMOGUL_* variables that name no setting.
    """
    config: dict[str, t.Any] = {}
    unknown: list[str] = []
    for path in paths:
        if path == "ENV":
            environ = environment()
            config |= env_settings(schema, environ)
            unknown = unknown_variables(schema, environ)
        else:
            config |= read_config_file(path)
    return ConfigInput(config), unknown
