"""Compact JWTs through PyJWT: HS256 with a shared secret, RS256 with a site's public key.

The embedded Dataverse's bearer tokens and the service's own identity tokens are HS256;
a host site's identity token is HS256 with the widget's secret or, as Dynamics 365
Omnichannel's authenticated chat does it, RS256 checked against the site's published
public key (`connector.site_keys`). PyJWT does the signing and the signature check; this
module adds the rules it leaves to its callers:

- the algorithm is the caller's choice, never the token's (`none` and every other one are
  refused before the signature is looked at, by PyJWT's `algorithms=`);
- a token is at most MAX_TOKEN_CHARS and each segment is canonical base64url: PyJWT
  decodes a signature whose last character differs only in unused bits to the same bytes,
  and that other spelling of a signed token must be refused too;
- header and claims are JSON objects nested at most `json_input.MAX_JSON_DEPTH` deep
  (a deeply nested token would otherwise raise RecursionError inside the library);
- the lifetime claims (`exp`, `iat`, `nbf`) are the callers': each kind of token has its
  own limits, so PyJWT's own time checks are off.

```python
token = sign_hs256(secret, {"email": "ann@x.test", "exp": 1_900_000_000})
claims = verify_hs256(secret, token)        # TokenFormError if forged, malformed, not HS256
claims = verify_rs256(public_keys, token)   # public_keys: {kid or None: RSA public key}
```

Errors::

    ValueError
    └── TokenFormError(message)   malformed, wrong algorithm, unknown key or bad signature
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import HMACAlgorithm

from connector import json_input

__all__ = [
    "MAX_TOKEN_CHARS",
    "TokenFormError",
    "peek",
    "sign_hs256",
    "verify_hs256",
    "verify_rs256",
]

# Far above any real token (an RS256 one with context is ~1.5 KB); keeps a hostile
# megabyte from being decoded.
MAX_TOKEN_CHARS = 8192
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class _HS256(HMACAlgorithm):
    """HS256 as RFC 7518 defines it. PyJWT warns about secrets under 32 bytes; a widget's
    secret is the admin's (and the site's) choice and has always been accepted, so that
    advice is the designer's to give, not a warning on every chat start."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)

    def check_key_length(self, key: bytes) -> str | None:
        return None


# PyJWS: the signature and the algorithm. The claims are parsed here (depth-limited), and
# their times are the callers' to check, each kind of token with its own limits.
_JWS = jwt.PyJWS(algorithms=["RS256"])
_JWS.register_algorithm("HS256", _HS256())


class TokenFormError(ValueError):
    """A token is malformed, of another algorithm, signed by an unknown key, or forged."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _segment(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise TokenFormError("The token is not base64url encoded.")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenFormError("The token is not base64url encoded.") from exc
    # Only the canonical spelling is the token that was signed.
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise TokenFormError("The token is not base64url encoded.")
    return data


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json_input.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenFormError(f"The token {what} is not JSON.") from exc
    if not isinstance(value, dict):
        raise TokenFormError(f"The token {what} is not a JSON object.")
    return value


def _parts(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a well-formed token, before any signature check."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenFormError("The token is missing or too long.")
    segments = token.split(".")
    if len(segments) != 3:
        raise TokenFormError("The token is not a compact JWS (header.payload.signature).")
    header = _json_object(_segment(segments[0]), "header")
    claims = _json_object(_segment(segments[1]), "payload")
    return header, claims


def peek(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a well-formed token, unverified: only to choose how to
    verify it. Raises TokenFormError."""
    return _parts(token)


def sign_hs256(secret: bytes, claims: Mapping[str, Any]) -> str:
    """`claims` as a compact HS256 JWS. Raises ValueError for an empty secret."""
    if not secret:
        raise ValueError("the signing secret must not be empty")
    payload = json.dumps(dict(claims), separators=(",", ":")).encode()
    return _JWS.encode(payload, secret, algorithm="HS256")


def _check_signature(token: str, key: Any, algorithm: str) -> None:
    _segment(token.rsplit(".", 1)[1])  # after the algorithm check: "none" says so
    try:
        _JWS.decode(token, key, algorithms=[algorithm])
    except jwt.InvalidAlgorithmError as exc:
        raise TokenFormError("The token algorithm is not accepted.") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenFormError("The token signature is invalid.") from exc
    except jwt.PyJWTError as exc:
        raise TokenFormError(f"The token is not valid: {exc}") from exc


def _check_algorithm(header: Mapping[str, Any], algorithm: str) -> None:
    # Decided before anything else: never let the token choose "none" or HS256 with a
    # public key as the secret.
    if header.get("alg") != algorithm:
        raise TokenFormError(f"The token algorithm {header.get('alg')!r} is not accepted.")


def verify_hs256(secret: bytes, token: str) -> dict[str, Any]:
    """The claims of `token` once its form, algorithm (HS256) and signature are checked.

    Raises TokenFormError when a check fails, ValueError for an empty secret.
    """
    if not secret:
        raise ValueError("the signing secret must not be empty")
    header, claims = _parts(token)
    _check_algorithm(header, "HS256")
    _check_signature(token, secret, "HS256")
    return claims


def verify_rs256(keys: Mapping[str | None, RSAPublicKey], token: str) -> dict[str, Any]:
    """The claims of an RS256 `token` signed by one of `keys` (by `kid`; a token without
    one is checked against the key published without one, or the only key).

    Raises TokenFormError when a check fails or no key fits.
    """
    header, claims = _parts(token)
    _check_algorithm(header, "RS256")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenFormError("The token's 'kid' is not text.")
    key = keys.get(kid)
    if key is None and kid is None and len(keys) == 1:
        key = next(iter(keys.values()))
    if key is None:
        raise TokenFormError("The site publishes no key for this token.")
    _check_signature(token, key, "RS256")
    return claims
