"""Time from a person's message on the simulator to the chat holding it: a text, a picture
(a file of the chat: fetched, checked, stored) and, on Messenger, a first message (the
User Profile API read before the chat opens).

Runs the embedded default in this process (werkzeug, threaded) with its simulator on the
same port, as `make run` does, and per channel posts --messages person messages through
the simulator's page API (`/simulator/api/person-message`: it signs and POSTs the
platform's webhook), each from a new person (a first message) or to one open chat. The
time is from the call to the simulator until the message is in the chat's live state
(what the console is sent next); client, simulator and service share this machine's
cores, so the figures include the simulator's own work.

Last line: one JSON object {"<channel>": {"first": {...}, "text": {...}, "picture": {...}}}.
Usage: python bench/channel_media.py [--messages 10]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import make_server

WAIT_SECS = 15.0


def _percentiles(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)

    return {"count": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # A chat keeps at most 10 files (connector/crm/attachments.py): 10 pictures at most.
    parser.add_argument("--messages", type=int, default=10, choices=range(1, 11))
    args = parser.parse_args()
    os.environ["CRMCHAT_DEMO"] = "1"
    from connector.app import create_app, stop_app
    from connector.channels.model import ChannelType
    from connector.channels.shared import channels_of
    from connector.services import services_of

    with tempfile.TemporaryDirectory() as folder, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        sock.close()
        app = create_app({"data_dir": Path(folder), "port": port, "log_level": "ERROR"})
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        engine = services_of(app).engine
        session = requests.Session()

        def held(person: str, account: str) -> int:
            visitor = f"channel:{account}:{person}"
            with engine.lock:
                chats = [c for c in engine.conversations.values() if c.visitor_id == visitor]
            return len(engine.state.messages(chats[0].conversation_id)) if chats else 0

        def send(account: str, person: str, **what: str) -> float:
            before = held(person, account)
            started = time.perf_counter()
            answer = session.post(
                base + "/simulator/api/person-message",
                json={"account": account, "person_id": person, "person_name": "Pat Bench", **what},
                timeout=10,
            )
            answer.raise_for_status()
            deadline = time.monotonic() + WAIT_SECS
            while held(person, account) <= before:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{account}: the message never reached the chat")
                time.sleep(0.001)
            return time.perf_counter() - started

        results: dict[str, Any] = {}
        picture = base + "/simulator/media/sample.png"
        try:
            for account in channels_of(app).accounts.all():
                if account.channel not in (ChannelType.MESSENGER, ChannelType.WHATSAPP):
                    continue
                key, label = account.key, account.channel.value
                first = [send(key, f"bench-{n}", text="hi") for n in range(args.messages)]
                text = [send(key, "bench-0", text=f"more {n}") for n in range(args.messages)]
                pictures = [send(key, "bench-0", image_url=picture) for _ in range(args.messages)]
                results[label] = {
                    "first": _percentiles(first),
                    "text": _percentiles(text),
                    "picture": _percentiles(pictures),
                }
                for name, figures in results[label].items():
                    print(f"{label:9} {name:8} {json.dumps(figures)}", flush=True)
        finally:
            server.shutdown()
            stop_app(app)
        print(json.dumps(results))


if __name__ == "__main__":
    main()
