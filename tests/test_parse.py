"""The slash-command grammar, slash forms and interaction payloads: examples and properties."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from watchdog.polaris.errors import is_job_id
from watchdog.slack.actions import Action, ButtonValue, encode_value
from watchdog.slack.commands.parse import (
    Alerts,
    Cancel,
    Help,
    JobRef,
    ListJobs,
    Metrics,
    Pause,
    Resume,
    Silence,
    Silences,
    Status,
    Unsilence,
    UsageError,
    parse_command,
)
from watchdog.slack.commands.payloads import (
    Click,
    SlashRequest,
    parse_interaction,
    parse_slash_form,
)

JOB = "1a2b3c4d-0000-4000-8000-00000000abcd"


# ---- parse_command: examples ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Help()),
        ("   ", Help()),
        ("help", Help()),
        ("HELP", Help()),
        ("jobs", ListJobs()),
        ("jobs health=error", ListJobs(health=("error",))),
        ("jobs health=error type=streaming", ListJobs(health=("error",), types=("streaming",))),
        ("jobs health=error,warn health=error type=batch", ListJobs(("error", "warn"), ("batch",))),
        (f"status {JOB}", Status(JobRef(JOB))),
        (f"status {JOB.upper()}", Status(JobRef(JOB))),
        ("metrics 1a2b3c", Metrics(JobRef("1a2b3c"))),
        ("pause 1a2b3c4d-00", Pause(JobRef("1a2b3c4d-00"))),
        (f"resume {JOB}", Resume(JobRef(JOB))),
        (f"  cancel\t{JOB} ", Cancel(JobRef(JOB))),
        ("alerts", Alerts()),
        ("silence job-unhealthy 2h", Silence("job-unhealthy", 7200.0, "")),
        ("silence 1A2B3C 30m deploy in progress", Silence("1a2b3c", 1800.0, "deploy in progress")),
        ("silences", Silences()),
        ("unsilence s-1a2b3c", Unsilence("s-1a2b3c")),
    ],
)
def test_commands_parse(text: str, expected: object) -> None:
    """Each documented command form parses into its command."""
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("frobnicate", "unknown command"),
        ("status", "exactly one"),
        (f"status {JOB} {JOB}", "exactly one"),
        ("status 1a2b3", "too short"),
        ("status ../../jobs", "not a job id"),
        ("status %2e%2e", "not a job id"),
        ("status abcdef/status", "not a job id"),
        ("status abcdef.json", "not a job id"),
        ("status abcdefabc", "not a job id"),  # a dash belongs at position 8
        (f"status {JOB}0", "not a job id"),
        ("status zzzzzzzz", "not a job id"),
        ("jobs health=bad", "unknown health"),
        ("jobs type=stream", "unknown type"),
        ("jobs table=x", "unknown filter"),
        ("jobs error", "unknown filter"),
        ("alerts now", "no arguments"),
        ("silence my-rule", "needs a rule"),
        ("silence my-rule soon", "bad duration"),
        ("silence my-rule 0s", "more than 0s"),
        ("silence my-rule 90d", "at most 30d"),
        ("silence ../etc 1h", "not a job id"),
        ("silence my-rule 1h " + "x" * 201, "too long"),
        ("unsilence", "one silence id"),
        ("unsilence s/../x", "not a silence id"),
        ("x" * 5000, "too long"),
    ],
)
def test_bad_commands_are_usage_errors(text: str, reason: str) -> None:
    """Malformed input gives a UsageError with a short reason."""
    with pytest.raises(UsageError, match=reason):
        parse_command(text)


# ---- parse_command: properties --------------------------------------------------------


@given(st.text(max_size=300))
# Escapes: repr writes each of these characters as up to ten, so cutting the text at 40
# characters still quoted 200 of them.
@example("0000000000" + "\x1b" * 8 + "\U0001019d" * 22)
def test_parse_command_is_total(text: str) -> None:
    """Any text yields a command or a UsageError, never another exception."""
    try:
        parse_command(text)
    except UsageError as exc:
        assert exc.message and len(exc.message) < 200


no_space = st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc"))


@given(
    st.sampled_from(["silence my-rule", "silence", "unsilence", "jobs", "status"]),
    st.text(no_space, max_size=300),
)
def test_errors_stay_short_whatever_follows_a_command(verb: str, rest: str) -> None:
    """An argument of any length gives a command or a short UsageError."""
    try:
        parse_command(f"{verb} {rest}")
    except UsageError as exc:
        assert len(exc.message) < 200


words = st.sampled_from(["status", "metrics", "pause", "resume", "cancel"])


@given(words, st.text(min_size=1, max_size=60).filter(lambda s: s.split() == [s]))
def test_job_refs_are_always_uuid_shaped(verb: str, arg: str) -> None:
    """Whatever follows a job command, an accepted JobRef has only UUID characters."""
    try:
        command = parse_command(f"{verb} {arg}")
    except UsageError:
        return
    job = command.job  # type: ignore[union-attr]
    assert 6 <= len(job.text) <= 36
    assert set(job.text) <= set("0123456789abcdef-")
    assert is_job_id(job.text) or len(job.text) < 36


@given(st.uuids())
def test_every_uuid_and_its_prefixes_parse(job: Any) -> None:
    """A full job id, and every prefix of at least 6 characters, is a JobRef."""
    text = str(job)
    assert parse_command(f"status {text}") == Status(JobRef(text))
    for length in range(6, 37):
        assert parse_command(f"pause {text[:length]}") == Pause(JobRef(text[:length]))


@given(st.sampled_from(["", "default/", "prod/", "../", "qa/"]), st.text(max_size=40))
def test_silence_target_never_carries_path_characters(project: str, target: str) -> None:
    """An accepted silence target is a rule name or a UUID prefix, after a configured
    project's name and one '/' at most: no '%', '?', spaces or other projects."""
    try:
        command = parse_command(f"silence {project}{target} 1h", ("default", "prod"))
    except UsageError:
        return
    assert isinstance(command, Silence)
    assert not set(command.target) & set("%?# \\")
    named, slash, rest = command.target.rpartition("/")
    assert not slash or (named in ("default", "prod") and "/" not in rest)


