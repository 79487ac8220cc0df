"""Tests for ``test-rules``: the shipped example, FAIL reports, broken files, series notation."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.rules.load import load_ruleset
from watchdog.testing.file import MAX_TICKS, load_test_file, parse_numbers, parse_words
from watchdog.testing.run import run_test_file

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "testrules"
RULES = DATA / "rules.toml"
_PROBLEM = re.compile(r"^\S+:\d+: \S")


def _run(path: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_test_file(path, out)
    return code, out.getvalue().splitlines()


def _write(tmp_path: Path, text: str, rules: Path = RULES) -> Path:
    path = tmp_path / "t.test.toml"
    path.write_text(f"rules = {str(rules)!r}\n{text}", encoding="utf-8")
    return path


# ---- the shipped example ------------------------------------------------------------------


def test_example_test_file_passes() -> None:
    """rules.example.test.toml passes against rules.example.toml: exit 0, all PASS."""
    code, lines = _run(REPO / "rules.example.test.toml")
    cases = load_test_file(REPO / "rules.example.test.toml").cases
    assert code == 0, "\n".join(lines)
    assert lines[-1] == f"{len(cases)} passed, 0 failed"
    assert [line for line in lines[:-1] if not line.startswith("PASS  ")] == []


def test_example_tests_make_every_example_rule_fire() -> None:
    """Every rule of rules.example.toml is expected to fire in some example case."""
    tests = load_test_file(REPO / "rules.example.test.toml")
    fired = {
        alert.partition("/")[0]
        for case in tests.cases
        for expect in case.expect
        for alert in expect.firing or ()
    }
    assert fired == {rule.name for rule in load_ruleset(REPO / "rules.example.toml").rules}


# ---- failing cases ------------------------------------------------------------------------


def test_failing_case_reports_what_was_missing_and_unexpected() -> None:
    """A wrong expectation gives exit 1 and says what was missing, unexpected, and why."""
    code, lines = _run(DATA / "failing.toml")
    assert code == 1
    assert lines[:4] == [
        "PASS  passes",
        "FAIL  expects the wrong things",
        "  at 1m:",
        "    missing firing       unhealthy/a  (pending since 0s)",
    ]
    assert lines[4].startswith("    unexpected firing    errors-rising/a  (firing since 1m: ")
    assert lines[5:] == [
        "    unexpected notified  new:errors-rising/a  "
        "(firing since 1m; last notification: new at 1m)",
        "  at 3m:",
        "    missing notified     resolved:errors-rising/a  "
        "(firing since 1m; last notification: new at 1m)",
        "1 passed, 1 failed",
    ]


def test_series_shorter_than_the_run_keeps_its_last_value(tmp_path: Path) -> None:
    """A health series of two values stays at its last one, so `for` is met later."""
    path = _write(
        tmp_path,
        """
[[case]]
name = "held"
job = [{ name = "a", type = "batch", health = "ok error" }]
expect = [{ at = "2m", pending = ["unhealthy/a"] }, { at = "3m", firing = ["unhealthy/a"] }]
""",
    )
    assert _run(path) == (0, ["PASS  held", "1 passed, 0 failed"])


def test_job_ids_from_the_test_file_reach_rule_matching(tmp_path: Path) -> None:
    """A job's `id` is the id rules see: a rule matching one job id fires for that job only."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules]]\nname = "one"\nkind = "health"\n'
        'match = { job_id = "5b0d7a0e-6f0b-4e8f-9d4c-2a7d1f4c9e01" }\n'
    )
    path = _write(
        tmp_path,
        """
[[case]]
name = "pinned"
interval = "30s"
job = [
  { name = "mine", id = "5B0D7A0E-6F0B-4E8F-9D4C-2A7D1F4C9E01", type = "sql", health = "error" },
  { name = "other", type = "sql", health = "error" },
]
expect = [{ at = "30s", firing = ["one/mine"] }]
""",
        rules=rules,
    )
    assert _run(path) == (0, ["PASS  pinned", "1 passed, 0 failed"])


