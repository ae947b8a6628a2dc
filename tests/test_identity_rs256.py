"""Omnichannel's authenticated chat: RS256 identity tokens checked against the public keys
the site publishes at the widget's key URL (connector/site_keys.py, connector/chat/tokens.py).

The site is a real HTTP server on loopback that publishes its keys the ways Microsoft
documents ("Configure authentication settings", setup for custom portals): one PEM public
key, or a JSON list of `{kid, publicKey: base64 PEM, expiry}`; and a standard JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from chat_fakes import ANN_USER, SHOP, FakeDirectory, FakeOutbox
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError
from site_server import serve
from test_sockets import Server

from connector.chat.tokens import ChatTokens, InvalidIdentity
from connector.crm.design import WidgetDesign
from connector.services import services_of
from connector.site_keys import CACHE_SECS, MAX_KEYS_BYTES, MIN_REFRESH_SECS, SiteKeys

NOW = 1_900_000_000.0
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rs256(key: rsa.RSAPrivateKey = KEY, kid: str | None = None, **claims: Any) -> str:
    """A token as Microsoft's sample builds it: sub, lwicontexts, iat, iss, exp, nbf."""
    body: dict[str, Any] = {
        "sub": "87b4d06c-abc2-e811-a9b0-000d3a10e09e",
        "lwicontexts": json.dumps({"msdyn_cartvalue": "10000", "msdyn_isvip": "false"}),
        "iat": int(NOW) - 10,
        "iss": "contosohelp.com",
        "exp": int(NOW) + 600,
        "nbf": int(NOW) - 10,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(
        body, KEY if key is None else key, algorithm="RS256", headers={"kid": kid} if kid else None
    )


@dataclass
class KeySite:
    """A site publishing `body` at /auth/publickey; counts the requests it got."""

    port: int
    body: bytes = b""
    status: int = 200
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/publickey"


@pytest.fixture
def key_site() -> Iterator[KeySite]:
    site = KeySite(0, pem(KEY))

    def answer(path: str) -> tuple[int, bytes]:
        site.requests.append(path)
        return site.status, site.body

    with serve(answer) as port:
        site.port = port
        yield site


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock | None = None) -> ChatTokens:
    keys = SiteKeys(clock=clock or Clock(), wall_clock=lambda: NOW)
    return ChatTokens(b"service-secret", clock=lambda: NOW, site_keys=keys)


def test_an_rs256_token_signed_by_the_sites_published_key_names_the_visitor(
    key_site: KeySite,
) -> None:
    identity = tokens().verify_identity(
        rs256(email="ann@shop.example", name="Ann Lee"), widget_secret=None, key_url=key_site.url
    )
    assert (identity.source, identity.email, identity.name) == (
        "site",
        "ann@shop.example",
        "Ann Lee",
    )
    assert identity.subject == "87b4d06c-abc2-e811-a9b0-000d3a10e09e"
    # lwicontexts, "the serialized custom context", is the chat's context.
    assert identity.context == {
        "msdyn_cartvalue": {"value": "10000", "isDisplayable": True},
        "msdyn_isvip": {"value": "false", "isDisplayable": True},
    }


def test_microsofts_sample_token_needs_no_email(key_site: KeySite) -> None:
    identity = tokens().verify_identity(rs256(), widget_secret=None, key_url=key_site.url)
    assert identity.email == "" and identity.subject


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (rs256(key=OTHER_KEY), "signature"),  # another key signed it
        (rs256(exp=int(NOW) - 1), "expired"),
        (rs256(exp=None), "exp"),
        (rs256(nbf=int(NOW) + 3600), "not valid yet"),
        (rs256(iat=int(NOW) + 3600), "future"),
        (rs256(sub=None), "sub"),
        (rs256(sub=""), "sub"),
        (rs256(lwicontexts="{not json"), "lwicontexts"),
        (rs256(lwicontexts=json.dumps({"Cart": {"nested": {"a": 1}}})), "lwicontexts"),
        (rs256(lwicontexts=json.dumps({f"v{i}": i for i in range(101)})), "lwicontexts"),
    ],
)
def test_bad_rs256_tokens_prove_nothing(key_site: KeySite, token: str, why: str) -> None:
    with pytest.raises(InvalidIdentity, match=why):
        tokens().verify_identity(token, widget_secret="w-secret", key_url=key_site.url)


