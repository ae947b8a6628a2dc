"""The hub: fan-out to channels, one frame per subscriber, dead sockets dropped."""

from __future__ import annotations

import json

from connector.chat.hub import Hub, Subscriber


def test_an_event_reaches_each_subscriber_of_its_channels_once_in_order() -> None:
    hub = Hub()
    got: list[str] = []
    both = Subscriber(got.append)
    hub.subscribe("agent:a", both)
    hub.subscribe("chat:c", both)
    assert hub.publish({"type": "x", "n": 1}, {"agent:a", "chat:c", "agent:nobody"}) == 1
    hub.publish({"type": "x", "n": 2}, {"chat:c"})
    hub.flush()
    assert [json.loads(text)["n"] for text in got] == [1, 2]


def test_a_subscriber_whose_send_fails_is_dropped_everywhere() -> None:
    hub = Hub()

    def broken(text: str) -> None:
        raise OSError("socket closed")

    hub.subscribe("agent:a", Subscriber(broken))
    hub.subscribe("widget:w", Subscriber(broken))
    hub.publish({"type": "x"}, {"agent:a", "widget:w"})
    hub.flush()
    assert hub.subscribers("agent:a") == 0 and hub.subscribers("widget:w") == 0


def test_text_goes_out_as_is_never_as_markup() -> None:
    hub = Hub()
    got: list[str] = []
    hub.subscribe("c", Subscriber(got.append))
    hub.publish({"type": "message.created", "text": "<b>hi</b> & ünïcode"}, {"c"})
    hub.flush()
    assert json.loads(got[0])["text"] == "<b>hi</b> & ünïcode"
