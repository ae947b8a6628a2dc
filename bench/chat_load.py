"""Load on the live chat: N visitor-agent pairs over real websockets, against a bare echo.

1. Seeds a fresh data folder's embedded Dataverse with N agents (each with a system user
   holding the CRM Chat Agent role), N topics and N widgets: pair i is agent i <-> widget i
   (topic i), so every chat is offered to exactly one agent, as routing by topic intends.
2. Starts the service (`create_app` + werkzeug's threaded server, as `crmchat serve --dev`
   runs it; production runs gunicorn, see bench/server_workers.py) in a subprocess on a
   free port, with a counter on the in-process adapter to the
   embedded Dataverse, so every Dataverse request the service makes is counted.
3. Starts a bare flask-sock echo server (same server, same thread model) in another
   subprocess and measures N concurrent clients, each sending MESSAGES frames at the
   chats' pace (send, wait for the echo): the round trip client -> server -> client.
4. Runs the chats: N agents sign in; N visitors say hello and start; each agent accepts;
   each visitor sends MESSAGES messages, one every --interval seconds (open loop, under
   the 10/s limit); the agent stamps the arrival. Relay latency is visitor send ->
   agent receive (client -> server -> other client, the same path shape as the echo).
   Then each agent ends its chat, the visitor rates it, and the bench waits until the
   outbox has written every chat activity.

The last line printed is one JSON object: chats, p50_ms, p99_ms, echo_p50_ms, echo_p99_ms,
messages_per_s and echo_messages_per_s (both at the same offered pace),
dataverse_requests_per_chat (steady state: after sign-in loaded the configuration),
server_threads, seconds.

Usage: python bench/chat_load.py [--pairs 100] [--messages 20] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from simple_websocket import Client

from connector.app import create_app
from connector.crm.connection import open_embedded
from connector.crm.handshake import SignedInUser
from connector.dataverse import transport
from connector.dataverse_local import add_user
from connector.demo import admin_client
from connector.settings import Settings
from connector.web import auth

SECRET = "bench-secret-" + "x" * 40
# Every open websocket holds a thread (two with simple_websocket's reader); small stacks
# keep 2,000+ threads cheap. 512 KiB is ample for this code.
THREAD_STACK_BYTES = 512 * 1024
# Connect in waves: werkzeug's listen backlog is 128.
CONNECT_WORKERS = 64
WAIT_SECS = 60.0
# By default each visitor sends a message every 500 ms: faster than anyone types (a
# person manages one every few seconds), under the protocol's 10 messages/s per
# connection. --interval changes it (0.15 s puts 500 pairs past what 2 cores relay).
MESSAGE_INTERVAL_SECS = 0.5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ------------------------------------------------------------------ the servers (subprocess)


def serve_chat(data_dir: Path, port: int) -> None:
    """The service with a Dataverse request counter and `/bench/state` (subprocess)."""
    threading.stack_size(THREAD_STACK_BYTES)
    from werkzeug.serving import run_simple

    lock = threading.Lock()
    count = [0]
    original_call = transport.call_app

    def counting_call(*args: Any) -> Any:
        with lock:
            count[0] += 1
        return original_call(*args)

    transport.call_app = counting_call

    app = create_app({"data_dir": data_dir, "port": port, "log_level": "WARNING"})

    @app.get("/bench/state")
    def bench_state() -> dict[str, int]:
        return {
            "dataverse_requests": count[0],
            "outbox_pending": app.extensions["crmchat.outbox"].pending(),
            "threads": threading.active_count(),
        }

    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


def serve_echo(port: int) -> None:
    """A bare flask-sock echo server on werkzeug's threaded server (subprocess)."""
    threading.stack_size(THREAD_STACK_BYTES)
    import logging

    from flask import Flask
    from flask_sock import Sock
    from werkzeug.serving import run_simple

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = Flask("echo")
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}
    sock = Sock(app)

    @sock.route("/echo")
    def echo(ws: Any) -> None:
        while True:
            ws.send(ws.receive())

    @app.get("/up")
    def up() -> str:
        return "ok"

    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)


# ------------------------------------------------------------------ seeding


