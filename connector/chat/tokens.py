"""The visitor's tokens: the per-chat resume token, and identity tokens.

**Resume.** Signed with the service secret (itsdangerous, salt "crmchat-chat"), naming the
conversation and the visitor id; issued with `chat.started`.

**Identity** (docs/protocol.md, "Identity"): a compact JWT (`connector.jwt_tokens`, on
PyJWT), one of three kinds:

- signed by the host site with HS256 and the widget's secret: claims `email`, `name`
  optional, `exp` required and at most 24 h ahead, `iat`;
- signed by the host site with RS256, as Dynamics 365 Omnichannel's authenticated chat
  does it, checked against the public keys the site publishes at the widget's
  `design.auth_key_url` (`connector.site_keys`): `sub` required, `exp` as above, `iat`,
  `nbf`, `email`/`name` optional, and `lwicontexts` (the serialized context, checked by
  Omnichannel's context rules) becomes the chat's context;
- issued by this service to a CRM user through `POST /api/internal/identity` (HS256, key
  derived from the service secret, `iss` "crmchat", `source` "crm", with `user_id`).

`verify_identity` tells them apart by `iss` and `alg` and checks each with its own key;
the algorithm is never the token's choice, and `alg: none` is refused before anything else.

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
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from connector import json_input, jwt_tokens
from connector.chat.context import ContextError, parse_context
from connector.site_keys import SiteKeys, SiteKeysError

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
_MAX_SUBJECT_CHARS = 200


class InvalidChatToken(Exception):
    """The token is forged, expired, or names another visitor."""


class InvalidIdentity(Exception):
    """An identity token that proves nothing; the message says why (for logs)."""


@dataclass(frozen=True)
class Identity:
    """A verified visitor: from the host site ("site") or a CRM user ("crm")."""

    source: str
    email: str  # "" for an RS256 site token without an `email` claim
    name: str
    user_id: str | None = None
    subject: str | None = None  # the RS256 token's `sub` (the site's id of the person)
    # The RS256 token's `lwicontexts`, checked: the chat's context, signed by the site.
    context: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The protocol's `identity` object."""
        return {"verified": True, "source": self.source, "name": self.name, "email": self.email}


class ChatTokens:
    """Issue and check per-chat visitor tokens and identity tokens."""

    def __init__(
        self, secret: bytes, *, clock: Any = time.time, site_keys: SiteKeys | None = None
    ) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="crmchat-chat")
        # Its own key: an identity token can never pass as any other token of the service.
        self._identity_key = hmac.new(secret, b"crmchat-identity", hashlib.sha256).digest()
        self._person_key = hmac.new(secret, b"crmchat-person", hashlib.sha256).digest()
        self._clock = clock
        self._site_keys = site_keys or SiteKeys()

    def person_visitor_id(self, identity: Identity, widget_id: str) -> str:
        """The one visitor id of a verified person on a widget, whatever the device.

        Keyed by the CRM user, the RS256 token's `sub`, else the site token's email, under
        the service secret: nobody can work it out without the secret, and it is no
        credential anyway (a chat still needs its resume token or this verified identity).
        """
        person = identity.user_id or identity.subject or identity.email.casefold()
        message = f"{widget_id.lower()}|{identity.source}|{person}".encode()
        digest = hmac.new(self._person_key, message, hashlib.sha256).digest()
        return "p" + base64.urlsafe_b64encode(digest[:24]).decode()

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
        return jwt_tokens.sign_hs256(
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

    def verify_identity(
        self, token: str, *, widget_secret: str | None, key_url: str | None = None
    ) -> Identity:
        """The identity `token` proves: a CRM user's (service-signed), or the host site's,
        signed with `widget_secret` (HS256) or by a key published at `key_url` (RS256).
        Raises InvalidIdentity."""
        try:
            header, unverified = jwt_tokens.peek(token)
            if unverified.get("iss") == INTERNAL_ISSUER:
                return self._crm_identity(jwt_tokens.verify_hs256(self._identity_key, token))
            if header.get("alg") == "RS256":
                return self._site_identity(self._verify_rs256(token, header, key_url), rs256=True)
            if not widget_secret:
                raise InvalidIdentity("the widget has no secret to check site tokens with")
            claims = jwt_tokens.verify_hs256(widget_secret.encode(), token)
        except jwt_tokens.TokenFormError as error:
            raise InvalidIdentity(error.message) from error
        return self._site_identity(claims, rs256=False)

    def _verify_rs256(
        self, token: str, header: dict[str, Any], key_url: str | None
    ) -> dict[str, Any]:
        if not key_url:
            raise InvalidIdentity("the widget has no public key URL to check RS256 tokens with")
        try:
            keys = self._site_keys.get(key_url)
            if header.get("kid") is not None and header.get("kid") not in keys:
                keys = self._site_keys.get(key_url, refresh=True)  # a key just rotated in
        except SiteKeysError as error:
            raise InvalidIdentity(f"the site's public key: {error}") from error
        return jwt_tokens.verify_rs256(keys, token)

    def _crm_identity(self, claims: dict[str, Any]) -> Identity:
        self._check_times(claims)
        email, name = _email(claims, required=True), _name(claims)
        user_id = claims.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise InvalidIdentity("the token names no CRM user")
        return Identity(source="crm", email=email, name=name, user_id=user_id)

    def _site_identity(self, claims: dict[str, Any], *, rs256: bool) -> Identity:
        self._check_times(claims)
        subject = claims.get("sub")
        if rs256 and (
            not isinstance(subject, str) or not subject or len(subject) > _MAX_SUBJECT_CHARS
        ):
            raise InvalidIdentity("the token has no valid 'sub'")
        context = None
        if "lwicontexts" in claims:
            # Omnichannel: "the serialized custom context", a JSON object in a string.
            raw = claims["lwicontexts"]
            try:
                context = parse_context(json_input.loads(raw) if isinstance(raw, str) else raw)
            except (ValueError, ContextError) as error:
                raise InvalidIdentity(
                    f"the token's 'lwicontexts' is not a valid context: {error}"
                ) from error
        return Identity(
            source="site",
            email=_email(claims, required=not rs256),
            name=_name(claims),
            subject=subject if isinstance(subject, str) and subject else None,
            context=context or None,
        )

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
        nbf = claims.get("nbf")
        if nbf is not None:
            if not isinstance(nbf, int | float) or isinstance(nbf, bool):
                raise InvalidIdentity("the token's 'nbf' is not a time")
            if nbf > now + CLOCK_SKEW_SECS:
                raise InvalidIdentity("the token is not valid yet ('nbf')")


def _email(claims: dict[str, Any], *, required: bool) -> str:
    email = claims.get("email")
    if email is None and not required:
        return ""
    if not isinstance(email, str) or len(email) > _MAX_EMAIL_CHARS or not _EMAIL.match(email):
        raise InvalidIdentity("the token has no valid 'email'")
    return email


def _name(claims: dict[str, Any]) -> str:
    name = claims.get("name", "")
    if not isinstance(name, str):
        raise InvalidIdentity("the token's 'name' is not text")
    return " ".join(name.split())[:_MAX_NAME_CHARS]
