"""The shapes of the names the bot accepts, each defined once.

A rule name is typed in the rules file and again in ``/polaris silence RULE``; a Slack
user id is configured as an operator and rendered as a mention; a project name is a
``[[projects]]`` entry and the first part of every fingerprint (``project/rule/job_id``).
One definition per shape keeps the places that take a name from drifting apart (a rule
name valid in the file but refused by ``silence``). Use them with ``fullmatch``.

A job id's shape (a UUID) is Polaris': it lives with the client that puts ids into URL
paths, :func:`watchdog.polaris.errors.check_job_id` and ``is_job_id``.

This module imports nothing from the package, so anything may import it.
"""

from __future__ import annotations

import re

#: A rule's name: lowercase letters, digits, '_', '.' and '-', starting with a letter or
#: digit, at most 64 characters. No '/', so a fingerprint reads back unambiguously.
RULE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

#: A Polaris project's name in the bot: lowercase letters, digits, '-' and '_', starting
#: with a letter or digit, at most 32 characters. No '/' (it starts every fingerprint).
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

#: A Slack member id: 'U…' for a user, 'W…' for an Enterprise Grid user.
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