PROJECTS = ("prod", "staging")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"status prod/{JOB}", Status(JobRef(JOB, "prod"))),
        ("pause Staging/1A2B3C", Pause(JobRef("1a2b3c", "staging"))),
        (f"cancel staging/{JOB[:8]}", Cancel(JobRef(JOB[:8], "staging"))),
        ("jobs project=prod", ListJobs(projects=("prod",))),
        (
            "jobs project=staging,prod project=prod health=error",
            ListJobs(health=("error",), projects=("staging", "prod")),
        ),
        ("silence staging/1a2b3c 2h", Silence("staging/1a2b3c", 7200.0)),
    ],
)
def test_jobs_may_name_their_project(text: str, expected: object) -> None:
    """`PROJECT/JOB` and `project=` take the configured projects' names, any case."""
    assert parse_command(text, PROJECTS) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"status qa/{JOB}", "unknown project 'qa'; projects: prod, staging"),
        (f"status prd/{JOB}", "unknown project 'prd' (did you mean 'prod'?)"),
        ("jobs project=prod,qa", "unknown project 'qa'"),
        (f"status a/b/{JOB}", "is not a job id"),
        ("status prod/", "too short"),
        ("status prod/zzzzzz", "'zzzzzz' is not a job id"),
        ("silence qa/1a2b3c 1h", "unknown project 'qa'"),
    ],
)
def test_an_unknown_project_is_a_usage_error_listing_the_projects(text: str, reason: str) -> None:
    """A project that is not configured, or text that is not PROJECT/JOB, says so."""
    with pytest.raises(UsageError, match=re.escape(reason)):
        parse_command(text, PROJECTS)


def test_a_single_project_set_up_takes_default_slash_job() -> None:
    """Without [[projects]] the one project is `default`: `default/JOB` is accepted."""
    assert parse_command(f"status default/{JOB}") == Status(JobRef(JOB, "default"))
    assert parse_command(f"status {JOB}") == Status(JobRef(JOB))


def test_many_projects_are_listed_briefly_in_an_error() -> None:
    """With a hundred projects the error names ten and counts the rest."""
    many = tuple(f"p{n:03d}" for n in range(100))
    with pytest.raises(UsageError) as caught:
        parse_command(f"status nope/{JOB}", many)
    assert caught.value.message.endswith("p009 and 90 more")


# ---- parse_slash_form -----------------------------------------------------------------


def test_slash_form_parses() -> None:
    """The fields Slack posts become a SlashRequest."""
    form = {
        "user_id": "U1",
        "channel_id": "C1",
        "text": "jobs",
        "command": "/polaris",
        "response_url": "https://hooks.slack.com/commands/1",
        "trigger_id": "t",
        "team_id": "T1",
        "user_name": "ignored",
    }
    assert parse_slash_form(form) == SlashRequest(
        "U1", "C1", "jobs", "/polaris", "https://hooks.slack.com/commands/1", "t", "T1"
    )


