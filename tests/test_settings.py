"""Process settings: environment and .env in, secrets kept out of every repr."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from watchdog.rules.load import parse_ruleset
from watchdog.settings import POLARIS_VARS, MissingSettingError, Settings

VARIABLES = (
    *POLARIS_VARS,
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "WATCHDOG_RULES",
    "WATCHDOG_LISTEN",
    "WATCHDOG_STATE",
    "WATCHDOG_LOG_FORMAT",
)
KEY = "pok_settings-secret-0123456789abcdef"
TOKEN = "xoxb-settings-token-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No variable of the real environment and no stray .env can leak into a test."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults_when_nothing_is_set() -> None:
    """Every variable is optional at load time; the documented defaults apply."""
    settings = Settings()
    assert settings.polaris_api_key is None and settings.polaris_api_url is None
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.watchdog_rules == Path("rules.toml")
    assert settings.watchdog_state == "watchdog.db"
    assert settings.listen_host_port == ("0.0.0.0", 8080)


def test_secrets_never_show_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API key and Slack secrets are masked in repr, str and the model dump."""
    monkeypatch.setenv("POLARIS_API_KEY", KEY)
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret-0123456789")
    settings = Settings()
    for shown in (repr(settings), str(settings), str(settings.model_dump())):
        assert KEY not in shown and TOKEN not in shown and "signing-secret" not in shown
    assert settings.polaris_api_key is not None
    assert settings.polaris_api_key.get_secret_value() == KEY


def test_blank_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """FOO= (or spaces) means not set, so require() names it."""
    monkeypatch.setenv("POLARIS_API_KEY", "   ")
    monkeypatch.setenv("POLARIS_API_URL", "")
    monkeypatch.setenv("POLARIS_PROJECT_ID", "project")
    settings = Settings()
    assert settings.polaris_api_key is None and settings.polaris_api_url is None
    with pytest.raises(MissingSettingError) as caught:
        settings.require(*POLARIS_VARS)
    assert caught.value.names == ["POLARIS_API_URL", "POLARIS_API_KEY"]


def test_require_names_every_missing_variable() -> None:
    """One error names all the unset variables a command needs, and the plural fits."""
    with pytest.raises(MissingSettingError) as caught:
        Settings().require(*POLARIS_VARS, "SLACK_BOT_TOKEN")
    message = str(caught.value)
    assert caught.value.names == [*POLARIS_VARS, "SLACK_BOT_TOKEN"]
    assert message.startswith("missing environment variables: ")
    assert all(name in message for name in caught.value.names)
    with pytest.raises(MissingSettingError, match=r"^missing environment variable: SLACK_APP"):
        Settings().require("SLACK_APP_TOKEN")


def test_require_passes_when_everything_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """No error when every named variable has a value."""
    for name in POLARIS_VARS:
        monkeypatch.setenv(name, "value")
    Settings().require(*POLARIS_VARS)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9999/api", "http://127.0.0.1:9999/api/"),
        ("http://127.0.0.1:9999/api/", "http://127.0.0.1:9999/api/"),
    ],
)
def test_slack_api_url_gets_a_trailing_slash(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    """slack-sdk joins method names to the URL: it must end in a slash."""
    monkeypatch.setenv("SLACK_API_URL", url)
    assert Settings().slack_api_url == expected


def test_dotenv_in_the_working_directory_is_read(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    """Values come from .env; the real environment wins over it."""
    (clean_env / ".env").write_text(
        f"POLARIS_API_KEY={KEY}\nPOLARIS_PROJECT_ID=from-dotenv\nWATCHDOG_LISTEN=:9090\n"
        "SLACK_BOT_TOKEN=\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("POLARIS_PROJECT_ID", "from-environment")
    settings = Settings()
    assert settings.polaris_api_key is not None
    assert settings.polaris_api_key.get_secret_value() == KEY
    assert settings.polaris_project_id == "from-environment"
    assert settings.listen_host_port == ("0.0.0.0", 9090)
    assert settings.slack_bot_token is None


def test_an_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """WATCHDOG_LOG_FORMAT is auto, json or console."""
    monkeypatch.setenv("WATCHDOG_LOG_FORMAT", "xml")
    with pytest.raises(pydantic.ValidationError, match="auto, json or console"):
        Settings()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        (":8081", ("0.0.0.0", 8081)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:80", ("::", 80)),
    ],
)
def test_listen_host_port_parsing(
    monkeypatch: pytest.MonkeyPatch, listen: str, expected: tuple[str, int]
) -> None:
    """WATCHDOG_LISTEN is host:port; an empty host is every interface; IPv6 in brackets."""
    monkeypatch.setenv("WATCHDOG_LISTEN", listen)
    assert Settings().listen_host_port == expected


@pytest.mark.parametrize("listen", ["8080", "host:", "host:http", "host:70000", "host:-1", "h:٣"])
def test_a_bad_listen_address_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, listen: str
) -> None:
    """Anything but host:port with a port of 0..65535 names the variable."""
    monkeypatch.setenv("WATCHDOG_LISTEN", listen)
    with pytest.raises(ValueError, match="WATCHDOG_LISTEN must be host:port"):
        _ = Settings().listen_host_port


PROJECTS_TOML = """
[[projects]]
name = "prod"
url = "https://a.example.com"
id = "p1"
api_key_env = "WD_TEST_KEY_PROD"

[[projects]]
name = "staging"
url = "https://b.example.com"
id = "p2"
api_key_env = "WD_TEST_KEY_STAGING"
"""


def test_project_keys_come_from_the_variables_the_rules_name(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    """Each project's key is read from its api_key_env: the environment first, a blank
    value counting as unset so .env may fill it."""
    rules = parse_ruleset(PROJECTS_TOML, "rules.toml")
    monkeypatch.setenv("WD_TEST_KEY_PROD", KEY)
    monkeypatch.setenv("WD_TEST_KEY_STAGING", " ")
    (clean_env / ".env").write_text("WD_TEST_KEY_STAGING=from-dotenv\n", encoding="utf-8")
    keys = {p.name: p.api_key.get_secret_value() for p in Settings().projects(rules)}
    assert keys == {"prod": KEY, "staging": "from-dotenv"}


def test_project_keys_may_come_from_a_given_mapping_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``environ`` given (the demo's simulator keys), the process's variables are not
    read, and a key missing there is named."""
    rules = parse_ruleset(PROJECTS_TOML, "rules.toml")
    monkeypatch.setenv("WD_TEST_KEY_STAGING", KEY)
    with pytest.raises(MissingSettingError) as caught:
        Settings().projects(rules, {"WD_TEST_KEY_PROD": "k1"})
    assert caught.value.names == ["WD_TEST_KEY_STAGING"]
    both = {"WD_TEST_KEY_PROD": "k1", "WD_TEST_KEY_STAGING": "k2"}
    configs = Settings().projects(rules, both)
    assert [(c.name, c.api_key.get_secret_value(), c.key_env) for c in configs] == [
        ("prod", "k1", "WD_TEST_KEY_PROD"),
        ("staging", "k2", "WD_TEST_KEY_STAGING"),
    ]
