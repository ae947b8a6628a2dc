"""Load on the live chat: N visitor-agent pairs over real websockets, against a bare relay.

1. Seeds a fresh data folder's embedded Dataverse with N agents (each with a system user
   holding the CRM Chat Agent role), N topics and N widgets: pair i is agent i <-> widget i
   (topic i), so every chat is offered to exactly one agent, as routing by topic intends.
2. The floor: a bare flask-sock relay (`floor` mode: pair i's two sockets, each message
   forwarded to the other side) on the same server as the service, carrying the same
   sockets (2 per pair) and the same messages (--messages each way per pair, same
   schedule) as the chats.
3. The service (`serve` mode: `create_app`, a counter on the in-process adapter to the
   embedded Dataverse, `/bench/state`) under gunicorn's gthread worker as `crmchat serve`
   runs it (connector/server.py; --server dev: werkzeug's threaded server, as
   `crmchat serve --dev`). N agents sign in, N visitors say hello and start a chat, each
   agent accepts; then both sides write.
4. Both directions, open loop: each visitor sends --messages messages, one every
   --interval seconds from a random offset, and each agent the same half an interval
   later, on a schedule that does not wait for answers. Every receiver checks each message
   from the other side arrived once and in order, and stops at the schedule's end plus
   --drain seconds: what is missing then is reported as lost, never waited for.
5. The load generator watches itself: its CPU (process time / wall time; its Python threads
   share one GIL, so near 1.0 means one core used up) and its lag (how late each scheduled
   send went out). When the lag's p99 passes a fifth of the interval or its CPU passes
   0.85, the run says the generator, not the server, was the limit. The server's CPU
   (its process tree's, from /proc) is printed too.
6. Dataverse requests per chat: after the load, one anonymous chat (a widget without the
   pre-chat form) and one identified chat (an email matching a seeded contact) at a time,
   each from hello to its chat activity written by the outbox (the visitor rates it, so it
   is written at once), counting the service's Dataverse requests.

Prints one line per run and, last, one JSON object: for `floor` and `chat` each: pairs,
sent, delivered, lost, duplicates, out_of_order, p50_ms, p99_ms (send -> arrival, both
directions), messages_per_s, generator_cpu, generator_lag_p99_ms, generator_limited,
server_cpu; then dataverse_requests_per_anonymous_chat and _per_identified_chat.

Usage: python bench/chat_load.py [--pairs 100] [--messages 20] [--interval 0.5]
       [--server gunicorn|dev] [--drain 10]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import socket
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
from pydantic import SecretStr
from simple_websocket import Client

from connector.app import create_app
from connector.crm.connection import open_embedded
from connector.crm.handshake import SignedInUser
from connector.dataverse import transport
from connector.dataverse_local import add_user
from connector.demo import admin_client
from connector.services import services_of
from connector.settings import Settings
from connector.web import auth

SECRET = "bench-secret-" + "x" * 40
# Every open websocket holds a thread (two with simple_websocket's reader); small stacks
# keep 4,000+ threads cheap. 512 KiB is ample for this code.
THREAD_STACK_BYTES = 512 * 1024
CONNECT_WORKERS = 64
# Threads sending on the schedule (each socket also has a reader thread).
SENDERS = 4
WAIT_SECS = 60.0
# By default each side sends a message every 500 ms: faster than anyone types, under the
# protocol's 10 messages/s per connection.
MESSAGE_INTERVAL_SECS = 0.5
# The generator was the limit when it sent this late (share of the interval) or this busy.
LAG_LIMIT_SHARE = 0.2
CPU_LIMIT = 0.85
UNLIMITED = "1000000/minute"
LIMITS = (
    "CRMCHAT_CONFIG_LIMIT_PER_ADDRESS",
    "CRMCHAT_SOCKET_LIMIT_PER_ADDRESS",
    "CRMCHAT_SOCKET_LIMIT_PER_WIDGET",
    "CRMCHAT_CHAT_START_LIMIT_PER_ADDRESS",
    "CRMCHAT_CHAT_START_LIMIT_PER_WIDGET",
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A seeded contact's email: a chat giving it is identified (record identification finds it).
IDENTIFIED_EMAIL = "known.visitor@bench.local"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def tree_pids(pid: int) -> list[int]:
    """`pid` and every process under it (gunicorn's master and its workers), from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def tree_cpu_secs(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its children, from /proc (Linux)."""
    total = 0.0
    for current in tree_pids(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            continue
    return total


# ------------------------------------------------------------------ the servers (subprocess)


def _run(app: Any, port: int, server: str, threads: int) -> None:
    """`app` on werkzeug's threaded server (dev) or under gunicorn as `crmchat serve`."""
    if server == "dev":
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
        return
    from connector.server import serve

    settings = Settings(host="127.0.0.1", port=port, threads=threads)
    serve(settings, lambda: app)


def serve_chat(data_dir: Path, port: int, server: str, threads: int) -> None:
    """The service with a Dataverse request counter and `/bench/state` (subprocess)."""
    threading.stack_size(THREAD_STACK_BYTES)
    lock = threading.Lock()
    count = [0]
    original_call = transport.call_app

    def counting_call(*args: Any) -> Any:
        # The configuration refresh (the Directory's own thread) is no chat's request.
        if threading.current_thread().name != "crm-directory":
            with lock:
                count[0] += 1
        return original_call(*args)

    transport.call_app = counting_call  # type: ignore[assignment]

    def make() -> Any:
        # Every generated visitor comes from this machine: no per-address chat start limit.
        app = create_app(
            {
                "data_dir": data_dir,
                "port": port,
                "log_level": "WARNING",
                "chat_start_limit_per_address": "1000000/hour",
                "chat_start_limit_per_widget": "1000000/hour",
            }
        )

        @app.get("/bench/state")
        def bench_state() -> dict[str, int]:
            return {
                "dataverse_requests": count[0],
                "outbox_pending": services_of(app).outbox.pending(),
                # Chats whose activity is not in the outbox yet (open, or ended and due).
                "unfinished": len(services_of(app).engine.state.unfinished_conversations()),
                "threads": threading.active_count(),
            }

        return app

    if server == "dev":
        _run(make(), port, server, threads)
        return
    from connector.server import serve

    # Built in the worker (after gunicorn forks), as `crmchat serve` does.
    settings = Settings(host="127.0.0.1", port=port, threads=threads, data_dir=data_dir)
    serve(settings, make)


def serve_floor(port: int, server: str, threads: int) -> None:
    """A bare flask-sock relay (subprocess): /relay/<pair>/<side> forwards each message to
    the pair's other side, the work the chat relay does without the chat."""
    threading.stack_size(THREAD_STACK_BYTES)
    import logging

    from flask import Flask
    from flask_sock import Sock

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = Flask("floor")
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}
    sock = Sock(app)
    peers: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()
    other = {"a": "b", "b": "a"}

    @sock.route("/relay/<pair>/<side>")  # type: ignore[untyped-decorator]
    def relay(ws: Any, pair: str, side: str) -> None:
        with lock:
            peers[(pair, side)] = ws
        try:
            while True:
                text = ws.receive()
                with lock:
                    peer = peers.get((pair, other.get(side, "a")))
                if peer is not None:
                    peer.send(text)
        finally:
            with lock:
                peers.pop((pair, side), None)

    @app.get("/up")
    def up() -> str:
        return "ok"

    # Handed over as a plain WSGI callable: gunicorn's worker_exit stops only the service.
    _run(lambda environ, start: app(environ, start), port, server, threads)


# ------------------------------------------------------------------ seeding


def seed(data_dir: Path, pairs: int) -> list[dict[str, str]]:
    """N agents, topics and widgets in the embedded Dataverse; returns the pairs."""

    settings = Settings(data_dir=data_dir, secret_key=SecretStr(SECRET))
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
        made.append(
            {"user_id": user_id, "widget_id": widget_id, "agent_id": agent_id, "topic_id": topic_id}
        )
    # A widget without the pre-chat form (topic 0): its chats are anonymous.
    anonymous_id = str(uuid.uuid4())
    client.create(
        "crmchat_widgets",
        {
            "crmchat_name": "Anonymous",
            "crmchat_enabled": True,
            "crmchat_design": json.dumps({"ask_name_email": False}),
        },
        record_id=anonymous_id,
    )
    client.associate(
        "crmchat_widgets",
        anonymous_id,
        "crmchat_widget_topic",
        "crmchat_topics",
        made[0]["topic_id"],
    )
    made[0]["anonymous_widget_id"] = anonymous_id
    # The visitor whose pre-chat email record identification finds (an identified chat).
    client.create(
        "contacts", {"firstname": "Known", "lastname": "Visitor", "emailaddress1": IDENTIFIED_EMAIL}
    )
    store.close()
    return made


def agent_token(user_id: str) -> str:
    user = SignedInUser(user_id, "Agent", "agent@bench.local", frozenset({"CRM Chat Agent"}))
    return auth.issue_service_token(user, signer=auth.service_token_signer(SECRET.encode()))


# ------------------------------------------------------------------ clients


class Ws:
    """A client socket that finds frames by type (the setup's request -> answer steps)."""

    def __init__(self, url: str, *, subprotocols: list[str] | None = None) -> None:
        self.client = Client.connect(url, subprotocols=subprotocols)
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
        close_quietly(self.client)


def close_quietly(client: Client) -> None:
    """Close a client socket the server (or a ping timeout under load) may have closed."""
    try:
        client.close()
    except Exception:  # noqa: BLE001 - closed already
        pass


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:  # not listening yet, or too busy to answer
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


class Side:
    """One socket of a pair during the load: its send schedule and what it got.

    `frame_for(n, text)` is what to send for message n; `text_of(raw)` the payload of a
    frame from the other side, or None for anything else (echoes of its own, presence)."""

    def __init__(
        self,
        client: Client,
        frame_for: Callable[[int, str], str],
        text_of: Callable[[str], str | None],
    ) -> None:
        self.client = client
        self.frame_for = frame_for
        self.text_of = text_of
        self.lags: list[float] = []
        self.latencies: list[float] = []
        self.received: list[int] = []
        self.errors: list[str] = []
        # Frames that were not the other side's messages (presence, agent status, echoes).
        self.others = 0


def send_on_schedule(sides: list[tuple[float, Side]], messages: int) -> None:
    """Send each side's messages at first + n * interval (open loop: never waiting for an
    answer); how late each went out is the generator's lag."""
    due = [(first, index, 0) for index, (first, _) in enumerate(sides)]
    heapq.heapify(due)
    while due:
        at, index, n = heapq.heappop(due)
        wait = at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        side = sides[index][1]
        try:
            side.client.send(side.frame_for(n, f"{n}|{time.perf_counter():.9f}"))
        except Exception as error:  # noqa: BLE001 - reported, not raised
            side.errors.append(f"send: {error}")
            continue
        side.lags.append((time.perf_counter() - at) * 1000)
        if n + 1 < messages:
            heapq.heappush(due, (at + MESSAGE_INTERVAL_SECS, index, n + 1))


def receive_until(side: Side, messages: int, deadline: float) -> None:
    """Read the other side's messages until all came or the deadline passed."""
    while len(side.received) < messages:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        try:
            raw = side.client.receive(timeout=left)
        except Exception as error:  # noqa: BLE001 - a closed socket: reported
            side.errors.append(f"receive: {error}")
            return
        if raw is None:
            continue
        text = side.text_of(raw)
        if text is None:
            side.others += 1
            continue
        number, stamp = text.split("|")
        side.received.append(int(number))
        side.latencies.append((time.perf_counter() - float(stamp)) * 1000)


def load(pairs: list[tuple[Side, Side]], messages: int, drain: float) -> dict[str, Any]:
    """Both sides of every pair write on their schedules; the figures and the checks."""
    return summarise(load_samples(pairs, messages, drain), messages)


def load_samples(
    pairs: list[tuple[Side, Side]], messages: int, drain: float, start: float | None = None
) -> dict[str, Any]:
    """The load from `start` (perf_counter; default in a second): what each side saw, raw,
    so that several generator processes' samples can be merged (bench/relay_scale.py)."""
    start = time.perf_counter() + 1.0 if start is None else start
    deadline = start + messages * MESSAGE_INTERVAL_SECS + drain
    schedule: list[list[tuple[float, Side]]] = [[] for _ in range(SENDERS)]
    for index, (a, b) in enumerate(pairs):
        offset = start + random.uniform(0, MESSAGE_INTERVAL_SECS)
        schedule[index % SENDERS].append((offset, a))
        schedule[index % SENDERS].append((offset + MESSAGE_INTERVAL_SECS / 2, b))
    sides = [side for pair in pairs for side in pair]
    threads = [
        threading.Thread(target=receive_until, args=(side, messages, deadline)) for side in sides
    ]
    threads += [
        threading.Thread(target=send_on_schedule, args=(part, messages)) for part in schedule
    ]
    cpu_before = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    # Pair i's first side is the visitor (or the relay's "a"): latencies by direction.
    firsts, seconds = [a for a, _ in pairs], [b for _, b in pairs]
    return {
        "pairs": len(pairs),
        "wall": wall,
        "cpu": (time.process_time() - cpu_before) / wall,
        "lags": [lag for side in sides for lag in side.lags],
        # Arrivals at the second side came from the first (visitor -> agent), and back.
        "to_second_ms": [ms for side in seconds for ms in side.latencies],
        "to_first_ms": [ms for side in firsts for ms in side.latencies],
        "sent": sum(len(side.lags) for side in sides),
        "delivered": sum(len(set(side.received)) for side in sides),
        "duplicates": sum(len(side.received) - len(set(side.received)) for side in sides),
        "out_of_order": sum(
            sum(1 for x, y in zip(side.received, side.received[1:], strict=False) if y < x)
            for side in sides
        ),
        "socket_errors": sum(len(side.errors) for side in sides),
        "other_frames": sum(side.others for side in sides),
    }


def summarise(samples: dict[str, Any], messages: int) -> dict[str, Any]:
    """The figures of one generator's samples (or of several merged: lists joined, counts
    added, `wall` and `cpu` the largest)."""
    latencies = samples["to_second_ms"] + samples["to_first_ms"]
    lag_p99 = _percentile(samples["lags"], 0.99)
    cpu = samples["cpu"]
    return {
        "pairs": samples["pairs"],
        "sent": samples["sent"],
        "delivered": samples["delivered"],
        "lost": samples["pairs"] * 2 * messages - samples["delivered"],
        "duplicates": samples["duplicates"],
        "out_of_order": samples["out_of_order"],
        "socket_errors": samples["socket_errors"],
        "other_frames": samples.get("other_frames", 0),
        "p50_ms": round(_percentile(latencies, 0.5), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "to_second_p50_ms": round(_percentile(samples["to_second_ms"], 0.5), 2),
        "to_second_p99_ms": round(_percentile(samples["to_second_ms"], 0.99), 2),
        "to_first_p50_ms": round(_percentile(samples["to_first_ms"], 0.5), 2),
        "to_first_p99_ms": round(_percentile(samples["to_first_ms"], 0.99), 2),
        "messages_per_s": round(samples["delivered"] / samples["wall"], 1),
        "seconds": round(samples["wall"], 1),
        "generator_cpu": round(cpu, 2),
        "generator_lag_p99_ms": round(lag_p99, 2),
        # Runnable processes on the machine (1 min), for a shared machine's share of the lag.
        "load_average": round(os.getloadavg()[0], 2),
        "generator_limited": bool(
            lag_p99 > LAG_LIMIT_SHARE * MESSAGE_INTERVAL_SECS * 1000 or cpu > CPU_LIMIT
        ),
    }


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], env=env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def floor_pair(ws_base: str, index: int) -> tuple[Side, Side] | str:
    """Pair `index`'s two sockets on the bare relay, or why they could not connect."""
    made = []
    try:
        for side in "ab":
            client = Client.connect(f"{ws_base}/relay/{index}/{side}")
            made.append(Side(client, lambda n, text: text, lambda raw: raw))
    except Exception as error:  # noqa: BLE001 - a pair that failed is counted
        for done in made:
            close_quietly(done.client)
        return f"{type(error).__name__}: {error}"
    return made[0], made[1]


def run_floor(count: int, messages: int, server: str, threads: int, drain: float) -> dict[str, Any]:
    port = _free_port()
    env = dict(os.environ, CRMCHAT_SECRET_KEY=SECRET)
    process = _start(
        ["floor", "--port", str(port), "--server", server, "--threads", str(threads)], env
    )
    try:
        _wait_up(f"http://127.0.0.1:{port}/up")
        with ThreadPoolExecutor(CONNECT_WORKERS) as pool:
            outcomes = list(
                pool.map(lambda index: floor_pair(f"ws://127.0.0.1:{port}", index), range(count))
            )
        pairs = [o for o in outcomes if not isinstance(o, str)]
        failures = [o for o in outcomes if isinstance(o, str)]
        if failures:
            print(
                f"{len(failures)} floor pair(s) could not connect, e.g. {failures[0]}", flush=True
            )
        cpu_before = tree_cpu_secs(process.pid)
        began = time.perf_counter()
        result = load(pairs, messages, drain)
        result["server_cpu"] = round(
            (tree_cpu_secs(process.pid) - cpu_before) / (time.perf_counter() - began), 2
        )
        result["setup_failures"] = len(failures)
        for a, b in pairs:
            close_quietly(a.client)
            close_quietly(b.client)
        return result
    finally:
        _stop(process)


def _visitor_hello(ws_base: str, widget_id: str, visitor_id: str) -> Ws:
    visitor = Ws(f"{ws_base}/ws/visitor")
    visitor.send(
        {
            "type": "hello",
            "widget_id": widget_id,
            "visitor_id": visitor_id,
            "page": {"url": "https://shop.example/"},
        }
    )
    if not visitor.expect("hello.ok")["available"]:
        raise RuntimeError(f"widget {widget_id} is not available")
    return visitor


def _chat_pair(agent: Ws, visitor: Ws, fields: dict[str, str]) -> str:
    visitor.send({"type": "chat.start", "client_id": "start", "fields": fields})
    visitor.expect("chat.started")
    conversation_id = str(agent.expect("chat.offered")["chat"]["conversation_id"])
    agent.send({"type": "chat.accept", "conversation_id": conversation_id})
    agent.expect("chat.accepted")
    visitor.expect("chat.accepted")
    return conversation_id


def _end_chat(agent: Ws, visitor: Ws, conversation_id: str) -> None:
    """The agent ends the chat, the visitor rates it: the activity is written now (a chat
    left unrated is written when the rating grace runs out)."""
    try:
        agent.send({"type": "chat.end", "conversation_id": conversation_id})
        visitor.expect("chat.ended")
        visitor.send({"type": "chat.rate", "rating": 5})
        visitor.expect("chat.rated")
    except Exception:  # noqa: BLE001 - a socket the load lost: its chat ends by timeout
        pass


def _agent_frame(conversation_id: str) -> Callable[[int, str], str]:
    def frame_for(n: int, text: str) -> str:
        frame = {"type": "message.send", "conversation_id": conversation_id}
        return json.dumps({**frame, "client_id": f"a{n}", "text": text})

    return frame_for


def _message_text(sender: str) -> Callable[[str], str | None]:
    def text_of(raw: str) -> str | None:
        frame = json.loads(raw)
        if frame.get("type") != "message.created" or frame["sender"]["kind"] != sender:
            return None
        return str(frame["text"])

    return text_of


def connect_agent(ws_base: str, user_id: str) -> Ws:
    """An agent's console socket, signed in, past its snapshot."""
    agent = Ws(f"{ws_base}/ws/agent", subprotocols=auth.agent_subprotocols(agent_token(user_id)))
    # simple_websocket's Client leaves a frame that came with the handshake answer
    # unparsed until more bytes arrive: the pong brings them.
    agent.send({"type": "ping"})
    agent.expect("snapshot")
    return agent


def chat_pair(
    visitor_ws: str,
    agent_ws: str,
    pair: dict[str, str],
    index: int,
    ends: list[tuple[Ws, Ws, str]],
) -> tuple[Side, Side] | str:
    """Pair `index`'s chat, accepted (the agent on `agent_ws`, the visitor on `visitor_ws`:
    one process or two), as (visitor, agent) sides; or why it could not start. What ends
    the chat afterwards is appended to `ends`."""
    try:
        agent = connect_agent(agent_ws, pair["user_id"])
        visitor = _visitor_hello(visitor_ws, pair["widget_id"], f"bench-{index:05d}")
        conversation_id = _chat_pair(
            agent, visitor, {"firstname": "Bench", "email": f"v{index}@bench.local"}
        )
    except Exception as error:  # noqa: BLE001 - a pair that failed is counted, not fatal
        return f"{type(error).__name__}: {error}"
    # Frames already read during set-up are not the load's (no message yet).
    visitor_side = Side(
        visitor.client,
        lambda n, text: json.dumps({"type": "message.send", "client_id": f"m{n}", "text": text}),
        _message_text("agent"),
    )
    agent_side = Side(agent.client, _agent_frame(conversation_id), _message_text("visitor"))
    ends.append((agent, visitor, conversation_id))
    return visitor_side, agent_side


def run_chats(
    made: list[dict[str, str]], base: str, messages: int, drain: float, pid: int
) -> dict[str, Any]:
    ws_base = base.replace("http://", "ws://")
    ends: list[tuple[Ws, Ws, str]] = []

    def setup(index: int) -> tuple[Side, Side] | str:
        return chat_pair(ws_base, ws_base, made[index], index, ends)

    with ThreadPoolExecutor(CONNECT_WORKERS) as pool:
        outcomes = list(pool.map(setup, range(len(made))))
    pairs = [o for o in outcomes if not isinstance(o, str)]
    failures = [o for o in outcomes if isinstance(o, str)]
    if failures:
        print(f"{len(failures)} pair(s) could not start a chat, e.g. {failures[0]}", flush=True)
    cpu_before = tree_cpu_secs(pid)
    began = time.perf_counter()
    result = load(pairs, messages, drain)
    result["server_cpu"] = round(
        (tree_cpu_secs(pid) - cpu_before) / (time.perf_counter() - began), 2
    )
    result["setup_failures"] = len(failures)
    # End and rate every chat (its activity goes through the outbox at once) before anything
    # else is counted.
    with ThreadPoolExecutor(CONNECT_WORKERS) as pool:
        list(pool.map(lambda end: _end_chat(*end), ends))
    _wait_outbox(base)
    for a, b in pairs:
        close_quietly(a.client)
        close_quietly(b.client)
    return result


def bench_state(base: str) -> dict[str, int]:
    """`/bench/state` of the `serve` mode's service."""
    state: dict[str, int] = requests.get(f"{base}/bench/state", timeout=10).json()
    return state


def _wait_outbox(
    base: str, read: Callable[[str], dict[str, int]] = bench_state, left: int = 0
) -> dict[str, int]:
    """`read(base)` once no more than `left` chats or writes are left (or after a minute)."""
    deadline = time.monotonic() + 60
    while True:
        state = read(base)
        if state["outbox_pending"] + state["unfinished"] <= left or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def _settled(base: str, read: Callable[[str], dict[str, int]], left: int) -> dict[str, int]:
    """`_wait_outbox`, then until the request count held still for a second: the outbox
    marks a chat written before its last request has returned."""
    state = _wait_outbox(base, read, left)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(1.0)
        again = _wait_outbox(base, read, left)
        if again["dataverse_requests"] == state["dataverse_requests"]:
            return again
        state = again
    return state


def requests_per_chat(
    made: list[dict[str, str]],
    base: str,
    chats: int,
    *,
    agent_base: str | None = None,
    read: Callable[[str], dict[str, int]] = bench_state,
) -> dict[str, float]:
    """Dataverse requests of one chat from hello to its activity, anonymous and identified,
    one chat at a time (nothing else running), after the agents' sign-in. The visitor is on
    `base`, the agent on `agent_base` (default the same); `read(base)` gives the service's
    dataverse_requests, outbox_pending and unfinished (summed over its processes)."""
    ws_base = base.replace("http://", "ws://")
    pair = made[0]
    agent = connect_agent((agent_base or base).replace("http://", "ws://"), pair["user_id"])
    figures: dict[str, float] = {}
    # Chats the load left open (it lost their sockets) end by timeout later: not these.
    settled = _wait_outbox(base, read)
    left = settled["outbox_pending"] + settled["unfinished"]
    # Not counted: once per process the outbox's first write asks who it is (WhoAmI).
    for kind in ("warm-up", "anonymous", "identified"):
        before = _settled(base, read, left)["dataverse_requests"]
        began = time.monotonic()
        for n in range(1 if kind == "warm-up" else chats):
            if kind == "identified":
                widget_id, fields = (
                    pair["widget_id"],
                    {"firstname": "Known", "email": IDENTIFIED_EMAIL},
                )
            else:
                widget_id, fields = pair["anonymous_widget_id"], {}
            visitor = _visitor_hello(ws_base, widget_id, f"dv-{kind}-{n}")
            conversation_id = _chat_pair(agent, visitor, fields)
            visitor.send({"type": "message.send", "client_id": "m0", "text": "hello"})
            agent.expect("message.created", lambda f: f["sender"]["kind"] == "visitor")
            _end_chat(agent, visitor, conversation_id)
            visitor.close()
        after = _settled(base, read, left)
        if after["outbox_pending"] + after["unfinished"] > left:
            raise SystemExit(f"{after} after a minute: the chats were not all written")
        if kind == "warm-up":
            continue
        # What the service reads on its own meanwhile (the configuration refresh), measured
        # over as long a quiet window, is not the chats'.
        quiet = after["dataverse_requests"]
        time.sleep(time.monotonic() - began)
        background = _settled(base, read, left)["dataverse_requests"] - quiet
        figures[kind] = (quiet - before - background) / chats
        figures[kind + "_background"] = float(background)
    agent.close()
    return figures


def _line(name: str, got: dict[str, Any]) -> str:
    limited = " GENERATOR-LIMITED" if got["generator_limited"] else ""
    return (
        f"{name}: {got['pairs']} pairs, p50 {got['p50_ms']} ms, p99 {got['p99_ms']} ms, "
        f"{got['messages_per_s']} msg/s delivered, lost {got['lost']}, dup {got['duplicates']}, "
        f"out of order {got['out_of_order']}; generator CPU {got['generator_cpu']}, "
        f"lag p99 {got['generator_lag_p99_ms']} ms; server CPU {got['server_cpu']}; "
        f"load average {got['load_average']}; pairs that could not start "
        f"{got['setup_failures']}{limited}"
    )


def main() -> None:
    global MESSAGE_INTERVAL_SECS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve", "floor"])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--server", choices=["gunicorn", "dev"], default="gunicorn")
    parser.add_argument("--threads", type=int, default=0, help="server threads (default 2N+100)")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds past the schedule")
    parser.add_argument("--dataverse-chats", type=int, default=5)
    parser.add_argument(
        "--interval",
        type=float,
        default=MESSAGE_INTERVAL_SECS,
        help="seconds between one side's messages",
    )
    args = parser.parse_args()
    MESSAGE_INTERVAL_SECS = args.interval
    threads = args.threads or 2 * args.pairs + 100
    if args.mode == "serve":
        serve_chat(args.data_dir, args.port, args.server, threads)
        return
    if args.mode == "floor":
        serve_floor(args.port, args.server, threads)
        return

    threading.stack_size(THREAD_STACK_BYTES)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crmchat-bench-") as folder:
        data_dir = Path(folder)
        made = seed(data_dir, args.pairs)
        print(f"seeded {args.pairs} pairs in {time.perf_counter() - began:.1f} s", flush=True)
        floor = run_floor(args.pairs, args.messages, args.server, threads, args.drain)
        print(_line("floor (bare relay)", floor), flush=True)

        port = _free_port()
        # Every visitor comes from one address: the public rate limits would refuse most.
        env = dict(os.environ, CRMCHAT_SECRET_KEY=SECRET, **{name: UNLIMITED for name in LIMITS})
        serve_args = ["serve", "--port", str(port), "--data-dir", str(data_dir)]
        process = _start([*serve_args, "--server", args.server, "--threads", str(threads)], env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(f"{base}/bench/state")
            chat = run_chats(made, base, args.messages, args.drain, process.pid)
            print(_line(f"chat ({args.server})", chat), flush=True)
            per_chat = requests_per_chat(made, base, args.dataverse_chats)
            print(
                f"Dataverse requests per chat: anonymous {per_chat['anonymous']:.2f}, "
                f"identified {per_chat['identified']:.2f}",
                flush=True,
            )
        finally:
            _stop(process)
    print(
        json.dumps(
            {
                "server": args.server,
                "interval_s": args.interval,
                "messages_each_way": args.messages,
                "floor": floor,
                "chat": chat,
                "dataverse_requests_per_anonymous_chat": round(per_chat["anonymous"], 2),
                "dataverse_requests_per_identified_chat": round(per_chat["identified"], 2),
                "seconds": round(time.perf_counter() - began, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
