"""The operator CLI: ``jobs``, ``status``, ``metrics``, ``pause``, ``resume`` and ``cancel``
against the configured Polaris projects.

The projects come from the rules file (``--rules``, else ``WATCHDOG_RULES``, else
``rules.toml`` when there is one): its ``[[projects]]``, each called with the key its
``api_key_env`` names. Without ``[[projects]]``, or without a rules file, ``POLARIS_*``
make the one project ``default``, as before projects existed. ``--project NAME`` picks a
project, and a job may be written ``PROJECT/JOB``. With several projects, ``jobs`` lists
every project (a PROJECT column; a ``project`` key per job in ``--json``), and a job
command that names no project is refused with one line naming the projects.

Only the keys of the projects a command uses are needed (a missing one is named, exit
2), and each request carries its own project's key: one client per project. Nothing a
user types reaches a URL path unchecked: a job id is checked to be a UUID before any
request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from watchdog.domain.names import PROJECT_NAME
from watchdog.errors import EXIT_FAILURE, InputError
from watchdog.polaris.errors import PolarisError, check_job_id
from watchdog.polaris.models import EXECUTION_STATUSES, HEALTH_STATUSES, JOB_TYPES, Job, document
from watchdog.rules.load import load_ruleset
from watchdog.rules.problems import did_you_mean
from watchdog.rules.ruleset import RuleSet
from watchdog.settings import ProjectConfig, Settings

if TYPE_CHECKING:  # loaded when a command runs: `check` and `test-rules` need no HTTP client
    import aiohttp

    from watchdog.polaris.client import PolarisClient

#: What a command does with the clients of the projects it uses (name → client).
Action = Callable[[Mapping[str, "PolarisClient"]], Awaitable[int]]
_MAX_NAMED = 10  # projects an error names one by one


class ProjectChoiceError(InputError):
    """The command names no project where several are configured, one that is not
    configured, or two different ones (``--project`` and ``PROJECT/JOB``)."""


# ---- which projects, which job -----------------------------------------------------------


def load_projects(rules: str | None, settings: Settings) -> RuleSet:
    """The rules file's projects (its other contents are not used here); an empty rule set
    when no rules file was asked for and ``rules.toml`` is not there. A file asked for
    (``--rules``, ``WATCHDOG_RULES``) must exist and be valid: RulesFileError otherwise."""
    explicit = rules is not None or "watchdog_rules" in settings.model_fields_set
    path = Path(rules) if rules is not None else settings.watchdog_rules
    if not explicit and not path.exists():
        return RuleSet()
    return load_ruleset(path)


def _listed(names: Sequence[str]) -> str:
    more = len(names) - _MAX_NAMED
    return ", ".join(names[:_MAX_NAMED]) + (f" and {more} more" if more > 0 else "")


def check_project(name: str, known: Sequence[str]) -> str:
    """``name`` when it is configured; :class:`ProjectChoiceError` naming the projects if not."""
    if name in known:
        return name
    hint = did_you_mean(name[:64], known)
    hint = f" ({hint})" if hint else ""
    raise ProjectChoiceError(f"unknown project {name[:64]!r}{hint}; projects: {_listed(known)}")


def split_job(text: str) -> tuple[str | None, str]:
    """``PROJECT/JOB`` → (project, job id); ``JOB`` → (None, job id). The job id must be a
    UUID (:class:`~watchdog.polaris.errors.InvalidJobIdError` otherwise, before anything
    is sent); text that is not ``NAME/…`` is all job id, so ``../jobs`` is refused as one."""
    project, slash, job = text.rpartition("/")
    if not slash or not PROJECT_NAME.fullmatch(project):
        return None, check_job_id(text)
    return project, check_job_id(job)


def job_target(args: argparse.Namespace, known: Sequence[str]) -> tuple[str, str]:
    """The (project, job id) a job command acts on, from ``JOB``/``PROJECT/JOB`` and
    ``--project``."""
    written, job_id = split_job(args.job)
    chosen = args.project
    if written is not None and chosen is not None and written != chosen:
        raise ProjectChoiceError(
            f"the job is written {written}/…, but --project says {chosen}: give one of them"
        )
    project = written or chosen
    if project is None:
        if len(known) > 1:
            raise ProjectChoiceError(
                f"several projects are configured ({_listed(known)}): "
                "name one with --project NAME, or write the job as PROJECT/JOB"
            )
        project = known[0]
    return check_project(project, known), job_id


async def _with_clients(
    settings: Settings, rules: RuleSet, projects: Sequence[str], action: Action
) -> int:
    """Run ``action`` with a client for each of ``projects`` (only their keys needed)."""
    import aiohttp

    from watchdog.logs import configure_logging

    if rules.projects:
        rules = rules.model_copy(update={"projects": [rules.project(p) for p in projects]})
    configs = settings.projects(rules)  # MissingSettingError names an unset key variable
    # stdout carries the answer (`jobs --json` must stay parseable) and structlog's
    # unconfigured default prints every level there: send warnings only, to stderr.
    configure_logging(
        settings.watchdog_log_format,
        level="warning",
        secrets=[c.api_key.get_secret_value() for c in configs],
    )
    async with aiohttp.ClientSession() as session:
        clients = {c.name: _client(session, c) for c in configs}
        return await action(clients)


def _client(session: aiohttp.ClientSession, project: ProjectConfig) -> PolarisClient:
    from watchdog.polaris.client import PolarisClient

    return PolarisClient(session, project.api_url, project.project_id, project.api_key)


# ---- the commands --------------------------------------------------------------------------


def _print_table(rows: Sequence[Sequence[str]], header: Sequence[str], out: TextIO) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


def _job_row(job: Job) -> list[str]:
    return [
        job.id,
        job.type,
        job.execution_status,
        job.health_status or "-",
        job.health_code or "-",
        job.table or "-",
    ]


def cmd_jobs(args: argparse.Namespace, out: TextIO, settings: Settings) -> int:
    rules = load_projects(args.rules, settings)
    known = rules.project_names
    chosen = [check_project(p, known) for p in dict.fromkeys(args.project or [])] or list(known)
    several = len(chosen) > 1

    async def action(clients: Mapping[str, PolarisClient]) -> int:
        calls = [
            clients[name].list_jobs(
                health=args.health,
                execution=args.status,
                types=args.type,
                table=args.table,
                page_size=1000,
            )
            for name in chosen
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        listed: list[tuple[str, Job]] = []
        failed: list[tuple[str, PolarisError]] = []
        for name, result in zip(chosen, results, strict=True):
            if isinstance(result, PolarisError):
                failed.append((name, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                listed += [(name, job) for job in result.jobs]
        if not several and failed:
            raise failed[0][1]  # one project: its error is the one line
        _print_jobs(listed, several, args.json, out)
        for name, error in failed:
            print(f"polaris-watchdog: project {name}: {error}", file=sys.stderr)
        return EXIT_FAILURE if failed else 0

    return asyncio.run(_with_clients(settings, rules, chosen, action))


def _print_jobs(
    listed: Sequence[tuple[str, Job]], several: bool, as_json: bool, out: TextIO
) -> None:
    if as_json:
        dumped: list[dict[str, Any]] = []
        for project, job in listed:
            raw = document(job)
            dumped.append({"project": project, **raw} if several else raw)
        json.dump(dumped, out, indent=2)
        print(file=out)
        return
    header = ["ID", "TYPE", "STATUS", "HEALTH", "CODE", "TABLE"]
    rows = [([project] if several else []) + _job_row(job) for project, job in listed]
    _print_table(rows, (["PROJECT"] if several else []) + header, out)
    print(f"{len(listed)} jobs", file=out)


#: What a job command does: (client, the project to name or None, job id) → exit code.
JobWork = Callable[["PolarisClient", str | None, str], Awaitable[int]]


def _on_job(args: argparse.Namespace, settings: Settings, work: JobWork) -> int:
    """Run ``work`` for the job a job command names; the project is named in the output
    only when there are several (a single-project set-up prints what it always did)."""
    rules = load_projects(args.rules, settings)
    project, job_id = job_target(args, rules.project_names)
    named = project if len(rules.project_names) > 1 else None

    async def action(clients: Mapping[str, PolarisClient]) -> int:
        return await work(clients[project], named, job_id)

    return asyncio.run(_with_clients(settings, rules, [project], action))


def cmd_status(args: argparse.Namespace, out: TextIO, settings: Settings) -> int:
    async def work(client: PolarisClient, project: str | None, job_id: str) -> int:
        job = await client.get_job(job_id)
        if args.json:
            print(json.dumps(document(job), separators=(",", ":")), file=out)
            return 0
        print(f"job       {job.id}", file=out)
        if project:
            print(f"project   {project}", file=out)
        print(f"table     {job.table or '-'}", file=out)
        print(f"type      {job.type}", file=out)
        print(
            f"status    {job.execution_status} (desired {job.desired_execution_status})", file=out
        )
        health = job.health_status or "-"
        if job.health_code:
            health += f" / {job.health_code}"
        print(f"health    {health}", file=out)
        if job.health_detail:
            print(f"message   {job.health_detail}", file=out)
        return 0

    return _on_job(args, settings, work)


def cmd_metrics(args: argparse.Namespace, out: TextIO, settings: Settings) -> int:
    async def work(client: PolarisClient, project: str | None, job_id: str) -> int:
        metrics = await client.get_metrics(job_id)
        if args.json:
            json.dump(metrics.totals, out)
            print(file=out)
            return 0
        for name, value in sorted(metrics.totals.items()):
            print(f"{name:<28} {value:>16,.0f}", file=out)
        return 0

    return _on_job(args, settings, work)


Command = Callable[[argparse.Namespace, TextIO, Settings], int]


def _set_status(desired: str, verb: str) -> Command:
    def command(args: argparse.Namespace, out: TextIO, settings: Settings) -> int:
        async def work(client: PolarisClient, project: str | None, job_id: str) -> int:
            job = await client.set_status(job_id, desired)
            where = f" in project {project}" if project else ""
            print(
                f"{verb} job {job.id} ({job.table or '-'}){where}: "
                f"now {job.execution_status}, desired {job.desired_execution_status}",
                file=out,
            )
            return 0

        return _on_job(args, settings, work)

    return command


# ---- parser ------------------------------------------------------------------------------


def add_commands(sub: Any, settings: Callable[[], Settings]) -> None:
    """Add the operator commands to the CLI's subparsers (``sub``, argparse's action);
    each runs with ``settings()``."""
    rules_help = "rules file whose [[projects]] to use (default: $WATCHDOG_RULES or rules.toml)"

    def bound(command: Command) -> Callable[[argparse.Namespace, TextIO], int]:
        return lambda args, out: command(args, out, settings())

    p = sub.add_parser("jobs", help="list jobs (every page, every project)")
    p.add_argument("--health", action="append", default=[], choices=HEALTH_STATUSES)
    p.add_argument("--type", action="append", default=[], choices=JOB_TYPES)
    p.add_argument("--status", action="append", default=[], choices=EXECUTION_STATUSES)
    p.add_argument("--table", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--project", action="append", metavar="NAME", help="only this (repeatable)")
    p.add_argument("--rules", help=rules_help)
    p.set_defaults(func=bound(cmd_jobs))
    for name, func, text in (
        ("status", cmd_status, "show a job's status and health"),
        ("metrics", cmd_metrics, "show a job's counters"),
        ("pause", _set_status("suspended", "paused"), "suspend a streaming job"),
        ("resume", _set_status("running", "resumed"), "resume a suspended streaming job"),
        ("cancel", _set_status("canceled", "canceled"), "cancel a job"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("job", help="job id (a UUID), or PROJECT/JOB")
        p.add_argument("--project", metavar="NAME", help="the job's project")
        p.add_argument("--rules", help=rules_help)
        if name in ("status", "metrics"):
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=bound(func))
