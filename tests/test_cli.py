"""The operator CLI (``watchdog.cli.main``) against the simulator on a real local port.

The simulator is served by aiohttp's test server in the test's event loop; ``main`` runs in
a worker thread (it calls ``asyncio.run`` itself), so both sides are real and nothing is
mocked. Each test starts from an empty working directory and a clean environment.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from io import StringIO
from pathlib import Path

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from watchdog import cli
from watchdog.devtools.polaris_sim.simulator import Simulator
from watchdog.devtools.slack_standin.server import SlackStandIn
from watchdog.polaris import client as polaris_client
from watchdog.polaris.client import PolarisClient, RetryPolicy

REPO = Path(__file__).resolve().parents[1]
API_KEY = "pok_cli-key-0123456789abcdefghijkl"
WRONG_KEY = "pok_wrong-cli-key-9876543210zyxwvu"
START = 1_700_000_000.0
ENV_PREFIXES = ("POLARIS_", "SLACK_", "WATCHDOG_")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Empty cwd (no stray .env or rules.toml), no inherited variables, logging restored.

    ``main`` configures structlog and the logging module for the process, with the test's
    captured stderr as the stream; later tests must not write to that closed capture.
    """
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # Fast retries: an unreachable Polaris must not cost seconds of real backoff.
    fast = RetryPolicy(attempts=2, base=0.001, cap=0.001)
    # The CLI imports the client where a command needs it: patch it where it is defined.
    fast_client = functools.partial(PolarisClient, retry=fast)
    monkeypatch.setattr(polaris_client, "PolarisClient", fast_client)
    structlog_config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield tmp_path
    structlog.configure(**structlog_config)
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def sim() -> Simulator:
    return Simulator(clock=lambda: START, api_key=API_KEY)


