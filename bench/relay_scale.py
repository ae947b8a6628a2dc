"""Relay at scale: a bare relay, CRM Chat on 1 process and on 2 processes over Redis.

For each chat count (--chats, default 500 and 2,000), side by side in one run, every
server a real process under the production server (gunicorn gthread through
`connector.server.serve`, as `crmchat serve` runs):

- `echo`: chat_load.py's bare flask-sock relay (`floor` mode) carrying the same sockets
  (2 per chat) and the same messages on the same schedule;
- `1 process`: `crmchat serve` on the embedded Dataverse in the process (the default);
- `2 processes`: a private redis-server (connector/redis_server.py), the embedded Dataverse
  served alone (`crmchat dataverse serve` over HTTPS) and two `crmchat serve` processes
  with CRMCHAT_REDIS_URL, CRMCHAT_DATAVERSE_URL / _TOKEN / _CA_BUNDLE (docs/deploy.md):
  every visitor on process A, every agent on process B. Until the engine runs on Redis a
  visitor on A never sees an agent on B; this mode then stops at once with one line.

The load is chat_load.py's (open loop, both directions, every message checked; see its
docstring), run by --generators processes, each holding a share of the chats and starting
on one clock. Figures per run: relay p50/p99 visitor -> agent and agent -> visitor, lost,
duplicates, out of order, pairs that could not start, each generator's CPU and lag (the run
says GENERATOR-LIMITED when the generators were the limit), the servers' CPU, and the
ratio of its p99 to the echo's. The knee: the first count whose p99 passes 2x the echo's
or that lost messages or chats.

Memory: the servers' resident memory (every process of each, from /proc) before the chats
open and with all of them open, per chat (two sockets and the conversation); and, with
--presence N, per visitor presence socket (a page view: the widget's socket after hello,
no chat) on the 1-process service.

Capacity (--presence-steps, e.g. 1000 2000 4000): the 1-process service holds that many
presence sockets while --probe chats relay; the last step whose p99 stays within 2x the
first's is the sockets one process holds before latency degrades.

Dataverse requests per finished chat (anonymous and identified, chat_load.requests_per_chat)
from the services' own /metrics (crmchat_dataverse_requests_total, summed over processes).

Prints a line per run, the table, and last one JSON object with every figure.

Usage: python bench/relay_scale.py [--chats 500 2000] [--messages 10] [--interval 0.5]
       [--modes echo 1 2] [--generators 2] [--presence 1000] [--presence-steps ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chat_load  # noqa: E402 - the bench folder is no package

from connector.crm.connection import SERVICE_USER_DOMAIN  # noqa: E402
from connector.dataverse_local.tls import ensure_self_signed_cert  # noqa: E402
from connector.redis_server import RedisServer  # noqa: E402
from connector.settings import Settings  # noqa: E402

# p99 past this many times the reference (the echo's, or the first capacity step's) is
# "degraded": the goal at 500 chats is 2x the echo.
DEGRADED_RATIO = 2.0
START_SECS = 120.0
# Seconds from every generator being ready to the load's first send.
GO_AHEAD_SECS = 2.0
# How long the 2-process check waits for a visitor on A to see the agent on B.
CROSS_PROCESS_WAIT_SECS = 10.0
# Every bench visitor comes from 127.0.0.1: the per-address limits (300/minute) would
# refuse all but the first few hundred, which no real site's visitors share.
UNLIMITED = "1000000/minute"
MODES = {"echo": "echo", "1": "1 process", "2": "2 processes"}


class NotOnRedis(SystemExit):
    """The 2-process mode cannot run on this build (one line, no hang)."""


# ------------------------------------------------------------------ server processes


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "connector.cli", *args]


def _wait_get(url: str, process: subprocess.Popen[bytes], **kwargs: Any) -> None:
    deadline = time.monotonic() + START_SECS
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(map(str, process.args))} exited ({process.returncode})")
        try:
            if requests.get(url, timeout=2, **kwargs).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up in {START_SECS:.0f} s")
        time.sleep(0.2)


@contextmanager
def _process(
    args: list[str], env: dict[str, str], up_url: str, log: Path, **get: Any
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_get(up_url, process, **get)
        yield process
    finally:
        chat_load._stop(process)


def _service_env(data_dir: Path, port: int, threads: int, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMCHAT_")}
    env.update(
        {
            "CRMCHAT_DATA_DIR": str(data_dir),
            "CRMCHAT_PORT": str(port),
            "CRMCHAT_THREADS": str(threads),
            "CRMCHAT_SECRET_KEY": chat_load.SECRET,
            "CRMCHAT_DEMO": "0",
            "CRMCHAT_LOG_LEVEL": "WARNING",
            "CRMCHAT_CONFIG_LIMIT_PER_ADDRESS": UNLIMITED,
            "CRMCHAT_SOCKET_LIMIT_PER_ADDRESS": UNLIMITED,
            "CRMCHAT_SOCKET_LIMIT_PER_WIDGET": UNLIMITED,
            "CRMCHAT_CHAT_START_LIMIT_PER_ADDRESS": UNLIMITED,
            "CRMCHAT_CHAT_START_LIMIT_PER_WIDGET": UNLIMITED,
        }
    )
    env.update(extra)
    return env


class Servers:
    """What one mode runs: where visitors and agents connect, and the server processes."""

    def __init__(self, visitor_base: str, agent_base: str, pids: list[int]) -> None:
        self.visitor_base = visitor_base
        self.agent_base = agent_base
        self.pids = pids
        self.service_bases = sorted({visitor_base, agent_base})

    def rss_kib(self) -> int:
        """Resident memory of every server process (each one's tree), KiB."""
        total = 0
        for pid in self.pids:
            for member in chat_load.tree_pids(pid):
                try:
                    status = Path(f"/proc/{member}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def cpu_secs(self) -> float:
        return sum(chat_load.tree_cpu_secs(pid) for pid in self.pids)

    def state(self, _base: str = "") -> dict[str, int]:
        """Dataverse requests, outbox depth and unwritten chats over every service process,
        from their /metrics."""
        totals = {"dataverse_requests": 0, "outbox_pending": 0, "unfinished": 0}
        names = {
            "crmchat_dataverse_requests_total": "dataverse_requests",
            "crmchat_outbox_pending": "outbox_pending",
            "crmchat_chats": "unfinished",
        }
        for base in self.service_bases:
            text = requests.get(f"{base}/metrics", timeout=10).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in names:
                        totals[names[sample.name]] += int(sample.value)
        return totals


@contextmanager
def echo_servers(folder: Path, threads: int) -> Iterator[Servers]:
    port = chat_load._free_port()
    args = [sys.executable, chat_load.__file__, "floor", "--port", str(port)]
    args += ["--threads", str(threads)]
    base = f"http://127.0.0.1:{port}"
    with _process(args, dict(os.environ), f"{base}/up", folder / "echo.log") as process:
        yield Servers(base, base, [process.pid])


@contextmanager
def one_process(folder: Path, data_dir: Path, threads: int) -> Iterator[Servers]:
    port = chat_load._free_port()
    env = _service_env(data_dir, port, threads, {})
    base = f"http://127.0.0.1:{port}"
    with _process(_cli("serve"), env, f"{base}/livez", folder / "service-1.log") as process:
        yield Servers(base, base, [process.pid])


@contextmanager
def two_processes(folder: Path, data_dir: Path, threads: int) -> Iterator[Servers]:
    """Redis, the embedded Dataverse alone over HTTPS, and service processes A and B."""
    with ExitStack() as stack:
        redis_server = RedisServer(folder / "redis")
        redis_server.start()
        stack.callback(redis_server.stop)
        cert, key = ensure_self_signed_cert(folder / "tls")
        db = Settings(data_dir=data_dir, secret_key=SecretStr(chat_load.SECRET)).embedded_db
        dv_port = chat_load._free_port()
        dataverse_url = f"https://127.0.0.1:{dv_port}"
        dv_args = _cli("dataverse", "serve", "--port", str(dv_port), "--db", str(db))
        dv_args += ["--tls-cert", str(cert), "--tls-key", str(key)]
        dataverse = stack.enter_context(
            _process(
                dv_args,
                dict(os.environ),
                f"{dataverse_url}/api/data/v9.2/",
                folder / "dataverse.log",
                verify=str(cert),
            )
        )
        token = subprocess.run(
            _cli("dataverse", "token", "--db", str(db), "--user", SERVICE_USER_DOMAIN),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
        shared = {
            "CRMCHAT_REDIS_URL": redis_server.url,
            "CRMCHAT_DATAVERSE_URL": dataverse_url,
            "CRMCHAT_DATAVERSE_TOKEN": token,
            "CRMCHAT_DATAVERSE_CA_BUNDLE": str(cert),
        }
        bases, pids = [], [dataverse.pid]
        for name in ("a", "b"):
            port = chat_load._free_port()
            env = _service_env(folder / f"data-{name}", port, threads, shared)
            base = f"http://127.0.0.1:{port}"
            log = folder / f"service-{name}.log"
            pids.append(stack.enter_context(_process(_cli("serve"), env, f"{base}/livez", log)).pid)
            bases.append(base)
        # Redis's own memory and CPU belong to the deployment: counted with the servers.
        pids.append(redis_server_pid(redis_server))
        yield Servers(bases[0], bases[1], [pid for pid in pids if pid])


def redis_server_pid(server: RedisServer) -> int:
    process = getattr(server, "_process", None)
    return int(process.pid) if process is not None else 0


def check_cross_process(servers: Servers, pair: dict[str, str]) -> None:
    """A visitor on A must see pair 0's agent on B as available: else the engine keeps its
    chats per process (not on Redis yet) and the load would only time out."""
    ws = servers.agent_base.replace("http://", "ws://")
    agent = chat_load.connect_agent(ws, pair["user_id"])
    try:
        deadline = time.monotonic() + CROSS_PROCESS_WAIT_SECS
        while True:
            visitor = presence_socket(servers.visitor_base, pair["widget_id"], "bench-probe")
            available = visitor.expect("hello.ok")["available"]
            visitor.close()
            if available:
                return
            if time.monotonic() > deadline:
                raise NotOnRedis(
                    "2 processes: a visitor on process A never saw the agent signed in on "
                    "process B (CRMCHAT_REDIS_URL set) - this build's engine keeps its chats "
                    "per process; run it once the engine is on Redis (issue 7)"
                )
            time.sleep(0.5)
    finally:
        agent.close()


def presence_socket(base: str, widget_id: str, visitor_id: str) -> chat_load.Ws:
    """A page view's widget socket after hello (hello.ok still unread), no chat."""
    visitor = chat_load.Ws(f"{base.replace('http://', 'ws://')}/ws/visitor")
    visitor.send(
        {
            "type": "hello",
            "widget_id": widget_id,
            "visitor_id": visitor_id,
            "page": {"url": "https://shop.example/"},
        }
    )
    return visitor


# ------------------------------------------------------------------ generator processes


def generate(job_path: Path) -> None:
    """One generator (subprocess): set up its share, say ready, start on the clock it is
    given on stdin, print its samples as one JSON line."""
    threading.stack_size(chat_load.THREAD_STACK_BYTES)
    job = json.loads(job_path.read_text())
    chat_load.MESSAGE_INTERVAL_SECS = job["interval"]
    ends: list[tuple[chat_load.Ws, chat_load.Ws, str]] = []

    took: list[float] = []  # seconds from the first socket to the accepted chat, per pair

    def setup(item: dict[str, Any]) -> tuple[chat_load.Side, chat_load.Side] | str:
        index = int(item["index"])
        began = time.perf_counter()
        try:
            if job["kind"] == "echo":
                return chat_load.floor_pair(job["visitor_ws"], index)
            return chat_load.chat_pair(job["visitor_ws"], job["agent_ws"], item, index, ends)
        finally:
            took.append(time.perf_counter() - began)

    with ThreadPoolExecutor(chat_load.CONNECT_WORKERS) as pool:
        outcomes = list(pool.map(setup, job["pairs"]))
    pairs = [o for o in outcomes if not isinstance(o, str)]
    failures = [o for o in outcomes if isinstance(o, str)]
    ready = {"ready": len(pairs), "failures": failures[:3], "failed": len(failures)}
    print(json.dumps({**ready, "setup_secs": took}))
    sys.stdout.flush()
    go_at = float(sys.stdin.readline())
    start = time.perf_counter() + (go_at - time.time())
    samples = chat_load.load_samples(pairs, job["messages"], job["drain"], start)
    # End and rate every chat: its activity is written at once, before anything is counted.
    with ThreadPoolExecutor(chat_load.CONNECT_WORKERS) as pool:
        list(pool.map(lambda end: chat_load._end_chat(*end), ends))
    print(json.dumps(samples))
    sys.stdout.flush()
    sys.stdin.readline()  # the parent has read the servers' figures: close now
    for a, b in pairs:
        chat_load.close_quietly(a.client)
        chat_load.close_quietly(b.client)
    # simple_websocket's reader threads are not daemons, and closing a socket does not wake
    # a thread blocked reading it: a normal exit would wait for each to time out.
    os._exit(0)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in ("wall", "cpu"):
                merged[key] = max(merged.get(key, 0.0), value)
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def run_load(
    kind: str,
    servers: Servers,
    made: list[dict[str, str]],
    args: argparse.Namespace,
    folder: Path,
) -> dict[str, Any]:
    """`len(made)` chats (or relay pairs) over `args.generators` generator processes."""
    count = len(made)
    generators = max(1, min(args.generators, count))
    children = []
    for g in range(generators):
        job = folder / f"job-{kind}-{count}-{g}.json"
        share = [{**made[i], "index": i} for i in range(g, count, generators)]
        job.write_text(
            json.dumps(
                {
                    "kind": kind,
                    "visitor_ws": servers.visitor_base.replace("http://", "ws://"),
                    "agent_ws": servers.agent_base.replace("http://", "ws://"),
                    "pairs": share,
                    "messages": args.messages,
                    "interval": args.interval,
                    "drain": args.drain,
                }
            )
        )
        children.append(
            subprocess.Popen(
                [sys.executable, __file__, "generate", str(job)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        rss_before = servers.rss_kib()
        readies = [json.loads(_line_of(child)) for child in children]
        rss_open = servers.rss_kib()
        failed = sum(r["failed"] for r in readies)
        if failed:
            example = next(f for r in readies for f in r["failures"])
            print(f"{failed} pair(s) could not start, e.g. {example}", flush=True)
        go_at = time.time() + GO_AHEAD_SECS
        for child in children:
            _say(child, f"{go_at}")
        cpu_before, began = servers.cpu_secs(), time.perf_counter()
        parts = [json.loads(_line_of(child)) for child in children]
        server_cpu = (servers.cpu_secs() - cpu_before) / (time.perf_counter() - began)
        for child in children:
            _say(child, "close")
    finally:
        for child in children:
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
    result = chat_load.summarise(merge(parts), args.messages)
    opened = max(1, result["pairs"])
    setup_secs = [t for ready in readies for t in ready["setup_secs"]]
    result.update(
        {
            "chats": count,
            "setup_failures": failed,
            # One chat's set-up (hello, start, sign-in, accept), the median and p99 over
            # every pair: what grows when each sign-in does work for everyone connected.
            "setup_p50_ms": round(1000 * chat_load._percentile(setup_secs, 0.5), 1),
            "setup_p99_ms": round(1000 * chat_load._percentile(setup_secs, 0.99), 1),
            "generators": generators,
            "server_cpu": round(server_cpu, 2),
            "server_rss_mb": round(rss_open / 1024, 1),
            "kib_per_chat": round((rss_open - rss_before) / opened, 1),
        }
    )
    return result


def _line_of(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        raise SystemExit(f"a generator exited ({child.wait()}) before answering")
    return line


def _say(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdin is not None
    child.stdin.write(line + "\n")
    child.stdin.flush()


# ------------------------------------------------------------------ presence and capacity


def open_presence(
    servers: Servers, widget_id: str, count: int, offset: int
) -> tuple[list[chat_load.Ws], int]:
    """`count` more presence sockets on the visitor process; (the sockets, failures)."""

    def one(n: int) -> chat_load.Ws | None:
        try:
            visitor = presence_socket(servers.visitor_base, widget_id, f"page-{offset + n:06d}")
            visitor.expect("hello.ok")
            return visitor
        except Exception:  # noqa: BLE001 - counted: a refused socket is the capacity's end
            return None

    with ThreadPoolExecutor(chat_load.CONNECT_WORKERS) as pool:
        opened = list(pool.map(one, range(count)))
    return [ws for ws in opened if ws is not None], sum(1 for ws in opened if ws is None)


def presence_memory(servers: Servers, widget_id: str, count: int) -> dict[str, Any]:
    before = servers.rss_kib()
    sockets, failed = open_presence(servers, widget_id, count, 0)
    time.sleep(1.0)  # let every hello's presence event go out first
    after = servers.rss_kib()
    for ws in sockets:
        ws.close()
    return {
        "presence_sockets": len(sockets),
        "presence_failures": failed,
        "kib_per_presence_socket": round((after - before) / max(1, len(sockets)), 1),
    }


def capacity(
    servers: Servers, made: list[dict[str, str]], args: argparse.Namespace, folder: Path
) -> list[dict[str, Any]]:
    """Probe chats relaying while the process holds more and more presence sockets."""
    held: list[chat_load.Ws] = []
    steps = []
    reference = None
    try:
        for target in [0, *args.presence_steps]:
            more, failed = open_presence(
                servers, made[0]["anonymous_widget_id"], target - len(held), len(held)
            )
            held += more
            probe = run_load("chat", servers, made[: args.probe], args, folder)
            reference = reference or probe["p99_ms"]
            step = {
                "presence_sockets": len(held),
                "presence_failures": failed,
                "probe_chats": probe["pairs"],
                "p50_ms": probe["p50_ms"],
                "p99_ms": probe["p99_ms"],
                "lost": probe["lost"],
                "server_rss_mb": round(servers.rss_kib() / 1024, 1),
                "generator_limited": probe["generator_limited"],
                "degraded": bool(
                    probe["p99_ms"] > DEGRADED_RATIO * reference or probe["lost"] or failed
                ),
            }
            print(f"capacity: {step}", flush=True)
            steps.append(step)
            if step["degraded"]:
                break
    finally:
        for ws in held:
            ws.close()
    return steps


# ------------------------------------------------------------------ the run


def _print_line(label: str, got: dict[str, Any]) -> None:
    limited = " GENERATOR-LIMITED" if got["generator_limited"] else ""
    print(
        f"{got['chats']} chats, {label}: visitor->agent p50 {got['to_second_p50_ms']} / p99 "
        f"{got['to_second_p99_ms']} ms, agent->visitor p50 {got['to_first_p50_ms']} / p99 "
        f"{got['to_first_p99_ms']} ms; delivered {got['delivered']}/{got['sent']}, lost "
        f"{got['lost']}, dup {got['duplicates']}, out of order {got['out_of_order']}, "
        f"not started {got['setup_failures']}, set-up per chat p50 {got['setup_p50_ms']} / "
        f"p99 {got['setup_p99_ms']} ms, other frames received "
        f"{got['other_frames']}; generators {got['generators']} "
        f"CPU {got['generator_cpu']} lag p99 {got['generator_lag_p99_ms']} ms; server CPU "
        f"{got['server_cpu']} RSS {got['server_rss_mb']} MB ({got['kib_per_chat']} KiB/chat); "
        f"load average {got['load_average']}{limited}",
        flush=True,
    )


def table(runs: list[dict[str, Any]]) -> str:
    head = (
        "| chats | server | v->a p50 | v->a p99 | a->v p50 | a->v p99 | p99 / echo p99 | "
        "lost | not started | KiB/chat | generator CPU, lag p99 | server CPU |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for run in runs:
        limited = " (limited)" if run["generator_limited"] else ""
        rows.append(
            f"| {run['chats']} | {run['label']} | {run['to_second_p50_ms']} | "
            f"{run['to_second_p99_ms']} | {run['to_first_p50_ms']} | {run['to_first_p99_ms']} | "
            f"{run.get('p99_vs_echo', '-')} | {run['lost']} | {run['setup_failures']} | "
            f"{run['kib_per_chat']} | {run['generator_cpu']}, "
            f"{run['generator_lag_p99_ms']} ms{limited} | {run['server_cpu']} |"
        )
    return "\n".join(rows)


def knee(runs: list[dict[str, Any]]) -> dict[str, int | None]:
    """Per server: the first chat count whose p99 passed 2x the echo's, or that lost
    messages or chats (None: it held at every count run)."""
    found: dict[str, int | None] = {}
    for run in sorted(runs, key=lambda r: r["chats"]):
        if run["label"] == "echo":
            continue
        found.setdefault(run["label"], None)
        bad = run["lost"] or run["setup_failures"] or run.get("p99_vs_echo", 0) > DEGRADED_RATIO
        if bad and found[run["label"]] is None:
            found[run["label"]] = run["chats"]
    return found


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    figures: dict[str, Any] = {"runs": runs}
    for count in args.chats:
        data_dir = folder / f"seed-{count}"
        began = time.perf_counter()
        made = chat_load.seed(data_dir, count)
        print(f"seeded {count} chats in {time.perf_counter() - began:.1f} s", flush=True)
        # A thread per open socket (connector/server.py): the chats', the presence sockets'
        # (the capacity steps run at the first count only), and room for HTTP requests;
        # CRMCHAT_THREADS allows at most 10,000.
        steps = args.presence_steps if count == args.chats[0] else []
        threads = min(10_000, 2 * count + max([args.presence, *steps]) + 200)
        echo_p99 = None
        for mode in args.modes:
            label = MODES[mode]
            with ExitStack() as stack:
                if mode == "echo":
                    servers = stack.enter_context(echo_servers(folder, threads))
                elif mode == "1":
                    servers = stack.enter_context(one_process(folder, data_dir, threads))
                else:
                    servers = stack.enter_context(two_processes(folder, data_dir, threads))
                    try:
                        check_cross_process(servers, made[0])
                    except NotOnRedis as stop:
                        # The other modes' figures still stand; main() fails at the end.
                        print(stop, flush=True)
                        figures["not_run"] = str(stop)
                        continue
                kind = "echo" if mode == "echo" else "chat"
                run = {"label": label, **run_load(kind, servers, made, args, folder)}
                if mode == "echo":
                    echo_p99 = run["p99_ms"]
                elif echo_p99:
                    run["p99_vs_echo"] = round(run["p99_ms"] / echo_p99, 2)
                _print_line(label, run)
                if kind == "chat" and args.dataverse_chats > 0:  # 0: not counted
                    per_chat = chat_load.requests_per_chat(
                        made,
                        servers.visitor_base,
                        args.dataverse_chats,
                        agent_base=servers.agent_base,
                        read=servers.state,
                    )
                    run["dataverse_requests_per_anonymous_chat"] = round(per_chat["anonymous"], 2)
                    run["dataverse_requests_per_identified_chat"] = round(per_chat["identified"], 2)
                    print(
                        f"{count} chats, {label}: Dataverse requests per finished chat: "
                        f"anonymous {per_chat['anonymous']:.2f}, identified "
                        f"{per_chat['identified']:.2f}",
                        flush=True,
                    )
                if mode == "1" and args.presence:
                    run.update(
                        presence_memory(servers, made[0]["anonymous_widget_id"], args.presence)
                    )
                    print(
                        f"{count} chats, {label}: {args.presence} presence sockets: "
                        f"{run['kib_per_presence_socket']} KiB each",
                        flush=True,
                    )
                if mode == "1" and args.presence_steps and count == args.chats[0]:
                    figures["capacity"] = capacity(servers, made, args, folder)
                runs.append(run)
    figures["knee"] = knee(runs)
    return figures


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--messages", type=int, default=10, help="each way per chat")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between sends")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds past the schedule")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    parser.add_argument("--presence", type=int, default=0, help="presence sockets to weigh")
    parser.add_argument("--presence-steps", type=int, nargs="*", default=[])
    parser.add_argument("--probe", type=int, default=50, help="chats relaying while stepping")
    parser.add_argument("--dataverse-chats", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["generate"]:
        generate(Path(argv[1]))
        return {}
    args = parse(argv)
    if args.presence_steps and args.probe > min(args.chats):
        raise SystemExit("--probe must not exceed the smallest --chats")
    threading.stack_size(chat_load.THREAD_STACK_BYTES)
    # The generators send on it; summarise() judges their lag against it.
    chat_load.MESSAGE_INTERVAL_SECS = args.interval
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crmchat-relay-") as folder:
        figures = measure(args, Path(folder))
    print(table(figures["runs"]))
    print(f"knee (first count past 2x the echo's p99, or losing): {figures['knee']}")
    figures["seconds"] = round(time.perf_counter() - began, 1)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps({**figures, "args": vars(args)}))
    if "not_run" in figures:
        raise NotOnRedis(figures["not_run"])
    return figures


if __name__ == "__main__":
    # Stopped with SIGTERM, the servers it started are stopped too (the with blocks unwind).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