def test_slash_text_is_unescaped() -> None:
    """Slack escapes &, < and > in the text; the command sees what the user typed."""
    form = {"user_id": "U1", "response_url": "u", "text": "silence r 1h a &lt;b&gt; &amp;amp;"}
    assert parse_slash_form(form).text == "silence r 1h a <b> &amp;"


@pytest.mark.parametrize("missing", ["user_id", "response_url"])
def test_slash_form_without_required_field_is_refused(missing: str) -> None:
    """A form without user_id or response_url is a ValueError."""
    form = {"user_id": "U1", "response_url": "https://hooks.slack.com/x"}
    del form[missing]
    with pytest.raises(ValueError, match=missing):
        parse_slash_form(form)


@given(st.dictionaries(st.text(max_size=15), st.text(max_size=30) | st.integers()))
def test_parse_slash_form_is_total(fields: dict[str, Any]) -> None:
    """Any mapping yields a SlashRequest or a ValueError."""
    try:
        parse_slash_form(fields)
    except ValueError:
        pass


# ---- parse_interaction ----------------------------------------------------------------


def click_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U1"},
        "team": {"id": "T1"},
        "channel": {"id": "C1"},
        "container": {"type": "message", "message_ts": "1.2"},
        "message": {"ts": "1.2", "blocks": []},
        "response_url": "https://hooks.slack.com/actions/1",
        "actions": [
            {"action_id": Action.PAUSE.value, "value": encode_value(ButtonValue(JOB, "r", "i"))}
        ],
    }
    payload.update(changes)
    return payload


def test_interaction_parses() -> None:
    """A block_actions payload with one of our buttons becomes a Click."""
    click = parse_interaction(json.dumps(click_payload()))
    assert click == Click(
        user_id="U1",
        channel_id="C1",
        response_url="https://hooks.slack.com/actions/1",
        action=Action.PAUSE,
        value=ButtonValue(JOB, "r", "i"),
        message={"ts": "1.2", "blocks": []},
        container={"type": "message", "message_ts": "1.2"},
        team_id="T1",
    )


def test_interaction_from_ephemeral_message_has_no_message() -> None:
    """Ephemeral messages arrive without `message`; that is allowed."""
    payload = click_payload()
    del payload["message"]
    assert parse_interaction(json.dumps(payload)).message is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ("[" * 100_000, "not JSON"),
        (json.dumps(click_payload(type="view_submission")), "unsupported"),
        (json.dumps(click_payload(user={})), "user.id"),
        (json.dumps(click_payload(user="U1")), "not an object"),
        (json.dumps(click_payload(response_url=None)), "response_url"),
        (json.dumps(click_payload(actions=[])), "no actions"),
        (json.dumps(click_payload(actions=[{"action_id": "x", "value": "{}"}])), "unknown action"),
        (json.dumps(click_payload(actions=[{"action_id": ["wd_pause"]}])), "unknown action"),
        (json.dumps(click_payload(actions=[{"action_id": "wd_pause"}])), "value"),
        (
            json.dumps(click_payload(actions=[{"action_id": "wd_pause", "value": '{"j":"../x"}'}])),
            "bad job id",
        ),
    ],
)
def test_bad_interactions_are_refused(payload: str, reason: str) -> None:
    """Anything but one of our button clicks is a ValueError with a reason."""
    with pytest.raises(ValueError, match=reason):
        parse_interaction(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["block_actions", "x"]) | json_values,
            "user": st.fixed_dictionaries({}, optional={"id": json_values}) | json_values,
            "channel": st.fixed_dictionaries({}, optional={"id": json_values}) | json_values,
            "response_url": json_values,
            "message": json_values,
            "container": json_values,
            "team": json_values,
            "actions": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "action_id": st.sampled_from([a.value for a in Action]) | json_values,
                        "value": st.just(json.dumps({"j": JOB})) | json_values,
                    },
                )
                | json_values,
                max_size=2,
            )
            | json_values,
        },
    )
)
def test_parse_interaction_is_total(payload: dict[str, Any]) -> None:
    """Any JSON payload yields a Click or a ValueError, never another exception."""
    try:
        click = parse_interaction(json.dumps(payload))
    except ValueError:
        return
    assert is_job_id(click.value.job_id)


@given(st.text(max_size=200))
def test_parse_interaction_is_total_on_any_text(text: str) -> None:
    """Any text at all yields a Click or a ValueError."""
    try:
        parse_interaction(text)
    except ValueError:
        pass
