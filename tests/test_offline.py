"""The test suite runs offline: conftest.py installs a network guard here and, through
tests/offline/sitecustomize.py, in every Python process the tests start (notebook kernels too)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import urlopen

import forgetkit_netguard
import pytest

REMOTE = ("93.184.216.34", 80)  # example.com; never actually contacted


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = b"hello from loopback"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_environment_is_set_for_child_processes():
    assert os.environ["FORGETKIT_BLOCK_NETWORK"] == "1"
    first = os.environ["PYTHONPATH"].split(os.pathsep)[0]
    assert os.path.samefile(first, os.path.dirname(forgetkit_netguard.__file__))
    assert os.environ.get("FORGETKIT_CACHE")
    assert forgetkit_netguard.is_installed()


def test_remote_connect_is_blocked():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(OSError, match="network access blocked during tests"):
            sock.connect(REMOTE)
        with pytest.raises(OSError, match="network access blocked during tests"):
            sock.connect_ex(REMOTE)
    with pytest.raises(OSError, match="network access blocked during tests"):
        socket.create_connection(REMOTE, timeout=1)
    with pytest.raises(socket.gaierror, match="network access blocked during tests"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(OSError, match="network access blocked during tests"):
        urlopen("http://example.com/", timeout=1)


def test_ipv6_remote_is_blocked_and_mapped_loopback_is_not():
    assert not forgetkit_netguard._is_local_host("2606:2800:220:1:248:1893:25c8:1946")
    assert forgetkit_netguard._is_local_host("::1")
    assert forgetkit_netguard._is_local_host("::ffff:127.0.0.1")
    assert not forgetkit_netguard._is_local_host("::ffff:93.184.216.34")


def test_loopback_and_unix_sockets_still_work(loopback_server, tmp_path):
    with urlopen(loopback_server, timeout=5) as response:
        assert response.read() == b"hello from loopback"
    with urlopen(loopback_server.replace("127.0.0.1", "localhost"), timeout=5) as response:
        assert response.read() == b"hello from loopback"

    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)


CHILD = textwrap.dedent(
    """
    import socket, sys
    from urllib.request import urlopen
    assert "forgetkit_netguard" in sys.modules, "sitecustomize did not run"
    try:
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    except OSError as error:
        print("BLOCKED:", error)
    else:
        print("CONNECTED")
    print("LOOPBACK:", urlopen(sys.argv[1], timeout=5).read().decode())
    """
)


def test_child_python_processes_inherit_the_guard(loopback_server):
    """What a notebook kernel started by nbval (or a Jupyter server) gets: same env, same guard."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, loopback_server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "BLOCKED: network access blocked during tests" in result.stdout
    assert "CONNECTED" not in result.stdout
    assert "LOOPBACK: hello from loopback" in result.stdout


def test_guard_is_off_without_the_env_var():
    env = {**os.environ, "FORGETKIT_BLOCK_NETWORK": "0"}
    code = "import forgetkit_netguard as g; print(g.is_installed())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.stdout.strip() == "False", result.stderr
