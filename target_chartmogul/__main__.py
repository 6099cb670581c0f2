"""Allow ``python -m target_chartmogul``."""

from __future__ import annotations

from target_chartmogul.target import TargetChartMogul

TargetChartMogul.cli()
