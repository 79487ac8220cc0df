"""Tests for the listing plan of a tick and the choice of jobs whose metrics are fetched."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.polaris.models import Job, read_model
from watchdog.rules.evaluate import matches, needs_samples
from watchdog.rules.load import parse_ruleset
from watchdog.rules.model import (
    BudgetRule,
    ExecutionRule,
    HealthRule,
    Match,
    RisingRule,
    Rule,
    StalledRule,
)
from watchdog.watch.plan import (
    MAX_LISTINGS,
    ListQuery,
    Plan,
    _merge_one,
    _order,
    _query_for,
    metric_targets,
    plan,
)

NOW = 1_722_500_000.0
STREAM_ID = "6f1c2a7e-5b1d-4c3e-9a2b-1d2e3f4a5b6c"
BATCH_ID = "0b9e8d7c-6a5b-4c3d-8e2f-1a0b9c8d7e6f"


def make_job(job_id: str, **overrides: Any) -> Job:
    raw: dict[str, Any] = {
        "id": job_id,
        "type": "streaming",
        "executionStatus": "running",
        "health": {"status": "ok"},
        "target": {"tableName": "clicks"},
        "maxParseExceptions": 1000,
    }
    raw.update(overrides)
    return read_model(Job, raw)


def query_of(result: Plan, rule: str) -> ListQuery:
    return result.queries[result.rule_queries[rule]]


def test_health_rule_lists_only_jobs_in_error() -> None:
    """The default health rule asks Polaris for healthStatus=error, nothing else."""
    result = plan([HealthRule(name="unhealthy")])
    assert result.queries == (ListQuery(health=("error",)),)
    assert result.rule_queries == {"unhealthy": 0}


def test_health_rule_carries_match_filters_and_a_literal_table() -> None:
    """match.type, match.execution_status and a glob-free table become server-side filters."""
    rule = HealthRule(
        name="h",
        status=("warn", "error"),
        match=Match(type=("streaming",), execution_status=("running",), table=("clicks",)),
    )
    assert plan([rule]).queries == (
        ListQuery(
            health=("error", "warn"), execution=("running",), types=("streaming",), table="clicks"
        ),
    )
    globbed = HealthRule(name="g", match=Match(table=("clicks_*",)))
    assert plan([globbed]).queries == (ListQuery(health=("error",)),)
    two_tables = HealthRule(name="t", match=Match(table=("a", "b")))
    assert plan([two_tables]).queries[0].table is None


def test_execution_rule_intersects_its_status_with_the_match() -> None:
    """status ∩ match.execution_status is listed; an empty intersection leaves the rule out."""
    rule = ExecutionRule(
        name="e", status=("failed", "canceled"), match=Match(execution_status=("failed",))
    )
    assert plan([rule]).queries == (ListQuery(execution=("failed",)),)
    never = ExecutionRule(name="n", status=("failed",), match=Match(execution_status=("running",)))
    assert plan([never]) == Plan(queries=(), rule_queries={})


def test_stalled_rule_lists_running_streaming_jobs() -> None:
    """A stalled rule needs running streaming jobs only; restricted to batch, it needs none."""
    result = plan([StalledRule(name="s", within=900.0)])
    assert result.queries == (ListQuery(execution=("running",), types=("streaming",)),)
    batch_only = StalledRule(name="b", within=900.0, match=Match(type=("batch",)))
    assert plan([batch_only]).rule_queries == {}


def test_metric_rule_without_match_lists_all_jobs_and_subsumes_the_rest() -> None:
    """An unrestricted rising rule needs every job: that one listing serves all rules."""
    rules: list[Rule] = [
        HealthRule(name="h"),
        ExecutionRule(name="e", status=("failed",)),
        RisingRule(name="r", metric="numRowsSkippedByError", increase=100.0, within=600.0),
        StalledRule(name="s", within=900.0),
    ]
    result = plan(rules)
    assert result.queries == (ListQuery(),)
    assert result.queries[0].is_everything
    assert set(result.rule_queries.values()) == {0}


def test_identical_and_covered_queries_are_deduplicated() -> None:
    """Two health rules share one listing; a streaming-only one is covered by the wider one."""
    rules: list[Rule] = [
        HealthRule(name="a"),
        HealthRule(name="b", severity="critical"),
        HealthRule(name="c", match=Match(type=("streaming",))),
    ]
    result = plan(rules)
    assert result.queries == (ListQuery(health=("error",)),)
    assert result.rule_queries == {"a": 0, "b": 0, "c": 0}


def test_queries_differing_in_one_filter_merge_into_one_listing() -> None:
    """health=error and health=warn on the same types are one listing with both values."""
    rules: list[Rule] = [
        HealthRule(name="err", match=Match(type=("batch",))),
        HealthRule(name="warn", status=("warn",), match=Match(type=("batch",))),
        ExecutionRule(name="fail", status=("failed",), match=Match(type=("streaming",))),
    ]
    result = plan(rules)
    assert result.queries == (
        ListQuery(execution=("failed",), types=("streaming",)),
        ListQuery(health=("error", "warn"), types=("batch",)),
    )
    for rule in rules:
        assert query_of(result, rule.name).covers(plan([rule]).queries[0])


def test_plan_is_deterministic_whatever_the_rule_order() -> None:
    """Reordering the rules gives the same listings in the same order."""
    rules: list[Rule] = [
        HealthRule(name="h", match=Match(table=("orders",))),
        ExecutionRule(name="e", status=("pending",)),
        StalledRule(name="s", within=900.0),
    ]
    forward, backward = plan(rules), plan(list(reversed(rules)))
    assert forward.queries == backward.queries
    assert dict(forward.rule_queries) == dict(backward.rule_queries)
    assert len(forward.queries) == 3


def test_covers_requires_each_filter_to_be_wider_or_absent() -> None:
    """covers: every dimension empty or a superset, and the table absent or equal."""
    wide = ListQuery(health=("error", "warn"))
    assert wide.covers(ListQuery(health=("error",), types=("batch",)))
    assert not wide.covers(ListQuery(types=("batch",)))
    assert ListQuery().covers(ListQuery(table="clicks"))
    assert not ListQuery(table="clicks").covers(ListQuery())
    assert not ListQuery(table="clicks").covers(ListQuery(table="orders"))


def test_list_query_values_are_sorted_and_all_values_mean_no_filter() -> None:
    """Equal filters compare equal; naming every health status is no health filter."""
    assert ListQuery(health=("warn", "error", "warn")) == ListQuery(health=("error", "warn"))
    assert ListQuery(health=("ok", "warn", "error")) == ListQuery()
    assert hash(ListQuery(types=("sql", "batch"))) == hash(ListQuery(types=("batch", "sql")))


def test_metric_targets_only_for_jobs_a_metric_rule_matches() -> None:
    """Only jobs some metric rule matches get a fetch, with the metrics those rules read."""
    ruleset = parse_ruleset(
        "[[rules]]\n"
        'name = "unhealthy"\n'
        'kind = "health"\n'
        "\n"
        "[[rules]]\n"
        'name = "skips"\n'
        'kind = "rising"\n'
        'metric = "numRowsSkippedByError"\n'
        "increase = 100.0\n"
        'within = "10m"\n'
        'match = { type = ["streaming"] }\n'
        "\n"
        "[[rules]]\n"
        'name = "stalled"\n'
        'kind = "stalled"\n'
        'within = "15m"\n',
        "test.toml",
    )
    stream = make_job(STREAM_ID)
    batch = make_job(BATCH_ID, type="batch", health={"status": "error", "code": "x"})
    targets = metric_targets(ruleset.rules, [stream, batch], NOW)
    assert targets == {STREAM_ID: ("numRowsSkippedByError", "numRowsProcessed")}


def test_metric_targets_skip_jobs_whose_verdict_needs_no_samples() -> None:
    """A suspended stream needs no stalled samples; an unlimited job no budget samples."""
    rules: list[Rule] = [
        StalledRule(name="s", within=900.0),
        BudgetRule(name="b", percent=80.0),
    ]
    suspended = make_job(STREAM_ID, executionStatus="suspended")
    unlimited = make_job(BATCH_ID, maxParseExceptions=None)
    targets = metric_targets(rules, [suspended, unlimited], NOW)
    assert targets == {
        STREAM_ID: ("numRowsSkippedByError",),
        BATCH_ID: ("numRowsProcessed",),
    }


# -- the near-linear plan equals the all-against-all one --------------------------------------

_TABLES = (None, "orders", "clicks", "clicks_*", "views")
_METRICS = ("numRowsProcessed", "numRowsSkippedByError", "numBytesProcessed")


def test_rules_naming_many_tables_share_listings_of_every_table() -> None:
    """Past MAX_LISTINGS listings a tick, per-table listings give way to listings of
    every table: 10,000 rules naming 10,000 tables are 2 listings, not 10,000, and each
    rule's listing still holds every job it can match."""
    rules: list[Rule] = []
    for n in range(10_000):
        match = Match(table=(f"t{n}",))
        if n % 2:
            rules.append(HealthRule(name=f"h{n}", match=match))
        else:
            rules.append(ExecutionRule(name=f"e{n}", status=("failed",), match=match))
    result = plan(rules)
    assert result.queries == (ListQuery(execution=("failed",)), ListQuery(health=("error",)))
    for rule in rules[:50]:
        assert query_of(result, rule.name).covers(plan([rule]).queries[0])
    few = plan(rules[:MAX_LISTINGS])
    assert len(few.queries) == MAX_LISTINGS and all(q.table for q in few.queries)


