"""Sign-in without trusting the browser (ARCHITECTURE.md, flow 2).

A web resource inside the model-driven app creates a `crmchat_handshake` row through
`Xrm.WebApi`, which runs as the signed-in user, and sends the service the row's id and the
random nonce it wrote. The service reads the row as its application user and trusts only
what Dataverse set: `createdby` and `createdon`. The row is deleted before any check, so it
can be redeemed once; it must be young; the user must be enabled. The result carries the
user's security roles, direct and through teams, by name (roles are copied into every
business unit, so names are what stays the same).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from connector.crm import tables
from connector.dataverse import DataverseClient, NotFound
from connector.dataverse.odata import guid

__all__ = ["HandshakeRefused", "SignedInUser", "current_roles", "redeem_handshake", "roles_of"]

HANDSHAKE_SET = tables.HANDSHAKES
# The browser creates the row and redeems it at once; a minute covers a slow network.
HANDSHAKE_MAX_AGE_SECS = 60
# Clock skew tolerated between Dataverse's createdon and this service's clock.
CLOCK_SKEW_SECS = 30


class HandshakeRefused(Exception):
    """The handshake cannot prove who the user is; the message says why (for logs)."""


@dataclass(frozen=True)
class SignedInUser:
    id: str
    name: str
    email: str
    roles: frozenset[str]


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def roles_of(client: DataverseClient, user_id: str) -> frozenset[str]:
    """Names of the security roles `user_id` holds, directly or through a team."""
    names = {
        r["name"]
        for r in client.list_related(
            "systemusers", user_id, "systemuserroles_association", select=["name"]
        )
    }
    teams = client.list_related(
        "systemusers", user_id, "teammembership_association", select=["teamid"]
    )
    for team in teams:
        team_roles = client.list_related(
            "teams", team["teamid"], "teamroles_association", select=["name"]
        )
        names.update(r["name"] for r in team_roles)
    return frozenset(names)


def current_roles(client: DataverseClient, user_id: str) -> frozenset[str]:
    """The roles `user_id` holds now; empty when the user is disabled or gone."""
    try:
        user = client.retrieve("systemusers", guid(user_id), select=["isdisabled"])
    except (NotFound, ValueError):
        return frozenset()
    if user.get("isdisabled"):
        return frozenset()
    return roles_of(client, user_id)


def redeem_handshake(
    client: DataverseClient, handshake_id: str, nonce: str, *, now: datetime | None = None
) -> SignedInUser:
    """The user who created handshake `handshake_id` with `nonce`, consuming the row.

    Raises HandshakeRefused when the row is missing, already used, too old, carries another
    nonce, or its creator is disabled.
    """
    row_id = guid(handshake_id)
    try:
        row = client.retrieve(
            HANDSHAKE_SET, row_id, select=["crmchat_name", "createdon", "_createdby_value"]
        )
        client.delete(HANDSHAKE_SET, row_id)
    except NotFound as error:
        raise HandshakeRefused("no such handshake, or it was used already") from error
    if not hmac.compare_digest(str(row.get("crmchat_name") or ""), nonce):
        raise HandshakeRefused("the nonce does not match")
    age = ((now or datetime.now(UTC)) - _parse_time(row["createdon"])).total_seconds()
    if not -CLOCK_SKEW_SECS <= age <= HANDSHAKE_MAX_AGE_SECS:
        raise HandshakeRefused(f"the handshake is {age:.0f} s old")
    user_id = row["_createdby_value"]
    user = client.retrieve(
        "systemusers", user_id, select=["fullname", "internalemailaddress", "isdisabled"]
    )
    if user.get("isdisabled"):
        raise HandshakeRefused("the user is disabled")
    return SignedInUser(
        id=user_id,
        name=user.get("fullname") or "",
        email=user.get("internalemailaddress") or "",
        roles=roles_of(client, user_id),
    )
