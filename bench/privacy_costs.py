"""What issue 12's abuse and privacy checks cost per message and per chat start.

- masking: `mask_text` on a visitor message of the longest allowed size (4,000
  characters, digits and words mixed) with 1, 5 and 20 card-number-like rules (20 is the
  most a widget may have, plus the organisation's), and RE2 on the classic catastrophic
  pattern ``(a+)+$`` over 4,000 ``a`` and a ``!`` (a backtracking engine needs about 2^4000
  steps; RE2 is linear);
- start limits: `frame_limited` (connector/web/public_limits.py) for one `chat.start`,
  counted in memory (one process) and in a private redis-server (several processes),
  per address and per widget: what each started chat pays for the shared count;
- live-store retention: one `drop_live_chats` run (the hourly job) over N finished chats
  of 10 messages each in `SqliteLiveState` and `RedisLiveState`, when none is due yet
  (what every hour costs) and when all are past their widget's retention (each deleted
  with its messages and file).

Prints one line per figure and, last, one JSON object with every figure.
Usage: python bench/privacy_costs.py [--seconds 1.0] [--chats 1000]
(needs Debian's redis-server)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from connector.app import create_app, stop_app
from connector.chat.model import (
    Conversation,
    ConversationKind,
    ConversationState,
    Message,
    SenderKind,
)
from connector.chat.redis_state import RedisLiveState
from connector.chat.state import SqliteLiveState
from connector.crm.masking import check_pattern, mask_text
from connector.crm.retention import drop_live_chats
from connector.demo import SALES_WIDGET_ID as WIDGET
from connector.redis_server import RedisServer
from connector.web.public_limits import frame_limited

CARD_RULE = r"\b\d(?:[ -]?\d){12,18}\b"
MESSAGE_CHARS = 4000


def _per_call_us(run: Callable[[], object], seconds: float) -> float:
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        run()
        calls += 1
    return elapsed / calls * 1e6


def _message() -> str:
    rng = random.Random(12)
    words = ["order", "4111 1111 1111 1111", "card", "1042", "please", "thanks", "+4670004471"]
    text = ""
    while len(text) < MESSAGE_CHARS:
        text += rng.choice(words) + " "
    return text[:MESSAGE_CHARS]


def masking(seconds: float) -> dict[str, float]:
    text = _message()
    figures: dict[str, float] = {}
    for count in (1, 5, 20):
        # Distinct patterns (each compiled once and cached), all card-number-like.
        rules = (CARD_RULE, *(rf"\b{n}\d{{6,9}}\b" for n in range(count - 1)))
        for rule in rules:
            check_pattern(rule)
        figures[f"mask_{count}_rules_us"] = _per_call_us(partial(mask_text, rules, text), seconds)
    evil = "a" * MESSAGE_CHARS + "!"
    figures["catastrophic_pattern_us"] = _per_call_us(
        lambda: mask_text((r"(a+)+$",), evil), seconds
    )
    return figures


def _counted(app: Any) -> Callable[[], object]:
    """One chat start from a new address each call, as many visitors make them."""
    calls = iter(range(1 << 30))

    def run() -> object:
        n = next(calls)
        return frame_limited(
            app, "chat.start", WIDGET, f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        )

    return run


def start_limits(seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        redis_server = RedisServer(Path(folder) / "redis")
        redis_server.start()
        try:
            for storage, url in (("memory", None), ("redis", redis_server.url)):
                config: dict[str, Any] = {
                    "data_dir": Path(folder) / storage,
                    "log_level": "WARNING",
                    # Never refused here: the bench measures the counting, not a refusal.
                    "chat_start_limit_per_address": "1000000/hour",
                    "chat_start_limit_per_widget": "1000000/hour",
                }
                if url is not None:
                    config["redis_url"] = url
                app = create_app(config, start=False)
                try:
                    figures[f"chat_start_limit_{storage}_us"] = _per_call_us(_counted(app), seconds)
                finally:
                    stop_app(app)
        finally:
            redis_server.stop()
    return figures


def _finished_chats(live: Any, count: int, ended_at: datetime) -> None:
    for n in range(count):
        cid = f"c{n:06d}"
        c = Conversation(
            cid,
            ConversationKind.VISITOR,
            ConversationState.ACTIVE,
            ended_at - timedelta(minutes=10),
            widget_id=WIDGET,
            visitor_id=f"visitor-{n:06d}",
        )
        live.save_conversation(c)
        for seq in range(1, 11):
            text = "my card is **** **** **** ****" if seq == 1 else f"message {seq}"
            live.add_message(
                c, Message(cid, seq, f"m{seq}", SenderKind.VISITOR, "v", "Vera", text, ended_at)
            )
        live.save_attachment(cid, "f1", b"x" * 1024)
        c.state, c.ended_at, c.finished = ConversationState.ENDED, ended_at, True
        live.save_conversation(c)


def live_retention(chats: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        redis_server = RedisServer(Path(folder) / "redis")
        redis_server.start()
        try:
            stores = {
                "sqlite": SqliteLiveState(Path(folder) / "live.sqlite"),
                "redis": RedisLiveState.from_url(redis_server.url, prefix="bench:"),
            }
            for name, live in stores.items():
                _finished_chats(live, chats, now - timedelta(days=3))
                for due, days in (("none_due", 30), ("all_due", 2)):
                    start = time.perf_counter()
                    dropped = drop_live_chats(
                        live, now=now, widget_days={WIDGET: days}, account_days={}
                    )
                    figures[f"live_retention_{name}_{due}_ms"] = (time.perf_counter() - start) * 1e3
                    assert dropped == (chats if due == "all_due" else 0)
                live.close()
        finally:
            redis_server.stop()
    figures["live_retention_chats"] = chats
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per figure")
    parser.add_argument("--chats", type=int, default=1000, help="finished chats in the store")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    figures: dict[str, Any] = {"load_average_1min": round(load, 2)}
    figures.update(masking(args.seconds))
    figures.update(start_limits(args.seconds))
    figures.update(live_retention(args.chats))
    for name, value in figures.items():
        print(f"{name:34} {value:12.1f}")
    print(json.dumps({k: round(v, 1) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
