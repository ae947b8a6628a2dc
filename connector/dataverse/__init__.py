"""CRM Chat's client for the Dataverse Web API.

`DataverseClient` reads and writes records with typed errors; `connector.dataverse.retry`
holds its retry and token-refresh policy, `connector.dataverse.query` its paged reads and
`connector.dataverse.batch` its `$batch` requests. `connector.dataverse.odata` builds safe
`$filter` text; `connector.dataverse.auth` holds the token providers;
`connector.dataverse.errors` draws the error tree.
"""

from __future__ import annotations

from .auth import CallableTokenProvider, MsalTokenProvider, StaticTokenProvider, TokenProvider
from .batch import Batch, BatchResult, Ref
from .client import DataverseClient, UpsertMode, WhoAmI
from .errors import (
    AuthError,
    BadRequest,
    ConnectionFailed,
    DataverseError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from .query import Listing, Record

__all__ = [
    "AuthError",
    "BadRequest",
    "Batch",
    "BatchResult",
    "CallableTokenProvider",
    "ConnectionFailed",
    "DataverseClient",
    "DataverseError",
    "Forbidden",
    "Listing",
    "MsalTokenProvider",
    "NotFound",
    "PreconditionFailed",
    "Record",
    "Ref",
    "ServerError",
    "ServiceUnavailable",
    "StaticTokenProvider",
    "TokenProvider",
    "TooManyRequests",
    "Unauthorized",
    "UpsertMode",
    "WhoAmI",
]
