"""Outgoing mail over SMTP (Python's smtplib), for transcripts sent to visitors.

The transport is configured by the `CRMCHAT_SMTP_*` settings; with no host or no sender
address there is none (`mail_transport` answers None) and nothing offers to send mail.
TLS is STARTTLS on the submission port by default (RFC 8314 prefers implicit TLS,
`ssl`, on 465; `none` is for a relay on the same machine), with the system's CA store
or `CRMCHAT_SMTP_CA_BUNDLE`. Headers are built by the `email` package's default policy,
which refuses a header value holding a line break, so no address or subject can add a
header of its own.

Errors::

    MailError          the server could not be reached, refused us, or refused the mail
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.settings import Settings

__all__ = ["MAX_ADDRESS_CHARS", "MailError", "MailTransport", "is_mail_address", "mail_transport"]

# RFC 5321 §4.5.3.1.3: a path is at most 256 octets, so an address at most 254.
MAX_ADDRESS_CHARS = 254
# One local part and one domain of plain characters: no quotes, spaces, commas or angle
# brackets, so an address is never read as two, as a display name, or as a header.
_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


class MailError(Exception):
    """The mail was not handed over; the message says why (for logs, not for visitors)."""


def is_mail_address(value: str) -> bool:
    """True for a plain `local@domain.tld` address of at most MAX_ADDRESS_CHARS."""
    return len(value) <= MAX_ADDRESS_CHARS and _ADDRESS.fullmatch(value) is not None


@dataclass(frozen=True)
class MailTransport:
    """Where and how mail is handed over."""

    host: str
    port: int
    tls: str  # "starttls", "ssl" or "none"
    sender: str
    user: str = ""
    password: str = ""
    timeout_secs: float = 10.0
    ca_bundle: Path | None = None

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle) if self.ca_bundle else None)

    def send(self, *, to: str, subject: str, text: str) -> None:
        """Hand one plain-text mail to the server. Raises MailError."""
        if not is_mail_address(to):
            raise MailError("not a mail address")
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2])
        message.set_content(text)
        try:
            if self.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_secs, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_secs)
            with smtp:
                if self.tls == "starttls":
                    smtp.starttls(context=self._context())
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            raise MailError(f"{type(error).__name__}: {error}") from error


def mail_transport(settings: Settings) -> MailTransport | None:
    """The configured transport, or None when mail is not set up."""
    if not settings.smtp_host or not settings.smtp_from:
        return None
    return MailTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        tls=settings.smtp_tls,
        sender=settings.smtp_from,
        user=settings.smtp_user,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else "",
        timeout_secs=settings.smtp_timeout_secs,
        ca_bundle=settings.smtp_ca_bundle,
    )
