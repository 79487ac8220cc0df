"""The one exception tree (watchdog.errors): every error class of the bot is in it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import watchdog
from watchdog.cli import CliError
from watchdog.errors import EXIT_FAILURE, EXIT_USAGE, InputError, WatchdogError
from watchdog.polaris.errors import InvalidJobIdError, PolarisAuthError, PolarisError
from watchdog.rules.problems import Problem, RulesFileError
from watchdog.settings import MissingSettingError
from watchdog.slack.alerts.notifier import SlackAuthError
from watchdog.slack.commands.parse import UsageError

# The stand-ins' exceptions model the fake servers' answers, not the bot's failures.
OUTSIDE = ("watchdog.devtools.",)
# The store's errors join the tree on the branch that rewrites watchdog/store (the lead
# re-parents them at merge); until then StateFileError is a RuntimeError.
NOT_YET = {"watchdog.store.sqlite_schema.StateFileError"}


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of the package, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(watchdog.__path__, "watchdog."):
        if info.name.startswith(OUTSIDE) or info.name == "watchdog.__main__":
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == info.name:
                found[f"{info.name}.{cls.__qualname__}"] = cls
    return found


def test_every_exception_class_of_the_package_is_a_watchdog_error() -> None:
    """Walking every module finds no exception class outside the tree (but the listed)."""
    classes = _exception_classes()
    assert "watchdog.polaris.errors.PolarisAuthError" in classes  # the walk sees them all
    assert "watchdog.rules.toml_lines._Stop" in classes
    strays = {
        name
        for name, cls in classes.items()
        if not issubclass(cls, WatchdogError) and name not in NOT_YET
    }
    assert strays == set()


def test_bad_input_exits_2_and_failures_exit_1() -> None:
    """The InputError family carries exit code 2, the rest of the tree 1."""
    assert MissingSettingError(["POLARIS_API_KEY"]).exit_code == EXIT_USAGE
    assert RulesFileError([Problem("rules.toml", 1, "bad")]).exit_code == EXIT_USAGE
    assert InvalidJobIdError("../x").exit_code == EXIT_USAGE
    assert UsageError("no command text").exit_code == EXIT_USAGE
    assert PolarisAuthError("rejected").exit_code == EXIT_FAILURE
    assert SlackAuthError("rejected").exit_code == EXIT_FAILURE


def test_a_cli_error_carries_its_own_exit_code() -> None:
    """CliError's code is per instance and does not leak into the class."""
    assert CliError("bad setting", EXIT_USAGE).exit_code == EXIT_USAGE
    assert CliError("cannot serve").exit_code == EXIT_FAILURE
    assert CliError.exit_code == EXIT_FAILURE


def test_an_invalid_job_id_is_still_a_value_error() -> None:
    """Code that guards with `except ValueError` keeps catching a bad job id."""
    with pytest.raises(ValueError, match="not a job id"):
        raise InvalidJobIdError("../../jobs")
    assert issubclass(InvalidJobIdError, InputError)


def test_families_hang_off_the_root() -> None:
    """PolarisError and InputError are families under WatchdogError, not beside it."""
    assert issubclass(PolarisError, WatchdogError) and issubclass(InputError, WatchdogError)
    assert not issubclass(PolarisError, InputError)