def test_the_public_key_cannot_be_used_as_an_hs256_secret(key_site: KeySite) -> None:
    # The classic confusion: an HS256 token whose "secret" is the published PEM text.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(
        json.dumps({"sub": "x", "email": "boss@shop.example", "exp": int(NOW) + 60}).encode()
    )
    mac = hmac.new(pem(KEY), f"{head}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{head}.{body}.{b64(mac)}"
    for secret in (None, "w-secret"):
        with pytest.raises(InvalidIdentity):
            tokens().verify_identity(forged, widget_secret=secret, key_url=key_site.url)


def test_a_widget_without_a_key_url_takes_no_rs256_token() -> None:
    with pytest.raises(InvalidIdentity, match="public key URL"):
        tokens().verify_identity(rs256(), widget_secret="w-secret", key_url=None)


def test_omnichannels_kid_list_picks_the_key_and_a_rotated_in_key_is_fetched(
    key_site: KeySite,
) -> None:
    def listing(*entries: tuple[str, rsa.RSAPrivateKey, float]) -> bytes:
        return json.dumps(
            [
                {"kid": kid, "publicKey": base64.b64encode(pem(k)).decode(), "expiry": expiry}
                for kid, k, expiry in entries
            ]
        ).encode()

    key_site.body = listing(("old", OTHER_KEY, NOW - 1), ("k1", KEY, NOW + 3600))
    clock = Clock()
    chat_tokens = tokens(clock)
    assert chat_tokens.verify_identity(rs256(kid="k1"), widget_secret=None, key_url=key_site.url)
    # An expired key of the list signs nothing.
    with pytest.raises(InvalidIdentity):
        chat_tokens.verify_identity(
            rs256(key=OTHER_KEY, kid="old"), widget_secret=None, key_url=key_site.url
        )
    # The site rotates a new key in: a token naming it refetches (not more than once per
    # MIN_REFRESH_SECS), then the cache answers.
    key_site.body = listing(("k1", KEY, NOW + 3600), ("k2", OTHER_KEY, NOW + 3600))
    clock.now = MIN_REFRESH_SECS
    fetches = len(key_site.requests)
    assert chat_tokens.verify_identity(
        rs256(key=OTHER_KEY, kid="k2"), widget_secret=None, key_url=key_site.url
    )
    assert len(key_site.requests) == fetches + 1
    chat_tokens.verify_identity(
        rs256(key=OTHER_KEY, kid="k2"), widget_secret=None, key_url=key_site.url
    )
    assert len(key_site.requests) == fetches + 1


def test_a_standard_jwks_is_read_too(key_site: KeySite) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    key_site.body = json.dumps({"keys": [dict(jwk, kid="j1", use="sig")]}).encode()
    assert tokens().verify_identity(rs256(kid="j1"), widget_secret=None, key_url=key_site.url)


def test_keys_are_cached_and_fetched_again_when_old(key_site: KeySite) -> None:
    clock = Clock()
    chat_tokens = tokens(clock)
    for _ in range(3):
        chat_tokens.verify_identity(rs256(), widget_secret=None, key_url=key_site.url)
    assert len(key_site.requests) == 1
    clock.now = CACHE_SECS
    chat_tokens.verify_identity(rs256(), widget_secret=None, key_url=key_site.url)
    assert len(key_site.requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (404, b"", "HTTP 404"),
        (200, b"x" * (MAX_KEYS_BYTES + 1), "too large"),
        (200, b"hello", "neither a PEM key nor JSON"),
        (200, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "PEM"),
        (200, pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "2048"),
        (200, b"[]", "no usable key"),
    ],
)
def test_a_key_url_without_a_usable_key_is_refused_and_the_failure_remembered(
    key_site: KeySite, status: int, body: bytes, why: str
) -> None:
    key_site.status, key_site.body = status, body
    chat_tokens = tokens()
    for _ in range(2):
        with pytest.raises(InvalidIdentity, match=why):
            chat_tokens.verify_identity(rs256(), widget_secret=None, key_url=key_site.url)
    assert len(key_site.requests) == 1  # a site that is down is not asked on every chat


def test_a_slow_key_url_is_cut_off() -> None:
    # A port nobody listens on: the connection is refused at once, no hang.
    keys = SiteKeys()
    with pytest.raises(ValueError, match="could not be read"):
        keys.get("http://127.0.0.1:9/auth/publickey")


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example/auth/publickey",
        "ftp://shop.example/k",
        "file:///etc/passwd",
        "https://" + "a" * 600 + ".example/k",
    ],
)
def test_the_designer_takes_only_a_fetchable_key_url(url: str) -> None:
    with pytest.raises(ValidationError):
        WidgetDesign(auth_key_url=url)
    assert WidgetDesign(auth_key_url=" https://shop.example/auth/publickey ").auth_key_url == (
        "https://shop.example/auth/publickey"
    )


# ----- over the visitor socket ---------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path, key_site: KeySite) -> Iterator[Server]:
    running = Server(tmp_path, FakeOutbox())
    directory = services_of(running.app).directory
    assert isinstance(directory, FakeDirectory)
    shop = directory.widget(SHOP)
    assert shop is not None
    directory.set_widget(replace(shop, design=WidgetDesign(auth_key_url=key_site.url)))
    yield running
    running.stop()


def test_hello_with_an_rs256_token_is_verified_and_its_context_reaches_the_agent(
    server: Server,
) -> None:
    ann = server.agent(ANN_USER)
    now = int(time.time())
    token = rs256(iat=now, nbf=now, exp=now + 600, email="ann@shop.example", name="Ann Lee")
    visitor = server.visitor("visitor-rs256", identity={"token": token})
    # The page's own context is overruled by the token's signed lwicontexts.
    visitor.send(
        {
            "type": "chat.start",
            "client_id": "s1",
            "fields": {},
            "context": {"msdyn_isvip": "true", "Page": "pricing"},
        }
    )
    visitor.expect("chat.started")
    chat = ann.expect("chat.offered")["chat"]
    assert chat["identity"]["verified"] is True and chat["identity"]["email"] == "ann@shop.example"
    shown = {item["name"]: item["value"] for item in chat["context"]}
    assert shown == {"msdyn_cartvalue": "10000", "msdyn_isvip": "false", "Page": "pricing"}
