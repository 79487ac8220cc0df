"""``polaris-watchdog`` — the command line: the bot, rule tools, the simulator, and an operator CLI.

The operator commands (``jobs``, ``status``…) live in :mod:`watchdog.operator`.

Every failure a user can cause (a missing variable, a broken rules file, a wrong key, an
unreachable Polaris, a job id that is not one) ends in one clear line on stderr and a
non-zero exit, never a traceback: exit 2 for bad input or configuration, 1 for failures.
The errors are the package's one tree (:mod:`watchdog.errors`); :func:`main` turns any of
them into its message and its ``exit_code`` in one place. Commands only translate what is
not in the tree yet (pydantic's ValidationError, an OSError from binding a port).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from watchdog.errors import EXIT_FAILURE, EXIT_USAGE, WatchdogError
from watchdog.operator import add_commands
from watchdog.polaris.retry import DEFAULT_RETRY
from watchdog.rules.advice import warnings
from watchdog.rules.load import load_ruleset
from watchdog.rules.problems import RulesFileError
from watchdog.settings import Settings


class CliError(WatchdogError):
    """One line for the user, and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = code


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"bad setting {where}: {first['msg']}", EXIT_USAGE) from None


def _rules_path(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.rules) if args.rules else settings.watchdog_rules


# ---- bot and rule tools ------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    path = _rules_path(args, _settings())
    try:
        rules = load_ruleset(path)
    except RulesFileError as exc:
        # The problems are what `check` is for: its answer on stdout, not an error.
        for problem in exc.problems:
            print(problem, file=out)
        return EXIT_USAGE
    # The bot's own retry policy: `run` builds its clients with it.
    for warning in warnings(str(path), rules, path.read_text(encoding="utf-8"), DEFAULT_RETRY):
        print(warning, file=out)
    count = len(rules.rules)
    print(f"{path}: OK, {count} rule{'' if count == 1 else 's'}", file=out)
    return 0


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from watchdog.app import run
    from watchdog.logs import configure_logging
    from watchdog.rules.holder import RulesHolder

    settings = _settings()
    holder = RulesHolder.from_file(_rules_path(args, settings))
    # Refuse to start, naming the variable, when a project's key is unset or empty.
    projects = settings.projects(holder.current)
    secrets = [p.api_key.get_secret_value() for p in projects] + [
        s.get_secret_value()
        for s in (
            settings.polaris_api_key,
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
        )
        if s is not None
    ]
    configure_logging(settings.watchdog_log_format, secrets=secrets)
    try:
        run(settings, holder)
    except OSError as exc:  # e.g. the listen port is taken
        raise CliError(
            f"cannot serve on {settings.watchdog_listen}: {exc.strerror or exc}"
        ) from None
    return 0


def cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    from watchdog.devtools.polaris_sim.simulator import build_projects, project_settings, serve

    try:
        sim = build_projects(args.scenario or ["demo"], projects=args.projects, jobs=args.jobs)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None

    async def main() -> None:
        runner = await serve(sim, args.host, args.port)
        port = runner.addresses[0][1]  # the bound port, also when 0 asked for any
        url = f"http://{args.host}:{port}"
        first = sim.default
        if len(sim.projects) == 1:
            print(
                f"Polaris simulator ({', '.join(first.scenarios)}, {len(first.jobs)} jobs) "
                f"on {url}",
                file=out,
            )
            print(
                f"  POLARIS_API_URL={url} "
                f"POLARIS_PROJECT_ID={first.project_id} POLARIS_API_KEY={first.api_key}",
                file=out,
            )
        else:
            print(f"Polaris simulator on {url}, {len(sim.projects)} projects:", file=out)
            rows = [
                [p.project_id, f"key {p.api_key}", f"{', '.join(p.scenarios)}, {len(p.jobs)} jobs"]
                for p in sim.projects
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(2)]
            for ident, key, content in rows:
                print(f"  {ident.ljust(widths[0])}  {key.ljust(widths[1])}  {content}", file=out)
            print("\nFor the rules file, then the shell:\n", file=out)
            print(project_settings(sim, url), end="", file=out)
        out.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # e.g. the port is taken
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from watchdog.devtools.demo import run_demo

    return run_demo(
        speed=args.speed, duration=args.duration, out=out, interactive=not args.no_input
    )


def cmd_test_rules(args: argparse.Namespace, out: TextIO) -> int:
    from watchdog.logs import configure_logging
    from watchdog.testing.run import run_test_file

    # The report is the output. The watch code it runs logs what a live bot would (a
    # missing counter is a warning there, and a case's "_" here): errors only, to stderr.
    configure_logging("console", level="error", stream=sys.stderr)
    return run_test_file(Path(args.file), out)


# ---- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polaris-watchdog",
        description="Watch Imply Polaris ingestion jobs, alert in Slack, act from Slack.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the bot: poll loop, HTTP server, Socket Mode")
    p.add_argument("--rules", help="rules file (default: $WATCHDOG_RULES or rules.toml)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check", help="validate a rules file (exit 2 with FILE:LINE problems)")
    p.add_argument("--rules", help="rules file (default: $WATCHDOG_RULES or rules.toml)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("demo", help="the bot against the simulator and a Slack stand-in")
    p.add_argument("--speed", type=float, default=1.0, help="simulated time runs this much faster")
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.add_argument("--no-input", action="store_true", help="do not read commands from stdin")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("simulate", help="serve the Polaris simulator alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8181)
    p.add_argument(
        "--scenario",
        action="append",
        help="scenario of the next project (repeatable; default demo, then healthy)",
    )
    p.add_argument("--projects", type=int, default=None, help="number of projects to serve")
    p.add_argument("--jobs", type=int, default=None, help="number of jobs, where it applies")
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("test-rules", help="run unit tests for rules from a TOML test file")
    p.add_argument("file")
    p.set_defaults(func=cmd_test_rules)

    add_commands(sub, _settings)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, out))
    except WatchdogError as exc:
        print(_explain(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _explain(error: WatchdogError) -> str:
    """What the user reads: one line, or a file's ``FILE:LINE: message`` problems as they
    are (editors and CI annotate that form, so it gets no prefix)."""
    if isinstance(error, RulesFileError):
        return str(error)
    return f"polaris-watchdog: {error}"


if __name__ == "__main__":
    sys.exit(main())
