"""The send clients on the platforms' wire format (`responses`): request shapes, the
documented error bodies mapped to typed errors, retries only when they can succeed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from connector.channels import (
    ChannelType,
    CredentialsRejected,
    NotSubscribed,
    OutsideWindow,
    RateLimited,
    RecipientUnavailable,
    WhatsAppTemplate,
    demo_accounts,
    reply_window,
)
from connector.channels.errors import ChannelUnreachable
from connector.channels.replies import ChannelClients, do_channel_reply

GRAPH = "https://graph.test"
VIBER = "https://viber.test"
NOW = datetime.now(UTC)
ACCOUNTS = demo_accounts()
MESSENGER = ACCOUNTS.get("demo-messenger")
WHATSAPP = ACCOUNTS.get("demo-whatsapp")
VIBER_BOT = ACCOUNTS.get("demo-viber")
assert MESSENGER and WHATSAPP and VIBER_BOT


def clients() -> ChannelClients:
    return ChannelClients.for_urls(meta_graph_url=GRAPH, viber_api_url=VIBER)


def graph_url(platform_id: str) -> str:
    return f"{GRAPH}/v21.0/{platform_id}/messages"


def graph_error(code: int, message: str, subcode: int | None = None) -> dict[str, object]:
    error: dict[str, object] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "Ab",
    }
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


@responses.activate
def test_messenger_reply_inside_the_window_then_human_agent_tagged_after_it() -> None:
    assert MESSENGER and MESSENGER.access_token
    responses.post(
        graph_url(MESSENGER.platform_id), json={"recipient_id": "P1", "message_id": "m_out"}
    )
    recent = reply_window(ChannelType.MESSENGER, last_inbound_at=NOW - timedelta(hours=1), now=NOW)
    sent = do_channel_reply(clients(), MESSENGER, "P1", recent, text="Hello")
    assert sent.message_id == "m_out"
    older = reply_window(ChannelType.MESSENGER, last_inbound_at=NOW - timedelta(days=2), now=NOW)
    do_channel_reply(clients(), MESSENGER, "P1", older, text="Sorry for the wait")

    first, second = (json.loads(call.request.body) for call in responses.calls)
    assert first == {
        "recipient": {"id": "P1"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hello"},
    }
    assert second["messaging_type"] == "MESSAGE_TAG" and second["tag"] == "HUMAN_AGENT"
    request = responses.calls[0].request
    token = MESSENGER.access_token.get_secret_value()
    assert request.headers["Authorization"] == f"Bearer {token}"
    assert token not in str(request.url)  # tokens stay out of URLs (and so out of logs)


@responses.activate
def test_a_reply_the_rules_refuse_is_never_sent() -> None:
    assert MESSENGER and WHATSAPP and VIBER_BOT
    closed = reply_window(ChannelType.MESSENGER, last_inbound_at=NOW - timedelta(days=8), now=NOW)
    with pytest.raises(OutsideWindow):
        do_channel_reply(clients(), MESSENGER, "P1", closed, text="hi")
    stale = reply_window(ChannelType.WHATSAPP, last_inbound_at=NOW - timedelta(days=2), now=NOW)
    with pytest.raises(OutsideWindow):
        do_channel_reply(clients(), WHATSAPP, "155", stale, text="hi")
    gone = reply_window(ChannelType.VIBER, last_inbound_at=None, now=NOW)
    with pytest.raises(NotSubscribed):
        do_channel_reply(clients(), VIBER_BOT, "V1", gone, text="hi")
    assert len(responses.calls) == 0


@responses.activate
def test_whatsapp_template_outside_the_window() -> None:
    assert WHATSAPP
    responses.post(
        graph_url(WHATSAPP.platform_id),
        json={
            "messaging_product": "whatsapp",
            "contacts": [{"input": "155", "wa_id": "155"}],
            "messages": [{"id": "wamid.T1"}],
        },
    )
    stale = reply_window(ChannelType.WHATSAPP, last_inbound_at=NOW - timedelta(days=2), now=NOW)
    template = WhatsAppTemplate(name="follow_up", language="en_US", parameters=("Pat",))
    sent = do_channel_reply(clients(), WHATSAPP, "155", stale, template=template)
    assert sent.message_id == "wamid.T1"
    body = json.loads(responses.calls[0].request.body)
    assert body["type"] == "template" and body["to"] == "155"
    assert body["messaging_product"] == "whatsapp"
    assert body["template"]["name"] == "follow_up"


@responses.activate
@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (
            graph_error(10, "(#10) This message is sent outside of allowed window.", 2018278),
            OutsideWindow,
            "10/2018278",
        ),
        (
            graph_error(551, "This person isn't available right now.", 1545041),
            RecipientUnavailable,
            "551/1545041",
        ),
        (graph_error(190, "Invalid OAuth access token."), CredentialsRejected, "190"),
    ],
)
def test_graph_errors_are_typed(
    error: dict[str, object], expected: type[Exception], code: str
) -> None:
    assert MESSENGER
    responses.post(graph_url(MESSENGER.platform_id), json=error, status=400)
    with pytest.raises(expected) as raised:
        clients().meta.send_text(MESSENGER, "P1", "hi")
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert len(responses.calls) == 1


@responses.activate
def test_a_long_rate_limit_is_reported_with_its_wait_and_not_waited_out() -> None:
    assert MESSENGER
    usage = json.dumps(
        {
            MESSENGER.platform_id: [
                {"type": "messenger", "call_count": 100, "estimated_time_to_regain_access": 3}
            ]
        }
    )
    responses.post(
        graph_url(MESSENGER.platform_id),
        status=400,
        json=graph_error(613, "(#613) Calls to this api have exceeded the rate limit."),
        headers={"X-Business-Use-Case-Usage": usage},
    )
    with pytest.raises(RateLimited) as raised:
        clients().meta.send_text(MESSENGER, "P1", "hi")
    assert raised.value.retry_after == 180  # three minutes
    assert len(responses.calls) == 1


@responses.activate
def test_a_short_retry_after_is_waited_out_and_sent_once() -> None:
    assert WHATSAPP
    url = graph_url(WHATSAPP.platform_id)
    responses.post(
        url,
        status=400,
        json=graph_error(130429, "(#130429) Rate limit hit"),
        headers={"Retry-After": "0"},
    )
    responses.post(url, json={"messaging_product": "whatsapp", "messages": [{"id": "wamid.R"}]})
    sent = clients().meta.send_whatsapp_text(WHATSAPP, "155", "hi")
    assert sent.message_id == "wamid.R"
    assert len(responses.calls) == 2


@responses.activate
def test_a_timeout_after_sending_is_not_retried_but_a_refused_connection_is() -> None:
    assert WHATSAPP
    url = graph_url(WHATSAPP.platform_id)
    responses.post(url, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(ChannelUnreachable) as raised:
        clients().meta.send_whatsapp_text(WHATSAPP, "155", "hi")
    assert raised.value.never_sent is False
    assert len(responses.calls) == 1  # it may have been delivered: never sent twice

    responses.replace(responses.POST, url, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(ChannelUnreachable) as raised:
        clients().meta.send_whatsapp_text(WHATSAPP, "155", "hi")
    assert raised.value.never_sent is True
    assert len(responses.calls) == 1 + 3


@responses.activate
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"status": 6, "status_message": "receiverNotSubscribed"}, NotSubscribed),
        ({"status": 12, "status_message": "Too many requests"}, RateLimited),
        ({"status": 2, "status_message": "invalidAuthToken"}, CredentialsRejected),
    ],
)
def test_viber_statuses_are_typed(answer: dict[str, object], expected: type[Exception]) -> None:
    assert VIBER_BOT and VIBER_BOT.auth_token
    responses.post(
        f"{VIBER}/pa/send_message",
        json={**answer, "message_token": 1, "chat_hostname": "SN-CHAT-01_"},
    )
    with pytest.raises(expected):
        clients().viber.send_text(VIBER_BOT, "V1==", "hi")
    assert len(responses.calls) == 1


@responses.activate
def test_viber_send_shape() -> None:
    assert VIBER_BOT and VIBER_BOT.auth_token
    responses.post(
        f"{VIBER}/pa/send_message",
        json={
            "status": 0,
            "status_message": "ok",
            "message_token": 5741311803571721087,
            "chat_hostname": "SN-CHAT-05_",
        },
    )
    subscribed = reply_window(ChannelType.VIBER, last_inbound_at=None, now=NOW, subscribed=True)
    sent = do_channel_reply(clients(), VIBER_BOT, "V1==", subscribed, text="Hello")
    assert sent.message_id == "5741311803571721087"
    request = responses.calls[0].request
    assert request.headers["X-Viber-Auth-Token"] == VIBER_BOT.auth_token.get_secret_value()
    assert json.loads(request.body) == {
        "receiver": "V1==",
        "min_api_version": 1,
        "sender": {"name": "Contoso"},
        "type": "text",
        "text": "Hello",
    }


@responses.activate
def test_test_connection_reads_the_accounts_own_node_and_types_a_bad_token() -> None:
    assert MESSENGER and MESSENGER.access_token and WHATSAPP
    node = f"{GRAPH}/v21.0/{MESSENGER.platform_id}"
    responses.get(node, json={"id": MESSENGER.platform_id, "name": "Contoso"})
    assert clients().meta.check_account(MESSENGER) == "Contoso"
    call = responses.calls[0].request
    assert call.url == f"{node}?fields=id%2Cname" or call.url == f"{node}?fields=id,name"
    assert call.headers["Authorization"] == f"Bearer {MESSENGER.access_token.get_secret_value()}"

    responses.get(
        f"{GRAPH}/v21.0/{WHATSAPP.platform_id}",
        status=400,
        json=graph_error(190, "Error validating access token: Session has expired"),
    )
    with pytest.raises(CredentialsRejected) as rejected:
        clients().meta.check_account(WHATSAPP)
    assert rejected.value.code == "190"


@responses.activate
def test_viber_test_connection_is_get_account_info() -> None:
    assert VIBER_BOT and VIBER_BOT.auth_token
    responses.post(
        f"{VIBER}/pa/get_account_info",
        json={"status": 0, "status_message": "ok", "id": "pa:1", "name": "Contoso bot"},
    )
    assert clients().viber.check_account(VIBER_BOT) == "Contoso bot"
    token = VIBER_BOT.auth_token.get_secret_value()
    assert responses.calls[0].request.headers["X-Viber-Auth-Token"] == token
    responses.replace(
        responses.POST,
        f"{VIBER}/pa/get_account_info",
        json={"status": 2, "status_message": "invalidAuthToken"},
    )
    with pytest.raises(CredentialsRejected):
        clients().viber.check_account(VIBER_BOT)
