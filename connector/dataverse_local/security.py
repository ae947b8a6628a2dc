"""Who may do what in the embedded Dataverse: bearer tokens, privilege names and depths.

**Tokens.** The embedded Dataverse issues and accepts compact JWS tokens signed with
HMAC-SHA256 (`header.payload.signature`, base64url without padding). Claims: `sub` (the
caller's `systemuserid`), `iat` and `exp` (Unix seconds), `iss`
(`crmchat-embedded-dataverse`) and, when the user has one, `oid` (the Entra object id,
as a real token carries). Only `alg: HS256` is accepted; `none` and every other algorithm
are refused before the signature is looked at. The JWS itself is PyJWT through
`connector.jwt_tokens`, shared with the widget's identity tokens.

**Privileges.** Named as Dataverse names them (`connector.solution.privileges`):
`prv<Action><SchemaName>` for custom tables (`prvReadcrmchat_Agent`), the platform's names
for standard tables (`prvReadContact`, `prvReadUser`, `prvReadNote`) and
`prv<Action>Activity` for every activity, the custom `crmchat_chat` included. Names
compare case-insensitively, as the platform's lookup does. A holder of the built-in
"System Administrator" role passes every check, at Global depth.

**Depth.** Basic reaches the caller's own records, Local and Deep the records owned in the
caller's business unit (the emulator has one level of business units, so Deep is Local),
Global every record. Records without an owner (organization-owned tables) are reachable
at any granted depth: Dataverse only offers "none" or "organization" for them.

**Messages.** The 403 texts follow the shapes the real service sends (code `0x80040220`,
PrivilegeDenied): "Principal user (Id=…, type=8, roleCount=…), is missing prvRead…
privilege (Id=…) on OTC=… for entity '…'…" when no role grants the privilege, and
"SecLib::AccessCheckEx failed. …" when a role grants it too shallowly for the record.
A user without any role gets `0x80042f09` "SecLib::CheckPrivilegeForUser failed - no roles
are assigned to user. …".

Errors::

    ValueError
    └── TokenError(message)   a bearer token is malformed, forged, expired or not ours
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector import jwt_tokens
from connector.solution.model import AccessLevel, Role, Table
from connector.solution.privileges import PRIVILEGE_ACTIONS, privilege_name

__all__ = [
    "ACCESS_RIGHTS",
    "DEFAULT_TOKEN_LIFETIME_SECS",
    "NO_ROLES_CODE",
    "PRIVILEGE_ACTIONS",
    "PRIVILEGE_DENIED_CODE",
    "SYSTEM_ADMINISTRATOR_ROLE_NAME",
    "TOKEN_ISSUER",
    "TokenClaims",
    "TokenError",
    "access_denied_message",
    "can_touch",
    "effective_depth",
    "issue_token",
    "missing_privilege_message",
    "no_roles_message",
    "object_type_code",
    "privilege_id",
    "privilege_name",
    "verify_token",
]

TOKEN_ISSUER = "crmchat-embedded-dataverse"
# An hour, as Entra access tokens for Dataverse last by default.
DEFAULT_TOKEN_LIFETIME_SECS = 3600
# Tolerated clock difference for `iat` in the future (a token minted by another process).
CLOCK_SKEW_SECS = 300
# Real bearer tokens are a few KB; anything far larger is not one of ours.
MAX_TOKEN_CHARS = jwt_tokens.MAX_TOKEN_CHARS
# Verified tokens remembered (one per signed-in user or service process, in practice).
TOKEN_CACHE_SIZE = 4096

PRIVILEGE_DENIED_CODE = "0x80040220"  # PrivilegeDenied, with HTTP 403
NO_ROLES_CODE = "0x80042f09"  # the caller holds no security role, with HTTP 403
SYSTEM_ADMINISTRATOR_ROLE_NAME = "System Administrator"

# The AccessRights names SecLib prints for each action.
ACCESS_RIGHTS = {action: f"{action}Access" for action in PRIVILEGE_ACTIONS}

_DEPTH_ORDER = {
    AccessLevel.BASIC: 1,
    AccessLevel.LOCAL: 2,
    AccessLevel.DEEP: 3,
    AccessLevel.GLOBAL: 4,
}
# Object type codes of the standard tables the emulator knows; custom tables get
# codes from 10000 up, as in Dataverse.
_STANDARD_OTC = {
    "account": 1,
    "contact": 2,
    "lead": 4,
    "annotation": 5,
    "systemuser": 8,
    "team": 9,
    "businessunit": 10,
    "incident": 112,
    "role": 1036,
    "queue": 2020,
    "activitypointer": 4200,
    "task": 4212,
    "knowledgearticle": 9953,
}
_PRIVILEGE_NAMESPACE = uuid.UUID("6f1c3a52-6c2a-4d0e-9a0e-3c6a3b1d2e71")


class TokenError(ValueError):
    """A bearer token is malformed, badly signed, expired or not issued here."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class TokenClaims:
    """The verified claims of a bearer token."""

    user_id: str  # `sub`: the caller's systemuserid
    issued_at: datetime  # `iat`, UTC
    expires_at: datetime  # `exp`, UTC
    object_id: str | None = None  # `oid`: Entra object id, when the user has one
    issuer: str = TOKEN_ISSUER


