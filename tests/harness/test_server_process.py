"""The server harness itself, on tiny stdlib HTTP servers (no bentoml: these run in seconds)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from harness import server_process
from harness.server_process import ServerExited, ServerNotReady, ServerProcess

# A server that answers 200 on every path, like `python -m http.server` without the files.
ANSWER_200 = (
    "import http.server, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'mine')\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
)


def answer_200(port: int) -> list[str]:
    return [sys.executable, "-c", ANSWER_200, str(port)]


@pytest.fixture
def neighbour() -> Iterator[int]:
    """Another process's server on a port: it answers every ready probe with 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"neighbour")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_a_server_is_ready_on_its_port_and_gone_after_the_block() -> None:
    with ServerProcess(answer_200) as server:
        assert requests.get(server.url, timeout=5).text == "mine"
        pid = server.pid
    assert server.proc is not None and server.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_server_that_exits_raises_with_the_tail_of_its_log() -> None:
    crash = [sys.executable, "-c", "import sys; print('model.onnx is broken'); sys.exit(3)"]
    with pytest.raises(ServerExited) as info:
        ServerProcess(lambda port: crash, name="crasher").start()
    assert info.value.returncode == 3
    assert "crasher exited with 3" in str(info.value)
    assert "model.onnx is broken" in str(info.value)  # the log tail is in the message


def test_a_server_that_never_gets_ready_times_out_with_its_log() -> None:
    silent = [
        sys.executable,
        "-c",
        "import time; print('still loading', flush=True); time.sleep(60)",
    ]
    server = ServerProcess(lambda port: silent, ready_timeout=1.0)
    with pytest.raises(ServerNotReady, match="still loading"):
        server.start()
    assert server.proc is not None and server.proc.poll() is not None  # nothing left running


def test_a_taken_port_is_retried_and_a_neighbours_answer_never_counts(
    neighbour: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the picked port is taken before the server binds it. The neighbour answers
    the ready probe, but it is not this server; this one fails to bind and starts again."""
    ports = iter([neighbour])
    real_free_port = server_process.free_port
    monkeypatch.setattr(server_process, "free_port", lambda: next(ports, None) or real_free_port())
    with ServerProcess(answer_200) as server:
        assert server.port != neighbour
        assert requests.get(server.url, timeout=5).text == "mine"


def test_a_fixed_port_that_is_taken_fails_at_once(neighbour: int) -> None:
    with pytest.raises(ServerExited, match=r"(?i)address already in use"):
        ServerProcess(answer_200, port=neighbour).start()


def test_environment_overrides_and_removals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_DROP_ME", "1")
    server = ServerProcess(answer_200, env={"HARNESS_SET": "x", "HARNESS_DROP_ME": None})
    env = server.environment()
    assert env["HARNESS_SET"] == "x" and "HARNESS_DROP_ME" not in env
    server.close()
