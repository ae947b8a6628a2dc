"""A self-signed certificate so the embedded Dataverse can serve HTTPS.

Microsoft's Python SDK refuses a `base_url` that is not `https://`, so
`crmchat dataverse serve` and the SDK test need TLS on localhost. The certificate is its own
CA (`BasicConstraints CA=True`, key usage for signing certificates too), so pointing
`REQUESTS_CA_BUNDLE` (or `ssl.create_default_context(cafile=…)`) at it makes clients trust
it; its SAN lists every host name as a DNS name and every IP address as an IP address.

The files are `cert.pem` and `key.pem` (mode 0600) in the given directory. They are
reused while they cover the requested names and stay valid for more than
`RENEW_BEFORE_DAYS`; otherwise both are written again.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from connector.private_files import make_private_dir

__all__ = [
    "CERT_FILE_NAME",
    "KEY_FILE_NAME",
    "RENEW_BEFORE_DAYS",
    "VALIDITY_DAYS",
    "ensure_self_signed_cert",
]

CERT_FILE_NAME = "cert.pem"
KEY_FILE_NAME = "key.pem"
VALIDITY_DAYS = 365  # a year: long enough for a dev box, short enough to notice
RENEW_BEFORE_DAYS = 30  # replace a certificate that would expire within a month
# Backdating covers clocks a little behind the one that made the certificate.
BACKDATE_SECS = 300
_COMMON_NAME = "CRM Chat embedded Dataverse"

_IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _split_names(hostnames: Sequence[str]) -> tuple[list[str], list[_IpAddress]]:
    dns: list[str] = []
    ips: list[_IpAddress] = []
    for name in hostnames:
        try:
            ips.append(ipaddress.ip_address(name))
        except ValueError:
            dns.append(name.lower())
    return dns, ips


def _still_good(cert_path: Path, key_path: Path, hostnames: Sequence[str]) -> bool:
    """Whether the files exist, parse, match each other, cover `hostnames` and are fresh."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    cert_key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    own_key = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if cert_key != own_key:
        return False
    if cert.not_valid_after_utc - datetime.now(UTC) < timedelta(days=RENEW_BEFORE_DAYS):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    dns, ips = _split_names(hostnames)
    have_dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return set(dns) <= have_dns and set(ips) <= have_ips


def ensure_self_signed_cert(
    directory: Path,
    *,
    hostnames: Sequence[str] = ("localhost", "127.0.0.1"),
) -> tuple[Path, Path]:
    """(cert, key) PEM paths in `directory`, creating or renewing them when needed.

    `hostnames` mixes DNS names and IP addresses; all go into the SAN. Raises OSError
    when the directory cannot be written and ValueError when `hostnames` is empty.
    """
    if not hostnames:
        raise ValueError("at least one host name is needed")
    make_private_dir(directory)
    cert_path = directory / CERT_FILE_NAME
    key_path = directory / KEY_FILE_NAME
    if _still_good(cert_path, key_path, hostnames):
        return cert_path, key_path

    key = ec.generate_private_key(ec.SECP256R1())
    dns, ips = _split_names(hostnames)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _COMMON_NAME)])
    now = datetime.now(UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    alt_names += [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=BACKDATE_SECS))
        .not_valid_after(now + timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` readable by the owner only, replacing any previous file atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
