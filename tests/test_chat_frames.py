"""Frame validation and the per-connection rate limit."""

from __future__ import annotations

import json

import pytest

from connector.chat.frames import (
    MAX_FRAME_BYTES,
    ChatStart,
    FrameError,
    TokenBucket,
    VisitorSend,
    parse_agent_frame,
    parse_visitor_frame,
)

WIDGET = "20000000-0000-0000-0000-00000000000A"


def code_of(raw: str) -> str:
    with pytest.raises(FrameError) as caught:
        parse_visitor_frame(raw)
    return caught.value.code


def test_good_frames_parse_into_their_models() -> None:
    frame = parse_visitor_frame('{"type":"message.send","client_id":"c-1","text":"  hi  "}')
    assert frame == VisitorSend(type="message.send", client_id="c-1", text="hi")
    hello = parse_visitor_frame(
        json.dumps({"type": "hello", "widget_id": WIDGET, "visitor_id": "visitor-1"})
    )
    assert hello.widget_id == WIDGET.lower()
    start = parse_visitor_frame('{"type":"chat.start","client_id":"s","fields":{"firstname":"A"}}')
    assert isinstance(start, ChatStart) and start.fields == {"firstname": "A"}


def test_bad_frames_are_refused_with_the_protocol_codes() -> None:
    assert code_of("not json") == "invalid_input"
    assert code_of("[1, 2]") == "invalid_input"
    assert code_of('{"type":"no.such"}') == "invalid_input"
    assert code_of('{"type":"message.send","client_id":"c","text":"   "}') == "invalid_input"
    too_long = json.dumps({"type": "message.send", "client_id": "c", "text": "x" * 4001})
    assert code_of(too_long) == "invalid_input"
    longest = json.dumps({"type": "message.send", "client_id": "c", "text": "x" * 4000})
    assert parse_visitor_frame(longest).text == "x" * 4000
    assert code_of('{"type":"message.send","client_id":"bad id!","text":"x"}') == "invalid_input"
    assert code_of('{"type":"chat.rate","rating":6}') == "invalid_input"
    fields = {f"f{n}": "x" for n in range(21)}
    assert (
        code_of(json.dumps({"type": "chat.start", "client_id": "s", "fields": fields}))
        == "invalid_input"
    )
    big_value = {"firstname": "x" * 501}
    assert (
        code_of(json.dumps({"type": "chat.start", "client_id": "s", "fields": big_value}))
        == "invalid_input"
    )
    assert code_of(json.dumps({"type": "ping", "pad": "x" * MAX_FRAME_BYTES})) == "frame_too_large"


def test_an_error_names_the_frame_it_answers() -> None:
    with pytest.raises(FrameError) as caught:
        parse_visitor_frame('{"type":"message.send","client_id":"abc","text":""}')
    assert caught.value.ref == "abc"
    with pytest.raises(FrameError) as caught:
        parse_agent_frame('{"type":"chat.accept","conversation_id":"nope"}')
    assert caught.value.ref == "chat.accept"


def test_the_bucket_allows_a_burst_then_ten_a_second() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=20, clock=lambda: now[0])
    assert all(bucket.take() for _ in range(20))
    assert not bucket.take()
    assert bucket.retry_after_ms() == 100
    now[0] += 0.5
    assert sum(bucket.take() for _ in range(10)) == 5
