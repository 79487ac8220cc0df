"""Names defined once (watchdog.domain.names): every place that takes one agrees."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.domain.alerts import DEFAULT_PROJECT, fingerprint
from watchdog.domain.names import PROJECT_NAME, RULE_NAME, SLACK_USER_ID
from watchdog.rules.load import parse_ruleset
from watchdog.rules.problems import RulesFileError
from watchdog.slack.alerts import parts
from watchdog.slack.commands.parse import Silence, parse_command

JOB = "0f7b6c2e-1d2a-4c3b-9e8f-1234567890ab"


@given(st.from_regex(RULE_NAME, fullmatch=True))
def test_a_rule_name_the_rules_file_takes_is_one_silence_takes(name: str) -> None:
    """Any valid rule name loads from a rules file and is silenced as a rule, not a job."""
    ruleset = parse_ruleset(f'[[rules]]\nname = "{name}"\nkind = "health"\n', "rules.toml")
    assert ruleset.rules[0].name == name
    command = parse_command(f"silence {name} 1h")
    assert isinstance(command, Silence) and command.target == name


@given(st.from_regex(SLACK_USER_ID, fullmatch=True))
def test_an_operator_id_the_rules_file_takes_renders_as_a_mention(user: str) -> None:
    """A member id valid as an operator is one the alert messages turn into a mention."""
    ruleset = parse_ruleset(f'[slack]\noperators = ["{user}"]\n', "rules.toml")
    assert ruleset.slack.operators == (user,)
    assert parts.user(user) == f"<@{user}>" and parts.format_mention(user) == f"<@{user}>"


@pytest.mark.parametrize("name", [DEFAULT_PROJECT, "prod", "eu-west_2", "a", "9lives", "p" * 32])
def test_project_names_of_lowercase_letters_digits_dash_and_underscore_are_valid(
    name: str,
) -> None:
    """Up to 32 characters of [a-z0-9_-], starting with a letter or digit."""
    assert PROJECT_NAME.fullmatch(name)


@pytest.mark.parametrize(
    "name", ["", "-prod", "_x", "Prod", "prod/eu", "prod.eu", "p" * 33, "pröd", "prod ", "a/b/c"]
)
def test_a_project_name_with_a_slash_or_other_characters_is_refused(name: str) -> None:
    """No '/', no capitals, dots or spaces, not leading '-' or '_', not over 32."""
    assert PROJECT_NAME.fullmatch(name) is None


@given(
    st.from_regex(PROJECT_NAME, fullmatch=True),
    st.from_regex(RULE_NAME, fullmatch=True),
)
def test_a_fingerprint_of_valid_names_reads_back(project: str, rule: str) -> None:
    """project/rule/job_id splits back into its three parts: no name holds a '/'."""
    assert fingerprint(project, rule, JOB).split("/") == [project, rule, JOB]


@pytest.mark.parametrize(
    "job_id", ["0f7b6c2e1d2a4c3b9e8f1234567890ab", "{0f7b6c2e-1d2a-4c3b-9e8f-1234567890ab}"]
)
def test_a_rules_file_job_id_has_the_shape_the_polaris_client_takes(job_id: str) -> None:
    """A job id in match must be written 8-4-4-4-12, as Polaris does and the client
    demands; other spellings uuid.UUID would accept are refused with a clear problem."""
    text = f'[[rules]]\nname = "r"\nkind = "health"\nmatch = {{ job_id = "{job_id}" }}\n'
    with pytest.raises(RulesFileError) as caught:
        parse_ruleset(text, "rules.toml")
    (problem,) = caught.value.problems
    assert problem.line == 4 and "job ids are UUIDs" in problem.message
