"""The digest as a value: what :func:`summarize` counts, and how it is shown in Slack."""

from __future__ import annotations

import json

from watchdog.domain.alerts import META_JOB, META_RULE
from watchdog.domain.digest import Digest, digest_from_dict, digest_to_dict, summarize
from watchdog.domain.oncall import Incident
from watchdog.slack import text as tx
from watchdog.slack.alerts.digest import digest_message

DAY = 86_400.0
NOW = 1_700_000_000.0
SINCE = NOW - DAY


def incident(
    n: int,
    *,
    fired: float,
    job: str = "job-a",
    rule: str = "job-unhealthy",
    table: str | None = "clicks",
    project: str = "prod",
    acked: float | None = None,
    resolved: float | None = None,
) -> Incident:
    return Incident(
        f"i{n}", project, rule, job, table, "critical", fired, resolved, acked,
        "U0OWNER" if acked is not None else None,
    )  # fmt: skip


def test_summarize_counts_the_span_and_what_still_fires() -> None:
    """Incidents fired in the span are counted by rule, project and table; one from before
    the span that still fires counts as still firing only; one resolved after the span's
    end still fired at its end."""
    digest = summarize(
        [
            incident(1, fired=SINCE - 10, resolved=None),  # before: still firing
            incident(2, fired=SINCE - 10, resolved=SINCE + 5),  # before, over
            incident(3, fired=SINCE + 10, rule="skips", table=None),
            incident(4, fired=NOW - 100, resolved=NOW + 50, project="dev"),
            incident(5, fired=NOW + 10),  # after the span
        ],
        SINCE,
        NOW,
    )
    assert (digest.incidents, digest.still_firing, digest.resolved) == (2, 3, 0)
    assert digest.by_rule == (("job-unhealthy", 1), ("skips", 1))
    assert digest.by_project == (("dev", 1), ("prod", 1))
    assert digest.by_table == (("(no table)", 1), ("clicks", 1))


def test_medians_of_acknowledge_and_resolve_times() -> None:
    """Time to acknowledge and to resolve are medians over the incidents that were."""
    digest = summarize(
        [
            incident(1, fired=SINCE + 0, acked=SINCE + 60, resolved=SINCE + 600),
            incident(2, fired=SINCE + 0, acked=SINCE + 180, resolved=SINCE + 1200),
            incident(3, fired=SINCE + 0, resolved=SINCE + 3000),
            incident(4, fired=SINCE + 0),
        ],
        SINCE,
        NOW,
    )
    assert (digest.acknowledged, digest.median_ack) == (2, 120.0)
    assert (digest.resolved, digest.median_resolve) == (3, 1200.0)
    assert summarize([], SINCE, NOW).median_ack is None


def test_the_noisiest_jobs_are_those_with_most_incidents_meta_alerts_aside() -> None:
    """Up to five jobs, most incidents first (ties by project and id); the meta-alert
    about Polaris is no job."""
    found = [incident(n, fired=SINCE + n, job="job-b") for n in range(3)]
    found += [incident(10 + n, fired=SINCE + n, job=f"job-{n}") for n in range(6)]
    found += [incident(30 + n, fired=SINCE + n, job=META_JOB, rule=META_RULE) for n in range(9)]
    noisiest = summarize(found, SINCE, NOW).noisiest
    assert [(j.job_id, j.incidents) for j in noisiest] == [
        ("job-b", 3),
        ("job-0", 1),
        ("job-1", 1),
        ("job-2", 1),
        ("job-3", 1),
    ]
    assert noisiest[0].table == "clicks" and noisiest[0].project == "prod"


def test_a_digest_survives_its_json_round_trip() -> None:
    """The outbox keeps a digest as JSON and gets the same value back."""
    digest = summarize(
        [incident(1, fired=SINCE + 1, acked=SINCE + 2), incident(2, fired=SINCE + 3)],
        SINCE,
        NOW,
    )
    assert digest_from_dict(json.loads(json.dumps(digest_to_dict(digest)))) == digest


def test_the_slack_digest_keeps_to_slacks_limits_and_escapes_names() -> None:
    """Hundreds of rules and tables, hostile names: the lists are cut with a count of the
    rest, names are escaped, the message stays within Slack's limits."""
    found = [
        incident(n, fired=SINCE + n, rule=f"r{n}", table=f"<!channel>{n}", job=f"job-{n}")
        for n in range(300)
    ]
    message = digest_message(summarize(found, SINCE, NOW), timezone="Europe/Berlin")
    body = json.dumps(message.blocks, ensure_ascii=False)
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body
    assert "…292 more" in body
    assert len(message.blocks) <= tx.MAX_BLOCKS
    assert tx.total_length(message.text, message.blocks) < tx.MAX_MESSAGE_TEXT


def test_a_quiet_day_says_so() -> None:
    """No incidents: the digest still posts, and says nothing fired."""
    message = digest_message(Digest(SINCE, NOW, 0))
    assert "nothing fired" in json.dumps(message.blocks)
    assert message.text.startswith("📋 Polaris digest · last 1d: 0 incidents")
