"""Which ``response_url`` the bot may POST to: only Slack's own.

A signed request is still input: its ``response_url`` is where the bot sends the answer,
so an arbitrary one would make the bot POST wherever a request says. Trusted are Slack's
hooks hosts (``https://hooks.slack.com/``, GovSlack's ``https://hooks.slack-gov.com/``)
and, when ``SLACK_API_URL`` is set, its origin (a gateway, or a stand-in in the demo and
the tests). URLs are compared by scheme, host and port, then path prefix — never as
strings, which ``https://hooks.slack.com.evil.example/`` or ``…@evil.example`` would pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from yarl import URL

#: Where Slack's response URLs live (commercial Slack and GovSlack).
SLACK_RESPONSE_URLS = ("https://hooks.slack.com/", "https://hooks.slack-gov.com/")


def trusted_response_urls(slack_api_url: str | None = None) -> tuple[str, ...]:
    """The URL prefixes a ``response_url`` may have: Slack's hooks hosts, and the origin
    of ``SLACK_API_URL`` when one is set."""
    if not slack_api_url:
        return SLACK_RESPONSE_URLS
    api = URL(slack_api_url)
    if not api.absolute or api.scheme not in ("http", "https"):
        return SLACK_RESPONSE_URLS
    return (*SLACK_RESPONSE_URLS, str(api.origin()) + "/")


def is_trusted(url: str, prefixes: Sequence[str]) -> bool:
    """``url`` is absolute, has no user info, and lies under one of ``prefixes``."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return False
    if not parsed.absolute or parsed.user is not None or parsed.password is not None:
        return False
    return any(_under(parsed, prefix) for prefix in prefixes)


def _under(url: URL, prefix: str) -> bool:
    base = URL(prefix)
    same_origin = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
    return same_origin and url.path.startswith(base.path)