def seed(data_dir: Path, pairs: int) -> list[dict[str, str]]:
    """N agents, topics and widgets in the embedded Dataverse; returns the pairs."""

    settings = Settings(data_dir=data_dir, secret_key=SECRET)
    store, app = open_embedded(settings)
    client = admin_client(app)
    agent_role = store.schema.role_named("CRM Chat Agent")
    role_ids = [agent_role.id] if agent_role is not None else []
    made = []
    for n in range(pairs):
        user_id, topic_id, widget_id, agent_id = (str(uuid.uuid4()) for _ in range(4))
        add_user(
            store,
            domain_name=f"agent{n}@bench.local",
            first_name="Agent",
            last_name=str(n),
            user_id=user_id,
            role_ids=role_ids,
        )
        client.create("crmchat_topics", {"crmchat_name": f"Topic {n}"}, record_id=topic_id)
        client.create(
            "crmchat_widgets",
            {"crmchat_name": f"Widget {n}", "crmchat_enabled": True, "crmchat_design": "{}"},
            record_id=widget_id,
        )
        client.associate(
            "crmchat_widgets", widget_id, "crmchat_widget_topic", "crmchat_topics", topic_id
        )
        client.create(
            "crmchat_agents",
            {
                "crmchat_name": f"Agent {n}",
                "crmchat_SystemUserId@odata.bind": f"/systemusers({user_id})",
            },
            record_id=agent_id,
        )
        client.associate(
            "crmchat_agents", agent_id, "crmchat_agent_topic", "crmchat_topics", topic_id
        )
        made.append({"user_id": user_id, "widget_id": widget_id, "agent_id": agent_id})
    store.close()
    return made


def agent_token(user_id: str) -> str:
    from flask import Flask

    app = Flask("tokens")
    auth.init_app(app, secret=SECRET.encode())
    with app.app_context():
        user = SignedInUser(user_id, "Agent", "agent@bench.local", frozenset({"CRM Chat Agent"}))
        return auth.issue_service_token(user)


# ------------------------------------------------------------------ clients


