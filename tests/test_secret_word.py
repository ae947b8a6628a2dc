"""The secret word: stored only as a slow salted hash, checked in constant time, guarded."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.crm import secret_word
from connector.crm.secret_word import (
    GuessLimiter,
    SecretWordError,
    TooManyGuesses,
    hash_secret_word,
    verify_secret_word,
)


def test_hash_hides_the_word_and_is_salted() -> None:
    first, second = hash_secret_word("Blue Tiger"), hash_secret_word("Blue Tiger")
    assert "tiger" not in first.lower()
    assert first.startswith("scrypt$32768$8$1$")
    assert first != second  # a fresh salt each time
    assert verify_secret_word("Blue Tiger", first) and verify_secret_word("Blue Tiger", second)


@pytest.mark.parametrize("spoken", ["blue tiger", "  BLUE   Tiger ", "ｂｌｕｅ tiger"])
def test_the_word_as_read_out_over_the_phone_matches(spoken: str) -> None:
    assert verify_secret_word(spoken, hash_secret_word("Blue Tiger"))


@pytest.mark.parametrize("wrong", ["blue tigers", "bluetiger", "", "x" * 200])
def test_other_words_do_not_match(wrong: str) -> None:
    assert not verify_secret_word(wrong, hash_secret_word("Blue Tiger"))


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$1$2$3$zz$zz", "md5$a$b$c$d$e"])
def test_a_damaged_stored_value_never_matches(stored: str) -> None:
    assert not verify_secret_word("Blue Tiger", stored)


@pytest.mark.parametrize("weak", ["abc", "   a b  ", "x" * 129, "bad\x07word"])
def test_words_that_break_the_rules_are_refused(weak: str) -> None:
    with pytest.raises(SecretWordError):
        hash_secret_word(weak)


def test_wrong_guesses_slow_down_then_lock_until_the_window_passes(tmp_path: Path) -> None:
    now = [1000.0]
    limiter = GuessLimiter(tmp_path / "g.sqlite", clock=lambda: now[0])
    delays = [limiter.record_wrong("org") for _ in range(secret_word.MAX_WRONG_GUESSES)]
    assert delays == sorted(delays) and delays[0] < delays[-1]
    with pytest.raises(TooManyGuesses) as locked:
        limiter.check("org")
    assert locked.value.retry_after_secs == secret_word.GUESS_WINDOW_SECS
    limiter.check("another org")  # one subject's lock does not touch another's
    now[0] += secret_word.GUESS_WINDOW_SECS + 1
    limiter.check("org")


def test_the_lock_is_shared_by_every_process_using_the_data_folder(tmp_path: Path) -> None:
    for _ in range(secret_word.MAX_WRONG_GUESSES):
        GuessLimiter(tmp_path / "g.sqlite").record_wrong("org")
    with pytest.raises(TooManyGuesses):
        GuessLimiter(tmp_path / "g.sqlite").check("org")


def test_setting_a_new_word_clears_the_lock(tmp_path: Path) -> None:
    limiter = GuessLimiter(tmp_path / "g.sqlite")
    for _ in range(secret_word.MAX_WRONG_GUESSES):
        limiter.record_wrong("org")
    limiter.clear("org")
    limiter.check("org")
