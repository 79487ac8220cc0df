"""Tests for the rules file: the example, defaults, shorthands, and problems as FILE:LINE."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from watchdog.rules.load import load_ruleset, parse_ruleset
from watchdog.rules.model import (
    BudgetRule,
    ExecutionRule,
    HealthRule,
    RatioRule,
    Repeat,
    RisingRule,
    StalledRule,
)
from watchdog.rules.problems import Problem, RulesFileError
from watchdog.rules.ruleset import RuleSet
from watchdog.rules.toml_lines import TomlLines

REPO = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).resolve().parent / "data" / "broken"


def _problems(text: str) -> list[Problem]:
    with pytest.raises(RulesFileError) as caught:
        parse_ruleset(text, "rules.toml")
    return caught.value.problems


def _one_rule(text: str) -> Any:
    ruleset = parse_ruleset('[[rules]]\nname = "r"\n' + text, "rules.toml")
    return ruleset.rules[0]


def test_example_file_parses_with_every_kind() -> None:
    """rules.example.toml is valid and shows every rule kind."""
    ruleset = load_ruleset(REPO / "rules.example.toml")
    kinds = {rule.kind for rule in ruleset.rules}
    assert kinds == {"health", "execution", "rising", "rate", "ratio", "stalled", "budget"}
    assert ruleset.path == REPO / "rules.example.toml"
    assert ruleset.slack.operators == ("U0123ABCD", "W0456EFGH")


def test_empty_file_gives_defaults_and_no_rules() -> None:
    """An empty file is valid: default [watch] and [slack], no rules."""
    ruleset = parse_ruleset("", "rules.toml")
    assert ruleset.rules == ()
    assert ruleset.max_window == 0.0
    watch = ruleset.watch
    assert (watch.interval, watch.concurrency, watch.max_rate) == (30.0, 16, 50.0)
    assert (watch.page_size, watch.timeout, watch.no_data_after) == (500, 10.0, 300.0)
    slack = ruleset.slack
    assert (slack.channel, slack.operators, slack.group_threshold) == (None, (), 5)
    assert slack.audit_channel is None


def test_rule_keys_default_as_documented() -> None:
    """A bare health rule gets the documented common and kind defaults."""
    rule = _one_rule('kind = "health"\n')
    assert isinstance(rule, HealthRule)
    assert (rule.severity, rule.for_, rule.keep_firing_for, rule.max_age) == (
        "warning",
        0.0,
        0.0,
        86400.0,
    )
    assert (rule.status, rule.codes, rule.repeat, rule.channel) == (("error",), (), None, None)
    assert rule.match.type == rule.match.execution_status == rule.match.table == ()


def test_ratio_stalled_and_budget_defaults() -> None:
    """Ratio, stalled and budget rules fill in their default metrics and hysteresis."""
    ratio = _one_rule('kind = "ratio"\nabove = 0.01\nwithin = "15m"\n')
    assert isinstance(ratio, RatioRule)
    assert ratio.metrics == ("numRowsSkippedByError", "numRowsProcessed")
    assert (ratio.min_denominator, ratio.hysteresis, ratio.window) == (1.0, 0.1, 900.0)
    stalled = _one_rule('kind = "stalled"\nwithin = "20m"\n')
    assert isinstance(stalled, StalledRule)
    assert stalled.metrics == ("numRowsProcessed",)
    budget = _one_rule('kind = "budget"\npercent = 80\n')
    assert isinstance(budget, BudgetRule)
    # The budget keeps a window of samples: its forecast is the skip rate over `within`.
    assert (budget.metrics, budget.window) == (("numRowsSkippedByError",), 600.0)


def test_repeat_shorthand_means_a_fixed_period() -> None:
    """`repeat = "1h"` is `every = 1h` with no backoff and no cap."""
    rule = _one_rule('kind = "health"\nrepeat = "1h"\n')
    assert rule.repeat == Repeat(every=3600.0, backoff=1.0, max=None)


def test_repeat_table_takes_backoff_and_cap() -> None:
    """The table form carries every, backoff and max."""
    rule = _one_rule('kind = "health"\nrepeat = { every = "30m", backoff = 2, max = "4h" }\n')
    assert rule.repeat == Repeat(every=1800.0, backoff=2.0, max=14400.0)


def test_match_takes_a_string_or_a_list_and_both_status_spellings() -> None:
    """A single string means a one-element set; executionStatus and execution_status agree."""
    job = "0F7B6C2E-1D2A-4C3B-9E8F-1234567890AB"
    camel = _one_rule(
        f'kind = "health"\nmatch = {{ type = "batch", executionStatus = "failed", '
        f'table = "events_*", job_id = "{job}" }}\n'
    )
    snake = _one_rule(
        'kind = "health"\n[rules.match]\ntype = ["batch"]\nexecution_status = ["failed"]\n'
        f'table = ["events_*"]\njob_id = ["{job.lower()}"]\n'
    )
    assert camel.match == snake.match
    assert camel.match.type == ("batch",)
    assert camel.match.execution_status == ("failed",)
    assert camel.match.job_id == (job.lower(),)


def test_audit_channel_defaults_to_the_alert_channel() -> None:
    """Without audit_channel, job changes are announced in the alert channel."""
    ruleset = parse_ruleset('[slack]\nchannel = "C0123456789"\n', "rules.toml")
    assert ruleset.slack.audit_channel == "C0123456789"


def test_ruleset_helpers_find_rules_metrics_and_windows() -> None:
    """rule(), metric_rules and max_window describe what the watcher must fetch."""
    ruleset = parse_ruleset(
        '[[rules]]\nname = "h"\nkind = "health"\n'
        '[[rules]]\nname = "e"\nkind = "execution"\nstatus = "failed"\n'
        '[[rules]]\nname = "r"\nkind = "rising"\nmetric = "numRowsProcessed"\n'
        'increase = 1\nwithin = "10m"\n'
        '[[rules]]\nname = "s"\nkind = "stalled"\nwithin = "1h"\n',
        "rules.toml",
    )
    assert isinstance(ruleset.rule("e"), ExecutionRule)
    assert ruleset.rule("missing") is None
    assert [rule.name for rule in ruleset.metric_rules] == ["r", "s"]
    assert ruleset.max_window == 3600.0
    rising = ruleset.rule("r")
    assert isinstance(rising, RisingRule)
    assert (rising.metrics, rising.window) == (("numRowsProcessed",), 600.0)


def test_parsed_models_are_frozen() -> None:
    """Rules cannot be changed after parsing."""
    rule = _one_rule('kind = "health"\n')
    with pytest.raises(ValidationError):
        rule.severity = "critical"


def test_rules_built_in_code_accept_seconds_and_refuse_duplicates() -> None:
    """Programmatic construction takes float seconds; a RuleSet still refuses duplicate names."""
    rule = HealthRule(name="h", for_=60.0)
    assert rule.for_ == 60.0
    with pytest.raises(ValidationError, match="duplicate rule name 'h'"):
        RuleSet(rules=(rule, rule))


@pytest.mark.parametrize(
    ("fixture", "line", "fragment"),
    [
        ("unknown_key", 8, "rules[0] 'skips': unknown key 'increse' (did you mean 'increase'?)"),
        ("bad_duration", 6, "within: bad duration '10 minutes'"),
        (
            "unknown_kind",
            8,
            "unknown kind 'risng' (expected one of: health, execution, rising, rate, ratio, "
            "stalled, budget)",
        ),
        ("missing_metric", 9, "rules[1] 'skips': missing required key 'metric'"),
        ("negative_threshold", 6, "increase must be greater than 0"),
        ("duplicate_name", 13, "duplicate rule name 'job-unhealthy' (first defined at line 2)"),
        ("invalid_toml", 5, "invalid TOML"),
        ("misspelled_metric", 6, "unknown metric 'numRowsSkiped' (did you mean"),
        ("bad_watch_key", 4, "[watch]: unknown key 'concurency' (did you mean 'concurrency'?)"),
        ("bad_operator", 5, "bad Slack user id 'bob'"),
    ],
)
def test_broken_file_is_reported_at_its_line(fixture: str, line: int, fragment: str) -> None:
    """Each broken fixture gives exactly one problem, at FILE:LINE, saying what is wrong."""
    path = BROKEN / f"{fixture}.toml"
    with pytest.raises(RulesFileError) as caught:
        load_ruleset(path)
    assert len(caught.value.problems) == 1, str(caught.value)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert fragment in text


def test_every_problem_in_a_file_is_reported_in_line_order() -> None:
    """All problems are reported at once, sorted by line, not only the first."""
    with pytest.raises(RulesFileError) as caught:
        load_ruleset(BROKEN / "many_problems.toml")
    found = [(problem.line, problem.message) for problem in caught.value.problems]
    assert [line for line, _ in found] == [2, 5, 7, 10, 13, 13]
    messages = "\n".join(message for _, message in found)
    for fragment in (
        "interval must be at least 100ms",
        "bad rule name 'Bad Name'",
        "above must be a fraction",
        "rules[1] 'stalled': missing required key 'within'",
        "unknown job type 'stream' (did you mean 'streaming'?)",
        "unknown execution status 'runing' (did you mean 'running'?)",
    ):
        assert fragment in messages
    assert str(caught.value).count("\n") == len(found) - 1


def test_problem_prints_as_file_line_message() -> None:
    """A Problem's text is the FILE:LINE: message form editors jump to."""
    assert str(Problem("rules.toml", 7, "boom")) == "rules.toml:7: boom"


