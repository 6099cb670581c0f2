"""Each private singer-sdk method the target overrides is still called the way the override relies on.

When a new singer-sdk renames or stops calling one of them, the override silently stops
working (STATE would be printed with the SDK's own encoder and without withholding; a
SIGTERM would exit 0 after a failed drain). These tests then fail naming the override.
"""

from __future__ import annotations

import inspect
import signal

import pytest
from singer_sdk import Target
from singer_sdk.plugin_base import PluginBase
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import Sink

from target_chartmogul.run.sdk_hooks import OVERRIDDEN, SDKOverrides
from target_chartmogul.target import SINK_CLASSES, TargetChartMogul


def sdk_method(name: str) -> object:
    for cls in TargetChartMogul.__mro__:
        if cls is SDKOverrides or cls is TargetChartMogul:
            continue
        if name in cls.__dict__:
            return cls.__dict__[name]
    pytest.fail(f"singer-sdk no longer defines {name}: target_chartmogul/run/sdk_hooks.py overrides nothing")


def test_every_private_override_is_listed_and_lives_in_one_module():
    private = sorted(
        name for cls in TargetChartMogul.__mro__ if cls.__module__.startswith("target_chartmogul")
        for name in cls.__dict__ if name.startswith("_") and not name.startswith("__") and hasattr(Target, name)
        and callable(cls.__dict__[name])
    )
    assert private == sorted(OVERRIDDEN), "a private singer-sdk method is overridden outside run/sdk_hooks.py"
    for name in OVERRIDDEN:
        assert TargetChartMogul.__dict__.get(name) is None, f"{name} must be overridden in run/sdk_hooks.py only"


@pytest.mark.parametrize("sink_class", sorted(set(SINK_CLASSES.values()), key=lambda cls: cls.__name__))
def test_sinks_override_no_private_sdk_method(sink_class):
    private = sorted(
        name for cls in sink_class.__mro__ if cls.__module__.startswith("target_chartmogul")
        for name in cls.__dict__ if name.startswith("_") and not name.startswith("__") and hasattr(BatchSink, name)
        and callable(cls.__dict__[name])
    )
    assert private == [], f"{sink_class.__name__} overrides private singer-sdk methods; use public hooks"


def test_the_sink_hooks_used_instead_are_still_called():
    assert "= self.get_validator()" in inspect.getsource(Sink.__init__)
    assert "self._validator.validate(record)" in inspect.getsource(Sink._validate_and_parse)
    processing = inspect.getsource(Target._process_record_message)
    assert processing.index("sink.preprocess_record(") < processing.index("sink._singer_validate_message("), (
        "singer-sdk no longer runs preprocess_record before checking key properties: a record without its key "
        "would end the run instead of becoming a reject (sinks/base.py)"
    )


def test_write_state_message_is_still_how_drain_all_prints_state():
    method = sdk_method("_write_state_message")
    assert list(inspect.signature(method).parameters) == ["self", "state"], (
        "singer-sdk changed Target._write_state_message(state): STATE withholding and the Decimal-safe "
        "encoder (run/sdk_hooks.py) would no longer apply"
    )
    assert "self._write_state_message(" in inspect.getsource(Target.drain_all), (
        "singer-sdk's drain_all no longer prints STATE through _write_state_message: STATE withholding and "
        "the Decimal-safe encoder (run/sdk_hooks.py) would be skipped"
    )


def test_handle_termination_is_still_the_signal_handler(base_config):
    method = sdk_method("_handle_termination")
    assert list(inspect.signature(method).parameters) == ["self", "signum", "frame"], (
        "singer-sdk changed _handle_termination(signum, frame): the SIGTERM handling of run/sdk_hooks.py "
        "(finish the batch in flight, exit 1 on a failed drain) would no longer apply"
    )
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        target = TargetChartMogul(config=base_config, validate_config=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            assert signal.getsignal(sig) == target._handle_termination, (
                f"singer-sdk no longer registers _handle_termination for {sig.name}: the SIGTERM handling of "
                "run/sdk_hooks.py would be skipped"
            )
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_public_hooks_the_target_relies_on_exist():
    # get_sink is called for every RECORD, SCHEMA and ACTIVATE_VERSION; process_endofpipe at the end of input.
    assert "get_sink" in PluginBase.__dict__ or "get_sink" in Target.__dict__
    assert "self.get_sink(" in inspect.getsource(Target._process_record_message)
    assert "self.drain_all(is_endofpipe=True)" in inspect.getsource(Target.process_endofpipe)


def test_the_cli_hooks_the_target_reimplements_are_still_the_sdks():
    """`invoke` re-implements Target.invoke (to keep the instance for the last line) and `cb_config` reads `--config`:
    a new SDK that passes `invoke` more options, or reads `--config` elsewhere, must be noticed."""
    assert list(inspect.signature(Target.invoke).parameters) == ["about", "about_format", "config", "file_input"]
    assert list(inspect.signature(TargetChartMogul.invoke).parameters) == list(inspect.signature(Target.invoke).parameters)
    sdk_invoke = inspect.getsource(Target.invoke)
    assert "target.listen(file_input)" in sdk_invoke and "parse_env_config=config.parse_env" in sdk_invoke
    command = TargetChartMogul.get_singer_command()
    config_option = next(p for p in command.params if p.name == "config")
    assert config_option.callback == TargetChartMogul.cb_config
    assert set(command.params[i].name for i in range(len(command.params))) == {
        "version", "about", "about_format", "config", "file_input"}
