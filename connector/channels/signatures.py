"""The platforms' webhook signatures and Meta's verification handshake.

Meta (Messenger, Instagram, WhatsApp) signs each POST with ``X-Hub-Signature-256:
sha256=<hex HMAC-SHA256(app secret, raw body)>``; Viber sends ``X-Viber-Content-Signature:
<hex HMAC-SHA256(bot auth token, raw body)>``. Both are checked over the raw bytes as
received (Meta signs its escaped-unicode serialisation, so re-serialised JSON would not
match) and compared in constant time. Sources in docs/channels.md.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "META_SIGNATURE_HEADER",
    "VIBER_SIGNATURE_HEADER",
    "check_meta_signature",
    "check_verify_token",
    "check_viber_signature",
    "sign_meta",
    "sign_viber",
]

META_SIGNATURE_HEADER = "X-Hub-Signature-256"
VIBER_SIGNATURE_HEADER = "X-Viber-Content-Signature"
_META_PREFIX = "sha256="


def _hex_hmac(key: str, body: bytes) -> str:
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def sign_meta(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for `body` (the simulator signs with it)."""
    return _META_PREFIX + _hex_hmac(app_secret, body)


def sign_viber(auth_token: str, body: bytes) -> str:
    """The X-Viber-Content-Signature value Viber sends for `body`."""
    return _hex_hmac(auth_token, body)


def check_meta_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is Meta's signature of the raw `body` under `app_secret`."""
    if not header or not app_secret:
        return False
    # Meta sends lowercase hex; accept either case rather than refuse a real call.
    return hmac.compare_digest(sign_meta(app_secret, body), header.strip().lower())


def check_viber_signature(auth_token: str, body: bytes, header: str | None) -> bool:
    """True when `header` is Viber's signature of the raw `body` under the bot's token."""
    if not header or not auth_token:
        return False
    return hmac.compare_digest(sign_viber(auth_token, body), header.strip().lower())


def check_verify_token(expected: str, given: str | None) -> bool:
    """Meta's handshake: `hub.verify_token` must equal the account's verify token."""
    if not given or not expected:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
