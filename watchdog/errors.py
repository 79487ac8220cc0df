"""The one exception tree of the package: every error the bot raises is a :class:`WatchdogError`.

So a caller can tell "the bot refused or failed, and says why" (a ``WatchdogError``) from
a bug (anything else), and the command line maps the whole tree to exit codes in one
place (:func:`watchdog.cli.main` reads :attr:`WatchdogError.exit_code`): 2 for bad input
or configuration (:class:`InputError`), 1 for everything else. No error a user can
cause ends in a traceback.

This module imports nothing from the package, so every module can import it (it sits
below even :mod:`watchdog.domain`). The classes live where they are raised; this is the
whole tree, with what each means and what the user sees::

    WatchdogError                      exit 1
    ├── InputError                     exit 2: something a person gave us cannot be used
    │   ├── settings.MissingSettingError       a needed environment variable is unset
    │   ├── rules.problems.RulesFileError      the rules file: `check`/`run` print each
    │   │                                      FILE:LINE problem; SIGHUP keeps the old rules
    │   ├── testing.file.RuleTestFileError     a `test-rules` file: FILE:LINE problems, exit 2
    │   ├── polaris.errors.InvalidJobIdError   (also a ValueError) a job id that is not a
    │   │                                      UUID, refused before any request; in Slack
    │   │                                      "not a job id" / "the button does not name a job"
    │   ├── slack.commands.parse.UsageError    a slash command that is not one: an ephemeral
    │   │                                      reply with the reason and the usage
    │   ├── slack.commands.jobrefs.JobRefError no job, or several, start with a typed prefix:
    │   │                                      the reply names them (and their projects)
    │   ├── operator.ProjectChoiceError        the operator CLI was given no project where
    │   │                                      several are configured, or an unknown one:
    │   │                                      one line naming the projects
    │   └── slack.commands.verify.VerificationError
    │                                          not a fresh, correctly signed Slack request:
    │                                          HTTP 401 "invalid request signature"
    ├── cli.CliError                   one line for the user; carries its own exit code
    ├── slack.commands.changes.CommandFailed
    │                                  a Slack command that cannot be carried out: its
    │                                  reason is the reply (and the change's audit line)
    ├── polaris.errors.PolarisError    talking to Polaris failed (CLI: exit 1, one line;
    │   │                              Slack: replies.explain() turns it into a sentence;
    │   │                              watch loop: the tick goes on, a meta-alert after
    │   │                              `no_data_after`)
    │   ├── PolarisAuthError           401/403: key wrong, revoked or lacking a permission
    │   ├── PolarisNotFoundError       404: no such job
    │   ├── PolarisBadRequestError     400/409/415: Polaris refused, its message says why
    │   ├── PolarisRateLimitedError    429, transient: retried after Retry-After
    │   ├── PolarisUnavailableError    5xx, timeouts, no connection (502/503/504 transient)
    │   └── PolarisMalformedError      an answer that is not the documented JSON
    ├── slack.alerts.notifier.SlackAuthError
    │                                  the bot token is wrong: `run` stops at start-up, exit 1
    ├── slack.alerts.notifier.SlackUnreachableError
    │                                  Slack did not answer auth.test: `run` watches anyway
    ├── slack.alerts.recovery.HistoryUnavailable
    │                                  a channel's history cannot be read (scope, outage):
    │                                  a warning, and the alert is posted without the check
    ├── deliver.notifier.DeliveryUnavailable
    │                                  the destination cannot take anything now: the outbox
    │                                  keeps the items and retries (after `retry_after`)
    ├── watch.loop.LeaseLost           another replica took the lease mid-tick: the tick's
    │                                  results are dropped
    └── store.StoreError               the state store failed: unreachable, refusing
        │                              writes, broken (`run`: one line, exit 1; the loop:
        │                              "cannot record state" in /healthz, tick retried)
        ├── store.FencedOut            a write refused because a newer lease term exists:
        │                              another replica leads that project now
        ├── store.postgres_schema.SchemaTooNew
        │                              the database was migrated by a newer release
        └── store.sqlite_schema.StateFileError
            │                          the state file is not a database or has a newer
            │                          schema: `run` stops, exit 1
            ├── StateFileUnwritable    the disk refuses writes (read-only, full, I/O)
            └── StateFileGone          the file was deleted or replaced while running

Private control-flow exceptions that never leave their module are in the tree too (so a
test can check that every exception class of the package is): ``rules.toml_lines._Stop``
(the line scanner gives up, keeping what it located), ``slack.alerts.notifier._Permanent``
(Slack refused for good: the item is dead-lettered),
``slack.commands.server._Refused`` (a request stopped at the HTTP gate with a status) and
``slack.commands.server._Dropped`` (the client went away mid-request: one info line).

Outside the tree on purpose: the dev stand-ins' own exceptions
(``devtools.polaris_sim`` ``ApiError`` and ``StatusRefused``, ``devtools.slack_standin``
``_Invalid``) model the fake servers' answers, not the bot's failures; and plain
``ValueError`` for a malformed value handed to a constructor or parser (a programming or
protocol error, which the HTTP handlers answer with 400).
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2


class WatchdogError(Exception):
    """Any error the bot raises on purpose; ``exit_code`` is what the CLI exits with."""

    # Not a ClassVar: CliError sets it per instance.
    exit_code: int = EXIT_FAILURE


class InputError(WatchdogError):
    """Something a person gave the bot (a setting, a file, a command, an id) cannot be used."""

    exit_code = EXIT_USAGE
