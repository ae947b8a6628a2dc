"""A channel attachment's bytes, fetched as the platforms hand them over: WhatsApp's media
id through GET /<media id> (the simulator answers as the Cloud API), a Messenger URL as
it is; limits and refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from flask import Flask
from pydantic import SecretStr
from werkzeug.serving import make_server

from connector.channels import simulator
from connector.channels.accounts import demo_accounts
from connector.channels.errors import CredentialsRejected, InvalidRequest
from connector.channels.media import fetch_media
from connector.channels.meta_payloads import parse_meta_webhook
from connector.channels.model import Attachment, AttachmentKind, ChannelType
from connector.channels.send import MetaSendClient
from connector.channels.wire import meta_message_body
from connector.web import errors


@pytest.fixture
def platform() -> Iterator[tuple[str, Flask]]:
    app = Flask("platform")
    errors.init_app(app)
    # The platform knows the accounts' secrets (demo_accounts makes new ones each call).
    simulator.init_app(app, service_url="http://127.0.0.1:9", accounts=demo_accounts())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()


def test_a_whatsapp_picture_is_fetched_through_its_media_id(platform: tuple[str, Flask]) -> None:
    url, app = platform
    whatsapp = app.extensions["crmchat.simulator"]["accounts"].get("demo-whatsapp")
    assert whatsapp is not None
    meta = MetaSendClient(url + simulator.GRAPH_PATH)
    # The person sends a picture on the simulator: the webhook carries a media id.
    sent = requests.post(
        url + "/simulator/api/person-message",
        json={
            "account": whatsapp.key,
            "person_id": "4670001",
            "person_name": "Pat",
            "image_url": url + simulator.SAMPLE_IMAGE_PATH,
        },
        timeout=10,
    )
    assert sent.status_code == 200, sent.text
    (media_id,) = app.extensions["crmchat.simulator"]["state"].media
    body = meta_message_body(
        whatsapp,
        person_id="4670001",
        person_name="Pat",
        message_id="wamid.1",
        at=datetime.now(UTC),
        image_url=media_id,
    )
    (event,) = parse_meta_webhook(whatsapp, body)
    (attachment,) = event.attachments
    assert attachment.media_id == media_id and attachment.url is None

    media = fetch_media(meta, whatsapp, attachment)
    assert media.data == simulator.SAMPLE_PNG and media.mime_type == "image/png"

    # Another token is refused by Graph, as Meta does.
    stranger = whatsapp.model_copy(update={"access_token": SecretStr("not-the-token")})
    with pytest.raises(CredentialsRejected):
        fetch_media(meta, stranger, attachment)
    # Too large for the limit: refused, not read in full.
    with pytest.raises(InvalidRequest, match="larger"):
        fetch_media(meta, whatsapp, attachment, max_bytes=10)


def test_a_messenger_url_is_fetched_and_only_https_or_the_simulator(
    platform: tuple[str, Flask],
) -> None:
    url, app = platform
    messenger = app.extensions["crmchat.simulator"]["accounts"].get("demo-messenger")
    assert messenger is not None
    meta = MetaSendClient(url + simulator.GRAPH_PATH)
    picture = Attachment(kind=AttachmentKind.IMAGE, url=url + simulator.SAMPLE_IMAGE_PATH)
    assert fetch_media(meta, messenger, picture).data == simulator.SAMPLE_PNG
    # A webhook cannot make the service fetch from its own network over plain http.
    inside = Attachment(kind=AttachmentKind.IMAGE, url="http://10.0.0.5/admin")
    with pytest.raises(InvalidRequest, match="https"):
        fetch_media(meta, messenger, inside)
    elsewhere = Attachment(kind=AttachmentKind.IMAGE, url=url + "/simulator/api/accounts")
    with pytest.raises(InvalidRequest, match="https"):
        fetch_media(meta, messenger, elsewhere)
    # With the real Graph API's https base, no plain-http address is fetched at all.
    real = MetaSendClient("https://graph.facebook.com")
    with pytest.raises(InvalidRequest, match="https"):
        fetch_media(real, messenger, picture)
    assert messenger.channel is ChannelType.MESSENGER