def test_errors_inside_inline_arrays_of_rules_point_at_the_rule() -> None:
    """Rules written as an inline array still get the line of the offending table."""
    text = 'rules = [\n  { name = "a", kind = "health" },\n  { name = "b", kind = "risng" },\n]\n'
    [problem] = _problems(text)
    assert (problem.line, problem.message.split(":")[0]) == (3, "rules[1] 'b'")


def test_unknown_top_level_table_is_named_with_a_suggestion() -> None:
    """A `[[rule]]` typo is reported at its header with the intended name."""
    [problem] = _problems('[watch]\ninterval = "1m"\n\n[[rule]]\nname = "x"\n')
    assert problem.line == 4
    assert "unknown key 'rule' at the top level (did you mean 'rules'?)" in problem.message


def test_key_of_another_kind_names_the_kinds_it_belongs_to() -> None:
    """`metric` in a ratio rule is explained as a mix-up of kinds, not a typo."""
    [problem] = _problems(
        '[[rules]]\nname = "r"\nkind = "ratio"\nabove = 0.1\nwithin = "1m"\n'
        'metric = "numRowsProcessed"\n'
    )
    assert problem.line == 6
    assert "unknown key 'metric' for kind 'ratio' (it belongs to kind: rising, rate, stalled)" in (
        problem.message
    )


