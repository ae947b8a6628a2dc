"""A host site's published public keys, fetched from the URL set on its widget.

Dynamics 365 Omnichannel's authenticated chat checks the site's RS256 tokens against a
"public key URL" the site publishes (Customer Service docs, "Configure authentication
settings", setup for custom portals). That endpoint answers, as Microsoft documents it,
either one PEM public key (`-----BEGIN PUBLIC KEY-----`) or, for several keys, a JSON
array of `{"kid", "publicKey": base64 of the PEM, "expiry"}`; a standard JWKS
(`{"keys": [...]}`, RFC 7517) is read too. Each key is an RSA public key of at least
2048 bits (the docs generate 2048-bit keys).

The fetch is the service's own request to a URL an admin typed, so it is bounded: HTTPS
only (plain http for loopback hosts, a site on the same machine), FETCH_TIMEOUT_SECS,
at most MAX_KEYS_BYTES read, no redirects; answers are cached CACHE_SECS (failures
FAILURE_CACHE_SECS, so a site that is down is not asked on every chat start), and a
token naming an unknown `kid` refreshes the cache once per MIN_REFRESH_SECS (a key the
site just rotated in).

```python
keys = SiteKeys()
keys.get("https://shop.example/auth/publickey")     # {kid or None: RSAPublicKey}
```

Errors::

    SiteKeysError   the URL is not allowed, or its answer is no usable key
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWKSet
from jwt.exceptions import PyJWKSetError

from connector import json_input

__all__ = [
    "CACHE_SECS",
    "FETCH_TIMEOUT_SECS",
    "MAX_KEYS_BYTES",
    "MAX_URL_CHARS",
    "SiteKeys",
    "SiteKeysError",
    "check_key_url",
]

FETCH_TIMEOUT_SECS = 5.0
# A PEM key is ~450 bytes; a JWKS of a dozen keys a few KB.
MAX_KEYS_BYTES = 64 * 1024
CACHE_SECS = 10 * 60
FAILURE_CACHE_SECS = 30
MIN_REFRESH_SECS = 30
MAX_URL_CHARS = 500
MIN_RSA_BITS = 2048

Keys = dict[str | None, RSAPublicKey]


class SiteKeysError(ValueError):
    """The key URL is not allowed, could not be read, or holds no usable key."""


def check_key_url(url: str) -> str:
    """`url` if the service may fetch keys from it (https, or http on a loopback host).

    Raises SiteKeysError otherwise.
    """
    if len(url) > MAX_URL_CHARS:
        raise SiteKeysError(f"The key URL is longer than {MAX_URL_CHARS} characters.")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _loopback(host):
        return url
    raise SiteKeysError("The key URL must be https:// (http:// only for this machine).")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _rsa(key: object) -> RSAPublicKey:
    if not isinstance(key, RSAPublicKey):
        raise SiteKeysError("The published key is not an RSA public key.")
    if key.key_size < MIN_RSA_BITS:
        raise SiteKeysError(f"The published key is shorter than {MIN_RSA_BITS} bits.")
    return key


def _pem(data: bytes) -> RSAPublicKey:
    try:
        key = load_pem_public_key(data.strip())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SiteKeysError("The published key is not a PEM public key.") from exc
    return _rsa(key)


def parse_keys(body: bytes, *, now: float) -> Keys:
    """The keys in a key URL's answer (PEM, Omnichannel's kid list, or a JWKS)."""
    if body.lstrip().startswith(b"-----BEGIN"):
        return {None: _pem(body)}
    try:
        value: Any = json_input.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SiteKeysError("The key URL answered neither a PEM key nor JSON.") from exc
    keys: Keys = {}
    if isinstance(value, dict) and isinstance(value.get("keys"), list):
        try:
            jwks = PyJWKSet.from_dict(value)
        except PyJWKSetError as exc:
            raise SiteKeysError(f"The JWKS holds no usable key: {exc}") from exc
        for jwk in jwks.keys:
            if jwk.key_type == "RSA" and jwk.public_key_use in (None, "sig"):
                keys[jwk.key_id] = _rsa(jwk.key)
    elif isinstance(value, list):
        for entry in value:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                raise SiteKeysError("Each published key needs a 'kid'.")
            expiry = entry.get("expiry")
            # An expired key no longer signs anything the site sends.
            if isinstance(expiry, int | float) and not isinstance(expiry, bool) and expiry <= now:
                continue
            try:
                pem = base64.b64decode(str(entry.get("publicKey", "")), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SiteKeysError("A published 'publicKey' is not base64.") from exc
            keys[entry["kid"]] = _pem(pem)
    else:
        raise SiteKeysError("The key URL answered JSON that is no key list.")
    if not keys:
        raise SiteKeysError("The key URL publishes no usable key.")
    return keys


@dataclass
class _Entry:
    keys: Keys | None
    error: str | None
    fetched_at: float


class SiteKeys:
    """Fetch and cache the keys of each key URL (thread-safe; one fetch per URL at a time)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._fetching: dict[str, threading.Lock] = {}

    def get(self, url: str, *, refresh: bool = False) -> Keys:
        """The keys published at `url`; `refresh` asks again (at most every
        MIN_REFRESH_SECS) for a key id the cached answer lacks. Raises SiteKeysError."""
        check_key_url(url)
        with self._lock:
            fetch_lock = self._fetching.setdefault(url, threading.Lock())
        with fetch_lock:
            entry = self._entries.get(url)
            if entry is None or self._stale(entry, refresh):
                entry = self._fetch(url)
                with self._lock:
                    self._entries[url] = entry
        if entry.keys is None:
            raise SiteKeysError(entry.error or "The key URL could not be read.")
        return entry.keys

    def _stale(self, entry: _Entry, refresh: bool) -> bool:
        age = self._clock() - entry.fetched_at
        if entry.keys is None:
            return age >= FAILURE_CACHE_SECS
        return age >= CACHE_SECS or (refresh and age >= MIN_REFRESH_SECS)

    def _fetch(self, url: str) -> _Entry:
        now = self._clock()
        try:
            return _Entry(parse_keys(self._download(url), now=self._wall_clock()), None, now)
        except SiteKeysError as error:
            return _Entry(None, str(error), now)

    def _download(self, url: str) -> bytes:
        try:
            with self._session.get(
                url, timeout=FETCH_TIMEOUT_SECS, stream=True, allow_redirects=False
            ) as response:
                if response.status_code != 200:
                    raise SiteKeysError(f"The key URL answered HTTP {response.status_code}.")
                body = b""
                # requests' timeout bounds each read, not the whole answer: a site
                # dripping a byte a second is cut off here.
                deadline = time.monotonic() + FETCH_TIMEOUT_SECS
                for chunk in response.iter_content(8192):
                    body += chunk
                    if len(body) > MAX_KEYS_BYTES:
                        raise SiteKeysError("The key URL's answer is too large.")
                    if time.monotonic() > deadline:
                        raise SiteKeysError("The key URL answered too slowly.")
                return body
        except requests.RequestException as exc:
            raise SiteKeysError(f"The key URL could not be read: {type(exc).__name__}") from exc