def reference_plan(rules: list[Rule]) -> Plan:
    """The plan as it was first written: every query compared with every other, until
    nothing changes (quadratic and more; the definition the fast plan must meet)."""
    wanted = {r.name: q for r in rules if (q := _query_for(r)) is not None}
    queries = set(wanted.values())
    while True:
        queries = {q for q in queries if not any(p != q and p.covers(q) for p in queries)}
        merged = _merge_one(queries)
        if merged is None:
            break
        queries = merged
    ordered = tuple(sorted(queries, key=_order))
    return Plan(
        queries=ordered,
        rule_queries={
            name: next(i for i, q in enumerate(ordered) if q.covers(need))
            for name, need in wanted.items()
        },
    )


@st.composite
def some_rules(draw: st.DrawFn) -> list[Rule]:
    rules: list[Rule] = []
    for n in range(draw(st.integers(min_value=0, max_value=14))):
        table = draw(st.sampled_from(_TABLES))
        match = Match(
            type=tuple(draw(st.sets(st.sampled_from(("batch", "streaming", "sql")), max_size=2))),
            execution_status=tuple(
                draw(st.sets(st.sampled_from(("running", "failed", "pending")), max_size=2))
            ),
            table=() if table is None else (table,),
        )
        kind = draw(st.sampled_from(("health", "execution", "stalled", "rising")))
        if kind == "health":
            status = tuple(draw(st.sets(st.sampled_from(("warn", "error")), min_size=1)))
            rules.append(HealthRule(name=f"r{n}", status=status, match=match))
        elif kind == "execution":
            status = tuple(draw(st.sets(st.sampled_from(("failed", "pending")), min_size=1)))
            rules.append(ExecutionRule(name=f"r{n}", status=status, match=match))
        elif kind == "stalled":
            rules.append(StalledRule(name=f"r{n}", within=900.0, match=match))
        else:
            metric = draw(st.sampled_from(_METRICS))
            rules.append(
                RisingRule(name=f"r{n}", metric=metric, increase=1.0, within=60.0, match=match)
            )
    return rules


