"""Compact JWS with HMAC-SHA256 (HS256): the one implementation the service uses.

Both the embedded Dataverse's bearer tokens and the widget's identity tokens are
``base64url(header).base64url(claims).base64url(signature)`` without padding. Only
``alg: HS256`` is accepted: ``none`` and every other algorithm are refused before the
signature is looked at, and the signature is compared in constant time.

```python
token = sign(secret, {"email": "ann@x.test", "exp": 1_900_000_000})
claims = verify(secret, token)            # JwsError if forged, malformed or not HS256
```

Lifetime rules (``exp``, ``iat``) belong to the callers: each kind of token has its own.

Errors::

    ValueError
    └── JwsError(message)   malformed, not HS256, or the signature does not match
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from connector import json_input

__all__ = ["ALGORITHM", "MAX_TOKEN_CHARS", "JwsError", "sign", "verify"]

ALGORITHM = "HS256"
# Far above any real token; keeps a hostile megabyte from being decoded.
MAX_TOKEN_CHARS = 8192

# One regex pass instead of a Python loop per character (a token is ~250 of them and is
# checked on every request).
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class JwsError(ValueError):
    """A token is malformed, not HS256, or its signature does not match."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise JwsError("The token is not base64url encoded.")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwsError("The token is not base64url encoded.") from exc
    # The last character may carry unused bits; only the one canonical spelling is the
    # token that was signed (otherwise a changed character can still verify).
    if _b64encode(data) != text:
        raise JwsError("The token is not base64url encoded.")
    return data


def _json_segment(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json_input.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwsError(f"The token {what} is not JSON.") from exc
    if not isinstance(value, dict):
        raise JwsError(f"The token {what} is not a JSON object.")
    return value


def _mac(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def sign(secret: bytes, claims: Mapping[str, Any]) -> str:
    """`claims` as a compact HS256 JWS. Raises ValueError for an empty secret."""
    if not secret:
        raise ValueError("the signing secret must not be empty")
    header = {"alg": ALGORITHM, "typ": "JWT"}
    signing_input = ".".join(
        _b64encode(json.dumps(part, separators=(",", ":")).encode())
        for part in (header, dict(claims))
    )
    return f"{signing_input}.{_b64encode(_mac(secret, signing_input.encode('ascii')))}"


def verify(secret: bytes, token: str) -> dict[str, Any]:
    """The claims of `token` once its form, algorithm and signature are checked.

    Raises JwsError when a check fails, ValueError for an empty secret.
    """
    if not secret:
        raise ValueError("the signing secret must not be empty")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise JwsError("The token is missing or too long.")
    segments = token.split(".")
    if len(segments) != 3:
        raise JwsError("The token is not a compact JWS (header.payload.signature).")
    header_text, payload_text, signature_text = segments
    header = _json_segment(_b64decode(header_text), "header")
    # Decide on the algorithm before anything else: never let the token choose "none".
    if header.get("alg") != ALGORITHM:
        raise JwsError(f"The token algorithm {header.get('alg')!r} is not accepted.")
    signature = _b64decode(signature_text)
    payload = _b64decode(payload_text)  # also proves the text is plain ASCII
    expected = _mac(secret, f"{header_text}.{payload_text}".encode("ascii"))
    if not hmac.compare_digest(signature, expected):
        raise JwsError("The token signature is invalid.")
    return _json_segment(payload, "payload")