@pytest.fixture
async def polaris_url(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """Serve the simulator and point the POLARIS_* variables at it."""
    async with TestServer(sim.app(), host="127.0.0.1") as server:
        url = str(server.make_url("/"))
        monkeypatch.setenv("POLARIS_API_URL", url)
        monkeypatch.setenv("POLARIS_PROJECT_ID", sim.project_id)
        monkeypatch.setenv("POLARIS_API_KEY", API_KEY)
        yield url


async def run(*argv: str) -> tuple[int, str]:
    """``main(argv)`` in a worker thread: its exit code and what it wrote to ``out``."""
    out = StringIO()
    code = await asyncio.to_thread(cli.main, list(argv), out)
    return code, out.getvalue()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- reading ----------------------------------------------------------------------------------
async def test_jobs_prints_a_table_of_every_job(
    sim: Simulator, polaris_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One row per job with id, type, status, health, code and table, then a count."""
    healthy = sim.add_job(table="orders")
    broken = sim.add_job(table="payments", behaviour="static_error")
    code, out = await run("jobs")
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "2 jobs"
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "HEALTH", "CODE", "TABLE"]
    assert lines[1].split() == [healthy.id, "streaming", "running", "ok", "-", "orders"]
    assert lines[2].split()[:4] == [broken.id, "streaming", "running", "error"]
    assert capsys.readouterr().err == ""


async def test_jobs_json_is_parseable_and_complete(sim: Simulator, polaris_url: str) -> None:
    """--json prints the jobs as a JSON list, in Polaris' field names."""
    ids = [sim.add_job(table=f"t{index}").id for index in range(3)]
    code, out = await run("jobs", "--json")
    listed = json.loads(out)
    assert code == 0 and [job["id"] for job in listed] == ids
    assert listed[0]["executionStatus"] == "running" and listed[0]["target"]["tableName"] == "t0"


async def test_status_json_is_the_job_in_polaris_field_names(
    sim: Simulator, polaris_url: str
) -> None:
    """status --json prints one job as Polaris spells it, health nested, no null fields."""
    job = sim.add_job(table="broken_stream", behaviour="static_error")
    code, out = await run("status", job.id, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == job.id and shown["target"]["tableName"] == "broken_stream"
    assert shown["health"]["status"] == "error" and "executionStatus" in shown
    assert None not in shown.values()


async def test_jobs_filters_go_to_polaris(sim: Simulator, polaris_url: str) -> None:
    """--health error --type streaming lists the streaming jobs in error only."""
    sim.add_job(table="fine")
    wanted = sim.add_job(table="broken_stream", behaviour="static_error")
    batch = sim.add_job(table="broken_batch", type="batch")
    sim.set_health(batch.id, "error")
    code, out = await run("jobs", "--health", "error", "--type", "streaming", "--json")
    assert code == 0 and [job["id"] for job in json.loads(out)] == [wanted.id]
    assert "healthStatus=error" in sim.stats.request_log[-1][3]
    assert "type=streaming" in sim.stats.request_log[-1][3]


async def test_status_shows_health_code_and_message(sim: Simulator, polaris_url: str) -> None:
    """status prints the job's table, status and what is wrong, in Polaris' words."""
    job = sim.add_job(table="payments")
    sim.set_health(job.id, "error", "could_not_connect_to_source", "Broker unreachable")
    code, out = await run("status", job.id)
    assert code == 0
    assert f"job       {job.id}" in out and "table     payments" in out
    assert "status    running (desired running)" in out
    assert "health    error / could_not_connect_to_source" in out
    assert "message   Broker unreachable" in out


async def test_metrics_prints_every_counter(sim: Simulator, polaris_url: str) -> None:
    """metrics prints the counters, and --json the raw totals."""
    job = sim.add_job()
    sim.set_totals(job.id, {"numRowsProcessed": 1234567, "numRowsSkippedByError": 12})
    code, out = await run("metrics", job.id)
    assert code == 0 and re.search(r"^numRowsProcessed\s+1,234,567$", out, re.M)
    assert re.search(r"^numRowsSkippedByError\s+12$", out, re.M)
    code, out = await run("metrics", job.id, "--json")
    assert code == 0 and json.loads(out)["numRowsProcessed"] == 1234567


async def test_an_unreadable_job_is_a_warning_on_stderr_not_noise_in_the_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout stays valid JSON of the readable jobs; the odd one is logged on stderr."""
    good, odd = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "0e1d2c3b-4a59-4867-8756-a4b3c2d1e0f9"
    listing = {"values": [{"id": good}, {"id": odd, "health": "broken"}]}

    async def jobs(request: web.Request) -> web.Response:
        return web.json_response(listing)

    app = web.Application()
    app.router.add_get("/v1/projects/p/jobs", jobs)
    async with TestServer(app, host="127.0.0.1") as server:
        monkeypatch.setenv("POLARIS_API_URL", str(server.make_url("/")))
        monkeypatch.setenv("POLARIS_PROJECT_ID", "p")
        monkeypatch.setenv("POLARIS_API_KEY", API_KEY)
        code, out = await run("jobs", "--json")
    captured = capsys.readouterr()
    assert code == 0 and [job["id"] for job in json.loads(out)] == [good]
    assert captured.out == "" and "polaris.job_unreadable" in captured.err and odd in captured.err


# -- changing jobs ----------------------------------------------------------------------------
async def test_pause_resume_and_cancel_reach_polaris(sim: Simulator, polaris_url: str) -> None:
    """pause suspends, resume runs again, cancel cancels; each says what it did."""
    job = sim.add_job(table="orders")
    code, out = await run("pause", job.id)
    assert code == 0 and job.execution_status == "suspended"
    assert out.strip() == f"paused job {job.id} (orders): now suspended, desired suspended"
    code, out = await run("resume", job.id)
    assert code == 0 and job.execution_status == "running" and out.startswith("resumed job")
    code, out = await run("cancel", job.id)
    assert code == 0 and job.execution_status == "canceled" and out.startswith("canceled job")
    assert sim.stats.status_changes == [
        (job.id, "suspended"),
        (job.id, "running"),
        (job.id, "canceled"),
    ]


async def test_pausing_a_batch_job_is_one_clear_line(
    sim: Simulator, polaris_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Polaris' refusal becomes one stderr line and exit 1, with no traceback."""
    job = sim.add_job(type="batch")
    code, out = await run("pause", job.id)
    err = capsys.readouterr().err
    assert code == 1 and out == "" and sim.stats.status_changes == []
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("polaris-watchdog: ") and "Only streaming jobs can be suspended" in err


# -- failures ---------------------------------------------------------------------------------
async def test_a_wrong_key_is_reported_without_showing_it(
    sim: Simulator,
    polaris_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """401 is one line saying the key was rejected; the key appears nowhere."""
    monkeypatch.setenv("POLARIS_API_KEY", WRONG_KEY)
    code, out = await run("jobs")
    captured = capsys.readouterr()
    assert code == 1 and captured.err.count("\n") == 1 and "key was rejected" in captured.err
    for text in (out, captured.out, captured.err):
        assert WRONG_KEY not in text and API_KEY not in text


async def test_an_unreachable_polaris_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening: one line naming the problem, exit 1, no traceback."""
    monkeypatch.setenv("POLARIS_API_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("POLARIS_PROJECT_ID", "demo-project")
    monkeypatch.setenv("POLARIS_API_KEY", API_KEY)
    code, out = await run("status", "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
    captured = capsys.readouterr()
    assert code == 1 and out == "" and captured.out == ""
    assert captured.err.count("\n") == 1 and "cannot reach Polaris" in captured.err
    assert "Traceback" not in captured.err and API_KEY not in captured.err


@pytest.mark.parametrize("job_id", ["../../jobs", "abc/status", "%2e%2e", ""])
async def test_a_path_like_job_id_is_refused_without_a_request(
    sim: Simulator, polaris_url: str, capsys: pytest.CaptureFixture[str], job_id: str
) -> None:
    """A job id that is not a UUID exits 2 before anything is sent."""
    code, _ = await run("cancel", job_id)
    err = capsys.readouterr().err
    assert code == 2 and "not a job id" in err and err.count("\n") == 1
    assert sim.stats.requests == 0


def test_a_missing_api_key_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 naming POLARIS_API_KEY (a blank value counts as missing)."""
    monkeypatch.setenv("POLARIS_API_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("POLARIS_PROJECT_ID", "demo-project")
    monkeypatch.setenv("POLARIS_API_KEY", " ")
    code = cli.main(["jobs"], StringIO())
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "POLARIS_API_KEY" in err and "POLARIS_API_URL" not in err


async def test_a_dotenv_in_the_working_directory_configures_the_cli(
    sim: Simulator, polaris_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no POLARIS_* in the environment, the cwd's .env supplies them."""
    job = sim.add_job()
    for name in ("POLARIS_API_URL", "POLARIS_PROJECT_ID", "POLARIS_API_KEY"):
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(
        f"POLARIS_API_URL={polaris_url}\nPOLARIS_PROJECT_ID={sim.project_id}\n"
        f"POLARIS_API_KEY={API_KEY}\n",
        encoding="utf-8",
    )
    code, out = await run("jobs", "--json")
    assert code == 0 and [listed["id"] for listed in json.loads(out)] == [job.id]


# -- check ------------------------------------------------------------------------------------
def test_check_accepts_the_example_rules_file() -> None:
    """rules.example.toml is valid: exit 0 and a count of rules."""
    out = StringIO()
    assert cli.main(["check", "--rules", str(REPO / "rules.example.toml")], out) == 0
    assert re.fullmatch(r".*rules\.example\.toml: OK, \d+ rules\n", out.getvalue())


def test_check_reports_a_broken_file_as_file_and_line(tmp_path: Path) -> None:
    """An unknown key exits 2 with FILE:LINE: message pointing at it."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[watch]\ninterval = "30s"\n\n[[rules]]\nname = "down"\nkind = "health"\n'
        'status = ["error"]\nseverity = "critical"\ncolour = "red"\n',
        encoding="utf-8",
    )
    out = StringIO()
    assert cli.main(["check"], out) == 2  # rules.toml in the working directory by default
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("rules.toml:") for line in lines)
    assert any(line.startswith("rules.toml:9: ") and "colour" in line for line in lines)


def test_check_warns_when_a_retried_request_can_outlast_the_tick(tmp_path: Path) -> None:
    """interval 10s (deadline 20s) with timeout 10s: 4 attempts × 10s + 1.75s backoff can
    outlast the deadline — a warning at the timeout's line, and still exit 0."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[watch]\ninterval = "10s"\ntimeout = "10s"\n\n[[rules]]\nname = "down"\nkind = "health"\n',
        encoding="utf-8",
    )
    out = StringIO()
    assert cli.main(["check", "--rules", str(rules)], out) == 0
    warning, ok = out.getvalue().splitlines()
    assert warning.startswith(f"{rules}:3: warning: one Polaris request can take 41.75s")
    assert "longer than the tick deadline (20s)" in warning and "lower timeout" in warning
    assert ok == f"{rules}: OK, 1 rule"


def test_check_warns_about_the_health_window_when_the_deadline_is_longer(
    tmp_path: Path,
) -> None:
    """A deadline past the health window (three intervals, a minute at least) leaves the
    health window as the tighter limit: 4 × 20s + 1.75s is past a minute."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[watch]\ninterval = "5s"\ndeadline = "3m"\ntimeout = "20s"\n', encoding="utf-8"
    )
    out = StringIO()
    assert cli.main(["check", "--rules", str(rules)], out) == 0
    assert "81.75s" in out.getvalue()
    assert "longer than the health window (3 × interval, 60s at least) (60s)" in out.getvalue()
    assert f"{rules}:4: warning: " in out.getvalue()  # at the timeout key


def test_check_is_quiet_when_retries_fit_the_tick(tmp_path: Path) -> None:
    """The defaults (30s interval, 10s timeout) fit: no warning."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "down"\nkind = "health"\n', encoding="utf-8")
    out = StringIO()
    assert cli.main(["check", "--rules", str(rules)], out) == 0
    assert out.getvalue() == f"{rules}: OK, 1 rule\n"


def test_check_of_a_missing_file_exits_2() -> None:
    """A rules file that is not there is a FILE:1 problem, not a traceback."""
    out = StringIO()
    assert cli.main(["check", "--rules", "nowhere.toml"], out) == 2
    assert out.getvalue().startswith("nowhere.toml:1: cannot read rules file")


# -- start-up failures of run and simulate ----------------------------------------------------
def _unreachable_polaris(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARIS_API_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("POLARIS_PROJECT_ID", "demo-project")
    monkeypatch.setenv("POLARIS_API_KEY", API_KEY)


def test_run_with_a_broken_rules_file_prints_each_problem_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`run` refuses a broken rules file before starting: bare FILE:LINE lines, exit 2."""
    _unreachable_polaris(monkeypatch)
    (tmp_path / "rules.toml").write_text('[watch]\ninterval = "30s"\ncolour = "red"\n')
    code = cli.main(["run"], StringIO())
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rules.toml:3: ") and "colour" in err
    assert "Traceback" not in err


def test_run_with_a_state_file_that_is_not_a_database_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A WATCHDOG_STATE file that is not the bot's stops start-up: one line, exit 1.

    In the test's main thread, not a worker: ``run`` installs signal handlers."""
    _unreachable_polaris(monkeypatch)
    shutil.copy(REPO / "rules.example.toml", tmp_path / "rules.toml")
    (tmp_path / "notes.db").write_text("not a database, " * 20)
    monkeypatch.setenv("WATCHDOG_STATE", "notes.db")
    monkeypatch.setenv("WATCHDOG_LISTEN", f"127.0.0.1:{closed_port()}")
    monkeypatch.setenv("WATCHDOG_LOG_FORMAT", "json")
    code = cli.main(["run"], StringIO())
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("polaris-watchdog: ") and "notes.db" in last


async def test_run_with_a_wrong_slack_token_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """Slack refusing the bot token stops `run` (a real process) with one line naming
    SLACK_BOT_TOKEN and exit 1; the token itself is not shown."""
    token = "xoxb-wrong-cli-token-0123456789"
    standin = SlackStandIn()
    async with TestServer(standin.app(), host="127.0.0.1") as slack:
        standin.bind(str(slack.make_url("")))
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
        env.update(
            POLARIS_API_URL=f"http://127.0.0.1:{closed_port()}",
            POLARIS_PROJECT_ID="demo-project",
            POLARIS_API_KEY=API_KEY,
            SLACK_BOT_TOKEN=token,
            SLACK_SIGNING_SECRET="cli-test-signing-secret",
            SLACK_API_URL=standin.api_url,
            WATCHDOG_RULES=str(REPO / "rules.example.toml"),
            WATCHDOG_STATE=":memory:",
            WATCHDOG_LISTEN=f"127.0.0.1:{closed_port()}",
            WATCHDOG_LOG_FORMAT="json",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watchdog",
            "run",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 1 and "Traceback" not in text and token not in text + out.decode()
    last = text.splitlines()[-1]
    assert last.startswith("polaris-watchdog: ") and "SLACK_BOT_TOKEN" in last


async def test_simulate_on_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The simulator's port already in use: one line naming it, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, out = await run("simulate", "--port", port)
    err = capsys.readouterr().err
    assert code == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"polaris-watchdog: cannot serve on 127.0.0.1:{port}")


# -- several projects ---------------------------------------------------------------------------
PROD_KEY = "pok_cli-prod-0123456789abcdef"
STAGING_KEY = "pok_cli-staging-0123456789abcdef"
JOB_ID = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
async def two_orgs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[dict[str, Simulator]]:
    """prod and staging in two organisations (two simulators), named by a rules.toml in
    the working directory, their keys in the variables it names."""
    sims = {
        "prod": Simulator(clock=lambda: START, api_key=PROD_KEY, project_id="proj-prod"),
        "staging": Simulator(clock=lambda: START, api_key=STAGING_KEY, project_id="proj-stg"),
    }
    async with (
        TestServer(sims["prod"].app(), host="127.0.0.1") as prod,
        TestServer(sims["staging"].app(), host="127.0.0.1") as staging,
    ):
        urls = {"prod": prod.make_url(""), "staging": staging.make_url("")}
        (tmp_path / "rules.toml").write_text(
            "".join(
                f'[[projects]]\nname = "{name}"\nurl = "{str(urls[name]).rstrip("/")}"\n'
                f'id = "{sim.project_id}"\napi_key_env = "POLARIS_API_KEY_{name.upper()}"\n\n'
                for name, sim in sims.items()
            ),
            encoding="utf-8",
        )
        monkeypatch.setenv("POLARIS_API_KEY_PROD", PROD_KEY)
        monkeypatch.setenv("POLARIS_API_KEY_STAGING", STAGING_KEY)
        yield sims


async def test_jobs_lists_every_project_with_a_project_column(
    two_orgs: dict[str, Simulator],
) -> None:
    """With several projects and no --project, jobs lists them all, naming each job's
    project (a PROJECT column; a "project" key in --json), each with its own key."""
    prod = two_orgs["prod"].add_job(table="payments")
    staging = two_orgs["staging"].add_job(table="orders")
    code, out = await run("jobs")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["PROJECT", "ID"] and lines[-1] == "2 jobs"
    assert lines[1].split()[:2] == ["prod", prod.id]
    assert lines[2].split()[:2] == ["staging", staging.id]
    code, out = await run("jobs", "--json")
    assert [(j["project"], j["id"]) for j in json.loads(out)] == [
        ("prod", prod.id),
        ("staging", staging.id),
    ]
    assert set(two_orgs["prod"].stats.keys) == {PROD_KEY}
    assert set(two_orgs["staging"].stats.keys) == {STAGING_KEY}


async def test_jobs_of_one_project_asks_only_that_one(two_orgs: dict[str, Simulator]) -> None:
    """--project staging lists staging's jobs in the one-project layout; prod is not asked."""
    job = two_orgs["staging"].add_job(table="orders")
    code, out = await run("jobs", "--project", "staging")
    assert code == 0 and out.splitlines()[0].split()[0] == "ID"
    assert job.id in out and two_orgs["prod"].stats.requests == 0


async def test_job_commands_take_project_slash_job_or_the_project_option(
    two_orgs: dict[str, Simulator],
) -> None:
    """`status staging/JOB` and `pause --project staging JOB` act in staging only and
    say so; prod is never asked."""
    job = two_orgs["staging"].add_job(table="orders")
    code, out = await run("status", f"staging/{job.id}")
    assert code == 0 and f"job       {job.id}" in out and "project   staging" in out
    code, out = await run("pause", "--project", "staging", job.id)
    assert code == 0 and out.strip() == (
        f"paused job {job.id} (orders) in project staging: now suspended, desired suspended"
    )
    assert two_orgs["staging"].stats.status_changes == [(job.id, "suspended")]
    assert two_orgs["prod"].stats.requests == 0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["status", JOB_ID], "several projects"),
        (["cancel", "--project", "qa", JOB_ID], "unknown project 'qa'"),
        (["pause", "--project", "prod", f"staging/{JOB_ID}"], "--project says prod"),
        (["jobs", "--project", "stagign"], "did you mean 'staging'?"),
    ],
)
async def test_a_job_command_without_a_clear_project_is_one_line_exit_2(
    two_orgs: dict[str, Simulator],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    says: str,
) -> None:
    """No project where several are configured, an unknown one, or two that differ: one
    line naming the projects, exit 2, nothing sent."""
    code, out = await run(*argv)
    err = capsys.readouterr().err
    assert code == 2 and out == "" and err.count("\n") == 1 and says in err
    assert "prod" in err and "staging" in err
    assert two_orgs["prod"].stats.requests == two_orgs["staging"].stats.requests == 0


async def test_only_the_key_of_the_project_used_is_needed(
    two_orgs: dict[str, Simulator],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without prod's key, staging's jobs are still reachable; prod's are refused naming
    the variable (exit 2)."""
    job = two_orgs["staging"].add_job(table="orders")
    monkeypatch.delenv("POLARIS_API_KEY_PROD")
    code, out = await run("status", f"staging/{job.id}")
    assert code == 0 and "orders" in out
    code, out = await run("status", f"prod/{job.id}")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "POLARIS_API_KEY_PROD" in err
    assert "POLARIS_API_KEY_STAGING" not in err


async def test_jobs_of_every_project_survive_one_project_down(
    two_orgs: dict[str, Simulator], capsys: pytest.CaptureFixture[str]
) -> None:
    """prod answering 503: staging's jobs are still printed, prod's failure is one stderr
    line, and the exit code says something failed; both down, one line for each."""
    job = two_orgs["staging"].add_job(table="orders")
    two_orgs["prod"].faults.configure({"error_status": 503})
    code, out = await run("jobs")
    err = capsys.readouterr().err
    assert code == 1 and job.id in out and out.splitlines()[-1] == "1 jobs"
    assert err.startswith("polaris-watchdog: project prod: ") and err.count("\n") == 1
    two_orgs["staging"].faults.configure({"error_status": 503})
    code, out = await run("jobs")
    err = capsys.readouterr().err
    assert code == 1 and out.splitlines()[-1] == "0 jobs"
    assert [line.split(":")[1] for line in err.splitlines()] == [
        " project prod",
        " project staging",
    ]


def test_run_refuses_to_start_naming_an_unset_key_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`run` with a project whose api_key_env is unset: one line naming that variable,
    exit 2, before anything starts (POLARIS_* are not asked for)."""
    (tmp_path / "rules.toml").write_text(
        '[[projects]]\nname = "prod"\nurl = "https://a.example.com"\nid = "p1"\n'
        'api_key_env = "POLARIS_API_KEY_PROD"\n\n'
        '[[projects]]\nname = "staging"\nurl = "https://b.example.com"\nid = "p2"\n'
        'api_key_env = "POLARIS_API_KEY_STAGING"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("POLARIS_API_KEY_PROD", PROD_KEY)
    monkeypatch.setenv("POLARIS_API_KEY_STAGING", "  ")
    monkeypatch.setenv("WATCHDOG_LISTEN", f"127.0.0.1:{closed_port()}")
    code = cli.main(["run"], StringIO())
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "POLARIS_API_KEY_STAGING" in err and "POLARIS_API_KEY_PROD" not in err
    assert PROD_KEY not in err
