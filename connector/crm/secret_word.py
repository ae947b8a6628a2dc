"""The organisation's secret word: how it is stored, checked, and protected from guessing.

Support staff ask a caller for the secret word to confirm they speak for the customer. The
word is stored only as a salted scrypt hash; a check compares in constant time and answers
only yes or no. Wrong guesses are slowed down, and too many in a window lock checking for a
while (`GuessLimiter`), so a leaked support login cannot be used to brute-force the word.
The lock is per person guessing (a signed-in user, or the local account running the
CLI): one person's wrong guesses never lock support out for everyone.

Errors::

    SecretWordError (ValueError)   the word breaks the rules (length, characters)
    TooManyGuesses                 locked after repeated wrong guesses; has retry_after_secs
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connector.private_files import make_private_file

__all__ = [
    "GuessLimiter",
    "SecretWordError",
    "TooManyGuesses",
    "hash_secret_word",
    "normalise_secret_word",
    "verify_secret_word",
]

MIN_LENGTH = 4
MAX_LENGTH = 128
# scrypt cost: n=2**15, r=8 uses 32 MiB and ~0.1 s per hash here, OWASP's recommended floor.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
SALT_BYTES = 16
KEY_BYTES = 32

# Five wrong guesses in 15 minutes lock checking until the oldest of them is 15 minutes old.
MAX_WRONG_GUESSES = 5
GUESS_WINDOW_SECS = 15 * 60
# Each wrong guess in the window waits this much longer before its answer (1 s, 2 s, 4 s...).
WRONG_GUESS_BASE_DELAY_SECS = 1.0


class SecretWordError(ValueError):
    """The secret word does not follow the rules; the message says which."""


class TooManyGuesses(Exception):
    """Checking is locked after repeated wrong guesses."""

    def __init__(self, retry_after_secs: int) -> None:
        super().__init__(f"too many wrong guesses; try again in {retry_after_secs} s")
        self.retry_after_secs = retry_after_secs


def normalise_secret_word(word: str) -> str:
    """The form that is hashed: NFKC, trimmed, inner spaces collapsed, case folded.

    A word is read out over the phone, so "Blue  Tiger" and "blue tiger" are the same word.
    Raises SecretWordError when it is too short, too long or holds control characters.
    """
    text = " ".join(unicodedata.normalize("NFKC", word).split()).casefold()
    if len(text) < MIN_LENGTH or len(text) > MAX_LENGTH:
        raise SecretWordError(
            f"the secret word must be {MIN_LENGTH} to {MAX_LENGTH} characters long"
        )
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise SecretWordError("the secret word may not contain control characters")
    return text


def _scrypt(word: str, salt: bytes) -> bytes:
    return hashlib.scrypt(
        word.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=SCRYPT_MAXMEM,
        dklen=KEY_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_secret_word(word: str) -> str:
    """A self-describing salted hash, `scrypt$<n>$<r>$<p>$<salt>$<key>`, for the settings record."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(normalise_secret_word(word), salt)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_secret_word(word: str, stored: str) -> bool:
    """True when `word` matches the `stored` hash. Compares in constant time.

    A malformed stored value or a word that breaks the rules simply does not match.
    """
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(key_b64)
        candidate = normalise_secret_word(word)
        actual = hashlib.scrypt(
            candidate.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass
class GuessLimiter:
    """Counts guesses in a sliding window, in SQLite so the CLI and service share it.

    `begin(subject)` takes one of the window's `MAX_WRONG_GUESSES` places atomically (one
    SQLite write transaction) *before* the word is checked, or raises TooManyGuesses: 40
    parallel guesses cannot all be checked while none has been counted yet. A right guess
    gives its place back (`forgive`); a wrong one keeps it and learns how long to hold
    its answer back (`record_wrong`). `subject` is who is guessing, so one person's wrong
    guesses never lock anyone else out.
    """

    db_path: Path
    clock: Callable[[], float] = time.time

    def _connect(self) -> sqlite3.Connection:
        make_private_file(self.db_path)
        # isolation_level=None: the transactions below are explicit (BEGIN IMMEDIATE).
        conn = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS wrong_guess (subject TEXT NOT NULL, at REAL NOT NULL)"
        )
        return conn

    def _recent(self, conn: sqlite3.Connection, subject: str) -> list[float]:
        since = self.clock() - GUESS_WINDOW_SECS
        conn.execute("DELETE FROM wrong_guess WHERE at < ?", (since,))
        rows = conn.execute(
            "SELECT at FROM wrong_guess WHERE subject = ? ORDER BY at", (subject,)
        ).fetchall()
        return [at for (at,) in rows]

    def _locked(self, recent: list[float]) -> TooManyGuesses | None:
        if len(recent) < MAX_WRONG_GUESSES:
            return None
        unlock_at = recent[-MAX_WRONG_GUESSES] + GUESS_WINDOW_SECS
        return TooManyGuesses(max(1, int(unlock_at - self.clock() + 0.999)))

    def check(self, subject: str) -> None:
        """Raise TooManyGuesses while `subject` is locked (without taking a place)."""
        conn = self._connect()
        try:
            locked = self._locked(self._recent(conn, subject))
        finally:
            conn.close()
        if locked is not None:
            raise locked

    def begin(self, subject: str) -> int:
        """Take a place for one guess; returns its id for `forgive`/`record_wrong`.

        Raises TooManyGuesses when the window's places are taken.
        """
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                locked = self._locked(self._recent(conn, subject))
                if locked is not None:
                    raise locked
                at = self.clock()
                cursor = conn.execute(
                    "INSERT INTO wrong_guess (subject, at) VALUES (?, ?)", (subject, at)
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return int(cursor.lastrowid or 0)
        finally:
            conn.close()

    def forgive(self, guess: int) -> None:
        """A right guess: give its place back."""
        conn = self._connect()
        try:
            conn.execute("DELETE FROM wrong_guess WHERE rowid = ?", (guess,))
        finally:
            conn.close()

    def record_wrong(self, subject: str, guess: int | None = None) -> float:
        """Count a wrong guess (already counted when `guess` came from `begin`); returns
        the seconds to wait before answering it."""
        conn = self._connect()
        try:
            if guess is None:
                conn.execute(
                    "INSERT INTO wrong_guess (subject, at) VALUES (?, ?)", (subject, self.clock())
                )
            count = len(self._recent(conn, subject))
        finally:
            conn.close()
        return float(WRONG_GUESS_BASE_DELAY_SECS * 2 ** min(max(count, 1) - 1, 4))

    def clear(self, subject: str | None = None) -> None:
        """Forget wrong guesses (everyone's when `subject` is None), e.g. after the admin
        sets a new word."""
        conn = self._connect()
        try:
            if subject is None:
                conn.execute("DELETE FROM wrong_guess")
            else:
                conn.execute("DELETE FROM wrong_guess WHERE subject = ?", (subject,))
        finally:
            conn.close()
