"""`make demo` shows alerts firing and resolving and commands working, with no credentials."""

from __future__ import annotations

import io

import pytest

from watchdog.devtools.demo import demo


@pytest.mark.slow
async def test_demo_shows_alerts_firing_resolving_and_commands_working() -> None:
    """At 20× speed, a few seconds of demo show a post, its resolve edit, the scripted
    commands' answers and audit lines, a non-operator refused, and the on-call workflow:
    an acknowledgement shown on its alert, an escalation, a maintenance window."""
    out = io.StringIO()
    await demo(speed=20, duration=9.0, out=out, interactive=False)
    text = out.getvalue()
    assert "posted" in text and "job-unhealthy" in text
    assert "✅ RESOLVED" in text and "(edited)" in text
    assert "/polaris jobs health=error" in text and "jobs* (health=error)" in text
    assert "paused job" in text and "resumed job" in text
    assert "only <@UDEMOOPS> can" in text
    assert "canceled job" in text
    assert "👀 Acknowledged on job" in text and "👀 Acknowledged by @UDEMOOPS" in text
    assert "[Unacknowledge]" in text and "acknowledged job" in text
    assert "@oncall-leads Escalated [prod]: *job-unhealthy*" in text
    assert "[C0DEMOLEADS] posted" in text and "Open the alert" in text
    assert "*Maintenance windows* (1 of 1 open)" in text and "*log-compaction*" in text
    assert "skipped-rows-rising" in text and "Table: `app_logs`" not in text
    assert "📋 Polaris digest · last 1h" in text
    assert "Traceback" not in text


@pytest.mark.slow
async def test_demo_watches_two_projects_and_takes_project_slash_job() -> None:
    """prod and staging are both watched: alerts of each name their project and go to
    their channels, `jobs` names each job's project, and the scripted `status
    staging/<prefix>` is answered from staging."""
    out = io.StringIO()
    await demo(speed=20, duration=6.5, out=out, interactive=False)
    text = out.getvalue()
    assert "[C0DEMOALERTS] posted" in text and "│ Project: prod" in text
    assert "[C0DEMOSTAGING] posted" in text and "│ Project: staging" in text
    assert "`prod/" in text and "`staging/" in text  # the jobs listing
    assert "/polaris status staging/" in text and "in project `staging`" in text
    assert "paused job" in text and "in project prod" in text  # the audit line
    assert "Traceback" not in text