# -- tokens -----------------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def issue_token(
    secret: bytes,
    *,
    user_id: str,
    lifetime_secs: int = DEFAULT_TOKEN_LIFETIME_SECS,
    now: datetime | None = None,
    object_id: str | None = None,
) -> str:
    """A signed bearer token for `user_id` (a systemuserid), valid for `lifetime_secs`.

    Raises ValueError for an empty secret, a non-positive lifetime or a naive `now`.
    """
    if not secret:
        raise ValueError("the signing secret must not be empty")
    if lifetime_secs <= 0:
        raise ValueError("lifetime_secs must be positive")
    issued = int(_now(now).timestamp())
    claims: dict[str, Any] = {
        "iss": TOKEN_ISSUER,
        "sub": user_id,
        "iat": issued,
        "exp": issued + lifetime_secs,
    }
    if object_id is not None:
        claims["oid"] = object_id
    return jwt_tokens.sign_hs256(secret, claims)


# Tokens whose every check passed, by (secret, token): their `iat`, `exp` and claims. A
# client sends the same token for an hour, and checking it (signature, claims, times)
# was a tenth of an in-process retrieve. Only tokens that passed are kept, and their
# times are compared with the clock on every use, so an expired token is still refused.
_verified: dict[tuple[bytes, str], tuple[int, int, TokenClaims]] = {}


def verify_token(secret: bytes, token: str, *, now: datetime | None = None) -> TokenClaims:
    """The claims of `token` after checking its form, algorithm, signature and lifetime.

    Raises TokenError when any check fails.
    """
    if not secret:
        raise ValueError("the signing secret must not be empty")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("The token is missing or too long.")
    current = time.time() if now is None else _now(now).timestamp()
    held = _verified.get((secret, token))
    if held is None:
        held = _check_token(secret, token)
        if len(_verified) >= TOKEN_CACHE_SIZE:
            _verified.clear()
        _verified[(secret, token)] = held
    iat, exp, claims = held
    if current >= exp:
        raise TokenError("The token has expired.")
    if iat > current + CLOCK_SKEW_SECS:
        raise TokenError("The token is issued in the future.")
    return claims


def _check_token(secret: bytes, token: str) -> tuple[int, int, TokenClaims]:
    """`iat`, `exp` and the claims of a well-formed token signed with `secret`."""
    try:
        claims = jwt_tokens.verify_hs256(secret, token)
    except jwt_tokens.TokenFormError as exc:
        raise TokenError(exc.message) from exc
    if claims.get("iss") != TOKEN_ISSUER:
        raise TokenError("The token was not issued by this Dataverse.")
    sub, iat, exp, oid = claims.get("sub"), claims.get("iat"), claims.get("exp"), claims.get("oid")
    if not isinstance(sub, str) or not sub:
        raise TokenError("The token has no subject.")
    # bool is an int subclass; `"exp": true` is not a time.
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise TokenError("The token has no valid 'iat' and 'exp'.")
    if isinstance(iat, bool) or isinstance(exp, bool):
        raise TokenError("The token has no valid 'iat' and 'exp'.")
    if oid is not None and not isinstance(oid, str):
        raise TokenError("The token 'oid' is not a string.")
    try:
        issued_at = datetime.fromtimestamp(iat, UTC)
        expires_at = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise TokenError("The token times are out of range.") from exc
    verified = TokenClaims(user_id=sub, issued_at=issued_at, expires_at=expires_at, object_id=oid)
    return iat, exp, verified