class Ws:
    """A client socket that finds frames by type."""

    def __init__(self, url: str) -> None:
        self.client = Client.connect(url)
        self.pending: list[dict[str, Any]] = []

    def send(self, frame: dict[str, Any]) -> None:
        self.client.send(json.dumps(frame))

    def expect(
        self, type_: str, pick: Callable[[dict[str, Any]], bool] = lambda f: True
    ) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECS
        while True:
            for index, frame in enumerate(self.pending):
                if frame["type"] == type_ and pick(frame):
                    return self.pending.pop(index)
            raw = self.client.receive(timeout=max(0.01, deadline - time.monotonic()))
            if raw is None:
                raise TimeoutError(f"no {type_}; have {[f['type'] for f in self.pending]}")
            frame = json.loads(raw)
            if frame["type"] == "error":
                raise RuntimeError(f"server error: {frame}")
            self.pending.append(frame)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closed already
            pass


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def run_echo(pairs: int, messages: int) -> tuple[list[float], float]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, __file__, "echo", "--port", str(port)])
    try:
        _wait_up(f"http://127.0.0.1:{port}/up")
        with ThreadPoolExecutor(CONNECT_WORKERS) as pool:
            clients = list(
                pool.map(lambda _: Client.connect(f"ws://127.0.0.1:{port}/echo"), range(pairs))
            )
        latencies: list[float] = []
        lock = threading.Lock()

        def loop(client: Client) -> None:
            # The chats' pace: one message every MESSAGE_INTERVAL_SECS, spread starts.
            mine = []
            first = time.perf_counter() + random.uniform(0, MESSAGE_INTERVAL_SECS)
            for n in range(messages):
                time.sleep(max(0.0, first + n * MESSAGE_INTERVAL_SECS - time.perf_counter()))
                sent = time.perf_counter()
                client.send(f"m{n}")
                client.receive(timeout=WAIT_SECS)
                mine.append((time.perf_counter() - sent) * 1000)
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        for client in clients:
            client.close()
        return latencies, pairs * messages / elapsed
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_chats(made: list[dict[str, str]], base: str, messages: int) -> dict[str, Any]:
    ws_base = base.replace("http://", "ws://")
    tokens = [agent_token(pair["user_id"]) for pair in made]

    def connect_agent(index: int) -> Ws:
        agent = Ws(f"{ws_base}/ws/agent?token={tokens[index]}")
        # simple_websocket's Client leaves a frame that came with the handshake answer
        # unparsed until more bytes arrive: the pong brings them.
        agent.send({"type": "ping"})
        agent.expect("snapshot")
        return agent

    def connect_visitor(index: int) -> Ws:
        visitor = Ws(f"{ws_base}/ws/visitor")
        visitor.send(
            {
                "type": "hello",
                "widget_id": made[index]["widget_id"],
                "visitor_id": f"bench-visitor-{index:05d}",
                "page": {"url": f"https://shop.example/{index}"},
            }
        )
        hello = visitor.expect("hello.ok")
        if not hello["available"]:
            raise RuntimeError(f"widget {index} is not available")
        return visitor

    with ThreadPoolExecutor(CONNECT_WORKERS) as pool:
        agents = list(pool.map(connect_agent, range(len(made))))
        visitors = list(pool.map(connect_visitor, range(len(made))))
    requests_before = requests.get(f"{base}/bench/state", timeout=10).json()["dataverse_requests"]

    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(made) * 2 + 1)
    relayed = threading.Barrier(len(made) + 1)
    marks = {"start": 0.0, "end": 0.0}

    def visitor_side(index: int) -> None:
        visitor = visitors[index]
        visitor.send(
            {
                "type": "chat.start",
                "client_id": "start",
                "fields": {"firstname": "Bench", "email": f"v{index}@bench.local"},
            }
        )
        visitor.expect("chat.started")
        visitor.expect("chat.accepted")
        barrier.wait()
        # Open loop at a person's pace, under the 10/s limit; starts spread over a period.
        first = time.perf_counter() + random.uniform(0, MESSAGE_INTERVAL_SECS)
        for n in range(messages):
            time.sleep(max(0.0, first + n * MESSAGE_INTERVAL_SECS - time.perf_counter()))
            visitor.send(
                {"type": "message.send", "client_id": f"m{n}", "text": f"{time.perf_counter():.9f}"}
            )
        for n in range(messages):
            visitor.expect("message.created", lambda f, n=n: f["client_id"] == f"m{n}")
        visitor.expect("chat.ended")
        visitor.send({"type": "chat.rate", "rating": 5})
        visitor.expect("chat.rated")

    def agent_side(index: int) -> None:
        agent = agents[index]
        offered = agent.expect("chat.offered")["chat"]
        conversation_id = offered["conversation_id"]
        agent.send({"type": "chat.accept", "conversation_id": conversation_id})
        agent.expect("chat.accepted")
        barrier.wait()
        mine = []
        for _ in range(messages):
            frame = agent.expect("message.created", lambda f: f["sender"]["kind"] == "visitor")
            mine.append((time.perf_counter() - float(frame["text"])) * 1000)
        with lock:
            latencies.extend(mine)
        # Chats end together after the relay phase: the activity writes that follow run the
        # embedded Dataverse in the service's process and would otherwise tax the relay.
        relayed.wait()
        agent.send({"type": "chat.end", "conversation_id": conversation_id})

    threads = [threading.Thread(target=visitor_side, args=(i,)) for i in range(len(made))]
    threads += [threading.Thread(target=agent_side, args=(i,)) for i in range(len(made))]
    for thread in threads:
        thread.start()
    barrier.wait()
    marks["start"] = time.perf_counter()
    relayed.wait()
    marks["end"] = time.perf_counter()
    for thread in threads:
        thread.join()

    deadline = time.monotonic() + 60
    while True:
        state = requests.get(f"{base}/bench/state", timeout=10).json()
        if state["outbox_pending"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for client in agents + visitors:
        client.close()
    chats = len(made)
    return {
        "latencies": latencies,
        "messages_per_s": chats * messages / (marks["end"] - marks["start"]),
        "dataverse_requests_per_chat": (state["dataverse_requests"] - requests_before) / chats,
        "outbox_pending": state["outbox_pending"],
        "server_threads": state["threads"],
    }


def main() -> None:
    global MESSAGE_INTERVAL_SECS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve", "echo"])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument(
        "--interval",
        type=float,
        default=MESSAGE_INTERVAL_SECS,
        help="seconds between one visitor's messages",
    )
    args = parser.parse_args()
    MESSAGE_INTERVAL_SECS = args.interval
    if args.mode == "serve":
        serve_chat(args.data_dir, args.port)
        return
    if args.mode == "echo":
        serve_echo(args.port)
        return

    threading.stack_size(THREAD_STACK_BYTES)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crmchat-bench-") as folder:
        data_dir = Path(folder)
        made = seed(data_dir, args.pairs)
        print(
            f"seeded {args.pairs} agents/widgets/topics in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        echo_latencies, echo_rate = run_echo(args.pairs, args.messages)
        print(
            f"echo: p50 {statistics.median(echo_latencies):.2f} ms, "
            f"p99 {_percentile(echo_latencies, 0.99):.2f} ms, {echo_rate:.0f} msg/s",
            flush=True,
        )

        port = _free_port()
        env = dict(os.environ, CRMCHAT_SECRET_KEY=SECRET)
        process = subprocess.Popen(
            [sys.executable, __file__, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(f"{base}/bench/state")
            result = run_chats(made, base, args.messages)
        finally:
            process.terminate()
            process.wait(timeout=10)
    latencies = result["latencies"]
    summary = {
        "chats": args.pairs,
        "messages_per_chat": args.messages,
        "interval_s": args.interval,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "echo_p50_ms": round(statistics.median(echo_latencies), 2),
        "echo_p99_ms": round(_percentile(echo_latencies, 0.99), 2),
        "messages_per_s": round(result["messages_per_s"], 1),
        "echo_messages_per_s": round(echo_rate, 1),
        "dataverse_requests_per_chat": round(result["dataverse_requests_per_chat"], 2),
        "outbox_pending_at_end": result["outbox_pending"],
        "server_threads": result["server_threads"],
        "seconds": round(time.perf_counter() - began, 1),
    }
    print(
        f"chat relay: p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
        f"{summary['messages_per_s']} msg/s",
        flush=True,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
