"""Files an agent sends to a channel person: what each platform takes, and the link it
fetches the file from.

Every platform's send API takes a file by URL (Messenger/Instagram `attachment.payload.url`,
WhatsApp `image.link` / `document.link`, Viber `media`), and Viber takes nothing else, so
one way serves all four: the service hands the platform a link to the file it already
keeps for the chat, `<service address>/channels/files/<token>/<name>`. The token is
signed with the service secret (itsdangerous, salt "crmchat-channel-file"), names the
chat and the file, and lives `FILE_LINK_SECS`: the platforms download when the send call
is made, and a leaked link stops working soon after. The name at the end is what Meta
shows as the file's name (it takes it from the URL's last segment).

Per platform (`FILE_RULES`): which extensions go as its picture type and which as its
file type, and the largest of each; a picture too large for the picture type goes as a
file where the file type takes it (Viber: pictures up to 1 MB). Sources in docs/channels.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeTimedSerializer

from connector.crm.attachments import MAX_ATTACHMENT_KB, extension_of

from .model import ChannelType

__all__ = [
    "FILE_LINK_SECS",
    "FILE_RULES",
    "FileLinks",
    "FileRules",
    "OutboundFile",
    "send_kind",
]

FILE_LINK_SECS = 60 * 60
_OFFICE = ("docx", "xlsx", "pptx")


@dataclass(frozen=True)
class FileRules:
    """What a platform takes from a business: extensions sent as a picture and as a file."""

    pictures: tuple[str, ...]
    picture_max_kb: int
    files: tuple[str, ...]
    file_max_kb: int

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.pictures + self.files))

    @property
    def max_kb(self) -> int:
        """The largest file the console offers (the note's limit caps every platform's)."""
        return min(MAX_ATTACHMENT_KB, max(self.picture_max_kb, self.file_max_kb))


FILE_RULES = {
    # Messenger: image/audio/video/file attachments, 25 MB (saving-assets page).
    ChannelType.MESSENGER: FileRules(
        ("jpg", "jpeg", "png", "gif"),
        25 * 1024,
        ("pdf", "txt", "csv", *_OFFICE, "zip"),
        25 * 1024,
    ),
    # Instagram: images (png, jpeg, gif) up to 8 MB; files: PDF up to 25 MB.
    ChannelType.INSTAGRAM: FileRules(("jpg", "jpeg", "png", "gif"), 8 * 1024, ("pdf",), 25 * 1024),
    # WhatsApp: images JPEG/PNG up to 5 MB; documents (PDF, text, Office) up to 100 MB.
    ChannelType.WHATSAPP: FileRules(
        ("jpg", "jpeg", "png"), 5 * 1024, ("pdf", "txt", *_OFFICE), 100 * 1024
    ),
    # Viber: pictures JPEG/PNG/GIF up to 1 MB; files up to 50 MB (pictures too, as files).
    ChannelType.VIBER: FileRules(
        ("jpg", "jpeg", "png", "gif"),
        1024,
        ("jpg", "jpeg", "png", "gif", "pdf", "txt", "csv", *_OFFICE, "zip"),
        50 * 1024,
    ),
}


@dataclass(frozen=True)
class OutboundFile:
    """A file of the chat as a platform's send call names it."""

    kind: Literal["picture", "file"]
    url: str
    name: str
    size: int


def send_kind(channel: ChannelType, name: str, size: int) -> Literal["picture", "file"] | None:
    """How `channel` takes the file: as its picture type, as a file, or not at all."""
    rules = FILE_RULES[channel]
    extension = extension_of(name)
    if extension in rules.pictures and size <= rules.picture_max_kb * 1024:
        return "picture"
    if extension in rules.files and size <= rules.file_max_kb * 1024:
        return "file"
    return None


class InvalidFileLink(Exception):
    """The link is forged, expired or not one of ours."""


class FileLinks:
    """Signed, short-lived links to a chat's files, for the platforms to fetch."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="crmchat-channel-file")
        self.base_url = base_url.rstrip("/")

    def link(self, conversation_id: str, attachment_id: str, name: str) -> str:
        token = self._serializer.dumps({"c": conversation_id, "a": attachment_id})
        return f"{self.base_url}/channels/files/{token}/{quote(name, safe='')}"

    def read(self, token: str) -> tuple[str, str]:
        """The chat and file the token names; InvalidFileLink otherwise."""
        try:
            claims = self._serializer.loads(token, max_age=FILE_LINK_SECS)
        except BadSignature as error:  # SignatureExpired is a BadSignature too
            raise InvalidFileLink("the file link is not valid") from error
        if not isinstance(claims, dict) or not {"c", "a"} <= claims.keys():
            raise InvalidFileLink("the file link is not valid")
        return str(claims["c"]), str(claims["a"])
