"""The visitor's tokens: the per-chat resume token, and identity tokens.

**Resume.** Signed with the service secret (itsdangerous, salt "crmchat-chat"), naming the
conversation and the visitor id; issued with `chat.started`.

**Identity** (docs/protocol.md, "Identity"): a compact JWS HS256 (`connector.jws`),
either signed by the host site with the widget's secret (claims `email`, `name`
optional, `exp` required and at most 24 h ahead, `iat`), or issued by this service to a
CRM user through `POST /api/internal/identity` (key derived from the service secret,
`iss` "crmchat", `source` "crm", with `user_id`). `verify_identity` tells them apart by
`iss` and checks each with its own key; the signature is compared in constant time and
`alg: none` is refused before anything else.

Errors::

    InvalidChatToken      a resume token is forged, expired, or names another visitor
    InvalidIdentity       an identity token is malformed, forged, expired or too long-lived
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from connector import json_input, jws

__all__ = [
    "CHAT_TOKEN_MAX_AGE_SECS",
    "INTERNAL_ISSUER",
    "INTERNAL_TOKEN_LIFETIME_SECS",
    "MAX_IDENTITY_LIFETIME_SECS",
    "ChatTokens",
    "Identity",
    "InvalidChatToken",
    "InvalidIdentity",
]

# A visitor may come back to an ended chat's rating or to a long chat within a day.
CHAT_TOKEN_MAX_AGE_SECS = 24 * 60 * 60
# A host site's token may not live longer than a day (a leaked one expires soon).
MAX_IDENTITY_LIFETIME_SECS = 24 * 60 * 60
# The internal launcher fetches a fresh token each time the app page loads.
INTERNAL_TOKEN_LIFETIME_SECS = 60 * 60
# Clocks of host sites drift a little.
CLOCK_SKEW_SECS = 60
INTERNAL_ISSUER = "crmchat"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_EMAIL_CHARS = 100
_MAX_NAME_CHARS = 100


class InvalidChatToken(Exception):
    """The token is forged, expired, or names another visitor."""


class InvalidIdentity(Exception):
    """An identity token that proves nothing; the message says why (for logs)."""


@dataclass(frozen=True)
class Identity:
    """A verified visitor: from the host site ("site") or a CRM user ("crm")."""

    source: str
    email: str
    name: str
    user_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The protocol's `identity` object."""
        return {"verified": True, "source": self.source, "name": self.name, "email": self.email}


class ChatTokens:
    """Issue and check per-chat visitor tokens and identity tokens."""

    def __init__(self, secret: bytes, *, clock: Any = time.time) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="crmchat-chat")
        # Its own key: an identity token can never pass as any other token of the service.
        self._identity_key = hmac.new(secret, b"crmchat-identity", hashlib.sha256).digest()
        self._clock = clock

    def issue(self, conversation_id: str, visitor_id: str) -> str:
        return str(self._serializer.dumps({"c": conversation_id, "v": visitor_id}))

    def verify(self, token: str, visitor_id: str) -> str:
        """The conversation id in `token`, if it was issued to `visitor_id`.

        Raises InvalidChatToken otherwise.
        """
        try:
            claims = self._serializer.loads(token, max_age=CHAT_TOKEN_MAX_AGE_SECS)
        except BadSignature as error:  # SignatureExpired is a BadSignature too
            raise InvalidChatToken("the chat token is not valid") from error
        if not isinstance(claims, dict) or claims.get("v") != visitor_id:
            raise InvalidChatToken("the chat token belongs to another visitor")
        return str(claims["c"])

    def issue_identity(self, *, user_id: str, email: str, name: str) -> str:
        """An identity token for a CRM user, valid INTERNAL_TOKEN_LIFETIME_SECS."""
        now = int(self._clock())
        return jws.sign(
            self._identity_key,
            {
                "iss": INTERNAL_ISSUER,
                "source": "crm",
                "user_id": user_id,
                "email": email,
                "name": name,
                "iat": now,
                "exp": now + INTERNAL_TOKEN_LIFETIME_SECS,
            },
        )

    def verify_identity(self, token: str, *, widget_secret: str | None) -> Identity:
        """The identity `token` proves: a CRM user's (service-signed) or the host site's
        (signed with `widget_secret`). Raises InvalidIdentity."""
        unverified = _peek_claims(token)
        internal = unverified.get("iss") == INTERNAL_ISSUER
        if internal:
            key = self._identity_key
        elif widget_secret:
            key = widget_secret.encode()
        else:
            raise InvalidIdentity("the widget has no secret to check site tokens with")
        try:
            claims = jws.verify(key, token)
        except jws.JwsError as error:
            raise InvalidIdentity(error.message) from error
        self._check_times(claims)
        email, name = claims.get("email"), claims.get("name", "")
        if not isinstance(email, str) or len(email) > _MAX_EMAIL_CHARS or not _EMAIL.match(email):
            raise InvalidIdentity("the token has no valid 'email'")
        if not isinstance(name, str):
            raise InvalidIdentity("the token's 'name' is not text")
        name = " ".join(name.split())[:_MAX_NAME_CHARS]
        if internal:
            user_id = claims.get("user_id")
            if not isinstance(user_id, str) or not user_id:
                raise InvalidIdentity("the token names no CRM user")
            return Identity(source="crm", email=email, name=name, user_id=user_id)
        return Identity(source="site", email=email, name=name)

    def _check_times(self, claims: dict[str, Any]) -> None:
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidIdentity("the token has no 'exp'")
        now = self._clock()
        if now >= exp:
            raise InvalidIdentity("the token has expired")
        if exp > now + MAX_IDENTITY_LIFETIME_SECS + CLOCK_SKEW_SECS:
            raise InvalidIdentity("the token lives longer than 24 hours")
        if iat is not None:
            if not isinstance(iat, int | float) or isinstance(iat, bool):
                raise InvalidIdentity("the token's 'iat' is not a time")
            if iat > now + CLOCK_SKEW_SECS:
                raise InvalidIdentity("the token is issued in the future")


def _peek_claims(token: str) -> dict[str, Any]:
    """The claims before any check, only to choose the key (never trusted as such)."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > jws.MAX_TOKEN_CHARS:
        raise InvalidIdentity("the token is not a compact JWS")
    payload = token.split(".")[1]
    try:
        value = json_input.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidIdentity("the token payload is not JSON") from error
    if not isinstance(value, dict):
        raise InvalidIdentity("the token payload is not an object")
    return value