def test_single_bracket_rules_table_explains_array_of_tables() -> None:
    """`[rules]` instead of `[[rules]]` says how to write a rule."""
    [problem] = _problems('[rules]\nname = "x"\n')
    assert problem.line == 1
    assert "[[rules]] header" in problem.message


def test_unreadable_file_is_a_problem_at_line_one(tmp_path: Path) -> None:
    """A missing rules file is reported, not raised as OSError."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(RulesFileError) as caught:
        load_ruleset(missing)
    assert str(caught.value).startswith(f"{missing}:1: cannot read rules file")


def test_non_utf8_file_is_reported_at_the_bad_byte_line(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are reported at their line."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[slack]\nchannel = "caf\xe9"\n')
    with pytest.raises(RulesFileError) as caught:
        load_ruleset(path)
    assert str(caught.value).startswith(f"{path}:2: not UTF-8 text")


def test_line_locator_ignores_lookalikes_in_strings_and_comments() -> None:
    """Keys inside strings, comments and multi-line values do not move the real lines."""
    text = (
        'title = "a # [[rules]] x = 1"  # [[rules]]\n'
        'notes = """\n[[rules]]\nname = "fake" \\"""\n"""\n'
        "raw = '''\n[watch]'''\n"
        "when = 1979-05-27 07:32:00\n"
        "[[rules]]\n"
        'name = "a"\n'
        "metric = [\n"
        '  "x", # ] comment\n'
        '  "y",\n'
        "]\n"
        "[rules.match]\n"
        '"type" = { deep = [1, { x = 2 }] }\n'
        "[[ rules ]]\n"
        "repeat.every = '1h'\n"
    )
    tomllib.loads(text)  # the locator only ever sees valid TOML
    lines = TomlLines(text)
    assert lines.line_of(("rules", 0)) == 9
    assert lines.line_of(("rules", 0, "metric", 1)) == 13
    assert lines.line_of(("rules", 0, "match", "type", "deep", 1, "x")) == 16
    assert lines.line_of(("rules", 1)) == 17
    assert lines.line_of(("rules", 1, "repeat", "every")) == 18
    assert lines.line_of(("when",)) == 8
    assert lines.nearest_line(("rules", 1, "missing", "key")) == 17
    assert lines.line_of(("rules", 2)) is None


