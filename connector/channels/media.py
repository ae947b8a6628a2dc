"""A channel attachment's bytes: what a note on the chat activity needs.

- Messenger, Instagram and Viber put a URL in the webhook (Meta's CDN, Viber's
  dl-media); it is fetched as it is, without credentials.
- WhatsApp puts a media id: `GET /<version>/<media id>` with the account's token answers
  `{"messaging_product", "url", "mime_type", "sha256", "file_size", "id"}`, and the `url`
  (valid for 5 minutes) is fetched with the same token; the bytes must match `sha256`.

`inbound_files` turns a person's message into the chat's files (pictures, documents,
stickers): fetched, then held to the same rules as a web chat's upload
(`connector.crm.attachments.check_file`: the note's size limit, Dataverse's blocked
types, no programs), so each becomes a note on the chat activity like a web chat's file.
What is not kept (a video, too large, unreachable) stays a line with the reason.

Only https addresses are fetched (and, with a plain-http Graph base, the simulator's
pictures), so a webhook cannot make the service call into its own network,
and at most MAX_MEDIA_BYTES are read. Sources in docs/channels.md.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote, unquote, urlsplit

import requests

from connector.crm.attachments import (
    MAX_ATTACHMENT_KB,
    TYPES,
    AttachmentRefused,
    check_file,
    extension_of,
)

from .errors import ChannelError, ChannelUnreachable, InvalidRequest
from .model import Attachment, AttachmentKind, ChannelAccount, ChannelType, InboundEvent
from .send import REQUEST_TIMEOUT_SECS, MetaSendClient, _json, _post, meta_error

__all__ = ["MAX_MEDIA_BYTES", "InboundFile", "Media", "fetch_media", "inbound_files"]

log = logging.getLogger(__name__)

# WhatsApp caps images at 5 MB and audio/video at 16 MB (documents at 100 MB): 16 MiB
# keeps every image and most recordings; a larger file stays a link in the transcript.
MAX_MEDIA_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Media:
    data: bytes
    mime_type: str


def fetch_media(
    meta: MetaSendClient,
    account: ChannelAccount,
    attachment: Attachment,
    *,
    max_bytes: int = MAX_MEDIA_BYTES,
) -> Media:
    """The attachment's bytes and type.

    Raises InvalidRequest (no address, not https, too large, a hash mismatch) and the
    Graph errors of the media node (e.g. CredentialsRejected), ChannelUnreachable."""
    channel = account.channel
    if attachment.media_id and channel is ChannelType.WHATSAPP:
        if account.access_token is None:
            raise InvalidRequest(channel, "The account has no access token.")
        headers = {"Authorization": f"Bearer {account.access_token.get_secret_value()}"}
        node = f"{meta.base_url}/{meta.api_version}/{quote(attachment.media_id, safe='')}"
        response = _post(meta.session, channel, node, None, headers)
        body = _json(response)
        if response.status_code != 200:
            raise meta_error(channel, response.status_code, body, response.headers)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise InvalidRequest(channel, "Meta's media answer has no url.")
        data = _download(meta, channel, body["url"], headers, max_bytes)
        expected = str(body.get("sha256") or "")
        if len(expected) == 64 and hashlib.sha256(data).hexdigest() != expected.lower():
            raise InvalidRequest(channel, "The media does not match its sha256.")
        mime = str(body.get("mime_type") or attachment.mime_type or "application/octet-stream")
        return Media(data, mime)
    if not attachment.url:
        raise InvalidRequest(channel, "The attachment has no address.")
    data = _download(meta, channel, attachment.url, {}, max_bytes)
    return Media(data, attachment.mime_type or "application/octet-stream")


def _simulator_media(meta: MetaSendClient) -> tuple[str, ...]:
    """The simulator's pictures, when the Graph base is a plain-http one (the embedded
    default and tests; the real Graph API is https, so nothing else is ever allowed)."""
    if not meta.base_url.startswith("http://"):
        return ()
    parts = urlsplit(meta.base_url)
    return (f"{parts.scheme}://{parts.netloc}/simulator/media/",)


def _download(
    meta: MetaSendClient,
    channel: ChannelType,
    url: str,
    headers: dict[str, str],
    max_bytes: int,
) -> bytes:
    if not url.startswith(("https://", *_simulator_media(meta))):
        raise InvalidRequest(channel, "Only https media addresses are fetched.")
    try:
        with meta.session.get(
            url, headers=headers, timeout=REQUEST_TIMEOUT_SECS, stream=True
        ) as response:
            if response.status_code != 200:
                raise InvalidRequest(channel, f"The media answered {response.status_code}.")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise InvalidRequest(channel, f"The media is larger than {max_bytes} bytes.")
            data = bytearray()
            for chunk in response.iter_content(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise InvalidRequest(channel, f"The media is larger than {max_bytes} bytes.")
            return bytes(data)
    except requests.RequestException as error:
        raise ChannelUnreachable(channel, "The media could not be fetched.") from error


# What a person sends as a file of the chat; a location is a place, not a file.
FILE_KINDS = frozenset(
    {
        AttachmentKind.IMAGE,
        AttachmentKind.VIDEO,
        AttachmentKind.AUDIO,
        AttachmentKind.FILE,
        AttachmentKind.STICKER,
    }
)
# The extension a content type is stored under (the first one TYPES gives it).
_EXTENSIONS = {mime: ext for ext, mime in reversed(list(TYPES.items()))}


@dataclass(frozen=True)
class InboundFile:
    """One attachment of a person's message, fetched and taken as a chat file."""

    index: int  # its place in the event's attachments
    name: str
    type: str
    data: bytes


