"""`--about` in text and markdown, and the README's settings tables: one rendering of the settings schema.

The SDK's text `--about` lists names and types only, and neither format shows what an
entry of `streams` takes (its options sit under `additionalProperties`). Here every
setting shows its type, default and description, and the options of a `streams` entry
follow, in both formats. The README's tables are `settings_markdown()` (tests/test_docs.py
checks that they match), so the README and `--about` cannot drift apart. JSON keeps the
SDK's format: it carries the whole schema already.
"""

from __future__ import annotations

import json
import typing as t

from target_chartmogul.config.settings import CONFIG_SCHEMA, STREAM_OPTIONS

Schema = t.Mapping[str, t.Any]
STREAMS_HEADING = "Options of one entry of `streams` (keyed by the incoming stream name):"


def type_of(spec: Schema) -> str:
    """`string`, `array/string`, `number or string`, … (null left out: every optional setting may be null)."""
    if "const" in spec:
        return json.dumps(spec["const"])
    kind = spec.get("type")
    if kind is None:
        options = spec.get("anyOf") or spec.get("oneOf") or []
        return " or ".join(k for k in (type_of(o) for o in options if isinstance(o, dict)) if k)
    if isinstance(kind, list):
        return "/".join(str(k) for k in kind if k != "null")
    return "" if kind == "null" else str(kind)


def default_of(spec: Schema) -> str:
    """The default as JSON (`"auto"`, `40`, `false`), or '' when there is none."""
    return json.dumps(spec["default"]) if "default" in spec else ""


def description_of(spec: Schema) -> str:
    """The description, marked when the setting is a secret."""
    return str(spec.get("description") or "") + (" Secret." if spec.get("secret") else "")


def stream_options() -> Schema:
    """The options one entry of `streams` takes."""
    return t.cast("Schema", STREAM_OPTIONS.to_dict()["properties"])


def _rows(properties: Schema, required: t.Collection[str], parent: str = "") -> t.Iterator[tuple[str, Schema, bool]]:
    """(name, schema, required) of each setting, then of its nested settings as `parent.child`."""
    for name, spec in properties.items():
        full = f"{parent}.{name}" if parent else name
        yield full, spec, name in required
        if isinstance(spec.get("properties"), dict):
            yield from _rows(spec["properties"], spec.get("required") or (), full)


# Markdown ---------------------------------------------------------------------------------------
def table(properties: Schema, required: t.Collection[str] = ()) -> str:
    """A markdown table: setting, type, default, description."""
    lines = ["| Setting | Type | Default | Description |", "|:--|:--|:--|:--|"]
    for name, spec, needed in _rows(properties, required):
        flag = " (required)" if needed else ""
        default = f"`{default_of(spec)}`" if "default" in spec else ""
        lines.append(f"| `{name}`{flag} | {type_of(spec)} | {default} | {description_of(spec)} |")
    return "\n".join(lines)


def settings_markdown() -> str:
    """The README's two tables: this target's settings, and the options of one entry of `streams`."""
    return f"{table(CONFIG_SCHEMA['properties'], CONFIG_SCHEMA.get('required', []))}\n\n{STREAMS_HEADING}\n\n" \
           f"{table(stream_options())}"


def markdown_settings(settings: Schema) -> str:
    """`--about --format markdown`'s settings section: every setting (the SDK's too), then a `streams` entry."""
    return (f"## Settings\n\n{table(settings.get('properties') or {}, settings.get('required') or ())}\n\n"
            f"{STREAMS_HEADING}\n\n{table(stream_options())}\n")


# Text -------------------------------------------------------------------------------------------
def _text_entry(name: str, spec: Schema, *, required: bool, indent: str, env: str | None) -> list[str]:
    kind = type_of(spec) + (" (required)" if required else "")
    lines = [f"{indent}- Name: {name}", f"{indent}  Type: {kind}"]
    if "enum" in spec:
        lines.append(f"{indent}  Allowed: {', '.join(str(value) for value in spec['enum'] if value is not None)}")
    if "default" in spec:
        lines.append(f"{indent}  Default: {default_of(spec)}")
    if description_of(spec):
        lines.append(f"{indent}  Description: {description_of(spec)}")
    if env is not None:
        lines.append(f"{indent}  Environment Variable: {env}")
    return lines


def text_settings(settings: Schema, env_prefix: str) -> str:
    """`--about`'s settings section: each setting's type, default, description and variable; under `streams`,
    the options of one entry.
    """
    lines = ["Settings:"]
    for name, spec, needed in _rows(settings.get("properties") or {}, settings.get("required") or ()):
        env = env_prefix + name.upper().replace("-", "_") if "." not in name else None
        lines += _text_entry(name, spec, required=needed, indent="  ", env=env)
        if name == "streams":
            lines.append("    Options of one entry (keyed by the incoming stream name):")
            for option, option_spec in stream_options().items():
                lines += _text_entry(option, option_spec, required=False, indent="      ", env=None)
    return "\n".join(lines) + "\n"


def replace_settings(output: str, settings_section: str, marker: str) -> str:
    """The SDK's `--about` output with its settings section (from `marker` to the end) replaced."""
    head = output.split(marker, 1)[0]
    return f"{head}{settings_section}"
