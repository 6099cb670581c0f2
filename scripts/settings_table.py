"""Print the README's settings tables from the target's own config schema.

The tables are rendered by `target_chartmogul.config.about`, as `--about --format markdown`
renders them; `tests/test_docs.py` checks that README.md holds exactly this output, so the
README, `--about` and the code cannot drift apart.
"""

from __future__ import annotations

from target_chartmogul.config.about import settings_markdown

__all__ = ["settings_markdown"]

if __name__ == "__main__":
    print(settings_markdown())
