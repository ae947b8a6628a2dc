"""The embedded Dataverse: the Web API over SQLite (see `docs/embedded-dataverse.md`).

Typical use::

    store = open_store(db_path, load_schema())
    ensure_seeded(store)
    token = issue_token(store.signing_secret, user_id=find_user(store, "admin"))
    app = create_dataverse_app(store)            # or a path; WSGI, mount at /api/data/v9.2
    serve(db_path=db_path, port=8443)            # or a server of its own
"""

from __future__ import annotations

from connector.dataverse_local.app import API_ROOT, DataverseApp, create_dataverse_app
from connector.dataverse_local.security import issue_token, verify_token
from connector.dataverse_local.server import serve, start_in_thread
from connector.dataverse_local.store import ApiError, Store, open_store
from connector.dataverse_local.throttle import ServiceProtection, Throttled
from connector.dataverse_local.users import (
    ADMIN_DOMAIN_NAME,
    ADMIN_USER_ID,
    SYSTEM_ADMINISTRATOR_ROLE_ID,
    add_user,
    assign_field_security_profile,
    assign_role,
    ensure_seeded,
    find_user,
)

__all__ = [
    "ADMIN_DOMAIN_NAME",
    "ADMIN_USER_ID",
    "API_ROOT",
    "SYSTEM_ADMINISTRATOR_ROLE_ID",
    "ApiError",
    "DataverseApp",
    "ServiceProtection",
    "Store",
    "Throttled",
    "add_user",
    "assign_field_security_profile",
    "assign_role",
    "create_dataverse_app",
    "ensure_seeded",
    "find_user",
    "issue_token",
    "open_store",
    "serve",
    "start_in_thread",
    "verify_token",
]
