"""target-chartmogul: a Singer target that keeps ChartMogul in step with your database."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
