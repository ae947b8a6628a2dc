"""Webhooks per second the service takes: signed Messenger and Viber calls under gunicorn.

Starts `crmchat serve`'s gunicorn (one worker, as `connector/server.py` runs it) in a
subprocess on the embedded default, with a Messenger and a Viber account whose secrets
this script chose, then has --clients threads POST --calls signed webhooks each (every
call a new message id, so nothing is dropped as a redelivery), each thread on its own
keep-alive connection. Per channel it prints calls, errors, webhooks per second and the
answer's p50/p99 in ms: the time to check the signature, parse, dedupe and queue (the
work after the answer is not in it). Client and server share this machine's cores.

Last line: one JSON object {"messenger": {...}, "viber": {...}, "load_average": 1-min}.
Usage: python bench/channel_webhooks.py [--clients 8] [--calls 500]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from connector.channels.accounts import StaticAccounts
from connector.channels.model import ChannelAccount, ChannelType
from connector.channels.webhooks import webhook_path
from connector.channels.wire import meta_message_body, signed_request, viber_message_body

START_SECS = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_accounts(secret: str) -> list[ChannelAccount]:
    return [
        ChannelAccount(
            key="bench-messenger",
            channel=ChannelType.MESSENGER,
            name="Bench",
            platform_id="120000000000001",
            app_secret=SecretStr(secret),
            verify_token=SecretStr(secret),
            access_token=SecretStr(secret),
        ),
        ChannelAccount(
            key="bench-viber",
            channel=ChannelType.VIBER,
            name="Bench",
            platform_id="Bench",
            auth_token=SecretStr(secret),
        ),
    ]


def serve(port: int, data_dir: str, secret: str) -> None:
    """The service under gunicorn with the bench's accounts (subprocess)."""
    from connector.app import create_app
    from connector.channels.shared import channels_of
    from connector.server import serve as gunicorn_serve
    from connector.settings import Settings

    overrides = {"data_dir": data_dir, "port": port, "log_level": "WARNING", "demo": False}

    def make_app() -> Any:
        app = create_app(overrides)
        channels_of(app).accounts = StaticAccounts(bench_accounts(secret))
        return app

    gunicorn_serve(Settings(**overrides), make_app)


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + START_SECS
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/livez", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not start")


def _body(account: ChannelAccount, client: int, call: int) -> tuple[bytes, dict[str, str]]:
    at = datetime.now(UTC)
    person = f"person-{client}"
    if account.channel is ChannelType.VIBER:
        body = viber_message_body(
            person_id=person,
            person_name="Bench",
            message_token=client * 1_000_000 + call,
            at=at,
            text=f"message {call}",
        )
    else:
        body = meta_message_body(
            account,
            person_id=person,
            person_name="Bench",
            message_id=f"m_{client}_{call}",
            at=at,
            text=f"message {call}",
        )
    return signed_request(account, body)


def run(
    url: str, account: ChannelAccount, clients: int, calls: int, *, first_client: int = 0
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    # Bodies are built and signed before the clock starts: only the service is timed.
    prepared = [[_body(account, first_client + c, n) for n in range(calls)] for c in range(clients)]

    def client(index: int) -> None:
        nonlocal errors
        session = requests.Session()
        mine: list[float] = []
        failed = 0
        for raw, headers in prepared[index]:
            started = time.perf_counter()
            answer = session.post(
                url + webhook_path(account), data=raw, headers=headers, timeout=30
            )
            mine.append(time.perf_counter() - started)
            if answer.status_code != 200 or answer.json().get("accepted") != 1:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": len(latencies),
        "errors": errors,
        "webhooks_per_sec": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--calls", type=int, default=500, help="per client")
    parser.add_argument(
        "--serve", nargs=3, metavar=("PORT", "DATA_DIR", "SECRET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return {}
    secret = secrets.token_urlsafe(24)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(port), data_dir, secret]
        )
        try:
            _wait_up(url)
            results: dict[str, Any] = {}
            for account in bench_accounts(secret):
                # A short warm-up so first-request costs (imports, connections) are not timed.
                run(url, account, 2, 20, first_client=10_000)
                results[account.channel.value] = figures = run(
                    url, account, args.clients, args.calls
                )
                print(f"{account.channel.value}: {figures}")
            results["load_average"] = round(os.getloadavg()[0], 2)
            print(json.dumps(results))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return results


if __name__ == "__main__":
    main()
