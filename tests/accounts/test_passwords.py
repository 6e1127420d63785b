"""Passwords: the length rules at their exact edges, normalising, and argon2id hashes.

Real hashing, no mocks except where a test must prove that nothing was hashed.
Each hash costs a few tenths of a second here, so the tests share the few they make.
"""

from __future__ import annotations

import statistics
import time

import pytest
from argon2 import PasswordHasher
from argon2.low_level import Type

from webchat.accounts.passwords import Passwords, normalise
from webchat.text import ChatError

MIN, MAX = 8, 1024  # the defaults (Settings.min_password_chars, max_password_bytes)
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords()


@pytest.fixture(scope="module")
def hashed(passwords: Passwords) -> str:
    """One hash of PASSWORD, shared by the tests that only read it."""
    return passwords.hash(PASSWORD)


def refused(passwords: Passwords, password: str) -> str:
    """The code check_length refuses ``password`` with; its text never holds the password."""
    with pytest.raises(ChatError) as caught:
        passwords.check_length(password)
    if password.strip():
        assert password.strip() not in str(caught.value)
    return caught.value.code


# ----- length -----------------------------------------------------------------------


def test_the_defaults_are_8_characters_and_1024_bytes(passwords: Passwords) -> None:
    assert (passwords.min_chars, passwords.max_bytes) == (MIN, MAX)


@pytest.mark.parametrize(
    "char", ["a", "é", "€", "😀"], ids=["1-byte", "2-byte", "3-byte", "4-byte"]
)
def test_shortest_counts_characters_not_bytes(passwords: Passwords, char: str) -> None:
    assert refused(passwords, char * (MIN - 1)) == "password_too_short"
    passwords.check_length(char * MIN)


@pytest.mark.parametrize(
    ("fill", "pad"),
    [("a", ""), ("é", ""), ("€", "a"), ("😀", "")],
    ids=["1-byte", "2-byte", "3-byte+1", "4-byte"],
)
def test_longest_counts_utf8_bytes_not_characters(
    passwords: Passwords, fill: str, pad: str
) -> None:
    width = len(fill.encode())
    at_max = fill * ((MAX - len(pad)) // width) + pad
    assert len(at_max.encode()) == MAX
    passwords.check_length(at_max)
    assert refused(passwords, at_max + "a") == "password_too_long"
    # One more character of the same kind: still past the limit, by its width.
    assert refused(passwords, at_max + fill) == "password_too_long"


def test_limits_follow_the_settings() -> None:
    small = Passwords(min_chars=4, max_bytes=8)
    assert refused(small, "abc") == "password_too_short"
    small.check_length("abcd")
    small.check_length("éééé")  # 4 characters, 8 bytes: both edges at once
    assert refused(small, "éééé" + "a") == "password_too_long"


def test_a_password_at_the_byte_limit_hashes_and_verifies(passwords: Passwords) -> None:
    longest = "é" * (MAX // 2)
    assert len(longest.encode()) == MAX
    made = passwords.hash(longest)
    assert passwords.verify(made, longest)
    assert not passwords.verify(made, longest[:-1])


def test_hash_checks_the_length_before_hashing(passwords: Passwords) -> None:
    with pytest.raises(ChatError) as short:
        passwords.hash("a" * (MIN - 1))
    assert short.value.code == "password_too_short"
    with pytest.raises(ChatError) as long:
        passwords.hash("a" * (MAX + 1))
    assert long.value.code == "password_too_long"


@pytest.mark.parametrize(
    "password",
    ["two words-here", "ends with-space x", "tab\tinside-it"],
    ids=["space", "spaces", "tab-becomes-space"],
)
def test_spaces_inside_are_refused(passwords: Passwords, password: str) -> None:
    assert refused(passwords, password) == "password_invalid"


def test_only_spaces_is_too_short_not_invalid(passwords: Passwords) -> None:
    assert refused(passwords, " " * 20) == "password_too_short"


def test_surrounding_spaces_do_not_count(passwords: Passwords) -> None:
    passwords.check_length("   " + "a" * MIN + "   ")
    assert refused(passwords, "    " + "a" * (MIN - 1) + "    ") == "password_too_short"


# ----- normalising --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("  s3cret-pass  ", "s3cret-pass"),
        ("s3cret-pass\r\n", "s3cret-pass"),
        ("\x1b[31ms3cret-pass\x1b[0m", "s3cret-pass"),
        ("s3cret\x00-pass", "s3cret-pass"),
        ("pässwörd-ünïcode", "pässwörd-ünïcode"),
        ("s3cret-pass", "s3cret-pass"),
    ],
    ids=["spaces", "crlf", "ansi-escapes", "nul", "unicode-kept", "plain"],
)
def test_normalise(given: str, normal: str) -> None:
    assert normalise(given) == normal


