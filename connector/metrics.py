"""Prometheus metrics (prometheus-client), served at `/metrics`.

Counters and the histogram live in one process-wide registry and are updated where the
thing happens (the hub relays a message, the Dataverse client gets an answer). Gauges of
current state (open sockets, chats by state, outbox, Directory age) are read from the
app when Prometheus scrapes, so they are never stale and cost nothing between scrapes.
On Redis (`CRMCHAT_REDIS_URL`) chats by state and the outbox are the shared state's, the
same figure on every process; open sockets are this process's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from connector.services import services_of

__all__ = [
    "DATAVERSE_REQUESTS",
    "MESSAGES_RELAYED",
    "REGISTRY",
    "RELAY_SECONDS",
    "observe_dataverse_response",
    "render",
]

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()

MESSAGES_RELAYED = Counter(
    "crmchat_messages_relayed",
    "Chat messages relayed to the other side's sockets.",
    registry=REGISTRY,
)
RELAY_SECONDS = Histogram(
    "crmchat_relay_latency_seconds",
    "From a message being published to it being written to every recipient's socket.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
DATAVERSE_REQUESTS = Counter(
    "crmchat_dataverse_requests",
    "Requests the service sent to Dataverse, by HTTP status (429: service protection).",
    ["status"],
    registry=REGISTRY,
)


def observe_dataverse_response(response: Any, *_args: Any, **_kwargs: Any) -> Any:
    """A `requests` response hook: count the answer by status."""
    DATAVERSE_REQUESTS.labels(status=str(response.status_code)).inc()
    return response


class _AppState(Collector):
    """Gauges read from one app's engine, outbox and Directory at scrape time."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from connector.web import open_sockets

        sockets = GaugeMetricFamily(
            "crmchat_open_sockets", "Websockets open on this process, by kind.", labels=["kind"]
        )
        counts = open_sockets.counts()
        for kind in ("visitor", "agent"):
            sockets.add_metric([kind], counts.get(kind, 0))
        yield sockets

        services = services_of(self._app)
        chats = GaugeMetricFamily(
            "crmchat_chats", "Chats not yet written to CRM, by state.", labels=["state"]
        )
        outbox: Any = services.outbox  # OutboxLike promises only enqueue; both outboxes count
        parked = getattr(outbox, "parked", None)
        by_state = getattr(services.engine.state, "unfinished_by_state", None)
        by_state_now: dict[str, int] = {}
        pending: int | None = None
        parked_count: int | None = None
        try:
            by_state_now = by_state() if by_state else {}
            pending, parked_count = outbox.pending(), len(parked()) if parked else 0
        except redis.RedisError:
            # On Redis these are Redis reads: while it is away the gauges are left out
            # (absent, not a false zero) and the rest of the page still answers.
            log.debug("metrics: the shared live state is unreachable", exc_info=True)
        for state, count in sorted(by_state_now.items()):
            chats.add_metric([state], count)
        yield chats

        if pending is not None and parked_count is not None:
            yield GaugeMetricFamily(
                "crmchat_outbox_pending", "Dataverse writes waiting in the outbox.", pending
            )
            yield GaugeMetricFamily(
                "crmchat_outbox_parked",
                "Outbox items that failed permanently and wait for an admin.",
                parked_count,
            )
        age = getattr(services.directory, "age_secs", None)
        seconds = age() if age else None
        yield GaugeMetricFamily(
            "crmchat_directory_age_seconds",
            "Seconds since the CRM configuration snapshot was read (-1: never).",
            -1.0 if seconds is None else seconds,
        )


def render(app: Any) -> bytes:
    """The text exposition of the process-wide metrics and `app`'s gauges."""
    state = CollectorRegistry()
    state.register(_AppState(app))
    return generate_latest(REGISTRY) + generate_latest(state)
