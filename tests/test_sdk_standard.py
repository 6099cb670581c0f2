"""singer-sdk's standard target tests: every unknown stream is skipped, none is an error.

The streams in these tests (users, locations, test:SpecialChars!in?attributes, ...) map
to no ChartMogul object, so no API call is made; the api_url points at a closed port
to prove it (any call would fail the run).
"""

from __future__ import annotations

from singer_sdk.testing import get_target_test_class

from target_chartmogul.target import TargetChartMogul

StandardTargetTests = get_target_test_class(
    target_class=TargetChartMogul,
    config={"api_key": "sdk-standard-tests", "api_url": "http://127.0.0.1:9/v1", "max_retries": 0},
)


class TestTargetChartMogulStandard(StandardTargetTests):  # type: ignore[misc, valid-type]
    """The SDK's 16 standard target tests."""
