"""The container image and Slack manifest keep their promises, checked without a Docker engine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SECRET_NAMES = ("POLARIS_API_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN")


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(DOCKERFILE):
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, rest))
    return stages[-1]


def test_dockerfile_is_multi_stage_on_a_slim_python() -> None:
    """Two stages, both from a slim Python 3.11+ base."""
    bases = [rest for keyword, rest in _instructions(DOCKERFILE) if keyword == "FROM"]
    assert len(bases) >= 2
    assert all(re.match(r"python:3\.1[1-9][\w.-]*-slim", base) for base in bases)


def test_final_image_runs_as_a_numeric_non_root_user() -> None:
    """The last USER of the final stage is uid:gid 10001:10001: numeric, because the kubelet
    can check runAsNonRoot only for a numeric user, and not root."""
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]
    assert users and users[-1] == "10001:10001"


def test_final_image_has_healthcheck_port_and_stop_signal() -> None:
    """HEALTHCHECK hits /healthz, port 8080 is exposed, SIGTERM stops the bot."""
    final = dict(_final_stage())
    assert "/healthz" in final["HEALTHCHECK"]
    # The port comes from WATCHDOG_LISTEN at run time (tests/test_healthcheck.py).
    assert "8080" not in final["HEALTHCHECK"]
    assert final["EXPOSE"] == "8080"
    assert final["STOPSIGNAL"] == "SIGTERM"
    assert "/data" in final["VOLUME"]
    assert "WATCHDOG_STATE=/data/watchdog.db" in final["ENV"]
    assert "WATCHDOG_RULES=/config/rules.toml" in final["ENV"]


def test_entrypoint_is_the_console_script() -> None:
    """The image runs `polaris-watchdog run`."""
    final = dict(_final_stage())
    assert final["ENTRYPOINT"] == '["polaris-watchdog"]'
    assert final["CMD"] == '["run"]'


def test_healthcheck_script_is_copied_from_the_repo() -> None:
    """The HEALTHCHECK runs deploy/healthcheck.py, which the final stage copies in."""
    final = _final_stage()
    copies = [rest.split() for keyword, rest in final if keyword == "COPY"]
    (target,) = [dst for *src, dst in copies if src == ["deploy/healthcheck.py"]]
    assert target in dict(final)["HEALTHCHECK"]


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker's pattern matcher reads it: `*` and `?` stay
    within one path segment, `**` spans segments, and the pattern is anchored at the
    root of the build context."""
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            assert pattern[i] not in "[\\", f"no character classes or escapes: {pattern}"
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context (the last matching pattern
    wins; a `!` pattern re-includes; a directory that matches takes its contents along)."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _dockerignore_regex(line.lstrip("!"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def test_no_secret_is_baked_into_the_image() -> None:
    """No ENV or ARG sets a secret; .env files are kept out of the build context."""
    for keyword, rest in _instructions(DOCKERFILE):
        if keyword in ("ENV", "ARG"):
            for name in SECRET_NAMES:
                assert name not in rest, f"{keyword} {rest} bakes a secret into the image"
    for path in (".env", "watchdog.env", "deploy/.env", "config/prod.env"):
        assert _dockerignored(path), f"{path} would be sent to the Docker daemon"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "watchdog.db",
        "data/watchdog.db",
        "data/watchdog.db-wal",
        "data/watchdog.db-shm",
        "watchdog/__pycache__/app.cpython-311.pyc",
        "watchdog/slack/__pycache__/blocks.cpython-311.pyc",
        "watchdog/stray.pyc",
        "watchdog/.mypy_cache/3.11/x.json",
        "polaris_watchdog.egg-info/PKG-INFO",
        ".git/HEAD",
        "tests/test_packaging.py",
        "deploy/kubernetes/ha-postgresql.yaml",
    ],
)
def test_dockerignore_keeps_state_caches_and_tests_out_at_any_depth(path: str) -> None:
    """State files, byte code and caches are ignored wherever they are, not just at the root."""
    assert _dockerignored(path)


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "watchdog/app.py",
        "watchdog/slack/text.py",
        "watchdog/devtools/demo_rules.toml",
        "deploy/healthcheck.py",
    ],
)
def test_dockerignore_keeps_what_the_build_copies(path: str) -> None:
    """Everything the Dockerfile COPYs is in the build context."""
    assert (ROOT / path).exists()
    assert not _dockerignored(path)


def test_final_stage_installs_no_dev_or_test_tools() -> None:
    """Only the runtime venv is copied into the final stage; no pip install of extras."""
    final = _final_stage()
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "pip install" not in runs
    build = " ".join(rest for keyword, rest in _instructions(DOCKERFILE) if keyword == "RUN")
    assert "[test" not in build and "[dev" not in build


@pytest.mark.parametrize("name", ["slack-app-manifest.yml", "slack-app-manifest.socket.yml"])
def test_slack_manifest_declares_the_command_and_scopes(name: str) -> None:
    """Each manifest has /polaris, interactivity and the bot scopes the bot uses."""
    manifest = yaml.safe_load((ROOT / name).read_text())
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/polaris"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands"} <= scopes
    # conversations.history, to find an earlier alert post by its metadata after a crash
    # before posting that incident again (public and private channels).
    assert {"channels:history", "groups:history"} <= scopes
    settings = manifest["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    if settings["socket_mode_enabled"]:
        assert "url" not in commands[0]
    else:
        assert commands[0]["url"].endswith("/slack/commands")
        assert settings["interactivity"]["request_url"].endswith("/slack/interactions")


@pytest.mark.slow
def test_image_install_steps_work_in_a_fresh_venv(tmp_path: Path) -> None:
    """The Dockerfile's build steps (venv + `pip install .`) give a working console script
    without any test or dev tool."""
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    # The build context the image sees: pyproject, README and the package only.
    context = tmp_path / "src"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (context / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "watchdog"), str(context / "watchdog")], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "."],
        cwd=context,
        env=env,
        check=True,
        timeout=600,
    )
    script = target / "bin" / "polaris-watchdog"
    helped = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert helped.returncode == 0 and "check" in helped.stdout
    example = ROOT / "rules.example.toml"
    checked = subprocess.run(
        [str(script), "check", "--rules", str(example)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tools = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; "
            "print([m for m in ('pytest', 'ruff', 'mypy', 'hypothesis') if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert tools.stdout.strip() == "[]"
    assert sys.version_info >= (3, 11)
