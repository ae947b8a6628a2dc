"""`crmchat serve` as a real process (gunicorn) on a free port, for the server, proxy and
logging tests: `ServiceProcess(tmp_path, env={...})`, `.start()`, `.stop()`, `.log_lines()`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from connector.crm.handshake import SignedInUser
from connector.web import auth

SECRET_KEY = "process-test-secret-" + "k" * 30
START_SECS = 60.0
# How long a frame from a service process may take on a busy machine.
PROCESS_WAIT_SECS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def agent_token(user_id: str) -> str:
    """A service token for an agent, signed with the process's CRMCHAT_SECRET_KEY."""
    app = Flask("tokens")
    auth.init_app(app, secret=SECRET_KEY.encode(), client=None)  # signing only
    with app.app_context():
        user = SignedInUser(user_id, "Agent", "agent@example.com", frozenset({"CRM Chat Agent"}))
        return auth.issue_service_token(user)


class ServiceProcess:
    def __init__(self, folder: Path, *, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "service.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CRMCHAT_")}
        self.env.update(
            {
                "CRMCHAT_DATA_DIR": str(folder / "data"),
                "CRMCHAT_PORT": str(self.port),
                "CRMCHAT_SECRET_KEY": SECRET_KEY,
                "CRMCHAT_LOG_FORMAT": "json",
                "CRMCHAT_THREADS": "64",
            }
        )
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "connector.cli", "serve", *args]

    def start(self, *args: str) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_SECS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.log_text()[-3000:]}")
            try:
                # The port is bound before the worker has loaded the app: wait for it.
                if requests.get(self.url + "/livez", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the service did not start: {self.log_text()[-3000:]}")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON line the service wrote (other lines, e.g. the start banner, skipped)."""
        lines = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def chat_through(
    base_url: str, *, agent_token_value: str | None = None, ssl_context: Any = None
) -> dict[str, Any]:
    """A whole chat on the demo Sales widget at `base_url` (http or https): Sam signs in on
    the agent socket, a visitor starts, Sam accepts, both send a message. Returns what was
    seen; the sockets are closed."""
    from simple_websocket import Client
    from test_sockets import Ws

    from connector.demo import SALES_WIDGET_ID, SAM_USER_ID

    ws_base = base_url.replace("http", "ws", 1)
    token = agent_token_value or agent_token(SAM_USER_ID)
    # Another process on a shared machine: its first sign-in reads roles from Dataverse.
    wait = PROCESS_WAIT_SECS
    agent = Ws(
        Client.connect(f"{ws_base}/ws/agent?token={token}", ssl_context=ssl_context),
        wait_secs=wait,
    )
    visitor = Ws(Client.connect(f"{ws_base}/ws/visitor", ssl_context=ssl_context), wait_secs=wait)
    try:
        agent.expect("snapshot")
        visitor.send(
            {
                "type": "hello",
                "widget_id": SALES_WIDGET_ID,
                "visitor_id": "visitor-through-01",
                "page": {"url": "https://shop.example/", "title": "Shop"},
            }
        )
        visitor.expect("hello.ok")
        visitor.send(
            {
                "type": "chat.start",
                "client_id": "start-1",
                "fields": {"firstname": "Vera", "lastname": "Visitor", "email": "vera@example.com"},
            }
        )
        conversation_id = visitor.expect("chat.started")["conversation_id"]
        agent.expect("chat.offered")
        agent.send({"type": "chat.accept", "conversation_id": conversation_id})
        agent.expect("chat.accepted")
        visitor.expect("chat.accepted")
        visitor.send({"type": "message.send", "client_id": "v1", "text": "Hello through"})
        relayed = agent.expect("message.created", client_id="v1")
        agent.send(
            {
                "type": "message.send",
                "conversation_id": conversation_id,
                "client_id": "a1",
                "text": "Hi back",
            }
        )
        answer = visitor.expect("message.created", client_id="a1")
        return {
            "conversation_id": conversation_id,
            "agent_saw": relayed["text"],
            "visitor_saw": answer["text"],
            "agent": agent,
            "visitor": visitor,
        }
    except BaseException:
        agent.close()
        visitor.close()
        raise
