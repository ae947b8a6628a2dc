"""The embedded Dataverse's gatekeeping: bearer tokens, privileges and depths, service
protection limits, and the HTTPS certificate."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509

from connector.dataverse_local.security import (
    NO_ROLES_CODE,
    SYSTEM_ADMINISTRATOR_ROLE_NAME,
    TokenError,
    access_denied_message,
    can_touch,
    effective_depth,
    issue_token,
    missing_privilege_message,
    no_roles_message,
    privilege_name,
    verify_token,
)
from connector.dataverse_local.throttle import (
    CONCURRENCY_LIMIT_CODE,
    REQUEST_LIMIT_CODE,
    ServiceProtection,
    Throttled,
)
from connector.dataverse_local.tls import ensure_self_signed_cert
from connector.solution.model import AccessLevel, Column, ColumnType, Role, Table

SECRET = b"0123456789abcdef0123456789abcdef"
USER = "4b6c2f0e-8a51-4f0d-9a57-1d2f3c4b5a69"
OTHER = "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4"
BU = "aa000000-0000-0000-0000-000000000001"
OTHER_BU = "bb000000-0000-0000-0000-000000000002"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

CHAT = Table(
    logical_name="crmchat_chat",
    schema_name="crmchat_Chat",
    entity_set="crmchat_chats",
    primary_id="activityid",
    primary_name="subject",
    columns={"subject": Column("subject", ColumnType.STRING, max_length=200)},
    is_activity=True,
    display_name="Chat",
)
CONTACT = Table(
    logical_name="contact",
    schema_name="Contact",
    entity_set="contacts",
    primary_id="contactid",
    primary_name="fullname",
    columns={},
    is_custom=False,
    display_name="Contact",
)


# -- tokens -----------------------------------------------------------------------------


def _segments(token: str) -> list[str]:
    return token.split(".")


def _encode(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _decode(segment: str) -> dict[str, object]:
    value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(value, dict)
    return value


def test_token_round_trip() -> None:
    token = issue_token(SECRET, user_id=USER, lifetime_secs=600, now=NOW, object_id="oid-1")
    claims = verify_token(SECRET, token, now=NOW + timedelta(seconds=599))

    assert claims.user_id == USER
    assert claims.object_id == "oid-1"
    assert claims.issued_at == NOW
    assert claims.expires_at == NOW + timedelta(seconds=600)
    assert claims.issuer == "crmchat-embedded-dataverse"


def test_token_is_a_compact_hs256_jws_without_padding() -> None:
    token = issue_token(SECRET, user_id=USER, now=NOW)
    header, payload, signature = _segments(token)

    assert "=" not in token
    assert _decode(header)["alg"] == "HS256"
    assert _decode(payload)["sub"] == USER
    assert _decode(payload)["iss"] == "crmchat-embedded-dataverse"
    assert "oid" not in _decode(payload)
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32


def test_expired_token_is_refused() -> None:
    token = issue_token(SECRET, user_id=USER, lifetime_secs=60, now=NOW)

    with pytest.raises(TokenError, match="expired"):
        verify_token(SECRET, token, now=NOW + timedelta(seconds=60))


def test_a_remembered_token_still_expires_and_needs_its_own_secret() -> None:
    # The signature check is remembered per (secret, token); the times are not.
    token = issue_token(SECRET, user_id=USER, lifetime_secs=60, now=NOW)
    assert verify_token(SECRET, token, now=NOW).user_id == USER
    assert verify_token(SECRET, token, now=NOW + timedelta(seconds=59)).user_id == USER
    with pytest.raises(TokenError, match="expired"):
        verify_token(SECRET, token, now=NOW + timedelta(seconds=60))
    with pytest.raises(TokenError, match="signature"):
        verify_token(b"another secret", token, now=NOW)


def test_token_signed_with_another_secret_is_refused() -> None:
    token = issue_token(b"another secret", user_id=USER, now=NOW)

    with pytest.raises(TokenError, match="signature"):
        verify_token(SECRET, token, now=NOW)


def test_tampered_payload_is_refused() -> None:
    header, payload, signature = _segments(issue_token(SECRET, user_id=USER, now=NOW))
    claims = _decode(payload)
    claims["sub"] = OTHER
    forged = f"{header}.{_encode(claims)}.{signature}"

    with pytest.raises(TokenError, match="signature"):
        verify_token(SECRET, forged, now=NOW)


def test_tampered_signature_is_refused() -> None:
    header, payload, signature = _segments(issue_token(SECRET, user_id=USER, now=NOW))
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    with pytest.raises(TokenError, match="signature"):
        verify_token(SECRET, f"{header}.{payload}.{flipped}", now=NOW)


@pytest.mark.parametrize("alg", ["none", "None", "HS512", "RS256", None])
def test_other_algorithms_are_refused(alg: str | None) -> None:
    _, payload, signature = _segments(issue_token(SECRET, user_id=USER, now=NOW))
    header = _encode({"alg": alg, "typ": "JWT"})

    with pytest.raises(TokenError, match="algorithm"):
        verify_token(SECRET, f"{header}.{payload}.{signature}", now=NOW)
    with pytest.raises(TokenError, match="algorithm"):
        verify_token(SECRET, f"{header}.{payload}.", now=NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "é.é.é",
        f"{_encode([1, 2])}.{_encode({})}.AAAA",
        "x" * 10_000,
    ],
)
def test_garbage_tokens_raise_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        verify_token(SECRET, token, now=NOW)


def test_token_from_another_issuer_is_refused() -> None:
    import hashlib
    import hmac

    header = _encode({"alg": "HS256", "typ": "JWT"})
    payload = _encode({"iss": "someone-else", "sub": USER, "iat": 0, "exp": 2**40})
    signature = hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    with pytest.raises(TokenError, match="issued"):
        verify_token(SECRET, token, now=NOW)


# -- privileges -------------------------------------------------------------------------


def test_privilege_names_are_the_platform_names() -> None:
    # A custom activity is governed by the Activity privileges, as every activity is.
    assert privilege_name("Read", CHAT) == "prvReadActivity"
    assert privilege_name("AppendTo", CHAT) == "prvAppendToActivity"
    assert privilege_name("Read", CONTACT) == "prvReadContact"
    assert privilege_name("Read", replace(CONTACT, logical_name="systemuser")) == "prvReadUser"
    assert privilege_name("Write", replace(CONTACT, logical_name="annotation")) == "prvWriteNote"
    agent = replace(CHAT, logical_name="crmchat_agent", schema_name="crmchat_Agent")
    assert privilege_name("Read", replace(agent, is_activity=False)) == "prvReadcrmchat_Agent"
    with pytest.raises(ValueError):
        privilege_name("Frobnicate", CHAT)


def test_effective_depth_is_the_deepest_grant() -> None:
    agent = Role("r1", "Chat Agent", {"prvReadActivity": AccessLevel.BASIC})
    supervisor = Role("r2", "Chat Supervisor", {"prvReadActivity": AccessLevel.LOCAL})
    reader = Role("r3", "Reader", {"prvReadContact": AccessLevel.GLOBAL})

    assert effective_depth([agent], "prvReadActivity") is AccessLevel.BASIC
    assert effective_depth([agent, supervisor], "prvReadActivity") is AccessLevel.LOCAL
    assert effective_depth([agent], "prvWriteActivity") is None
    assert effective_depth([], "prvReadActivity") is None
    # Standard tables' privileges carry the schema name's casing in real Dataverse.
    assert effective_depth([reader], privilege_name("Read", CONTACT)) is AccessLevel.GLOBAL


def test_system_administrator_holds_everything_globally() -> None:
    admin = Role("r0", SYSTEM_ADMINISTRATOR_ROLE_NAME)

    assert effective_depth([admin], "prvDeleteActivity") is AccessLevel.GLOBAL
    assert can_touch(
        effective_depth([admin], "prvDeleteActivity"),
        owner_id=OTHER,
        user_id=USER,
        owner_business_unit=OTHER_BU,
        user_business_unit=BU,
    )


@pytest.mark.parametrize(
    ("depth", "owner", "owner_bu", "allowed"),
    [
        (None, USER, BU, False),
        (AccessLevel.BASIC, USER, BU, True),
        (AccessLevel.BASIC, USER.upper(), BU, True),
        (AccessLevel.BASIC, "{" + USER + "}", BU, True),
        (AccessLevel.BASIC, OTHER, BU, False),
        (AccessLevel.LOCAL, OTHER, BU, True),
        (AccessLevel.LOCAL, OTHER, OTHER_BU, False),
        (AccessLevel.LOCAL, OTHER, None, False),
        (AccessLevel.DEEP, OTHER, BU, True),
        (AccessLevel.DEEP, OTHER, OTHER_BU, False),
        (AccessLevel.GLOBAL, OTHER, OTHER_BU, True),
        (AccessLevel.BASIC, None, None, True),  # organization-owned record
    ],
)
def test_can_touch_by_depth(
    depth: AccessLevel | None, owner: str | None, owner_bu: str | None, allowed: bool
) -> None:
    assert (
        can_touch(
            depth, owner_id=owner, user_id=USER, owner_business_unit=owner_bu, user_business_unit=BU
        )
        is allowed
    )


def test_missing_privilege_message_has_dataverse_shape() -> None:
    message = missing_privilege_message(
        user_id=USER, privilege="prvReadActivity", table=CHAT, role_count=1, business_unit_id=BU
    )

    assert message.startswith(f"Principal user (Id={USER}, type=8, roleCount=1,")
    assert "is missing prvReadActivity privilege (Id=" in message
    assert "for entity 'crmchat_chat' (LocalizedName='Chat')" in message
    assert f"businessUnitId={BU}" in message
    otc = int(message.split("on OTC=")[1].split(" ")[0])
    assert otc >= 10000  # custom tables get codes from 10000 up
    assert "on OTC=2 for entity 'contact'" in missing_privilege_message(
        user_id=USER, privilege="prvReadContact", table=CONTACT, role_count=0
    )


def test_access_denied_and_no_roles_messages() -> None:
    denied = access_denied_message(
        action="Write",
        table=CONTACT,
        record_id="rec",
        owner_id=OTHER,
        user_id=USER,
        owner_business_unit=OTHER_BU,
    )
    assert denied.startswith("SecLib::AccessCheckEx failed.")
    assert "AccessRights: WriteAccess" in denied
    assert f"CallingUser: {USER}" in denied
    assert NO_ROLES_CODE == "0x80042f09"
    assert no_roles_message(USER).endswith(f"Returned hr = -2147209463, User: {USER}")


# -- service protection -----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_request_window_refuses_then_admits_after_retry_after() -> None:
    clock = FakeClock()
    protection = ServiceProtection(max_requests=3, window_secs=2, clock=clock)
    for step in (0.0, 0.4, 0.5):
        clock.now += step
        with protection.admit(USER):
            pass
    clock.now += 0.2  # 1.1 s after the first request

    with pytest.raises(Throttled) as refused:
        protection.admit(USER)
    assert refused.value.code == REQUEST_LIMIT_CODE
    assert (
        refused.value.message
        == "Number of requests exceeded the limit of 3 over time window of 2 seconds."
    )
    assert refused.value.retry_after_secs == 1  # the oldest leaves the window in 0.9 s

    clock.now += 0.9
    with protection.admit(USER):
        pass


def test_retry_after_is_whole_seconds_until_the_oldest_request_expires() -> None:
    clock = FakeClock()
    protection = ServiceProtection(max_requests=2, window_secs=300, clock=clock)
    with protection.admit(USER), protection.admit(USER):
        pass
    clock.now += 10.5

    with pytest.raises(Throttled) as refused:
        protection.admit(USER)

    assert refused.value.retry_after_secs == 290  # ceil(289.5)
    assert (
        refused.value.message
        == "Number of requests exceeded the limit of 2 over time window of 300 seconds."
    )


def test_default_limits_carry_dataverse_messages() -> None:
    clock = FakeClock()
    protection = ServiceProtection(clock=clock)
    slots = [protection.admit(USER) for _ in range(52)]

    with pytest.raises(Throttled) as refused:
        protection.admit(USER)

    assert refused.value.code == CONCURRENCY_LIMIT_CODE
    assert refused.value.message == "Number of concurrent requests exceeded the limit of 52."
    assert refused.value.retry_after_secs == 1
    for slot in slots:
        with slot:
            pass
    clock.now += 1
    for _ in range(6000 - 52):
        with protection.admit(USER):
            pass
    with pytest.raises(Throttled) as over:
        protection.admit(USER)
    assert (
        over.value.message
        == "Number of requests exceeded the limit of 6000 over time window of 300 seconds."
    )
    assert over.value.retry_after_secs == 299


def test_limits_are_per_user_and_refusals_are_not_counted() -> None:
    clock = FakeClock()
    protection = ServiceProtection(max_requests=1, window_secs=5, clock=clock)
    with protection.admit(USER):
        pass
    for _ in range(3):
        with pytest.raises(Throttled):
            protection.admit(USER)
    with protection.admit(OTHER):
        pass

    clock.now += 5
    with protection.admit(USER):
        pass


def test_concurrency_slot_is_freed_when_the_request_ends_even_on_error() -> None:
    protection = ServiceProtection(max_concurrent=1, clock=FakeClock())
    with pytest.raises(RuntimeError), protection.admit(USER):
        with pytest.raises(Throttled):
            protection.admit(USER)
        raise RuntimeError("handler failed")

    with protection.admit(USER):
        pass


def test_concurrency_is_thread_safe() -> None:
    protection = ServiceProtection(max_concurrent=3)
    inside = threading.Barrier(3, timeout=5)
    release = threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def request() -> None:
        try:
            with protection.admit(USER):
                with lock:
                    outcomes.append("in")
                inside.wait()
                release.wait(5)
        except Throttled:
            with lock:
                outcomes.append("throttled")

    threads = [threading.Thread(target=request) for _ in range(3)]
    for thread in threads:
        thread.start()
    while len(outcomes) < 3:
        threading.Event().wait(0.01)
    with pytest.raises(Throttled):
        protection.admit(USER)
    release.set()
    for thread in threads:
        thread.join(5)

    assert outcomes == ["in"] * 3
    with protection.admit(USER):
        pass


def test_idle_users_are_forgotten() -> None:
    clock = FakeClock()
    protection = ServiceProtection(max_requests=10, window_secs=2, clock=clock)
    for n in range(100):
        with protection.admit(f"user-{n}"):
            pass
    assert protection.tracked_users() == 100

    clock.now += 3
    with protection.admit(USER):
        pass

    assert protection.tracked_users() == 1
    assert protection.remaining_requests(USER) == 9


# -- TLS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


def test_certificate_has_the_sans_and_is_its_own_ca(cert_dir: Path) -> None:
    cert_path, key_path = ensure_self_signed_cert(cert_dir)

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1")]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=364) < lifetime < timedelta(days=366)
    assert key_path.stat().st_mode & 0o077 == 0


def test_certificate_is_reused_until_the_names_change(cert_dir: Path) -> None:
    cert_path, _ = ensure_self_signed_cert(cert_dir)
    first = cert_path.read_bytes()

    assert ensure_self_signed_cert(cert_dir)[0].read_bytes() == first
    renewed, _ = ensure_self_signed_cert(
        cert_dir, hostnames=("localhost", "127.0.0.1", "::1", "dv.test")
    )
    assert renewed.read_bytes() != first
    san = x509.load_pem_x509_certificate(renewed.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert set(san.value.get_values_for_type(x509.DNSName)) == {"localhost", "dv.test"}


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert_path, key_path = ensure_self_signed_cert(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, cert_path
    listener.close()
    thread.join(5)


def test_a_client_trusting_the_certificate_completes_a_handshake(
    tls_server: tuple[int, Path],
) -> None:
    port, cert_path = tls_server
    client_context = ssl.create_default_context(cafile=str(cert_path))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT

    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(5) == b"hello"
