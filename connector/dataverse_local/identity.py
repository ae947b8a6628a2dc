"""Who a request runs as: the bearer token's user, or the user it impersonates.

`authenticate(store, headers)` checks `Authorization: Bearer <token>` against the store's
signing secret and loads the user's business unit, roles and field security profiles
(direct and through teams), remembered in a `CallerCache` until any of those change
(`caller_cache.py`). `MSCRMCallerID` (a systemuserid) or `CallerObjectId` (an Entra object
id) switch to another user for System Administrators and holders of `prvActOnBehalfOfAnotherUser`.

Errors (`store.ApiError`): 401 with `WWW-Authenticate` for a missing, bad or expired token
or a disabled user; 403 for impersonation without the privilege; 404 for an unknown target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from connector.dataverse_local.caller_cache import CallerCache
from connector.dataverse_local.security import (
    PRIVILEGE_DENIED_CODE,
    SYSTEM_ADMINISTRATOR_ROLE_NAME,
    TokenError,
    effective_depth,
    verify_token,
)
from connector.dataverse_local.store import ApiError, Store, normalise_guid
from connector.dataverse_local.users import (
    business_unit_of,
    user_business_unit,
    user_profiles,
    user_roles,
)
from connector.solution.model import FieldSecurityProfile, Role

if TYPE_CHECKING:
    from connector.dataverse_local.exchange import RequestHeaders

__all__ = ["Caller", "authenticate"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer authorization_uri="local", resource_id="crmchat-local"'}
_NOT_AUTHENTICATED_CODE = "0x80072560"


@dataclass(frozen=True)
class Caller:
    """Who a request runs as."""

    user_id: str
    business_unit: str | None
    roles: tuple[Role, ...]
    # field security profiles held directly and through teams (column security)
    profiles: tuple[FieldSecurityProfile, ...] = ()

    @property
    def is_admin(self) -> bool:
        admin = SYSTEM_ADMINISTRATOR_ROLE_NAME.casefold()
        return any(role.name.casefold() == admin for role in self.roles)


def authenticate(
    store: Store, headers: RequestHeaders, *, callers: CallerCache | None = None
) -> Caller:
    """The caller a request's headers name; raises ApiError(401/403/404) otherwise.

    `callers` remembers callers between requests (the token and the impersonation header
    are still checked on every one).
    """
    value = headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, _NOT_AUTHENTICATED_CODE, "The user is not authenticated.", headers=_CHALLENGE
        )
    try:
        claims = verify_token(store.signing_secret, token.strip())
    except TokenError as exc:
        raise ApiError(401, _NOT_AUTHENTICATED_CODE, exc.message, headers=_CHALLENGE) from None
    caller = _cached_caller(store, claims.user_id, callers)
    if caller is None:
        raise ApiError(
            401,
            _NOT_AUTHENTICATED_CODE,
            "The user is not a member of the organization.",
            headers=_CHALLENGE,
        )
    impersonated = headers.get("MSCRMCallerID") or headers.get("CallerObjectId")
    if impersonated:
        return _impersonate(
            store,
            caller,
            impersonated,
            by_object_id="MSCRMCallerID" not in headers,
            callers=callers,
        )
    return caller


def _cached_caller(store: Store, user_id: str, callers: CallerCache | None) -> Caller | None:
    user_id = user_id.lower()
    if callers is None:
        return _load_caller(store, user_id)
    return callers.get(store, user_id, lambda: _load_caller(store, user_id))


def _load_caller(store: Store, user_id: str) -> Caller | None:
    """The enabled user `user_id` with their business unit and roles, or None."""
    user_id = user_id.lower()
    users = store.schema.tables.get("systemuser")
    if users is None:
        business_unit = user_business_unit(store, user_id)
    else:
        row = store.fetch(users, user_id)
        if row is None or row.get("isdisabled"):
            return None
        business_unit = business_unit_of(row)
    return Caller(
        user_id,
        business_unit,
        tuple(user_roles(store, user_id)),
        tuple(user_profiles(store, user_id)),
    )


def _impersonate(
    store: Store,
    caller: Caller,
    target: str,
    *,
    by_object_id: bool,
    callers: CallerCache | None,
) -> Caller:
    allowed = caller.is_admin or effective_depth(caller.roles, "prvActOnBehalfOfAnotherUser")
    if not allowed:
        raise ApiError(
            403,
            PRIVILEGE_DENIED_CODE,
            f"Principal user (Id={caller.user_id}) is missing prvActOnBehalfOfAnotherUser "
            "privilege.",
        )
    user_id = normalise_guid(target)
    users = store.schema.tables.get("systemuser")
    if by_object_id and user_id and users is not None:
        if "azureactivedirectoryobjectid" in users.columns:
            rows = store.query(
                "SELECT systemuserid FROM systemuser WHERE azureactivedirectoryobjectid = ?",
                (user_id,),
            )
            user_id = str(rows[0][0]) if rows else None
    found = _cached_caller(store, user_id, callers) if user_id else None
    if found is None:
        raise ApiError(404, "0x80040217", f"systemuser With Id = {target} Does Not Exist")
    return found
