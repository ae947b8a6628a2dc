"""How the service reaches Dataverse: a real environment through MSAL, or the embedded one.

Either way the rest of the code holds one `DataverseClient`. On the embedded default the
client's session hands requests to the embedded Dataverse's WSGI app in this process
(`WsgiSession`), as the service's own application user, and the same app is mounted on the
service at `DATAVERSE_PATH` for browsers.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from connector.dataverse import (
    CallableTokenProvider,
    DataverseClient,
    MsalTokenProvider,
    StaticTokenProvider,
)
from connector.dataverse.transport import WsgiSession
from connector.private_files import make_private_dir
from connector.settings import Settings

__all__ = [
    "DATAVERSE_PATH",
    "SERVICE_USER_ID",
    "Connection",
    "connect",
    "embedded_token",
    "ensure_service_user",
    "open_embedded",
]

DATAVERSE_PATH = "/api/data/v9.2"
# Requests to this origin never leave the process; .invalid can never resolve (RFC 2606).
EMBEDDED_ORIGIN = "http://embedded-dataverse.invalid"
# The service's application user in the embedded Dataverse (fixed, so restarts reuse it).
SERVICE_USER_ID = "4f6b1c1e-8d0e-4d6b-9a3c-2c7c1a00c4a7"
SERVICE_USER_DOMAIN = "crmchat-service@crmchat.local"
# What a real app registration's application user is given (README, "Connect").
SERVICE_ROLE_NAME = "CRM Chat Administrator"
# Impersonation for a contact's data requests, which run as the CRM user who asks.
SERVICE_IMPERSONATION_ROLE_NAME = "CRM Chat Service"
# The embedded Dataverse's tokens for the service last an hour, like Entra's.
SERVICE_TOKEN_LIFETIME_SECS = 3600
# A new one is issued when less than this is left (a request never carries one about to end).
SERVICE_TOKEN_RENEW_SECS = 300


@dataclass(frozen=True)
class Connection:
    client: DataverseClient
    service_secret: bytes  # signs the service's own tokens
    embedded_app: Any | None = None  # the embedded Dataverse's WSGI app, when embedded


def _service_secret(settings: Settings) -> bytes:
    """CRMCHAT_SECRET_KEY, or a key generated once into the data folder (mode 0600)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    path = settings.data_dir / "service.key"
    if not path.exists():
        make_private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def ensure_service_user(store: Any) -> None:
    """The service's application user (CRM Chat Administrator) in an embedded store, in the
    field security profiles as an admin adds the application user in a tenant."""
    from connector.dataverse_local import add_user, assign_field_security_profile

    names = {SERVICE_ROLE_NAME, SERVICE_IMPERSONATION_ROLE_NAME}
    role_ids = [role.id for role in store.schema.roles if role.name in names]
    add_user(
        store,
        domain_name=SERVICE_USER_DOMAIN,
        first_name="CRM Chat",
        last_name="Service",
        user_id=SERVICE_USER_ID,
        role_ids=role_ids,
    )
    # As an admin does for the application user in a tenant: the service reads widget
    # secrets (identity tokens) and writes the secret word hash, both secured columns.
    for profile in store.schema.field_security_profiles:
        assign_field_security_profile(store, SERVICE_USER_ID, profile.id)


def open_embedded(settings: Settings) -> tuple[Any, Any]:
    """The embedded Dataverse's store (seeded, with the service user) and its WSGI app."""
    from connector.dataverse_local import (
        ServiceProtection,
        create_dataverse_app,
        ensure_seeded,
        open_store,
    )
    from connector.solution.reader import load_schema

    store = open_store(
        settings.embedded_db, load_schema(dynamics_apps=settings.embedded_dynamics_apps)
    )
    ensure_seeded(store)
    ensure_service_user(store)
    limits = None
    if settings.embedded_max_requests:
        limits = ServiceProtection(
            max_requests=settings.embedded_max_requests,
            window_secs=settings.embedded_window_secs,
        )
    return store, create_dataverse_app(store, limits=limits)


def _counted_session() -> requests.Session:
    """A session whose every Dataverse answer is counted by status (`/metrics`)."""
    from connector.metrics import observe_dataverse_response

    session = requests.Session()
    session.hooks["response"].append(observe_dataverse_response)
    return session


def connect(settings: Settings) -> Connection:
    """The Dataverse client the settings ask for (see module docstring)."""
    secret = _service_secret(settings)
    if not settings.embedded and settings.dataverse_token is not None:
        # A Dataverse that takes a bearer token as it is: the embedded one served alone
        # (`crmchat dataverse serve`), shared by several service processes.
        session = _counted_session()
        if settings.dataverse_ca_bundle is not None:
            session.verify = str(settings.dataverse_ca_bundle)
            # Else requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override this bundle.
            session.trust_env = False
        client = DataverseClient(
            f"{settings.dataverse_url}{DATAVERSE_PATH}/",
            StaticTokenProvider(settings.dataverse_token.get_secret_value()),
            session=session,
        )
        return Connection(client=client, service_secret=secret)
    if not settings.embedded:
        tokens = MsalTokenProvider(
            tenant_id=settings.tenant_id,
            client_id=settings.client_id,
            environment_url=settings.dataverse_url,
            client_secret=(
                settings.client_secret.get_secret_value() if settings.client_secret else None
            ),
            certificate_path=str(settings.certificate_path) if settings.certificate_path else None,
            certificate_thumbprint=settings.certificate_thumbprint or None,
        )
        client = DataverseClient(
            f"{settings.dataverse_url}{DATAVERSE_PATH}/", tokens, session=_counted_session()
        )
        return Connection(client=client, service_secret=secret)

    from connector.dataverse_local import issue_token
    from connector.metrics import observe_dataverse_response

    store, app = open_embedded(settings)
    signing_secret = store.signing_secret
    # One token until it nears its end, as MSAL's cache hands out a real one: a new token
    # per request was signed here and verified again there, every time.
    held: list[tuple[str, float]] = []

    def service_token() -> str:
        now = time.time()
        if not held or held[0][1] - now < SERVICE_TOKEN_RENEW_SECS:
            token = issue_token(
                signing_secret, user_id=SERVICE_USER_ID, lifetime_secs=SERVICE_TOKEN_LIFETIME_SECS
            )
            held[:] = [(token, now + SERVICE_TOKEN_LIFETIME_SECS)]
        return held[0][0]

    service_tokens = CallableTokenProvider(service_token, on_invalidate=held.clear)
    client = DataverseClient(
        f"{EMBEDDED_ORIGIN}{DATAVERSE_PATH}/",
        service_tokens,
        session=WsgiSession(app, on_response=observe_dataverse_response),
    )
    return Connection(client=client, service_secret=secret, embedded_app=app)


def embedded_token(
    db_path: Path,
    *,
    user: str,
    lifetime_secs: int = SERVICE_TOKEN_LIFETIME_SECS,
    dynamics_apps: bool = True,
) -> str:
    """A bearer token the embedded Dataverse in `db_path` accepts for `user`.

    Raises LookupError when no system user matches `user`.
    """
    from connector.dataverse_local import ensure_seeded, find_user, issue_token, open_store
    from connector.solution.reader import load_schema

    store = open_store(db_path, load_schema(dynamics_apps=dynamics_apps))
    try:
        ensure_seeded(store)
        ensure_service_user(store)
        user_id = find_user(store, user)
        if user_id is None:
            raise LookupError(f"no system user named {user!r}")
        return str(issue_token(store.signing_secret, user_id=user_id, lifetime_secs=lifetime_secs))
    finally:
        store.close()