# ---- broken files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("broken_unknown_key.toml", [("broken_unknown_key.toml", 8, "did you mean 'table'?")]),
        ("broken_series.toml", [("broken_series.toml", 9, "bad value '0+10x'")]),
        ("broken_unknown_job.toml", [("broken_unknown_job.toml", 12, "unknown job 'b'")]),
        (
            "broken_unknown_rule.toml",
            [("broken_unknown_rule.toml", 10, "unknown rule 'unhealty' in 'new:unhealty/a'")],
        ),
        ("broken_duration.toml", [("broken_duration.toml", 9, "bad duration '2 minutes'")]),
        ("broken_off_tick.toml", [("broken_off_tick.toml", 9, "not on a tick")]),
        ("broken_toml.toml", [("broken_toml.toml", 4, "invalid TOML")]),
        (
            "broken_rules_file.toml",
            [
                ("broken_rules_file.toml", 1, "broken_rules.rules.toml' cannot be used"),
                ("broken_rules.rules.toml", 4, "unknown key 'severty'"),
            ],
        ),
        (
            "broken_missing_rules.toml",
            [("no-such-rules.toml", 1, "cannot read rules file")],
        ),
    ],
)
def test_broken_test_file_exits_2_with_file_and_line(
    name: str, expected: list[tuple[str, int, str]]
) -> None:
    """A broken test or rules file gives exit 2 and FILE:LINE: message lines, no report."""
    code, lines = _run(DATA / name)
    assert code == 2
    assert lines and all(_PROBLEM.match(line) for line in lines), lines
    for file, line, fragment in expected:
        assert any(
            text.startswith(str(DATA / file) + f":{line}: ") and fragment in text for text in lines
        ), (file, line, fragment, lines)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules = 5", "rules must be a string"),
        ("case = 5", "case must be a list"),
        ('rules = "x.toml"\ncase = [1]', "case must be a table"),
        ('[[case]]\nname = "n"\njob = [1]\nexpect = [{}]', "missing required key 'at'"),
        ('[[case]]\nname = "n"\njob = [{ name = "a b" }]\nexpect = 1', "bad job name 'a b'"),
        ('[[case]]\nname = "n"\njob = [{ name = "a", type = "bach" }]', "did you mean 'batch'"),
        ('[[case]]\nname="n"\njob=[{name="a",type="sql",health="ok:x"}]', "ok takes no code"),
        ('[[case]]\nname="n"\njob=[{name="a",type="sql",execution="x2"}]', "'x2' repeats"),
        ('[[case]]\nname="n"\njob=[{name="a",type="sql",id="nope"}]', "job ids are UUIDs"),
        ('[[case]]\nname="n"\njob=[{name="a",type="sql",metrics=[1]}]', "metrics must be a table"),
        ('[[case]]\nname="n"\njob=[{name="a",type="sql"}]\nexpect=[{at="1m"}]', "at least one of"),
        (
            '[[case]]\nname="n"\njob=[{name="a",type="sql"},{name="a",type="sql"}]\n'
            'expect=[{at="1m",firing=[]}]',
            "job names must differ",
        ),
        ('interval = "10ms"', "interval must be at least 100ms"),
    ],
)
def test_odd_shapes_are_problems_not_tracebacks(tmp_path: Path, text: str, fragment: str) -> None:
    """Wrong types and values anywhere in the file come out as FILE:LINE problems."""
    path = tmp_path / "odd.toml"
    path.write_text(text if text.startswith(("rules", "case")) else f'rules = "x"\n{text}')
    code, lines = _run(path)
    assert code == 2
    assert all(_PROBLEM.match(line) for line in lines), lines
    assert any(fragment in line for line in lines), lines


def test_alerts_are_checked_against_rule_and_job_names(tmp_path: Path) -> None:
    """Malformed alert names and notification kinds are reported at their array item's line."""
    path = _write(
        tmp_path,
        """
[[case]]
name = "names"
job = [{ name = "a", type = "sql" }]
[[case.expect]]
at = "1m"
firing = ["unhealthy"]
notified = [
  "fired:unhealthy/a",
]
""",
    )
    code, lines = _run(path)
    assert code == 2
    assert lines == [
        f"{path}:8: case 'names': firing: 'unhealthy' must name a rule and a job as 'rule/job'",
        f"{path}:10: case 'names': notified: 'fired:unhealthy/a' must start with one of "
        "new, repeat, changed, resolved, escalate and ':'",
    ]


def test_missing_and_undecodable_test_files_exit_2(tmp_path: Path) -> None:
    """A test file that cannot be read or is not UTF-8 is a FILE:LINE problem too."""
    assert _run(tmp_path / "nope.toml") == (
        2,
        [f"{tmp_path / 'nope.toml'}:1: cannot read test file: No such file or directory"],
    )
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'rules = "r.toml"\n\xff\n')
    code, lines = _run(binary)
    assert code == 2
    assert lines == [f"{binary}:2: not UTF-8 text: byte 0xff cannot be decoded"]


