"""A command of the CLI in a fresh process, and what it loaded: for the imports figure.

``python -m bench.imports_child OUT ARGS...`` runs ``polaris-watchdog ARGS...`` in this
process (:func:`watchdog.cli.main`, as the console script does) and, when it returns,
writes one JSON object to the file ``OUT``: the resident set before anything was imported,
at the end and at its peak (``VmHWM``), how many modules were loaded and which of the
notable packages were among them. The command's own output stays on stdout and stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


BASELINE_MB = _status("VmRSS")

#: Packages worth naming when a command loads them.
NOTABLE = (
    "aiohttp",
    "pydantic",
    "pydantic_settings",
    "structlog",
    "tenacity",
    "prometheus_client",
    "slack_sdk",
    "slack_sdk.web.async_client",
    "slack_sdk.socket_mode",
    "sqlite3",
    "psycopg",
    "psycopg_pool",
    "watchdog.app",
    "watchdog.polaris.client",
    "watchdog.slack",
    "watchdog.store",
    "watchdog.watch",
    "watchdog.devtools",
)


def main() -> int:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    from watchdog.cli import main as cli_main

    code = cli_main(argv)
    out.write_text(
        json.dumps(
            {
                "code": code,
                "baseline_mb": BASELINE_MB,
                "rss_mb": _status("VmRSS"),
                "hwm_mb": _status("VmHWM"),
                "modules": len(sys.modules),
                "loaded": [name for name in NOTABLE if name in sys.modules],
            }
        ),
        "utf-8",
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
