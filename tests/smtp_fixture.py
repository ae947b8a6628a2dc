"""A real SMTP server for the mail tests: Debian's `aiosmtpd` (package python3-aiosmtpd)
on a free port, delivering into a Maildir the test reads.

Why this one: the Debian MTAs (postfix, exim4, opensmtpd) need root, a system user and
port 25 or a rewritten master config; `aiosmtpd` is a packaged RFC 5321 server that runs
unprivileged on any port (`-n`), speaks STARTTLS with a given certificate, and hands
every accepted mail to a Maildir. It runs under Debian's own Python, not the project's
venv, as a separate process the service talks to over TCP.

- `smtp_server`: a plain server (no TLS); `.messages()` are the delivered mails.
- `smtp_tls_server`: the same with STARTTLS required, on a self-signed certificate
  (`.ca_file` is it, for the client to trust).

`make test` installs python3-aiosmtpd when it is missing, as it does chromium.
"""

from __future__ import annotations

import mailbox
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
from service_process import PROCESS_WAIT_SECS

from connector.dataverse_local.tls import ensure_self_signed_cert
from connector.redis_server import free_port

AIOSMTPD = "/usr/bin/aiosmtpd"
# A second on a quiet machine; a loaded CI runner can take far longer to start Python.
START_WITHIN_SECS = PROCESS_WAIT_SECS


class SmtpServer:
    def __init__(self, folder: Path, *, tls: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.maildir = folder / "Maildir"
        self.port = free_port()
        self.ca_file: Path | None = None
        command = [AIOSMTPD, "-n", "-l", f"127.0.0.1:{self.port}"]
        if tls:
            cert, key = ensure_self_signed_cert(folder / "tls")
            self.ca_file = cert
            command += ["--tlscert", str(cert), "--tlskey", str(key)]
        command += ["-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)]
        if shutil.which(AIOSMTPD) is None:
            pytest.fail("aiosmtpd is missing: run 'sudo apt-get install python3-aiosmtpd'")
        self._log = (folder / "aiosmtpd.log").open("wb")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_WITHIN_SECS
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(3) == b"220":
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"aiosmtpd did not start: {(folder / 'aiosmtpd.log').read_text()}")

    def messages(self) -> list[Message]:
        if not self.maildir.exists():
            return []
        return list(mailbox.Maildir(self.maildir, create=False))

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "smtp")
    yield server
    server.stop()


@pytest.fixture
def smtp_tls_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "smtp-tls", tls=True)
    yield server
    server.stop()
