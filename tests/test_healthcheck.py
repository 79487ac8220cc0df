"""The image's HEALTHCHECK (deploy/healthcheck.py) probes the address in WATCHDOG_LISTEN."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "healthcheck.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


class _Server(ThreadingHTTPServer):
    status = 200
    paths: list[str]


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(host: str, status: int = 200) -> Iterator[_Server]:
    cls = _V6Server if ":" in host else _Server
    server = cls((host, 0), _Handler)
    server.status, server.paths = status, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def v4() -> Iterator[_Server]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def v6() -> Iterator[_Server]:
    yield from _serve("::1")


def _probe(listen: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script the way Docker does: `python healthcheck.py /healthz`."""
    environ = {k: v for k, v in os.environ.items() if k != "WATCHDOG_LISTEN"}
    if listen is not None:
        environ["WATCHDOG_LISTEN"] = listen
    environ.update(env)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "/healthz"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:8080", "http://127.0.0.1:8080/healthz"),
        (":9000", "http://127.0.0.1:9000/healthz"),
        ("[::]:8080", "http://[::1]:8080/healthz"),
        ("[::1]:8081", "http://[::1]:8081/healthz"),
        ("127.0.0.2:80", "http://127.0.0.2:80/healthz"),
        ("watchdog.local:8080", "http://watchdog.local:8080/healthz"),
    ],
)
def test_probe_url_follows_watchdog_listen(listen: str, url: str) -> None:
    """Wildcard hosts become loopback of their family; other hosts are probed as given."""
    assert healthcheck.probe_url(listen) == url


@pytest.mark.parametrize("listen", ["8080", "host:", "host:http", "host:70000"])
def test_probe_url_refuses_what_the_bot_refuses(listen: str) -> None:
    """A WATCHDOG_LISTEN the bot would not start with is an error, not a guess."""
    with pytest.raises(ValueError, match="WATCHDOG_LISTEN"):
        healthcheck.probe_url(listen)


def test_unset_listen_means_the_default_port() -> None:
    """Without WATCHDOG_LISTEN the probe goes where the bot listens by default."""
    assert healthcheck.probe_url(healthcheck.DEFAULT_LISTEN) == "http://127.0.0.1:8080/healthz"


@pytest.mark.parametrize("host", ["0.0.0.0", "", "127.0.0.1"])
def test_healthy_bot_on_ipv4_passes(v4: _Server, host: str) -> None:
    """The script exits 0 when /healthz at the configured port answers 200."""
    port = v4.server_address[1]
    probed = _probe(f"{host}:{port}")
    assert probed.returncode == 0, probed.stderr
    assert v4.paths == ["/healthz"]


@needs_ipv6
@pytest.mark.parametrize("host", ["[::]", "[::1]"])
def test_healthy_bot_on_ipv6_passes(v6: _Server, host: str) -> None:
    """A bot listening on IPv6 is probed on ::1."""
    port = v6.server_address[1]
    probed = _probe(f"{host}:{port}")
    assert probed.returncode == 0, probed.stderr
    assert v6.paths == ["/healthz"]


def test_stalled_bot_fails() -> None:
    """A 503 from /healthz makes the container unhealthy, saying so."""
    for server in _serve("127.0.0.1", status=503):
        probed = _probe(f"0.0.0.0:{server.server_address[1]}")
        assert probed.returncode == 1
        assert "503" in probed.stderr


def test_nothing_listening_fails() -> None:
    """No server on the port: exit 1 with the URL in the message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    probed = _probe(f"0.0.0.0:{port}")
    assert probed.returncode == 1
    assert f"127.0.0.1:{port}" in probed.stderr


def test_bad_listen_fails_with_a_message() -> None:
    """An unusable WATCHDOG_LISTEN is reported, not a traceback."""
    probed = _probe("nonsense")
    assert probed.returncode == 1
    assert "WATCHDOG_LISTEN" in probed.stderr and "Traceback" not in probed.stderr


def test_a_proxy_in_the_environment_is_not_used(v4: _Server) -> None:
    """HTTP_PROXY set for Polaris and Slack does not carry the loopback probe."""
    probed = _probe(
        f"0.0.0.0:{v4.server_address[1]}",
        HTTP_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        NO_PROXY="",
        no_proxy="",
    )
    assert probed.returncode == 0, probed.stderr
