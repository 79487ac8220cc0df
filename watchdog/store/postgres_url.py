"""PostgreSQL URLs: shown without their password, and completed with the bounds the
store needs (connect timeout, statement and lock timeouts, TCP keepalives)."""

from __future__ import annotations

import math
import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (in the user part and in a
    ``password=`` parameter), for messages and logs."""
    masked = re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)
    try:
        parts = urlsplit(masked)
        if parts.password is not None:
            user = quote(unquote(parts.username or ""), safe="")
            host = parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        pass
    # Not a URL urlsplit understands: mask whatever sits between "user:" and "@".
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", masked)


def secrets_in(url: str) -> list[str]:
    """The password as written in ``url`` and as decoded, longest first (for masking)."""
    found: set[str] = set()
    try:
        password = conninfo_to_dict(url).get("password")
        if password:
            found.add(str(password))
    except psycopg.Error:
        pass
    try:
        raw = urlsplit(url).password
        if raw:
            found.update({raw, unquote(raw)})
    except ValueError:
        pass
    return sorted(found, key=len, reverse=True)


def make_conninfo_for(url: str, timeout: float) -> str:
    """``url`` as a libpq conninfo, bounded by ``timeout`` seconds per connect and per
    statement; ``psycopg.ProgrammingError`` when libpq cannot read it."""
    params = conninfo_to_dict(url)
    ms = int(timeout * 1000)
    # Server-side bounds, added to what the URL sets (e.g. a search_path).
    options = f"-c statement_timeout={ms} -c lock_timeout={ms}"
    options += " -c idle_in_transaction_session_timeout=60000"
    extra = params.get("options")
    return make_conninfo(
        url,
        connect_timeout=max(1, math.ceil(timeout)),
        options=f"{extra} {options}" if extra else options,
        application_name=params.get("application_name") or "polaris-watchdog",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )
