"""Owning a nick: registering it, proving it at join, changing and giving it up.

A nick that is registered can only be taken with its password; everything else
about a nick (uniqueness, look-alikes) is :mod:`webchat.text`'s ``nick_key``, so a
registered ``alice`` also protects ``Alice`` and ``аlice``. Nothing here logs a
password or puts one in an error message.
"""

from __future__ import annotations

import time

from webchat.accounts import Account, AccountStore
from webchat.accounts.guard import LoginGuard
from webchat.accounts.passwords import Passwords
from webchat.text import ChatError, nick_key


def password_required(nick: str) -> ChatError:
    return ChatError(
        "password_required", f"the nickname {nick} is registered; its password is needed"
    )


class Logins:
    """The account rules, over any AccountStore; thread-safe (hashing runs unlocked)."""

    def __init__(
        self,
        store: AccountStore,
        passwords: Passwords | None = None,
        guard: LoginGuard | None = None,
        server_password_hash: str | None = None,
        operators: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.passwords = passwords or Passwords()
        self.guard = guard or LoginGuard(5, 60.0)
        self.server_password_hash = server_password_hash
        self.operators = frozenset(nick_key(n) for n in operators)

    def is_operator(self, account: str | None) -> bool:
        """Server operators are registered accounts named in the settings, logged in."""
        return account is not None and account in self.operators

    def registered(self, nick: str) -> bool:
        """True if the nick needs a password; never, while the store is off (a history
        file that could not be opened): the chat goes on without accounts."""
        return self.store.error is None and self.store.get(nick_key(nick)) is not None

    def check_server_password(self, given: str | None, address: str) -> None:
        """Raise unless this private server's password is given (a no-op without one)."""
        if self.server_password_hash is None:
            return
        if given is None:
            raise ChatError("server_password_required", "this server needs a password to join")
        self.guard.check(None, address)  # the address alone: one server, many addresses
        if not self.passwords.verify(self.server_password_hash, given):
            self.guard.failed(None, address)
            raise ChatError("wrong_server_password", "wrong server password")

    def identify(self, nick: str, password: str | None, address: str) -> str | None:
        """The account key if ``nick`` is registered and the password proves it; None
        if it is not registered; ChatError (password_required, wrong_password,
        too_many_attempts) otherwise."""
        key = nick_key(nick)
        if self.store.error is not None:
            return None
        account = self.store.get(key)
        if account is None:
            return None
        if password is None:
            raise password_required(nick)
        self._verify(account, password, address)
        return key

    def register(self, nick: str, key: str, password: str) -> None:
        password_hash = self.passwords.hash(password)  # checks the length first
        if not self.store.create(Account(key, nick, password_hash, time.time())):
            raise ChatError("already_registered", f"{nick} is already registered")

    def change(self, key: str, old: str, new: str, address: str) -> None:
        account = self._account(key)
        self.passwords.check_length(new)
        self._verify(account, old, address)
        self.store.set_hash(key, self.passwords.hash(new))

    def unregister(self, key: str, password: str, address: str) -> None:
        account = self._account(key)
        self._verify(account, password, address)
        self.store.delete(key)

    def _account(self, key: str) -> Account:
        account = self.store.get(key)
        if account is None:
            raise ChatError("not_registered", "your nickname is not registered; /register PASSWORD")
        return account

    def _verify(self, account: Account, password: str, address: str) -> None:
        self.guard.check(account.key, address)
        if not self.passwords.verify(account.hash, password):
            self.guard.failed(account.key, address)
            raise ChatError("wrong_password", f"wrong password for {account.nick}")
        if self.passwords.needs_rehash(account.hash):  # the cost was raised since
            self.store.set_hash(account.key, self.passwords.hash(password))
