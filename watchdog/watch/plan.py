"""Which job listings a tick needs, and which jobs need a metrics fetch.

Polaris filters listings server-side (OR within one filter, AND across filters), so a
tick asks for the jobs the rules can match, not for every job to filter here: a project
with 5,000 healthy jobs and a health rule lists only the jobs in error. :func:`plan`
turns the rules into as few listings as cover them all; each rule is mapped to one
listing whose result holds every job the rule can match (the rule's own ``match`` and
:func:`watchdog.rules.evaluate.matches` then narrow it down).

:func:`metric_targets` then picks, from the listed jobs, the ones some metric rule
watches, with the metrics it reads, so metrics are fetched only where they are used.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from watchdog.polaris.models import EXECUTION_STATUSES, HEALTH_STATUSES, JOB_TYPES, Job
from watchdog.rules.evaluate import matches, needs_samples
from watchdog.rules.model import ExecutionRule, HealthRule, Rule, StalledRule

__all__ = ["ListQuery", "Plan", "metric_targets", "plan"]

_GLOB_CHARS = frozenset("*?[")
# A filter naming every known value returns every job: drop it, so the query can cover
# others. (Widening is always safe: it returns more jobs, never fewer.)
_EVERYTHING = {
    "health": frozenset(HEALTH_STATUSES),
    "execution": frozenset(EXECUTION_STATUSES),
    "types": frozenset(JOB_TYPES),
}
_DIMENSIONS = ("health", "execution", "types")
#: With more listings than this a tick, the listings of single tables give way to
#: listings of every table (the rules' own ``match`` narrows the jobs here, as for table
#: globs): rules naming 10,000 tables must not cost 10,000 requests a tick.
MAX_LISTINGS = 25


@dataclass(frozen=True)
class ListQuery:
    """One ``GET /jobs`` listing: each dimension is OR-ed values, empty = no filter.

    Values are kept sorted and unique, so equal filters are equal (and hash alike).
    The field names match :meth:`watchdog.polaris.client.PolarisClient.list_jobs`' keywords.
    """

    health: tuple[str, ...] = ()
    execution: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    table: str | None = None

    def __post_init__(self) -> None:
        for name in _DIMENSIONS:
            values = frozenset(getattr(self, name))
            normal = () if values >= _EVERYTHING[name] else tuple(sorted(values))
            object.__setattr__(self, name, normal)

    @property
    def is_everything(self) -> bool:
        return not (self.health or self.execution or self.types) and self.table is None

    def covers(self, other: ListQuery) -> bool:
        """Whether every job ``other`` returns is returned by this query too."""
        for name in _DIMENSIONS:
            mine: tuple[str, ...] = getattr(self, name)
            theirs: tuple[str, ...] = getattr(other, name)
            if mine and (not theirs or not set(theirs) <= set(mine)):
                return False
        return self.table is None or self.table == other.table


@dataclass(frozen=True)
class Plan:
    """The listings of one tick and, per rule, the listing that holds all its jobs.

    A rule absent from ``rule_queries`` can match no job (for example a stalled rule
    restricted to batch jobs) and needs no evaluation.
    """

    queries: tuple[ListQuery, ...] = ()
    rule_queries: Mapping[str, int] = field(default_factory=dict)


def plan(rules: Sequence[Rule]) -> Plan:
    """The fewest listings that together hold every job some rule can match.

    Near-linear in the number of rules: a query naming a table can only cover, or merge
    with, queries of the same table, and be covered by the few that name none; so the
    queries are reduced table by table (10,000 rules naming 10,000 tables took minutes
    compared all against all). Past :data:`MAX_LISTINGS` the tables are dropped."""
    wanted: dict[str, ListQuery] = {}
    for rule in rules:
        query = _query_for(rule)
        if query is not None:
            wanted[rule.name] = query
    by_table: dict[str | None, set[ListQuery]] = {}
    for query in wanted.values():
        by_table.setdefault(query.table, set()).add(query)
    anywhere = _reduce(by_table.pop(None, set()), wider=())
    queries = set(anywhere)
    for group in by_table.values():
        queries |= _reduce(group, wider=anywhere)
    if len(queries) > MAX_LISTINGS:
        queries = _reduce({replace(q, table=None) for q in queries}, wider=())
    ordered = tuple(sorted(queries, key=_order))
    # Queries naming no table sort first, so "the first that covers" keeps plan order.
    positions: dict[str | None, list[int]] = {}
    for index, query in enumerate(ordered):
        positions.setdefault(query.table, []).append(index)
    untabled = positions.get(None, [])
    rule_queries = {
        name: next(
            index
            for index in (untabled + positions.get(need.table, []) if need.table else untabled)
            if ordered[index].covers(need)
        )
        for name, need in wanted.items()
    }
    return Plan(queries=ordered, rule_queries=rule_queries)


def metric_targets(
    rules: Iterable[Rule], jobs: Iterable[Job], now: float
) -> dict[str, tuple[str, ...]]:
    """Job id → the metrics that metric rules matching the job read (jobs with none left out).

    A rule whose ``match.table`` names tables without globs can only match jobs of those
    tables: it is only tried on them, so thousands of per-table rules cost each job the
    few that can match it, not all of them."""
    anywhere: list[tuple[int, Rule]] = []
    by_table: dict[str, list[tuple[int, Rule]]] = {}
    for index, rule in enumerate(r for r in rules if r.metrics):
        tables = rule.match.table
        if tables and not any(_GLOB_CHARS & set(table) for table in tables):
            for table in dict.fromkeys(tables):
                by_table.setdefault(table, []).append((index, rule))
        else:
            anywhere.append((index, rule))
    targets: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        named = by_table.get(job.table, []) if job.table is not None else []
        # In rule order, as before: the metrics are fetched in a stable order.
        candidates = heapq.merge(anywhere, named, key=_first) if named else anywhere
        wanted: dict[str, None] = {}  # insertion-ordered set: stable fetch order
        for _, rule in candidates:
            if needs_samples(rule, job) and matches(rule, job, now):
                wanted.update(dict.fromkeys(rule.metrics))
        if wanted:
            targets[job.id] = tuple(wanted)
    return targets


def _first(pair: tuple[int, Rule]) -> int:
    return pair[0]


def _query_for(rule: Rule) -> ListQuery | None:
    """The listing holding every job ``rule`` can match; ``None`` when it can match none."""
    match = rule.match
    table = None
    if len(match.table) == 1 and not _GLOB_CHARS & set(match.table[0]):
        table = match.table[0]
    if isinstance(rule, HealthRule):
        return ListQuery(
            health=rule.status, execution=match.execution_status, types=match.type, table=table
        )
    if isinstance(rule, ExecutionRule):
        execution = _narrow(rule.status, match.execution_status)
        if not execution:
            return None
        return ListQuery(execution=execution, types=match.type, table=table)
    if isinstance(rule, StalledRule):
        # Only running streaming jobs can stall (see watchdog.rules.evaluate).
        types = _narrow(("streaming",), match.type)
        execution = _narrow(("running",), match.execution_status)
        if not types or not execution:
            return None
        return ListQuery(execution=execution, types=types, table=table)
    return ListQuery(execution=match.execution_status, types=match.type, table=table)


def _narrow(values: tuple[str, ...], constraint: tuple[str, ...]) -> tuple[str, ...]:
    """``values`` limited to ``constraint`` (an empty constraint limits nothing)."""
    if not constraint:
        return values
    return tuple(value for value in values if value in constraint)


def _reduce(queries: set[ListQuery], wider: Iterable[ListQuery]) -> set[ListQuery]:
    """Drop the queries covered by another or by one of ``wider`` (already reduced), and
    merge mergeable ones, until nothing changes."""
    wider = tuple(wider)
    while True:
        queries = {
            q
            for q in queries
            if not any(p.covers(q) for p in wider)
            and not any(p != q and p.covers(q) for p in queries)
        }
        merged = _merge_one(queries)
        if merged is None:
            return queries
        queries = merged


def _merge_one(queries: set[ListQuery]) -> set[ListQuery] | None:
    """Merge one pair differing in a single OR-ed dimension, if any.

    ``(A or B) and C`` returns exactly the jobs of ``A and C`` plus ``B and C``: one
    listing instead of two, with no extra job.
    """
    ordered = sorted(queries, key=_order)
    for i, first in enumerate(ordered):
        for second in ordered[i + 1 :]:
            if first.table != second.table:
                continue
            differing = [
                f.name
                for f in fields(ListQuery)
                if getattr(first, f.name) != getattr(second, f.name)
            ]
            if len(differing) != 1:
                continue
            name = differing[0]
            union = tuple(set(getattr(first, name)) | set(getattr(second, name)))
            merged = ListQuery(**{**_as_kwargs(first), name: union})
            return (queries - {first, second}) | {merged}
    return None


def _as_kwargs(query: ListQuery) -> dict[str, Any]:
    return {f.name: getattr(query, f.name) for f in fields(ListQuery)}


def _order(query: ListQuery) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return (query.table or "", query.health, query.execution, query.types)
