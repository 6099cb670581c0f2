"""Fake ChartMogul API for tests: a real HTTP server with in-memory state.

ChartMogul cannot be reached from CI, so the target is tested against this.
"""

from .faults import FAULT_KINDS, Fault
from .server import FakeChartMogul, RequestRecord
from .store import ApiError, Store

__all__ = ["FAULT_KINDS", "ApiError", "FakeChartMogul", "Fault", "RequestRecord", "Store"]
