"""Maintenance windows, escalation and the digest settings in the rules file: when a window
is open (daylight-saving changes in a real zone included), what it covers, and every
mistake `check` reports as FILE:LINE."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from watchdog.domain.alerts import JobFacts
from watchdog.rules.load import parse_ruleset
from watchdog.rules.maintenance import MaintenanceWindow
from watchdog.rules.problems import RulesFileError

RULES = """
[[rules]]
name = "skipped-rows-rising"
kind = "rising"
metric = "numRowsSkippedByError"
increase = 100
within = "10m"

[[rules]]
name = "job-unhealthy"
kind = "health"
"""


def at(text: str) -> float:
    """Epoch seconds of an ISO time with its offset (``2026-03-29T00:30:00+00:00``)."""
    return datetime.fromisoformat(text).timestamp()


def utc(epoch: float | None) -> str:
    assert epoch is not None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def window(**keys: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"name": "w", **keys})


def problems(text: str) -> list[str]:
    with pytest.raises(RulesFileError) as caught:
        parse_ruleset(RULES + text, "rules.toml")
    return [str(problem) for problem in caught.value.problems]


def line_of(text: str, needle: str) -> int:
    """The 1-based line of ``needle`` in RULES + text."""
    return (RULES + text).splitlines().index(needle) + 1


def facts(table: str | None = "events_web", job_type: str = "streaming") -> JobFacts:
    return JobFacts(job_id="12e0c8b2-bad6-40fb-9948-8dec4f65d4d9", table=table, type=job_type)


# ---- recurring windows ------------------------------------------------------------------


def test_a_daily_window_is_open_from_its_start_to_its_end() -> None:
    """from 02:00 to 04:00 UTC: open at 02:00 and 03:59:59, closed at 04:00 and 01:59:59."""
    w = window(**{"from": "02:00", "to": "04:00"})
    assert w.is_open(at("2026-06-10T02:00:00+00:00"))
    assert w.is_open(at("2026-06-10T03:59:59+00:00"))
    assert not w.is_open(at("2026-06-10T04:00:00+00:00"))
    assert not w.is_open(at("2026-06-10T01:59:59+00:00"))


def test_a_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    """fri 22:00–02:00: open Friday night into Saturday, not Thursday night."""
    w = window(**{"from": "22:00", "to": "02:00", "days": ["fri"]})
    assert w.is_open(at("2026-06-12T23:00:00+00:00"))  # Friday
    assert w.is_open(at("2026-06-13T01:30:00+00:00"))  # Saturday morning
    assert not w.is_open(at("2026-06-13T02:00:00+00:00"))
    assert not w.is_open(at("2026-06-11T23:00:00+00:00"))  # Thursday
    assert not w.is_open(at("2026-06-12T01:30:00+00:00"))  # Friday morning: Thursday's


def test_days_and_the_zone_decide_in_local_time() -> None:
    """sat/sun in New York: Saturday 03:00 New York is open, though it is 07:00 UTC."""
    w = window(**{"from": "02:00", "to": "04:00", "days": ["Saturday", "sun"]})
    ny = window(**{"from": "02:00", "to": "04:00", "days": ["sat"]}, timezone="America/New_York")
    assert w.days == ("sat", "sun")
    assert ny.is_open(at("2026-06-13T07:00:00+00:00"))
    assert not ny.is_open(at("2026-06-13T03:00:00+00:00"))


def test_a_whole_day_window_never_closes_on_its_days() -> None:
    """00:00–24:00 on the weekend: open all Saturday and Sunday, closing Monday 00:00."""
    w = window(**{"from": "00:00", "to": "24:00", "days": ["sat", "sun"]})
    assert w.is_open(at("2026-06-13T00:00:00+00:00"))
    assert w.is_open(at("2026-06-14T23:59:59+00:00"))
    assert utc(w.next_change(at("2026-06-13T12:00:00+00:00"))) == "2026-06-15 00:00:00"


def test_spring_forward_in_berlin_shortens_a_window_to_what_the_clock_shows() -> None:
    """02:00–04:00 Europe/Berlin on 2026-03-29 (02:00 → 03:00): open from 01:00 to 02:00
    UTC, one hour, since 02:00–03:00 local never happens."""
    w = window(**{"from": "02:00", "to": "04:00"}, timezone="Europe/Berlin")
    before = at("2026-03-29T00:30:00+00:00")  # 01:30 CET
    assert not w.is_open(before)
    opens = w.next_change(before)
    assert utc(opens) == "2026-03-29 01:00:00"  # the clocks jump to 03:00 CEST
    assert w.is_open(opens or 0)
    assert utc(w.next_change(opens or 0)) == "2026-03-29 02:00:00"  # 04:00 CEST


def test_fall_back_in_berlin_lengthens_a_window_by_the_repeated_hour() -> None:
    """02:00–04:00 Europe/Berlin on 2026-10-25 (03:00 → 02:00): open from 00:00 to 03:00
    UTC, three hours; the next day it is back to two (01:00–03:00 UTC)."""
    w = window(**{"from": "02:00", "to": "04:00"}, timezone="Europe/Berlin")
    opens = w.next_change(at("2026-10-24T23:00:00+00:00"))
    assert utc(opens) == "2026-10-25 00:00:00"  # 02:00 CEST
    assert w.is_open(at("2026-10-25T01:30:00+00:00"))  # 02:30 CET, the second time
    closes = w.next_change(opens or 0)
    assert utc(closes) == "2026-10-25 03:00:00"  # 04:00 CET
    reopens = w.next_change(closes or 0)
    assert utc(reopens) == "2026-10-26 01:00:00"
    assert utc(w.next_change(reopens or 0)) == "2026-10-26 03:00:00"


def test_a_window_ending_in_a_repeated_hour_reopens_when_the_hour_comes_again() -> None:
    """01:00–02:30 Berlin on the fall-back night: closed at 02:30 CEST, open again when
    the clocks go back to 02:00 CET (01:00 UTC) until 02:30 CET."""
    w = window(**{"from": "01:00", "to": "02:30"}, timezone="Europe/Berlin")
    closed = at("2026-10-25T00:40:00+00:00")  # 02:40 CEST
    assert not w.is_open(closed)
    assert utc(w.next_change(closed)) == "2026-10-25 01:00:00"
    assert utc(w.next_change(at("2026-10-25T01:10:00+00:00"))) == "2026-10-25 01:30:00"


# ---- one-off windows and what a window covers -------------------------------------------


def test_a_one_off_window_opens_once_and_is_then_over() -> None:
    """start/end: open in between, next change is the start, then the end, then none."""
    w = window(start="2026-12-24T00:00:00Z", end="2026-12-27T00:00:00+01:00")
    before, during = at("2026-12-23T12:00:00+00:00"), at("2026-12-25T00:00:00+00:00")
    assert not w.is_open(before) and w.is_open(during)
    assert utc(w.next_change(before)) == "2026-12-24 00:00:00"
    assert utc(w.next_change(during)) == "2026-12-26 23:00:00"
    assert w.next_change(at("2026-12-30T00:00:00+00:00")) is None
    assert w.schedule() == "2026-12-24T00:00:00Z → 2026-12-27T00:00:00+01:00"


def test_a_window_covers_its_rules_on_the_jobs_its_match_selects() -> None:
    """The rules' matcher: table globs, types, projects; ``rules`` narrows it to rules."""
    w = window(
        **{"from": "02:00", "to": "04:00"},
        match={"table": ["events_*"], "type": "streaming", "project": ["prod"]},
        rules=["skipped-rows-rising"],
    )
    assert w.covers("skipped-rows-rising", "prod", facts())
    assert not w.covers("job-unhealthy", "prod", facts())
    assert not w.covers("skipped-rows-rising", "staging", facts())
    assert not w.covers("skipped-rows-rising", "prod", facts(table="orders"))
    assert not w.covers("skipped-rows-rising", "prod", facts(table=None))
    assert not w.covers("skipped-rows-rising", "prod", facts(job_type="batch"))
    assert window(**{"from": "02:00", "to": "04:00"}).covers("any", "any", facts(table=None))


