"""Requests per second against the embedded Dataverse over loopback HTTP.

Starts `crmchat dataverse serve` in its own process on a free port with a fresh SQLite
file (so the load generator does not share its interpreter), then measures, with 1 and 4
concurrent clients (one keep-alive session each):

- create:        POST /contacts (204 + OData-EntityId)
- filtered list: GET /contacts?$select=..&$filter=lastname eq '..' and statecode eq 0&$top=20
                 over 2,000 contacts

Then the Dataverse requests one chat costs, from the visitor's hello to its chat activity
(issue 14: at most 2 for an anonymous chat, 3 for an identified one): the service
(`chat_load.py serve`, werkzeug's server, a counter on the in-process Dataverse adapter)
runs `--chats` anonymous chats, then as many identified ones (the pre-chat email of a
seeded contact: record identification), one at a time (`chat_load.requests_per_chat`,
minus what the service read on its own over an equally long quiet window).

Prints one line per figure and, last, one JSON object with all of them.
Usage: python bench/dataverse_requests.py [--requests N] [--chats N] [--skip-load]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chat_load  # noqa: E402 - the bench folder is no package

from connector.dataverse_local import (  # noqa: E402
    ensure_seeded,
    find_user,
    issue_token,
    open_store,
)
from connector.solution.reader import load_schema  # noqa: E402

LAST_NAMES = ["Smith", "Jones", "Garcia", "Müller", "O'Neil", "Novak", "Silva", "Tanaka"]
SEED_CONTACTS = 2000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(base: str, token: str, *, timeout_secs: float = 30) -> None:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}WhoAmI", headers={"Authorization": f"Bearer {token}"}, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit("the embedded Dataverse did not start")


def _run(
    work: Callable[[requests.Session, int], None], *, total: int, workers: int, token: str
) -> tuple[float, float, float]:
    """Run `work` `total` times over `workers` threads; (req/s, p50 ms, p99 ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_worker = total // workers

    def worker(offset: int) -> None:
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        mine: list[float] = []
        for i in range(per_worker):
            started = time.perf_counter()
            work(session, offset + i)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(w * per_worker,)) for w in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / elapsed, statistics.median(latencies) * 1000, p99 * 1000


def requests_per_chat(chats: int) -> dict[str, float]:
    """Dataverse requests per anonymous and per identified chat, through the service."""
    with tempfile.TemporaryDirectory(prefix="crmchat-bench-") as folder:
        data_dir = Path(folder)
        made = chat_load.seed(data_dir, 1)
        port = _free_port()
        env = dict(os.environ, CRMCHAT_SECRET_KEY=chat_load.SECRET)
        serve = ["serve", "--port", str(port), "--data-dir", str(data_dir), "--server", "dev"]
        process = chat_load._start([*serve, "--threads", "50"], env)
        try:
            base = f"http://127.0.0.1:{port}"
            chat_load._wait_up(f"{base}/bench/state")
            return chat_load.requests_per_chat(made, base, chats)
        finally:
            chat_load._stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--chats", type=int, default=3, help="chats of each kind (0: none)")
    parser.add_argument("--skip-load", action="store_true", help="only the requests per chat")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    if not args.skip_load:
        figures.update(_load(args.requests))
    if args.chats:
        per_chat = requests_per_chat(args.chats)
        figures["requests_per_anonymous_chat"] = round(per_chat["anonymous"], 2)
        figures["requests_per_identified_chat"] = round(per_chat["identified"], 2)
        print(
            f"Dataverse requests per chat: anonymous {per_chat['anonymous']:.2f}, "
            f"identified {per_chat['identified']:.2f} ({args.chats} chats of each)",
            flush=True,
        )
    print(json.dumps(figures))
    return 0


def _load(total: int) -> dict[str, float]:
    """Requests per second: create and a filtered list, with 1 and 4 clients."""
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.sqlite"
        store = open_store(db, load_schema())
        ensure_seeded(store)
        token = issue_token(store.signing_secret, user_id=find_user(store, "admin") or "")
        store.close()
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connector.cli",
                "dataverse",
                "serve",
                "--port",
                str(port),
                "--db",
                str(db),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}/api/data/v9.2/"
        _wait_until_up(base, token)
        try:
            figures: dict[str, float] = {}

            def create(session: requests.Session, i: int) -> None:
                body = {
                    "firstname": f"Ann{i}",
                    "lastname": LAST_NAMES[i % len(LAST_NAMES)],
                    "emailaddress1": f"ann{i}@example.com",
                }
                answer = session.post(f"{base}contacts", json=body)
                assert answer.status_code == 204, answer.text

            def filtered_list(session: requests.Session, i: int) -> None:
                name = LAST_NAMES[i % len(LAST_NAMES)].replace("'", "''")
                answer = session.get(
                    f"{base}contacts",
                    params={
                        "$select": "fullname,emailaddress1",
                        "$filter": f"lastname eq '{name}' and statecode eq 0",
                        "$orderby": "createdon desc",
                        "$top": "20",
                    },
                )
                assert answer.status_code == 200 and len(answer.json()["value"]) == 20

            _run(create, total=SEED_CONTACTS, workers=4, token=token)
            for workers in (1, 4):
                for name, work in (("create", create), ("filtered_list", filtered_list)):
                    rps, p50, p99 = _run(work, total=total, workers=workers, token=token)
                    key = f"{name}_c{workers}"
                    figures[f"{key}_rps"] = round(rps, 1)
                    figures[f"{key}_p50_ms"] = round(p50, 2)
                    figures[f"{key}_p99_ms"] = round(p99, 2)
                    print(
                        f"{name:<14} clients={workers}  {rps:8.1f} req/s  "
                        f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(timeout=10)
    return figures


if __name__ == "__main__":
    sys.exit(main())
