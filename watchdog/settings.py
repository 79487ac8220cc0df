"""Process settings from the environment (and a ``.env`` file), frozen at start-up.

Every variable of the interface's table is here. Secrets are ``SecretStr`` so that a
stray ``repr`` or log line shows ``**********``. Nothing is required at load time:
each command asks for what it needs with :meth:`Settings.require`, which names the
missing variables instead of failing on ones the command never uses.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from watchdog.domain.alerts import DEFAULT_PROJECT
from watchdog.errors import InputError
from watchdog.rules.ruleset import RuleSet


class MissingSettingError(InputError):
    """A command needs environment variables that are not set."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        plural = "s" if len(names) > 1 else ""
        super().__init__(
            f"missing environment variable{plural}: {', '.join(names)} "
            "(set it in the environment or in .env; see README, Configuration)"
        )


class Settings(BaseSettings):
    """The environment of one bot process."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    polaris_api_url: str | None = Field(default=None, alias="POLARIS_API_URL")
    polaris_project_id: str | None = Field(default=None, alias="POLARIS_PROJECT_ID")
    polaris_api_key: SecretStr | None = Field(default=None, alias="POLARIS_API_KEY")
    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    watchdog_rules: Path = Field(default=Path("rules.toml"), alias="WATCHDOG_RULES")
    watchdog_listen: str = Field(default="0.0.0.0:8080", alias="WATCHDOG_LISTEN")
    #: ``:memory:``, a ``postgresql://`` URL (which may hold a password: kept out of
    #: repr) or a SQLite file path; :func:`watchdog.store.open.open_store` decides.
    watchdog_state: str = Field(default="watchdog.db", alias="WATCHDOG_STATE", repr=False)
    watchdog_log_format: str = Field(default="auto", alias="WATCHDOG_LOG_FORMAT")
    watchdog_replica: str | None = Field(default=None, alias="WATCHDOG_REPLICA")

    @field_validator("watchdog_state", mode="before")
    @classmethod
    def _state_as_text(cls, value: object) -> object:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator(
        "polaris_api_url",
        "polaris_project_id",
        "polaris_api_key",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "watchdog_replica",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `FOO=` in a .env file means "not set", not "set to the empty string".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack-sdk joins method names with urljoin: without the slash the last path
        # segment would be replaced instead of extended.
        return value if value.endswith("/") else value + "/"

    @field_validator("watchdog_log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in {"auto", "json", "console"}:
            raise ValueError("WATCHDOG_LOG_FORMAT must be auto, json or console")
        return value

    def require(self, *env_names: str) -> None:
        """Raise :class:`MissingSettingError` naming every unset variable of ``env_names``."""
        by_alias = {(info.alias or name): name for name, info in type(self).model_fields.items()}
        missing = [env for env in env_names if getattr(self, by_alias[env]) is None]
        if missing:
            raise MissingSettingError(missing)

    @property
    def replica(self) -> str:
        """This replica's name in logs, leases and ``/healthz``: ``WATCHDOG_REPLICA``, else
        the host name and pid (unique per process, also on one host)."""
        name = (self.watchdog_replica or "").strip()
        return name or f"{socket.gethostname()}:{os.getpid()}"

    def projects(
        self, rules: RuleSet, environ: Mapping[str, str] | None = None
    ) -> list[ProjectConfig]:
        """The projects to watch, with their keys: ``[[projects]]`` of ``rules`` (each key
        from the variable it names, looked up in ``environ``; by default the process
        environment, then ``.env``), else one project ``default`` from ``POLARIS_*``.

        :class:`MissingSettingError` names every variable that is unset or empty."""
        if not rules.projects:
            self.require(*POLARIS_VARS)
            assert self.polaris_api_url and self.polaris_project_id and self.polaris_api_key
            return [
                ProjectConfig(
                    name=DEFAULT_PROJECT,
                    api_url=self.polaris_api_url,
                    project_id=self.polaris_project_id,
                    api_key=self.polaris_api_key,
                    key_env="POLARIS_API_KEY",
                )
            ]
        if environ is None:
            dotenv = {k: v for k, v in dotenv_values(".env").items() if v is not None}
            # A variable set but blank is unset (as for every setting): .env may fill it.
            environ = {**dotenv, **{k: v for k, v in os.environ.items() if v.strip()}}
        missing: list[str] = []
        configs: list[ProjectConfig] = []
        for spec in rules.projects:
            key = environ.get(spec.api_key_env, "").strip()
            if not key:
                missing.append(spec.api_key_env)
                continue
            configs.append(
                ProjectConfig(
                    name=spec.name,
                    api_url=spec.url,
                    project_id=spec.id,
                    api_key=SecretStr(key),
                    key_env=spec.api_key_env,
                    channel=spec.channel,
                    max_rate=spec.max_rate,
                    concurrency=spec.concurrency,
                )
            )
        if missing:
            raise MissingSettingError(missing)
        return configs

    @property
    def listen_host_port(self) -> tuple[str, int]:
        """``WATCHDOG_LISTEN`` split into host and port (``[::1]:8080`` for IPv6)."""
        host, sep, port = self.watchdog_listen.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise ValueError(f"WATCHDOG_LISTEN must be host:port, got {self.watchdog_listen!r}")
        # The brackets only separate an IPv6 address from the port; bind() wants it bare.
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return host or "0.0.0.0", int(port)


POLARIS_VARS = ("POLARIS_API_URL", "POLARIS_PROJECT_ID", "POLARIS_API_KEY")


@dataclass(frozen=True)
class ProjectConfig:
    """One project to watch, resolved: where it is and the key to call it with."""

    name: str
    api_url: str
    project_id: str
    api_key: SecretStr
    key_env: str  # the variable the key came from (for messages; never the key)
    channel: str | None = None
    max_rate: float | None = None  # None: [watch] max_rate
    concurrency: int | None = None  # None: [watch] concurrency
