"""Bearer tokens for the Dataverse Web API.

`DataverseClient` asks a `TokenProvider` for a token before every request and calls
`invalidate()` when Dataverse answers 401, then asks once more.

- `MsalTokenProvider`: an Entra ID application (client secret or certificate) through
  one long-lived `msal.ConfidentialClientApplication`, whose token cache makes repeated
  `get_token()` calls free until the token nears expiry.
- `StaticTokenProvider`: a fixed token (tests, the embedded Dataverse).
- `CallableTokenProvider`: any function returning a token.

Tokens and secrets are never logged or put into exception messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msal
import requests

from .errors import AuthError, ConnectionFailed

__all__ = [
    "CallableTokenProvider",
    "MsalTokenProvider",
    "StaticTokenProvider",
    "TokenProvider",
]

LOGIN_HOST = "https://login.microsoftonline.com"
# MSAL's own HTTP calls (discovery, token endpoint) get the same bound as Dataverse calls.
MSAL_TIMEOUT_SECS = 30.0


@runtime_checkable
class TokenProvider(Protocol):
    """Supplies bearer tokens for Dataverse."""

    def get_token(self) -> str:
        """Return a currently valid access token (may come from a cache)."""
        ...

    def invalidate(self) -> None:
        """Forget any cached token, so the next `get_token()` fetches a fresh one."""
        ...


class StaticTokenProvider:
    """Always returns the same token; `invalidate()` does nothing."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self) -> str:
        """Return the fixed token."""
        return self._token

    def invalidate(self) -> None:
        """Nothing to forget: the token is fixed."""

    def __repr__(self) -> str:
        return "StaticTokenProvider(<token hidden>)"


class CallableTokenProvider:
    """Calls `fn()` for each token; `on_invalidate`, when given, runs on `invalidate()`."""

    def __init__(
        self, fn: Callable[[], str], *, on_invalidate: Callable[[], None] | None = None
    ) -> None:
        self._fn = fn
        self._on_invalidate = on_invalidate

    def get_token(self) -> str:
        """Return whatever `fn()` returns."""
        return self._fn()

    def invalidate(self) -> None:
        """Run `on_invalidate` if one was given."""
        if self._on_invalidate is not None:
            self._on_invalidate()


class MsalTokenProvider:
    """App-only tokens for one Dataverse environment through MSAL.

    Give exactly one credential: `client_secret`, or `certificate_path` (a ``.pfx``/``.p12``
    file, or a PEM file holding the private key and either the certificate or a
    `certificate_thumbprint`). The MSAL application is built on the first `get_token()`
    (its authority discovery needs the network) and then kept for the life of this
    object together with its token cache.

    Raises:
        ValueError: on construction, if not exactly one credential is given.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        environment_url: str,
        client_secret: str | None = None,
        certificate_path: str | None = None,
        certificate_thumbprint: str | None = None,
    ) -> None:
        if (client_secret is None) == (certificate_path is None):
            raise ValueError("give exactly one of client_secret or certificate_path")
        self.authority = f"{LOGIN_HOST}/{tenant_id}"
        self.scope = f"{environment_url.rstrip('/')}/.default"
        self._client_id = client_id
        self._client_secret = client_secret
        self._certificate_path = certificate_path
        self._certificate_thumbprint = certificate_thumbprint
        self._cache = msal.TokenCache()
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MsalTokenProvider(authority={self.authority!r}, scope={self.scope!r})"

    def get_token(self) -> str:
        """Return an app-only access token, from MSAL's cache when still valid.

        Raises:
            AuthError: Entra ID refused (bad secret, unknown tenant, no consent...).
            ConnectionFailed: the identity provider could not be reached.
        """
        try:
            result = self._application().acquire_token_for_client(scopes=[self.scope])
        except requests.RequestException as exc:
            raise ConnectionFailed(
                f"identity provider unreachable: {type(exc).__name__}", self.authority
            ) from None
        except ValueError as exc:
            # MSAL raises ValueError when authority discovery fails (e.g. unknown tenant).
            raise AuthError("authority_discovery_failed", str(exc)) from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not isinstance(token, str) or not token:
            error = result.get("error", "no_access_token") if isinstance(result, dict) else ""
            description = result.get("error_description", "") if isinstance(result, dict) else ""
            raise AuthError(str(error), str(description))
        return token

    def invalidate(self) -> None:
        """Drop the cached app tokens so the next `get_token()` asks Entra ID again."""
        with self._lock:
            app = self._app
        if app is not None:
            app.remove_tokens_for_client()

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    authority=self.authority,
                    client_credential=self._credential(),
                    token_cache=self._cache,
                    timeout=MSAL_TIMEOUT_SECS,
                )
            return self._app

    def _credential(self) -> str | dict[str, Any]:
        if self._client_secret is not None:
            return self._client_secret
        assert self._certificate_path is not None
        path = Path(self._certificate_path)
        if path.suffix.lower() in (".pfx", ".p12"):
            return {"private_key_pfx_path": str(path)}
        pem = path.read_text(encoding="ascii")
        if self._certificate_thumbprint:
            return {"private_key": pem, "thumbprint": self._certificate_thumbprint}
        # MSAL derives the thumbprint from the certificate in the same PEM file.
        return {"private_key": pem, "public_certificate": pem}
