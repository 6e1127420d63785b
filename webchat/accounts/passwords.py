"""Password hashing: argon2id through ``argon2-cffi``, at RFC 9106's second
recommended setting (64 MiB, 3 passes, 4 lanes: about 0.1 s a hash here).

Why argon2id and not ``hashlib.scrypt``: it is memory-hard against GPUs, the
winner of the Password Hashing Competition and OWASP's first choice; its hashes
carry their own parameters and salt, so raising the cost later re-hashes each
password at its owner's next login (:meth:`Passwords.needs_rehash`), and its
``verify`` compares in constant time.

Each hash takes 64 MiB for a tenth of a second, so at most ``CONCURRENT_HASHES``
run at once: a storm of logins queues instead of taking gigabytes.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from webchat.text import ChatError, clean_text

# As many hashes at once as the machine has cores to give them (two here): more
# would only share the same cores and multiply the memory.
CONCURRENT_HASHES = 2


class Passwords:
    """Hashes and checks passwords within the length limits; thread-safe."""

    def __init__(self, min_chars: int = 8, max_bytes: int = 1024) -> None:
        self.min_chars = min_chars
        self.max_bytes = max_bytes
        self._hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
        self._slots = threading.BoundedSemaphore(CONCURRENT_HASHES)

    def check_length(self, password: str) -> None:
        """Refuse a password that is too short to resist guessing, too long to hash
        cheaply (nobody hashes a megabyte on our CPU), or with a space (``/password
        OLD NEW`` must be able to tell the two apart)."""
        password = normalise(password)
        if " " in password:
            raise ChatError("password_invalid", "a password cannot contain spaces")
        if len(password.encode("utf-8", "surrogatepass")) > self.max_bytes:
            raise ChatError(
                "password_too_long", f"a password may be at most {self.max_bytes} bytes long"
            )
        if len(password) < self.min_chars:
            raise ChatError(
                "password_too_short",
                f"a password needs at least {self.min_chars} characters",
            )

    def hash(self, password: str) -> str:
        self.check_length(password)
        with self._slots:
            return self._hasher.hash(normalise(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """True if it matches; an over-long attempt is refused before any hashing."""
        if len(password.encode("utf-8", "surrogatepass")) > self.max_bytes:
            return False
        with self._slots:
            try:
                return self._hasher.verify(password_hash, normalise(password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def read_password_file(path: str) -> str | None:
    """The server password's hash from its file (None without one); ValueError if the
    file holds no argon2 hash, so a mistyped path never leaves a server open."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read().strip()
    except OSError as exc:
        raise ValueError(f"server password file {path}: {exc.strerror}") from None
    if not text.startswith("$argon2"):
        raise ValueError(
            f"server password file {path} holds no argon2 hash; make one with "
            "`webchat hash-password`"
        )
    return text


def normalise(password: str) -> str:
    """The same password however it came: a TCP line, a command, a JSON field
    (control characters dropped as from any text, surrounding spaces trimmed)."""
    return clean_text(password).strip()
