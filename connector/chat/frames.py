"""The frames clients send, as pydantic models with the limits of docs/protocol.md.

`parse_visitor_frame` / `parse_agent_frame` turn one websocket text frame into a typed
frame or raise `FrameError` (with the protocol's error code). A frame is checked for size
before it is parsed. `TokenBucket` is the per-connection rate limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from connector import json_input
from connector.chat.model import AgentStatus
from connector.crm.dispositions import MAX_DISPOSITION_CHARS

__all__ = [
    "GUID_PATTERN",
    "MAX_FIELDS",
    "MAX_FIELD_CHARS",
    "MAX_FRAME_BYTES",
    "MAX_TEXT_CHARS",
    "RATE_BURST",
    "RATE_PER_SEC",
    "AgentFrame",
    "FrameError",
    "TokenBucket",
    "VisitorFrame",
    "parse_agent_frame",
    "parse_visitor_frame",
]

# One chat message plus JSON overhead fits easily; anything bigger is not a chat frame.
MAX_FRAME_BYTES = 16 * 1024
# Long enough for a pasted paragraph or order list, short enough to read on a phone.
MAX_TEXT_CHARS = 4000
# A person types at most a few messages a second; a burst covers a resend after reconnect.
RATE_PER_SEC = 10.0
RATE_BURST = 20
MAX_FIELDS = 20
MAX_FIELD_CHARS = 500

ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
GUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
Guid = Annotated[str, StringConstraints(pattern=f"^{GUID_PATTERN.pattern}$", to_lower=True)]
VisitorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS)
]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,64}$")]
FieldValue = Annotated[str, StringConstraints(max_length=MAX_FIELD_CHARS)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Page(_Frame):
    url: str = Field(default="", max_length=2048)
    title: str = Field(default="", max_length=500)
    referrer: str = Field(default="", max_length=2048)


class Resume(_Frame):
    token: str = Field(min_length=1, max_length=1000)
    since_seq: int = Field(default=0, ge=0)


class IdentityIn(_Frame):
    token: str = Field(min_length=1, max_length=8192)


class Hello(_Frame):
    type: Literal["hello"]
    widget_id: Guid
    visitor_id: VisitorId
    page: Page = Page()
    resume: Resume | None = None
    identity: IdentityIn | None = None


class PageFrame(_Frame):
    type: Literal["page"]
    page: Page


class ChatStart(_Frame):
    type: Literal["chat.start"]
    client_id: ClientId
    fields: dict[FieldName, FieldValue] = Field(default_factory=dict, max_length=MAX_FIELDS)
    # Checked by `connector.chat.context` (its own error code, invalid_context).
    context: dict[str, Any] | None = None
    topic_id: Guid | None = None
    # The visitor ticked the widget's consent box (design privacy.consent_required).
    consent: bool = False


class TicketCreate(_Frame):
    type: Literal["ticket.create"]
    client_id: ClientId
    fields: dict[FieldName, FieldValue] = Field(default_factory=dict, max_length=MAX_FIELDS)
    message: Text


class VisitorSend(_Frame):
    type: Literal["message.send"]
    client_id: ClientId
    text: Text


class VisitorTyping(_Frame):
    type: Literal["typing"]
    on: bool


class VisitorRead(_Frame):
    type: Literal["message.read"]
    seq: int = Field(ge=1)
    # Optional: a visitor's connection has one chat; another id is refused (not_found).
    conversation_id: Guid | None = None


class VisitorEnd(_Frame):
    type: Literal["chat.end"]


class ChatRate(_Frame):
    type: Literal["chat.rate"]
    rating: int = Field(ge=1, le=5)


class Ping(_Frame):
    type: Literal["ping"]


VisitorFrame = Annotated[
    Hello
    | PageFrame
    | ChatStart
    | TicketCreate
    | VisitorSend
    | VisitorTyping
    | VisitorRead
    | VisitorEnd
    | ChatRate
    | Ping,
    Field(discriminator="type"),
]


class StatusSet(_Frame):
    type: Literal["status.set"]
    status: AgentStatus


class ChatAccept(_Frame):
    type: Literal["chat.accept"]
    conversation_id: Guid


class ChatReject(_Frame):
    type: Literal["chat.reject"]
    conversation_id: Guid


class AgentSend(_Frame):
    type: Literal["message.send"]
    conversation_id: Guid
    client_id: ClientId
    text: Text


class ChatResync(_Frame):
    type: Literal["chat.resync"]
    conversation_id: Guid
    since_seq: int = Field(ge=0)


class ChatInvite(_Frame):
    """An agent (`agent_id`), or whoever a topic's queue picks (`topic_id`): exactly one."""

    type: Literal["chat.invite"]
    conversation_id: Guid
    agent_id: Guid | None = None
    topic_id: Guid | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ChatInvite:
        if (self.agent_id is None) == (self.topic_id is None):
            raise ValueError("give agent_id or topic_id")
        return self


