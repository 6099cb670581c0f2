"""Print the README's settings tables from the target's own config schema.

`tests/test_docs.py` checks that README.md holds exactly this output, so the README,
`--about` and the code cannot drift apart.
"""

from __future__ import annotations

import json
import typing as t

from target_chartmogul.config.settings import CONFIG_SCHEMA, STREAM_OPTIONS


def _default(spec: dict[str, t.Any]) -> str:
    if "default" not in spec:
        return ""
    return f"`{json.dumps(spec['default'])}`"


def _type(spec: dict[str, t.Any]) -> str:
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = "/".join(k for k in kind if k != "null")
    if not kind and "anyOf" in spec:
        kind = " or ".join(str(o.get("type")) for o in spec["anyOf"])
    return str(kind or "")


def table(properties: dict[str, t.Any], required: t.Collection[str] = ()) -> str:
    lines = ["| Setting | Type | Default | Description |", "|:--|:--|:--|:--|"]
    for name, spec in properties.items():
        flag = " (required)" if name in required else ""
        secret = " Secret." if spec.get("secret") else ""
        lines.append(f"| `{name}`{flag} | {_type(spec)} | {_default(spec)} | {spec.get('description', '')}{secret} |")
    return "\n".join(lines)


def settings_markdown() -> str:
    schema = CONFIG_SCHEMA
    stream = STREAM_OPTIONS.to_dict()
    return (
        table(schema["properties"], schema.get("required", []))
        + "\n\nOptions of one entry of `streams` (keyed by the incoming stream name):\n\n"
        + table(stream["properties"])
    )


if __name__ == "__main__":
    print(settings_markdown())
