"""The only private singer-sdk methods this target overrides, each for a reason the SDK offers no hook for.

Everything else goes through the SDK's public hooks (`get_sink`, `get_sink_class`,
`process_endofpipe`, `get_validator`, `preprocess_record`, the message reader). These two
have none, so they live here, each delegating at once to a public method of the target,
and tests/test_sdk_overrides.py fails with a message naming the override when a new
singer-sdk stops calling them the way these rely on.

- `Target._write_state_message(state)`: called by `drain_all()` to print STATE. Overridden
  to encode Decimal (meltano/sdk#3787 crashes after the writes) and to withhold STATE while
  records wait for a reference later in the input.
- `PluginBase._handle_termination(signum, frame)`: registered by the SDK for SIGTERM/SIGINT.
  Overridden so a signal during a batch waits for it, and a drain that fails exits 1
  instead of the SDK's unconditional exit 0.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from types import FrameType

OVERRIDDEN = ("_write_state_message", "_handle_termination")


class SDKOverrides:
    """Mixin placed before `singer_sdk.Target` in the target's bases."""

    def emit_state(self, state: dict[str, t.Any]) -> None:
        """Print a STATE message (implemented by the target)."""
        raise NotImplementedError

    def on_termination_signal(self, signum: int) -> None:
        """React to SIGTERM/SIGINT (implemented by the target)."""
        raise NotImplementedError

    def _write_state_message(self, state: dict[str, t.Any]) -> None:
        self.emit_state(state)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        self.on_termination_signal(signum)
