"""gunicorn's gthread worker against its gevent worker, holding hundreds of open sockets.

For each worker class and each socket count, starts gunicorn (one worker) serving a bare
flask-sock echo in a subprocess, opens N websockets, and has each send --messages frames
one every --interval seconds, waiting for each echo: the round trip client -> server ->
client. Prints one line per run and, last, one JSON object with every run: worker,
sockets, p50_ms, p99_ms, worker_rss_mb (the worker's resident memory with every socket
open), errors.

This is what `crmchat serve` chose its worker by (connector/server.py, docs/deploy.md).

Usage: python bench/server_workers.py [--sockets 200 500] [--messages 10] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
from simple_websocket import Client

CONNECT_SECS = 60.0
# Client threads: two per socket (simple_websocket's reader); small stacks keep it cheap.
THREAD_STACK_BYTES = 512 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(worker: str, port: int, threads: int) -> None:
    """The echo under gunicorn with `worker` (subprocess)."""
    if worker == "gevent":
        from gevent import monkey

        monkey.patch_all()
    from flask import Flask
    from flask_sock import Sock
    from gunicorn.app.base import BaseApplication

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

    class Echo(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", [f"127.0.0.1:{port}"])
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", worker)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_connections", threads)
            self.cfg.set("loglevel", "warning")
            self.cfg.set("timeout", 120)

        def load(self) -> Flask:
            return app

    Echo().run()


def _worker_rss_mb(master_pid: int) -> float:
    """Resident memory of the master's child (the one worker), in MiB."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    total = 0
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def run(worker: str, sockets: int, messages: int, interval: float) -> dict[str, Any]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", worker, "--port", str(port), "--threads", "4000"]
    )
    base = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + CONNECT_SECS
        while True:
            try:
                requests.get(f"http://{base}/up", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        clients: list[Client] = []
        for _ in range(sockets):
            clients.append(Client.connect(f"ws://{base}/echo"))
        rss = _worker_rss_mb(server.pid)
        times: list[float] = []
        errors = [0]
        lock = threading.Lock()
        start = threading.Barrier(sockets)

        def talk(client: Client) -> None:
            start.wait()
            for n in range(messages):
                sent = time.perf_counter()
                try:
                    client.send(str(n))
                    if client.receive(timeout=10) is None:
                        raise TimeoutError
                except Exception:  # noqa: BLE001 - counted, not raised: the run goes on
                    with lock:
                        errors[0] += 1
                    return
                with lock:
                    times.append((time.perf_counter() - sent) * 1000)
                time.sleep(max(0.0, interval - (time.perf_counter() - sent)))

        talkers = [threading.Thread(target=talk, args=(c,)) for c in clients]
        for thread in talkers:
            thread.start()
        for thread in talkers:
            thread.join()
        for client in clients:
            client.close()
        ordered = sorted(times) or [float("nan")]
        return {
            "worker": worker,
            "sockets": sockets,
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
            "worker_rss_mb": round(rss, 1),
            "errors": errors[0],
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("serve")
    child.add_argument("worker", choices=["gthread", "gevent"])
    child.add_argument("--port", type=int, required=True)
    child.add_argument("--threads", type=int, default=4000)
    parser.add_argument("--sockets", type=int, nargs="+", default=[200, 500])
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.worker, args.port, args.threads)
        return
    threading.stack_size(THREAD_STACK_BYTES)
    results = []
    for sockets in args.sockets:
        for worker in ("gthread", "gevent"):
            result = run(worker, sockets, args.messages, args.interval)
            print(result, flush=True)
            results.append(result)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
