"""Why the chat engine refuses a request; the socket and HTTP layers render these.

Errors::

    ChatError(code, message)       a refusal on purpose; becomes an `error` frame or JSON
    ├── ChatInvalid        invalid_input   bad or missing input
    ├── ChatNotFound       not_found       no such chat, widget or agent (or not yours)
    ├── ChatForbidden      forbidden       you may not do this
    ├── ChatEnded          chat_ended      the chat is over
    ├── ChatUnavailable    unavailable     no agent can take it / the widget is off
    ├── ChatConflict       conflict        someone else got there first
    ├── ChatLoginRequired  login_required  the widget needs a verified identity
    ├── ChatIdentityMismatch identity_mismatch  the context's Email is not the identity's
    ├── ChatInvalidContext invalid_context the Omnichannel context breaks its rules
    ├── ChatInvalidIdentity invalid_identity  the identity token proves nothing
    ├── ChatConsentRequired consent_required  the widget asks for consent first
    └── ChatDispositionRequired disposition_required  closing needs one of the topic's
"""

from __future__ import annotations

__all__ = [
    "ChatConflict",
    "ChatConsentRequired",
    "ChatDispositionRequired",
    "ChatEnded",
    "ChatError",
    "ChatForbidden",
    "ChatIdentityMismatch",
    "ChatInvalidContext",
    "ChatInvalidIdentity",
    "ChatLoginRequired",
    "ChatInvalid",
    "ChatNotFound",
    "ChatUnavailable",
]


class ChatError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChatInvalid(ChatError):
    code = "invalid_input"


class ChatNotFound(ChatError):
    code = "not_found"
    http_status = 404


class ChatForbidden(ChatError):
    code = "forbidden"
    http_status = 403


class ChatEnded(ChatError):
    code = "chat_ended"
    http_status = 409


class ChatUnavailable(ChatError):
    code = "unavailable"
    http_status = 409


class ChatConflict(ChatError):
    code = "conflict"
    http_status = 409


class ChatLoginRequired(ChatError):
    code = "login_required"
    http_status = 403


class ChatIdentityMismatch(ChatError):
    code = "identity_mismatch"
    http_status = 403


class ChatInvalidContext(ChatError):
    code = "invalid_context"


class ChatInvalidIdentity(ChatError):
    code = "invalid_identity"


class ChatConsentRequired(ChatError):
    code = "consent_required"
    http_status = 403


class ChatDispositionRequired(ChatError):
    code = "disposition_required"
