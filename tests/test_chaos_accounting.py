"""The chaos verdict itself: lost, duplicated, spurious and meta-alerts are told apart."""

from __future__ import annotations

from pathlib import Path

from chaos_accounting import ChaosReport, account, scan_logs
from chaos_harness import ChaosLog, Fault, Stop, Window, chaos_job_id

from watchdog.devtools.slack_standin.server import StoredMessage

T0 = 1_800_000_000.0
JOB, OTHER, CONTROL = chaos_job_id(1), chaos_job_id(2), chaos_job_id(9)


def post(at: float, text: str, *, edited: int = 0, thread: bool = False) -> StoredMessage:
    ts = f"{at:.6f}"
    return StoredMessage(
        "C0", ts, text, [], thread_ts=f"{T0:.6f}" if thread else None, edited=edited
    )


def firing(job: str, at: float, *, resolved: bool = True) -> StoredMessage:
    """An incident post as the stand-in keeps it: edited to RESOLVED when it resolved."""
    if resolved:
        return post(at, f"✅ RESOLVED chaos — job {job} on table t after 2s", edited=1)
    return post(at, f"🔴 FIRING chaos — job {job} on table t: error")


def verdict(messages: list[StoredMessage], *, stops: list[Stop] | None = None) -> ChaosReport:
    record = ChaosLog(
        windows=[Window(JOB, "C0", "one", T0, T0 + 10), Window(OTHER, "C0", "two", T0, T0 + 10)],
        faults=[Fault("polaris", "503 stretch", T0 + 20, T0 + 25)],
        stops=stops or [],
        outbox_at_end=0,
    )
    return account(record, messages, controls=[CONTROL], grace=5.0)


def test_one_resolved_post_per_window_is_clean() -> None:
    """Each window with one post edited to RESOLVED is delivered and resolved."""
    report = verdict(
        [firing(JOB, T0 + 1), firing(OTHER, T0 + 2), post(T0 + 3, "reply", thread=True)]
    )
    assert (report.delivered, len(report.lost), len(report.duplicated)) == (2, 0, 0)
    assert report.resolves_delivered == 2 and not report.spurious and not report.problems()


def test_window_without_post_is_lost_and_unedited_post_is_unresolved() -> None:
    """No post in a window is LOST; a post never edited to RESOLVED is UNRESOLVED."""
    report = verdict([firing(JOB, T0 + 1, resolved=False)])
    assert [i.window.job_id for i in report.lost] == [OTHER]
    assert [i.window.job_id for i in report.unresolved] == [JOB]


def test_second_post_is_a_duplicate_unless_it_follows_a_sigkill_race() -> None:
    """Two posts are DUPLICATED; the first just before a SIGKILL makes it the known race."""
    posts = [firing(JOB, T0 + 1), firing(JOB, T0 + 4), firing(OTHER, T0 + 1)]
    assert [i.window.job_id for i in verdict(posts).duplicated] == [JOB]
    kill = Stop("SIGKILL", T0 + 1.2, -9, 0.01, restarted=True)
    raced = verdict(posts, stops=[kill])
    assert not raced.duplicated and len(raced.explained_duplicates) == 1
    late_kill = Stop("SIGKILL", T0 + 3.0, -9, 0.01, restarted=True)
    assert verdict(posts, stops=[late_kill]).duplicated  # 1.8 s before: not the race


def test_posts_outside_windows_about_healthy_jobs_or_nothing_are_spurious() -> None:
    """A post after its window's grace, about a control job, unattributable, or a bare
    resolve is SPURIOUS; a post within the grace is not."""
    report = verdict(
        [
            firing(JOB, T0 + 14),  # within closed + grace: the incident's post
            firing(OTHER, T0 + 1),
            firing(OTHER, T0 + 16),  # after closed + grace
            firing(CONTROL, T0 + 2),
            post(T0 + 3, "hello"),
            post(T0 + 4, f"✅ RESOLVED chaos — job {OTHER}"),  # top-level, never edited
        ]
    )
    assert report.delivered == 2 and not report.duplicated
    assert len(report.spurious) == 4


def test_meta_alerts_count_per_polaris_fault() -> None:
    """Meta posts inside a fault (plus grace) count for it; two for one fault is too many,
    and one outside every fault is spurious."""
    meta = [
        post(T0 + 21, "✅ RESOLVED Polaris API reachable again after 3s", edited=1),
        post(T0 + 28, "🔴 FIRING Polaris API problem: cannot reach Polaris"),
        post(T0 + 60, "🔴 FIRING Polaris API problem: cannot reach Polaris"),
    ]
    report = verdict([firing(JOB, T0 + 1), firing(OTHER, T0 + 1), *meta])
    assert len(report.meta_posts) == 3 and report.meta_resolved == 1
    assert [f.kind for f in report.meta_over] == ["503 stretch"]
    assert len(report.spurious) == 1


def test_log_scan_finds_tracebacks_and_error_events(tmp_path: Path) -> None:
    """JSON events with an exception, raw tracebacks and error-level events are found."""
    log = tmp_path / "bot-1.log"
    log.write_text(
        '{"event": "watch.tick", "level": "info"}\n'
        '{"event": "watch.tick_crashed", "level": "error",'
        ' "exception": "Traceback\\nKeyError: 1"}\n'
        '{"event": "outbox.dead_letter", "level": "error"}\n'
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1\n'
        "ValueError: boom\n"
    )
    found = scan_logs([log])
    assert found.tracebacks == [
        "bot-1.log:2 watch.tick_crashed: KeyError: 1",
        "bot-1.log:4 ValueError: boom",
    ]
    assert found.errors == ["bot-1.log:3 outbox.dead_letter"]