# -- privileges -------------------------------------------------------------------------


def _is_system_administrator(role: Role) -> bool:
    return role.name.casefold() == SYSTEM_ADMINISTRATOR_ROLE_NAME.casefold()


def effective_depth(roles: Iterable[Role], privilege: str) -> AccessLevel | None:
    """The deepest depth at which any of `roles` grants `privilege`, or None.

    Names compare case-insensitively; "System Administrator" grants everything Global.
    """
    wanted = privilege.casefold()
    best: AccessLevel | None = None
    for role in roles:
        if _is_system_administrator(role):
            return AccessLevel.GLOBAL
        for name, depth in role.privileges.items():
            level = AccessLevel(depth)
            if name.casefold() == wanted and (
                best is None or _DEPTH_ORDER[level] > _DEPTH_ORDER[best]
            ):
                best = level
    return best


def _same_id(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return a.strip("{}").lower() == b.strip("{}").lower()


def can_touch(
    depth: AccessLevel | None,
    *,
    owner_id: str | None,
    user_id: str,
    owner_business_unit: str | None,
    user_business_unit: str | None,
) -> bool:
    """Whether a privilege held at `depth` reaches a record owned by `owner_id`.

    `owner_id` None means an organization-owned record (reachable at any depth). For a
    create, pass the owner the new record will have.
    """
    if depth is None:
        return False
    if owner_id is None or depth is AccessLevel.GLOBAL:
        return True
    if _same_id(owner_id, user_id):
        return True
    if depth in (AccessLevel.LOCAL, AccessLevel.DEEP):
        return _same_id(owner_business_unit, user_business_unit)
    return False


# -- 403 messages -----------------------------------------------------------------------


def privilege_id(privilege: str) -> str:
    """A stable GUID for a privilege name (Dataverse gives each privilege an id)."""
    return str(uuid.uuid5(_PRIVILEGE_NAMESPACE, privilege.casefold()))


def object_type_code(table: Table) -> int:
    """The table's object type code: the real one for known standard tables, else >= 10000."""
    known = _STANDARD_OTC.get(table.logical_name)
    if known is not None:
        return known
    return 10000 + zlib.crc32(table.logical_name.encode()) % 90000


def missing_privilege_message(
    *,
    user_id: str,
    privilege: str,
    table: Table,
    role_count: int,
    business_unit_id: str | None = None,
    object_id: str | None = None,
) -> str:
    """The 403 text (code PRIVILEGE_DENIED_CODE) when no role grants `privilege`."""
    principal = f"Id={user_id}, type=8, roleCount={role_count}, accessMode='0 Read-Write'"
    if object_id:
        principal += f", AADObjectId='{object_id}'"
    if business_unit_id:
        principal += f", businessUnitId={business_unit_id}"
    localized = table.display_name or table.logical_name
    return (
        f"Principal user ({principal}), is missing {privilege} privilege "
        f"(Id={privilege_id(privilege)}) on OTC={object_type_code(table)} for entity "
        f"'{table.logical_name}' (LocalizedName='{localized}'). context.Caller={user_id}. "
        "Consider adding missed privilege to one of the principal (user/team) roles."
    )


def access_denied_message(
    *,
    action: str,
    table: Table,
    record_id: str,
    owner_id: str | None,
    user_id: str,
    owner_business_unit: str | None,
) -> str:
    """The 403 text (code PRIVILEGE_DENIED_CODE) when the privilege is held too shallowly."""
    rights = ACCESS_RIGHTS.get(action, f"{action}Access")
    return (
        "SecLib::AccessCheckEx failed. Returned hr = -2147187962, "
        f"ObjectID: {record_id}, OwnerId: {owner_id or ''},  OwnerIdType: 8 and "
        f"CallingUser: {user_id}. ObjectTypeCode: {object_type_code(table)}, "
        f"objectBusinessUnitId: {owner_business_unit or ''}, AccessRights: {rights} "
    ).rstrip()


def no_roles_message(user_id: str) -> str:
    """The 403 text (code NO_ROLES_CODE) for a caller who holds no security role."""
    hr = int(NO_ROLES_CODE, 16) - (1 << 32)
    return (
        "SecLib::CheckPrivilegeForUser failed - no roles are assigned to user. "
        f"Returned hr = {hr}, User: {user_id}"
    )
