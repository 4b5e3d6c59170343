"""Settings: validated on update, with an error that says what to type."""

from __future__ import annotations

import pytest

from resmagic.config import Settings
from resmagic.errors import OptionError


def test_update_converts_strings_from_the_command_line() -> None:
    s = Settings()
    s.update(history_limit="50", sample_interval=" 0.25 ")
    assert (s.history_limit, s.sample_interval) == (50, 0.25)


def test_unknown_key_names_the_known_settings() -> None:
    known = r"unknown setting 'speed'.*: held_mib, history_limit, ranks_timeout_s, sample_"
    with pytest.raises(OptionError, match=known):
        Settings().update(speed=1)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("history_limit", 0),
        ("history_limit", -5),
        ("history_limit", "ten"),
        ("history_limit", 2.5),
        ("history_limit", True),
        # Before: taken, and every later cell failed with OverflowError (a deque's maxlen).
        ("history_limit", 2**63),
        ("history_limit", "9" * 30),
        ("store_limit", 10**9 + 1),
        ("held_mib", 10**30),
        ("sample_interval", "fast"),
        ("sample_interval", 0),
        ("sample_interval", 0.0001),
        ("sample_interval", 61),
        ("sample_interval", "nan"),
        ("sample_interval", "inf"),
        ("ranks_timeout_s", 0),
        ("ranks_timeout_s", "nan"),
        ("ranks_timeout_s", "forever"),
    ],
)
def test_bad_value_says_what_to_type(key: str, value: object) -> None:
    s = Settings()
    with pytest.raises(OptionError, match=rf"bad value .* for {key}: expected .*e\.g\. {key}="):
        s.update(**{key: value})
    assert s == Settings()  # unchanged


def test_failed_update_changes_nothing() -> None:
    s = Settings()
    with pytest.raises(OptionError):
        s.update(history_limit=5, sample_interval="fast")
    with pytest.raises(OptionError):
        s.update(history_limit=5, speed=1)
    assert s == Settings()


def test_option_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Settings().update(history_limit="x")


def test_sink_is_cleaned_and_a_private_settings_starts_nothing() -> None:
    from resmagic.sinks.thread import sink_thread as runner

    s = Settings()
    s.update(sink=" MLflow, mlflow ")
    assert s.sink == "mlflow"
    assert runner.names() == []  # only the process-wide settings drive the sinks
    s.update(sink="none")
    assert s.sink == "off"


def test_unknown_sink_says_which_there_are() -> None:
    s = Settings()
    with pytest.raises(OptionError, match=r"unknown sink 'tensorboard': known sinks are mlflow"):
        s.update(sink="mlflow,tensorboard")
    assert s.sink == "off"


def test_the_largest_count_is_taken_and_a_cell_still_reports() -> None:
    from resmagic import bus, history, timed
    from resmagic.config import settings

    before = settings.history_limit
    try:
        settings.update(history_limit=10**9)
        with timed("x", keep="each"):
            pass
        assert getattr(history()[-1], "label", None) == "x"
    finally:
        settings.update(history_limit=before)
        bus.clear_history()
