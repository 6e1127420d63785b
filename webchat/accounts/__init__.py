"""Accounts and sanctions: who owns which nick, and who is banned or muted where.

The :class:`AccountStore` protocol is the seam: :mod:`~webchat.accounts.sqlite`
keeps them in the history file for one process, :mod:`~webchat.accounts.redis` in
the cluster's Redis, so every node agrees. Passwords reach a store only as
argon2 hashes (:mod:`~webchat.accounts.passwords`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from webchat.core.events import iso_time


@dataclass(frozen=True)
class Account:
    key: str  # the nick key (webchat.text.nick_key): case and look-alikes are one account
    nick: str  # the nick as registered
    hash: str  # argon2id, with its parameters and salt (PHC string format)
    created: float


@dataclass(frozen=True)
class Sanction:
    """A ban or a mute of one person, in one room; ``#lobby`` stands for the whole server."""

    kind: str  # "ban" or "mute"
    scope: str
    key: str
    nick: str
    address: str | None  # a ban also covers the address the person came from
    by: str
    reason: str
    until: float | None  # unix time; None: until lifted
    created: float

    def active(self, now: float) -> bool:
        return self.until is None or self.until > now

    def as_dict(self) -> dict[str, object]:
        """For /bans: never the address (room operators are not told where people are)."""
        until = iso_time(self.until) if self.until is not None else None
        return {"nick": self.nick, "by": self.by, "reason": self.reason, "until": until}


class AccountStore(Protocol):
    """Durable accounts, sanctions and ignore lists. Methods raise ChatError
    ``unavailable`` when the store cannot be reached; they never block for long."""

    @property
    def error(self) -> str | None:
        """Why the store cannot be used (an unwritable file); None when it works."""

    def get(self, key: str) -> Account | None: ...

    def create(self, account: Account) -> bool:
        """Add the account unless the key is taken; False if it was."""

    def set_hash(self, key: str, password_hash: str) -> None: ...

    def delete(self, key: str) -> None:
        """Forget the account and its ignore list."""

    def add_sanction(self, sanction: Sanction) -> None:
        """Store it, replacing any of the same kind, scope and key."""

    def remove_sanction(self, kind: str, scope: str, key: str) -> bool:
        """False if there was none."""

    def sanctions(self, now: float) -> list[Sanction]:
        """Every sanction still in force (expired ones are dropped on the way)."""

    def banned(self, scope: str, key: str, address: str, now: float) -> Sanction | None:
        """A ban in force in ``scope`` on this key or this address."""

    def ignores(self, account: str) -> set[str]:
        """The nick keys this account ignores."""

    def set_ignore(self, account: str, key: str, on: bool) -> None: ...

    def close(self) -> None: ...