@settings(max_examples=300, deadline=None)
@given(some_rules())
def test_the_plan_is_the_all_against_all_plan(rules: list[Rule]) -> None:
    """Reducing table by table gives exactly the listings, and the listing of each rule,
    that comparing all queries with all gave."""
    assert plan(rules) == reference_plan(rules)


@settings(max_examples=200, deadline=None)
@given(
    some_rules(),
    st.lists(
        st.tuples(
            st.sampled_from(("orders", "clicks", "clicks_eu", "views", None)),
            st.sampled_from(("batch", "streaming")),
            st.sampled_from(("running", "failed")),
        ),
        max_size=6,
    ),
)
def test_metric_targets_are_those_of_trying_every_rule_on_every_job(
    rules: list[Rule], shapes: list[tuple[str | None, str, str]]
) -> None:
    """Trying literal-table rules only on their tables' jobs picks the same metrics, in
    the same order, as trying every metric rule on every job."""
    jobs = [
        make_job(
            f"{n:08x}-0000-4000-8000-{n:012x}",
            type=kind,
            executionStatus=status,
            target=None if table is None else {"tableName": table},
        )
        for n, (table, kind, status) in enumerate(shapes)
    ]
    expected: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        wanted: dict[str, None] = {}
        for rule in rules:
            if rule.metrics and needs_samples(rule, job) and matches(rule, job, NOW):
                wanted.update(dict.fromkeys(rule.metrics))
        if wanted:
            expected[job.id] = tuple(wanted)
    assert metric_targets(rules, jobs, NOW) == expected