class ChatTransfer(_Frame):
    """To an agent (`agent_id`) or to a topic's queue (`topic_id`): exactly one."""

    type: Literal["chat.transfer"]
    conversation_id: Guid
    agent_id: Guid | None = None
    topic_id: Guid | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ChatTransfer:
        if (self.agent_id is None) == (self.topic_id is None):
            raise ValueError("give agent_id or topic_id")
        return self


class AgentEnd(_Frame):
    type: Literal["chat.end"]
    conversation_id: Guid
    # Required when the chat's topics define dispositions (connector/chat/dispositions.py).
    disposition: str | None = Field(default=None, max_length=MAX_DISPOSITION_CHARS)


class ChatPostpone(_Frame):
    type: Literal["chat.postpone"]
    conversation_id: Guid
    # ISO 8601 with a zone ("2026-12-02T15:00:00Z"): a time without one is ambiguous.
    until: AwareDatetime


class AgentRead(_Frame):
    type: Literal["message.read"]
    conversation_id: Guid
    seq: int = Field(ge=1)


class ChatImportant(_Frame):
    type: Literal["chat.important"]
    conversation_id: Guid
    important: bool  # the state wanted, not a toggle: a repeated frame changes nothing


class AgentChatStart(_Frame):
    type: Literal["agentchat.start"]
    agent_id: Guid


class ConsultStart(_Frame):
    type: Literal["consult.start"]
    conversation_id: Guid  # the visitor chat to ask about
    agent_id: Guid


class SupervisorJoin(_Frame):
    type: Literal["supervisor.join"]
    conversation_id: Guid


class ChatLabels(_Frame):
    type: Literal["chat.labels"]
    conversation_id: Guid
    label_ids: list[Guid] = Field(max_length=50)


class AgentTyping(_Frame):
    type: Literal["typing"]
    conversation_id: Guid
    on: bool


AgentFrame = Annotated[
    StatusSet
    | ChatAccept
    | ChatReject
    | AgentSend
    | ChatResync
    | ChatInvite
    | ChatTransfer
    | AgentEnd
    | ChatPostpone
    | ChatImportant
    | AgentRead
    | AgentChatStart
    | ConsultStart
    | SupervisorJoin
    | AgentTyping
    | ChatLabels
    | Ping,
    Field(discriminator="type"),
]

_VISITOR_FRAMES: TypeAdapter[Any] = TypeAdapter(VisitorFrame)
_AGENT_FRAMES: TypeAdapter[Any] = TypeAdapter(AgentFrame)


class FrameError(Exception):
    """A frame the server will not act on; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str, *, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "frame"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _parse(raw: str | bytes, adapter: TypeAdapter[Any]) -> Any:
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"A frame may be at most {MAX_FRAME_BYTES} bytes.")
    try:
        data = json_input.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise FrameError("invalid_input", "A frame must be one JSON object.") from error
    if not isinstance(data, dict):
        raise FrameError("invalid_input", "A frame must be one JSON object.")
    ref = data.get("client_id") if isinstance(data.get("client_id"), str) else None
    if ref is None and isinstance(data.get("type"), str):
        ref = str(data["type"])[:64]
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        raise FrameError("invalid_input", _describe(error), ref=ref) from error


def parse_visitor_frame(raw: str | bytes) -> Any:
    """One visitor frame (a model of `VisitorFrame`); raises FrameError."""
    return _parse(raw, _VISITOR_FRAMES)


def parse_agent_frame(raw: str | bytes) -> Any:
    """One agent frame (a model of `AgentFrame`); raises FrameError."""
    return _parse(raw, _AGENT_FRAMES)


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take()` is False when the bucket is empty."""

    def __init__(
        self,
        *,
        rate: float = RATE_PER_SEC,
        burst: int = RATE_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after_ms(self) -> int:
        """How long until one token is back."""
        return max(1, int((1 - self._tokens) / self._rate * 1000))
