"""Tests for human durations: parsing, formatting and the pydantic ``Duration`` type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from watchdog.rules.durations import STRINGS_ONLY, Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        ("1.5h", 5400.0),
        (" 30s ", 30.0),
        ("0s", 0.0),
    ],
)
def test_duration_strings_parse_to_seconds(text: str, seconds: float) -> None:
    """Every unit, decimals and compound forms give the right number of seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("-5s", "cannot be negative"),
        ("10x", "unknown unit 'x'"),
        ("10 minutes", "unknown unit 'minutes'"),
        ("30", "durations are strings like '30s'"),
        ("1.5", "a bare number is ambiguous"),
        ("30m1h", "largest to smallest"),
        ("1h1h", "largest to smallest"),
        ("1h 30m", "durations are strings like"),
        ("ms", "durations are strings like"),
        ("9" * 400 + "d", "too large"),
    ],
)
def test_bad_duration_strings_are_refused_with_a_reason(text: str, fragment: str) -> None:
    """Anything that is not a unit-suffixed duration raises ValueError saying why."""
    with pytest.raises(ValueError, match="bad duration") as caught:
        parse_duration(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90, "1m30s"), (0.5, "500ms"), (3600, "1h"), (0, "0s"), (93784.005, "1d2h3m4s5ms")],
)
def test_durations_format_compactly(seconds: float, text: str) -> None:
    """Seconds render as the shortest unit string a human would write."""
    assert format_duration(seconds) == text


def test_formatting_rounds_float_noise_to_whole_milliseconds() -> None:
    """A value a hair under a minute prints as a minute, not 59s999ms."""
    assert format_duration(59.99999) == "1m"


@given(st.integers(min_value=0, max_value=10**10))
def test_formatted_durations_parse_back_to_the_same_milliseconds(millis: int) -> None:
    """format_duration's output is always a valid duration with the same value."""
    assert round(parse_duration(format_duration(millis / 1000)) * 1000) == millis


class _Timed(BaseModel):
    wait: Duration


def test_duration_type_turns_strings_into_seconds() -> None:
    """The pydantic type parses duration strings into float seconds."""
    assert _Timed(wait="2m").wait == 120.0  # type: ignore[arg-type]


def test_duration_type_accepts_seconds_when_built_in_code() -> None:
    """Code may construct models with plain seconds."""
    assert _Timed(wait=1.5).wait == 1.5


def test_duration_type_refuses_numbers_from_a_file() -> None:
    """With the strings-only context (the rules file), a bare number is an error."""
    with pytest.raises(ValidationError, match="a bare number is ambiguous"):
        _Timed.model_validate({"wait": 30}, context={STRINGS_ONLY: True})


@pytest.mark.parametrize("value", [True, -1.0, float("inf"), None, [1]])
def test_duration_type_refuses_non_durations(value: object) -> None:
    """Booleans, negative or infinite seconds and other types are refused."""
    with pytest.raises(ValidationError, match="bad duration"):
        _Timed.model_validate({"wait": value})