def _file_name(attachment: Attachment, mime: str, index: int) -> str:
    """The platform's file name (WhatsApp documents, Viber files), else the last part of
    its URL (Meta's and Viber's CDN addresses end in the file's name), with the extension
    its type has when the name lacks one; else "<kind>-<n>.<ext>" (a WhatsApp picture)."""
    extension = _EXTENSIONS.get(mime.split(";")[0].strip().lower(), "")
    name = (attachment.name or "").strip()
    if not name and attachment.url:
        last = unquote(PurePosixPath(urlsplit(attachment.url).path).name)
        name = last if extension_of(last) in TYPES else ""
    if not name:
        name = f"{attachment.kind.value}-{index + 1}"
    if extension and extension_of(name) not in TYPES:
        name = f"{name}.{extension}"
    return name


def inbound_files(
    meta: MetaSendClient, account: ChannelAccount, event: InboundEvent
) -> tuple[list[InboundFile], dict[int, str]]:
    """The message's attachments that become files of the chat, and for each other one
    that could have been, why not ("not kept: …"). Network calls: run it outside the
    engine's lock (the intake thread)."""
    files: list[InboundFile] = []
    refused: dict[int, str] = {}
    for index, attachment in enumerate(event.attachments):
        if attachment.kind not in FILE_KINDS or not (attachment.url or attachment.media_id):
            continue  # a location, or a Viber sticker (an id only)
        try:
            media = fetch_media(meta, account, attachment, max_bytes=MAX_ATTACHMENT_KB * 1024)
            name, content_type = check_file(
                _file_name(attachment, media.mime_type, index),
                media.mime_type,
                media.data,
                enabled=True,
                max_kb=MAX_ATTACHMENT_KB,
                types=tuple(TYPES),
            )
        except (ChannelError, AttachmentRefused) as error:
            reason = error.message if isinstance(error, ChannelError) else str(error)
            log.info(
                "channel attachment not kept",
                extra={"channel": account.channel.value, "kind": attachment.kind.value},
            )
            refused[index] = reason
            continue
        files.append(InboundFile(index, name, content_type, media.data))
    return files, refused