def test_the_same_password_however_it_came(passwords: Passwords, hashed: str) -> None:
    """A TCP line's CRLF or a JSON field's spaces do not make it another password."""
    assert passwords.verify(hashed, PASSWORD + "\r\n")
    assert passwords.verify(hashed, "  " + PASSWORD + " ")


# ----- verifying ----------------------------------------------------------------------


def test_verify_true_for_the_password(passwords: Passwords, hashed: str) -> None:
    assert passwords.verify(hashed, PASSWORD) is True


@pytest.mark.parametrize(
    "attempt",
    [PASSWORD.upper(), PASSWORD[:-1], PASSWORD + "x", "", "x" * MIN],
    ids=["other-case", "one-less", "one-more", "empty", "another"],
)
def test_verify_false_for_anything_else(passwords: Passwords, hashed: str, attempt: str) -> None:
    assert passwords.verify(hashed, attempt) is False


@pytest.mark.parametrize("bad", ["", "not a hash", "$argon2id$v=19$m=65536,t=3,p=4$broken"])
def test_verify_false_for_a_broken_hash(passwords: Passwords, bad: str) -> None:
    assert passwords.verify(bad, PASSWORD) is False


def test_verify_of_an_over_long_attempt_is_false_without_hashing(
    passwords: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = "é" * (MAX // 2) + "a"  # MAX + 1 bytes
    # A hash it would match, were it hashed: made past the limit, straight with argon2.
    matching = PasswordHasher().hash(long)
    calls: list[str] = []

    def spy(self: PasswordHasher, hash: str, password: str | bytes) -> bool:
        calls.append(hash)
        return True

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    assert passwords.verify(matching, long) is False
    assert calls == []
    assert passwords.verify(matching, "é" * (MAX // 2)) is True  # at the limit: it is hashed
    assert calls == [matching]


# ----- the hashes ---------------------------------------------------------------------


def test_hashes_are_argon2id_with_salt(passwords: Passwords, hashed: str) -> None:
    second = passwords.hash(PASSWORD)
    for made in (hashed, second):
        assert made.startswith("$argon2id$v=19$")
        assert PASSWORD not in made
    assert hashed != second  # a salt of its own each time
    salts = {made.split("$")[4] for made in (hashed, second)}
    assert len(salts) == 2
    assert passwords.verify(second, PASSWORD)


def test_hashes_carry_the_rfc_9106_parameters(hashed: str) -> None:
    params = hashed.split("$")[3]
    assert params == "m=65536,t=3,p=4"


def test_needs_rehash_after_raising_the_cost(passwords: Passwords, hashed: str) -> None:
    cheaper = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID)
    old = cheaper.hash(PASSWORD)
    assert passwords.needs_rehash(old)
    assert passwords.verify(old, PASSWORD)  # an old hash still proves the password
    assert not passwords.needs_rehash(hashed)


def test_needs_rehash_for_another_argon2_variant(passwords: Passwords) -> None:
    argon2i = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4, type=Type.I)
    old = argon2i.hash(PASSWORD)
    assert passwords.needs_rehash(old)
    assert passwords.verify(old, PASSWORD)


def test_a_wrong_password_costs_as_long_as_the_right_one(passwords: Passwords) -> None:
    """No early exit: verifying hashes the whole attempt, then compares in constant
    time, so how long it takes says nothing about how much of a guess was right."""
    secret = "correct-horse-battery"
    stored = passwords.hash(secret)
    attempts = {
        "right": secret,
        "wrong first character": "Xorrect-horse-battery",
        "wrong last character": "correct-horse-batterX",
        "nothing alike": "zzzzzzzzzzzzzzzzzzzzz",
    }
    costs = {}
    for name, attempt in attempts.items():
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            passwords.verify(stored, attempt)
            samples.append(time.perf_counter() - started)
        costs[name] = statistics.median(samples)
    fastest, slowest = min(costs.values()), max(costs.values())
    # An early exit would make a wrong guess cost microseconds against the right one's
    # tenth of a second; the bound only allows for a busy machine.
    assert slowest < 3 * fastest, costs
