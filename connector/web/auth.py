"""Signing in to the service: the handshake, the short-lived token, and `require_roles`.

`POST /api/auth/handshake {"handshake_id", "nonce"}` redeems a handshake row (see
`connector.crm.handshake`) and answers a token signed by the service (itsdangerous, HMAC
SHA-256, with a timestamp). API calls send it as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

from flask import Blueprint, current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field

from connector.crm.handshake import (
    HandshakeRefused,
    SignedInUser,
    current_roles,
    redeem_handshake,
)
from connector.dataverse import DataverseError
from connector.services import services_of
from connector.web.errors import Forbidden, NotSignedIn, json_body

__all__ = [
    "ADMIN_ROLES",
    "AGENT_ROLES",
    "SUPERVISOR_ROLES",
    "AGENT_SUBPROTOCOL",
    "BEARER_SUBPROTOCOL_PREFIX",
    "agent_subprotocols",
    "bp",
    "STANDING_MAX_AGE_SECS",
    "UserStanding",
    "current_roles_of",
    "current_user",
    "issue_service_token",
    "require_roles",
    "service_token_signer",
    "signed_in_user",
    "socket_token",
]

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__, url_prefix="/api/auth")

# The agent socket's subprotocol (the one the service chooses), and the prefix of the
# second one a console offers, which carries its service token (see agent_subprotocols).
AGENT_SUBPROTOCOL = "crmchat.v1"
BEARER_SUBPROTOCOL_PREFIX = "crmchat.bearer."
# A working day: agents sign in once per shift; the console renews before it expires.
SERVICE_TOKEN_MAX_AGE_SECS = 8 * 60 * 60
# How stale a user's roles may be: the issue's promise is "loses access within a minute".
STANDING_MAX_AGE_SECS = 60
ADMIN_ROLES = frozenset({"CRM Chat Administrator", "System Administrator"})
# Supervisors see every open chat and queue (connector/chat/actions/supervision.py);
# administrators are supervisors too.
SUPERVISOR_ROLES = frozenset({"CRM Chat Supervisor"}) | ADMIN_ROLES
# Support staff who check a caller's secret word are agents (or admins).
AGENT_ROLES = frozenset({"CRM Chat Agent"}) | SUPERVISOR_ROLES

P = ParamSpec("P")
R = TypeVar("R")


class HandshakeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handshake_id: UUID
    nonce: str = Field(min_length=16, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")


def _serializer() -> URLSafeTimedSerializer:
    serializer: URLSafeTimedSerializer = services_of(current_app).tokens
    return serializer


def service_token_signer(secret: bytes) -> URLSafeTimedSerializer:
    """The signer of service tokens (HMAC SHA-256 over `secret`, with a timestamp)."""
    return URLSafeTimedSerializer(secret, salt="crmchat-service")


def issue_service_token(user: SignedInUser, *, signer: URLSafeTimedSerializer | None = None) -> str:
    """A token naming `user` and their roles, valid SERVICE_TOKEN_MAX_AGE_SECS; signed by
    the current app's signer, or `signer` (tests and benchmarks outside a request)."""
    return (signer or _serializer()).dumps(
        {"id": user.id, "name": user.name, "email": user.email, "roles": sorted(user.roles)}
    )


class UserStanding:
    """Each signed-in user's roles as Dataverse has them now, read at most once a minute.

    A service token is good for a working day, so what it says about roles is only what
    was true at sign-in: a user disabled, or whose agent role was removed, must lose
    access within STANDING_MAX_AGE_SECS, not when the token expires.
    """

    def __init__(self, client: Any, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, frozenset[str]]] = {}

    def roles(self, user_id: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            seen = self._seen.get(user_id)
        if seen is not None and now - seen[0] < STANDING_MAX_AGE_SECS:
            return seen[1]
        try:
            roles = current_roles(self._client, user_id)
        except DataverseError as error:
            if seen is None:
                raise
            # Dataverse is unreachable: keep what it last said rather than sign everyone
            # out; the next request asks again.
            log.warning("re-reading the roles of %s failed: %s", user_id, error)
            return seen[1]
        with self._lock:
            self._seen[user_id] = (now, roles)
        return roles


def current_roles_of(user_id: str) -> frozenset[str]:
    """`user_id`'s roles now (cached up to STANDING_MAX_AGE_SECS); empty when disabled."""
    standing: UserStanding = services_of(current_app).standing
    return standing.roles(user_id)


def current_user() -> SignedInUser:
    user: SignedInUser = g.crmchat_user
    return user


def signed_in_user(token: str, roles: frozenset[str]) -> SignedInUser:
    """The user a service token names, with the roles they hold now; for the API (the
    `Authorization: Bearer` header) and the agent socket (`socket_token()`) alike.

    Raises NotSignedIn for a missing, forged or expired token; Forbidden when the user
    holds none of `roles` any more (roles are re-read from Dataverse, see UserStanding).
    """
    if not token:
        raise NotSignedIn("Sign in first: the token is missing.")
    try:
        claims = _serializer().loads(token, max_age=SERVICE_TOKEN_MAX_AGE_SECS)
    except SignatureExpired as error:
        raise NotSignedIn("Your sign-in has expired; sign in again.") from error
    except BadSignature as error:
        raise NotSignedIn("The token is not valid.") from error
    user = SignedInUser(
        id=claims["id"],
        name=claims["name"],
        email=claims["email"],
        roles=frozenset(claims["roles"]) & current_roles_of(claims["id"]),
    )
    if not user.roles & roles:
        raise Forbidden("Your security roles do not allow this.")
    return user


def agent_subprotocols(token: str) -> list[str]:
    """What a console offers as WebSocket subprotocols: the protocol, and its token.

    A browser's WebSocket cannot send an Authorization header, and a token in the URL
    ends up in proxy logs and browser history; the Sec-WebSocket-Protocol header can carry
    it (Kubernetes does the same with `base64url.bearer.authorization.k8s.io.<token>`).
    The service answers AGENT_SUBPROTOCOL only, never echoing the token.
    """
    return [AGENT_SUBPROTOCOL, BEARER_SUBPROTOCOL_PREFIX + token]


def socket_token() -> str:
    """The service token a socket's handshake offered as a subprotocol ("" when none)."""
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    for item in offered.split(","):
        item = item.strip()
        if item.startswith(BEARER_SUBPROTOCOL_PREFIX):
            return item[len(BEARER_SUBPROTOCOL_PREFIX) :]
    return ""


def require_roles(roles: frozenset[str]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Let a view run only for a signed-in user holding one of `roles`."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise NotSignedIn("Sign in first: send 'Authorization: Bearer <token>'.")
            user = signed_in_user(token, roles)
            g.crmchat_user = user
            return view(*args, **kwargs)

        return guarded

    return decorate


@bp.post("/handshake")
def handshake() -> dict[str, Any]:
    body = HandshakeIn.model_validate(json_body())
    client = services_of(current_app).dataverse
    try:
        user = redeem_handshake(client, str(body.handshake_id), body.nonce)
    except HandshakeRefused as error:
        log.info("sign-in refused: %s", error)
        raise NotSignedIn("Sign-in failed; reload the page to try again.") from error
    return {
        "token": issue_service_token(user),
        "expires_in": SERVICE_TOKEN_MAX_AGE_SECS,
        "user": {"id": user.id, "name": user.name, "roles": sorted(user.roles)},
    }