# -- properties: whatever the input, a RuleSet or a RulesFileError ---------------------------

_KEYS = [
    "watch", "slack", "rules", "name", "kind", "severity", "for", "keep_firing_for", "match",
    "channel", "mention", "repeat", "every", "backoff", "max", "max_age", "runbook", "status",
    "codes", "metric", "increase", "within", "above", "numerator", "hysteresis", "percent",
    "type", "executionStatus", "table", "job_id", "interval", "concurrency", "operators",
]  # fmt: skip
_WORDS = [
    "health", "execution", "rising", "rate", "ratio", "stalled", "budget", "error", "failed",
    "numRowsProcessed", "numRowsSkippedByError", "30s", "1h30m", "0s", "-1m", "U0123ABCD", "",
]  # fmt: skip
_scalars = st.one_of(
    st.sampled_from(_WORDS),
    st.text(max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.booleans(),
)
_keys = st.one_of(st.sampled_from(_KEYS), st.text(min_size=1, max_size=6))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)
_tables = st.dictionaries(_keys, _values, max_size=6)
_documents = st.fixed_dictionaries(
    {},
    optional={
        "watch": _tables,
        "slack": _tables,
        "rules": st.lists(_tables, min_size=1, max_size=3),
        "extra": _values,
    },
)


def _toml_key(key: str) -> str:
    return _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    pairs = (f"{_toml_key(key)} = {_toml_value(item)}" for key, item in value.items())
    return "{ " + ", ".join(pairs) + " }"


def _dump(document: dict[str, Any]) -> str:
    """A small TOML writer: scalars first, then [tables], then [[rules]] tables."""
    out = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in document.items() if k == "extra"]
    for table in ("watch", "slack"):
        if table in document:
            out.append(f"[{table}]")
            out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in document[table].items()]
    for rule in document.get("rules", []):
        out.append("[[rules]]")
        out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in rule.items()]
    return "\n".join(out) + "\n"


def _parses_or_reports(text: str) -> None:
    try:
        parse_ruleset(text, "rules.toml")
    except RulesFileError as error:
        assert error.problems
        last_line = text.count("\n") + 1
        assert all(1 <= problem.line <= last_line for problem in error.problems)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gives_a_ruleset_or_rules_file_error(text: str) -> None:
    """No input text makes parse_ruleset raise anything but RulesFileError."""
    _parses_or_reports(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_arbitrary_toml_gives_a_ruleset_or_rules_file_error(document: dict[str, Any]) -> None:
    """Valid TOML of any shape gives a RuleSet or problems on real lines, never a crash."""
    text = _dump(document)
    assert tomllib.loads(text) == document  # the test's own writer must be right
    _parses_or_reports(text)
