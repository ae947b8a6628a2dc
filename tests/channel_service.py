"""The embedded default with its simulator, served on a free port with its intake
running: the platforms' side (the simulator) and the service talk over real HTTP, as
the platforms would reach a public address. Import `running` into a test module."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from connector.app import create_app, stop_app


@dataclass(frozen=True)
class Running:
    url: str
    app: Flask


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setenv("CRMCHAT_DEMO", "1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    app = create_app({"data_dir": tmp_path, "port": port, "log_level": "WARNING"})
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Running(f"http://127.0.0.1:{port}", app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        stop_app(app)