def test_the_example_rules_file_has_a_window_and_a_digest() -> None:
    """rules.example.toml documents [[maintenance]], [digest] and escalate."""
    from pathlib import Path

    ruleset = parse_ruleset(
        (Path(__file__).resolve().parent.parent / "rules.example.toml").read_text(), "x"
    )
    assert ruleset.maintenance and ruleset.digest is not None
    assert any(rule.escalate is not None for rule in ruleset.rules)


# ---- check: FILE:LINE problems ----------------------------------------------------------

BAD_ZONE = """
[[maintenance]]
name = "weekend-reload"
from = "02:00"
to = "04:00"
timezone = "Europe/Berlim"
"""


def test_an_unknown_time_zone_is_reported_at_its_line_with_a_suggestion() -> None:
    """timezone = "Europe/Berlim" → FILE:LINE: … did you mean 'Europe/Berlin'?"""
    line = line_of(BAD_ZONE, 'timezone = "Europe/Berlim"')
    assert problems(BAD_ZONE) == [
        f"rules.toml:{line}: maintenance[0] 'weekend-reload': timezone: unknown time zone "
        "'Europe/Berlim' (did you mean 'Europe/Berlin'?)"
    ]


@pytest.mark.parametrize(
    ("text", "needle", "words"),
    [
        ('from = "02:00"\nto = "02:00"', 'to = "02:00"', "would last no time"),
        ('from = "02:00"\nto = "04:00"\ndays = ["sat", "funday"]', 'days = ["sat", "funday"]',
         "bad day 'funday'"),
        ('from = "2:00"\nto = "04:00"', 'from = "2:00"', "bad time '2:00'"),
        ('start = "2026-12-27T00:00:00Z"\nend = "2026-12-24T00:00:00Z"',
         'end = "2026-12-24T00:00:00Z"', "end must be after start"),
        ('start = "2026-12-24T00:00:00"\nend = "2026-12-27T00:00:00Z"',
         'start = "2026-12-24T00:00:00"', "has no UTC offset"),
        ('from = "02:00"\nto = "04:00"\nrules = ["skipped-rows-risng"]',
         'rules = ["skipped-rows-risng"]', "unknown rule 'skipped-rows-risng' (did you mean"),
        ('from = "02:00"\nto = "04:00"\nmatch = { project = ["prod"] }',
         'match = { project = ["prod"] }', "unknown project 'prod' (projects: default)"),
        ('from = "02:00"', "[[maintenance]]", "missing required key 'to'"),
        ('from = "02:00"\nto = "04:00"\nstart = "2026-12-24T00:00:00Z"', "[[maintenance]]",
         "either recurring"),
        ("", "[[maintenance]]", "a window needs from and to"),
    ],
)  # fmt: skip
def test_window_mistakes_are_reported_at_their_line(text: str, needle: str, words: str) -> None:
    """Each mistake in a [[maintenance]] table is one FILE:LINE problem saying what to fix."""
    body = f'\n[[maintenance]]\nname = "w"\n{text}\n'
    [found] = problems(body)
    assert found.startswith(f"rules.toml:{line_of(body, needle)}: maintenance[0] 'w': ")
    assert words in found


