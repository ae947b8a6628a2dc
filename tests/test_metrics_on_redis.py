"""`/metrics` on Redis (`CRMCHAT_REDIS_URL`): chats by state come from the shared state,
and a Redis that went away leaves those gauges out instead of failing the page."""

from __future__ import annotations

from pathlib import Path

from chat_fakes import FakeDirectory
from redis_fixture import redis_server  # noqa: F401 - a fixture
from test_chat_state import conversation
from test_observability import _metric

from connector.app import create_app, stop_app
from connector.chat.model import ConversationState
from connector.chat.redis_state import RedisLiveState
from connector.redis_server import RedisServer


def test_chats_by_state_are_the_shared_states_and_survive_a_redis_outage(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811 - the fixture imported above
) -> None:
    app = create_app(
        {"data_dir": tmp_path / "data", "secret_key": "m" * 40, "demo": False}
        | {"redis_url": redis_server.url},
        directory=FakeDirectory(),
        start=False,  # the outbox is the real shared one (RedisOutbox), not started
    )
    # Another process's chats: written straight to the shared state, not through this app.
    other = RedisLiveState.from_url(redis_server.url)
    try:
        waiting = conversation("c-waiting")
        waiting.state = ConversationState.WAITING
        for c in (waiting, conversation("c-active-1"), conversation("c-active-2")):
            other.save_conversation(c)
        client = app.test_client()
        text = client.get("/metrics").get_data(as_text=True)
        assert _metric(text, "crmchat_chats", 'state="waiting"') == 1
        assert _metric(text, "crmchat_chats", 'state="active"') == 2
        assert _metric(text, "crmchat_outbox_pending") == 0

        redis_server.kill()
        answer = client.get("/metrics")
        assert answer.status_code == 200
        text = answer.get_data(as_text=True)
        assert "crmchat_chats{" not in text  # absent, not a false zero
        assert "crmchat_outbox_pending " not in text
        assert _metric(text, "crmchat_open_sockets", 'kind="visitor"') == 0
    finally:
        other.close()
        stop_app(app)