# ---- series notation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("0+10x3", [0, 10, 20, 30]),
        ("5x3", [5, 5, 5, 5]),
        ("-2+4x3", [-2, 2, 6, 10]),
        ("1-2x4", [1, -1, -3, -5, -7]),
        ("1 _ 2", [1, None, 2]),
        ("_x3 7", [None, None, None, 7]),
        ("1.5e3 .5", [1500, 0.5]),
        ("0x0", [0]),
    ],
)
def test_numbers_expand_like_promtool(text: str, values: list[float | None]) -> None:
    """Counter series follow promtool: a start then N more steps; `_` is a missing sample."""
    assert parse_numbers(text) == values


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("5 x3", "write the count onto the number"),
        ("1+2", "bad value '1+2'"),
        ("nan", "bad value 'nan'"),
        ("1e999", "too large"),
        (f"0+1x{MAX_TICKS}", "too long"),
    ],
)
def test_bad_numbers_say_what_is_wrong(text: str, fragment: str) -> None:
    """Bad counter notation raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_numbers(text)


def test_words_repeat_for_n_ticks() -> None:
    """`WORD xN` fills N ticks and `_` is an absent value."""
    assert parse_words("running x3 failed _ x2") == ["running"] * 3 + ["failed", None, None]
    for bad in ("", "x3 running", "running x0", "running x2 x2"):
        with pytest.raises(ValueError):
            parse_words(bad)


_NOTATION = st.text(alphabet="0123456789+-x_.eE \t", max_size=24)


@given(st.one_of(st.text(max_size=40), _NOTATION))
def test_any_text_parses_to_finite_numbers_or_a_value_error(text: str) -> None:
    """parse_numbers gives finite numbers and gaps, or ValueError — never another exception."""
    try:
        values = parse_numbers(text)
    except ValueError:
        return
    assert 0 < len(values) <= MAX_TICKS
    assert all(value is None or math.isfinite(value) for value in values)


@given(st.one_of(st.text(max_size=40), st.text(alphabet="ax1_0 ", max_size=16)))
def test_any_text_parses_to_words_or_a_value_error(text: str) -> None:
    """parse_words gives words without blanks, or ValueError — never another exception."""
    try:
        words = parse_words(text)
    except ValueError:
        return
    assert 0 < len(words) <= MAX_TICKS
    assert all(word is None or (word and not word.isspace()) for word in words)


@given(st.integers(-1000, 1000), st.integers(-1000, 1000), st.integers(0, 50))
def test_expanding_notation_is_start_plus_steps(start: int, step: int, count: int) -> None:
    """`A+BxN` is A, A+B, ... A+N·B, however the signs are written."""
    sign = "-" if step < 0 else "+"
    assert parse_numbers(f"{start}{sign}{abs(step)}x{count}") == [
        start + step * i for i in range(count + 1)
    ]


# ---- the on-call workflow in cases --------------------------------------------------------

ONCALL_CASE = """
[[case]]
name = "held and owned"
start = "2026-03-29T00:50:00Z"
interval = "5m"
  [[case.maintenance]]
  name = "night"
  from = "02:00"
  to = "04:00"
  timezone = "Europe/Berlin"
  rules = ["unhealthy"]
  [[case.job]]
  name = "a"
  type = "streaming"
  health = "ok x3 error"
  [[case.ack]]
  at = "2h15m"
  alert = "unhealthy/a"
  [[case.expect]]
  at = "1h5m"
  firing = ["unhealthy/a"]
  notified = []
  [[case.expect]]
  at = "1h10m"
  notified = ["new:unhealthy/a"]
"""


def test_cases_hold_alerts_in_windows_on_their_own_clock(tmp_path: Path) -> None:
    """A case's window, at the case's start (Berlin's spring-forward night), holds the
    alert until 04:00 CEST (02:00 UTC), then posts it once."""
    code, lines = _run(_write(tmp_path, ONCALL_CASE))
    assert (code, lines) == (0, ["PASS  held and owned", "1 passed, 0 failed"])


def test_a_case_window_that_ignores_daylight_saving_would_fail(tmp_path: Path) -> None:
    """The same case, expecting the post an hour late (as a fixed +01:00 would have it),
    fails: the run follows the zone's real clock."""
    text = ONCALL_CASE.replace('at = "1h10m"', 'at = "2h10m"').replace('at = "1h5m"', 'at = "2h5m"')
    code, lines = _run(_write(tmp_path, text))
    assert code == 1 and "FAIL  held and owned" in lines


@pytest.mark.parametrize(
    ("change", "needle", "words"),
    [
        (('rules = ["unhealthy"]', 'rules = ["unhealty"]'), 'rules = ["unhealty"]',
         "case 'held and owned': maintenance 'night': unknown rule 'unhealty' (did you mean"),
        (('timezone = "Europe/Berlin"', 'timezone = "Berlin"'), 'timezone = "Berlin"',
         "case 'held and owned': maintenance 'night': timezone: unknown time zone 'Berlin'"),
        (('alert = "unhealthy/a"', 'alert = "unhealthy/b"'), 'alert = "unhealthy/b"',
         "case 'held and owned': ack: unknown job 'b' in 'unhealthy/b'"),
        (('alert = "unhealthy/a"', 'alert = "unhealthy/a"\n  until = "1h"'), 'until = "1h"',
         "case 'held and owned': ack[0]: until must be later than at"),
    ],
)  # fmt: skip
def test_on_call_mistakes_in_a_case_are_reported_at_their_line(
    tmp_path: Path, change: tuple[str, str], needle: str, words: str
) -> None:
    """Windows and acks in a case are checked like the rules file's: FILE:LINE, exit 2."""
    text = ONCALL_CASE.replace(*change)
    path = _write(tmp_path, text)
    code, lines = _run(path)
    line = (f"rules = {str(RULES)!r}\n" + text).splitlines().index(f"  {needle.strip()}") + 1
    assert code == 2
    assert any(found.startswith(f"{path}:{line}: {words}") for found in lines), lines
