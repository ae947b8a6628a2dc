"""Internal chat: identity tokens for CRM users, and the engine's CRM lookups.

POST /api/internal/identity {"handshake_id","nonce"}
    -> {"token","expires_in","user":{"id","name","email"}}

The internal-chat launcher (a web resource in any model-driven app) proves who the user
is with the same handshake as agents (`connector.crm.handshake`, ARCHITECTURE.md flow 2);
the email and name come from the systemuser record, never from the page. The token is
signed by the service (`ChatTokens.issue_identity`) and goes into the widget's `hello`
as `identity.token`. Any user holding a role that opens the app may get one.

Registering this blueprint also gives the chat engine its record identification
(`connector.crm.identification`) over the service's Dataverse client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app
from flask.blueprints import BlueprintSetupState

from connector.chat.tokens import INTERNAL_TOKEN_LIFETIME_SECS
from connector.crm.handshake import HandshakeRefused, redeem_handshake
from connector.crm.identification import identify, lookup_key
from connector.dataverse import DataverseClient
from connector.services import services_of
from connector.web.auth import HandshakeIn
from connector.web.errors import Forbidden, NotSignedIn, json_body
from connector.web.sockets import engine_of

__all__ = ["APP_ROLES", "bp", "identifier_for"]

log = logging.getLogger(__name__)

bp = Blueprint("internal_api", __name__, url_prefix="/api/internal")

# The roles that open the CRM Chat app: anyone who may use the app may ask an agent.
APP_ROLES = frozenset(
    {"CRM Chat App User", "CRM Chat Agent", "CRM Chat Administrator", "System Administrator"}
)


def identifier_for(client: DataverseClient, app_tables: Any = None) -> Any:
    """The engine's `Identifier` over `client`: at most two requests per chat start.
    `app_tables` (connector.crm.app_tables) says whether there are cases to link (None:
    there are)."""

    def run(context: dict[str, Any], identity_email: str | None) -> dict[str, Any]:
        cases = app_tables is None or app_tables.has("incident")
        key = lookup_key(context, identity_email=identity_email)
        found = identify(client, key, cases=cases)
        # Only a verified identity says who the visitor is. What an anonymous page sends
        # (setContextProvider, the pre-chat form) is a claim anyone can make: it may
        # suggest a contact, marked unverified for the agent, but never links that
        # contact's open case (and with it the case's history) to a stranger's chat.
        verified = bool(identity_email)
        regarding = found.regarding if verified else found.contact
        return {
            "contact": (
                {"id": found.contact.id, "name": found.contact.name, "verified": verified}
                if found.contact
                else None
            ),
            "regarding": regarding.to_dict() if regarding else None,
        }

    return run


@bp.record_once
def _wire_identification(state: BlueprintSetupState) -> None:
    engine = services_of(state.app).engine
    client = services_of(state.app).dataverse
    if engine is not None and client is not None and engine.identifier is None:
        engine.identifier = identifier_for(client, services_of(state.app).app_tables)


@bp.post("/identity")
def internal_identity() -> dict[str, Any]:
    body = HandshakeIn.model_validate(json_body())
    client = services_of(current_app).dataverse
    try:
        user = redeem_handshake(client, str(body.handshake_id), body.nonce)
    except HandshakeRefused as error:
        log.info("internal identity refused: %s", error)
        raise NotSignedIn("Sign-in failed; reload the page to try again.") from error
    if not user.roles & APP_ROLES:
        raise Forbidden("Your security roles do not include the CRM Chat app.")
    if not user.email:
        raise Forbidden("Your CRM user has no email address; ask your administrator.")
    token = engine_of(current_app).tokens.issue_identity(
        user_id=user.id, email=user.email, name=user.name
    )
    return {
        "token": token,
        "expires_in": INTERNAL_TOKEN_LIFETIME_SECS,
        "user": {"id": user.id, "name": user.name, "email": user.email},
    }