def test_digest_and_escalate_mistakes_are_reported_at_their_line() -> None:
    """[digest] at must be a time and its zone known; escalate needs a positive after."""
    text = """
[[rules]]
name = "x"
kind = "health"
escalate = { after = "0s", mention = "@oncall" }

[digest]
at = "9am"
timezone = "Mars/Olympus"
"""
    escalate = line_of(text, 'escalate = { after = "0s", mention = "@oncall" }')
    at_line, zone_line = line_of(text, 'at = "9am"'), line_of(text, 'timezone = "Mars/Olympus"')
    assert problems(text) == [
        f"rules.toml:{escalate}: rules[2] 'x': escalate.after must be longer than 0s",
        f"rules.toml:{at_line}: [digest]: at: bad time '9am': write 24-hour HH:MM, like "
        "'02:00' or '23:30'",
        f"rules.toml:{zone_line}: [digest]: timezone: unknown time zone 'Mars/Olympus' (an "
        "IANA name like 'Europe/Berlin', 'America/New_York' or 'UTC')",
    ]


def test_a_valid_window_digest_and_escalation_load() -> None:
    """The interface's example loads as written."""
    ruleset = parse_ruleset(
        RULES.replace(
            'name = "job-unhealthy"\nkind = "health"',
            'name = "job-unhealthy"\nkind = "health"\n'
            'escalate = { after = "15m", mention = "<!subteam^S0123>", channel = "C0LEADS" }',
        )
        + """
[digest]
at = "09:00"
timezone = "Europe/Berlin"
channel = "C0DIGEST"

[[maintenance]]
name = "weekend-reload"
match = { table = ["events_*"] }
rules = ["skipped-rows-rising"]
days = ["sat", "sun"]
from = "02:00"
to = "04:00"
timezone = "Europe/Berlin"
""",
        "rules.toml",
    )
    [w] = ruleset.maintenance
    assert (w.from_, w.to, w.days, w.rules) == ("02:00", "04:00", ("sat", "sun"),
                                                ("skipped-rows-rising",))  # fmt: skip
    assert w.schedule() == "sat, sun 02:00–04:00 Europe/Berlin"
    escalate = ruleset.rules[1].escalate
    assert escalate is not None and (escalate.after, escalate.channel) == (900.0, "C0LEADS")
    assert ruleset.digest is not None and ruleset.digest.at == "09:00"
