"""The container HEALTHCHECK: GET /healthz on the address the bot listens on.

Copied into the image and run as ``python /opt/watchdog/healthcheck.py /healthz``. It reads
``WATCHDOG_LISTEN`` (``host:port``, default ``0.0.0.0:8080``, IPv6 in brackets:
``[::1]:8080``) the way the bot does, so moving the bot to another port does not make the
container unhealthy. Standard library only: slim images have no curl, and the probe must
not import the bot (it runs every 30 s).

Exit 0 when the bot answers 200, 1 otherwise (Docker's "unhealthy"), with one line saying
why on stderr, which ``docker inspect`` shows.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_LISTEN = "0.0.0.0:8080"
TIMEOUT_SECONDS = 2.0


def probe_url(listen: str, path: str = "/healthz") -> str:
    """The URL to probe for a bot listening on ``listen`` (a ``WATCHDOG_LISTEN`` value)."""
    host, sep, port = listen.strip().rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"WATCHDOG_LISTEN must be host:port, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    # A wildcard address is not a destination. The bot binds "::" with IPV6_V6ONLY (asyncio
    # sets it), so "::" is reached on ::1 only; "0.0.0.0" and an empty host on 127.0.0.1.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port)}{path}"


def main(argv: list[str]) -> int:
    """Probe once; 0 if healthy, 1 if not."""
    path = argv[1] if len(argv) > 1 else "/healthz"
    try:
        url = probe_url(os.environ.get("WATCHDOG_LISTEN") or DEFAULT_LISTEN, path)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    # No proxy: an HTTP_PROXY meant for Polaris and Slack must not carry a loopback probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
