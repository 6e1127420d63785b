"""SqliteAccounts on a real file (the ``db`` fixture), and Logins over it.

The store contract (store_contract.py) runs here and against Redis; below it, what
only a file has: it outlives the process, it is shared with the history log, it
can be unusable, and a password must never reach it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tests.accounts.store_contract import StoreContract, account, sanction
from webchat.accounts import Account, AccountStore
from webchat.accounts.guard import LoginGuard
from webchat.accounts.logins import Logins
from webchat.accounts.passwords import Passwords
from webchat.accounts.sqlite import SqliteAccounts
from webchat.history import SqliteHistory
from webchat.text import ChatError


class TestSqliteAccounts(StoreContract):
    @pytest.fixture
    def store(self, db: str) -> Iterator[AccountStore]:
        s = SqliteAccounts(db)
        yield s
        s.close()


# ----- a file -------------------------------------------------------------------------


def test_everything_outlives_a_restart(db: str) -> None:
    first = SqliteAccounts(db)
    first.create(account())
    mute = sanction("mute", address=None, until=None, created=1.0)
    ban = sanction("ban", until=9e9, created=2.0)
    first.add_sanction(mute)
    first.add_sanction(ban)
    first.set_ignore("alice", "bob", True)
    first.close()

    again = SqliteAccounts(db)
    try:
        assert again.get("alice") == account()
        assert again.sanctions(0.0) == [mute, ban]
        assert again.ignores("alice") == {"bob"}
    finally:
        again.close()


def test_it_shares_the_history_file(db: str) -> None:
    history = SqliteHistory(db)
    accounts = SqliteAccounts(db)
    try:
        assert history.error is None and accounts.error is None
        assert accounts.create(account())
        assert accounts.get("alice") == account()
    finally:
        accounts.close()
        history.close()


def test_an_unusable_file_leaves_it_off_and_says_why(tmp_path: Path) -> None:
    path = str(tmp_path / "no-such-folder" / "history.db")
    store = SqliteAccounts(path)
    assert store.error is not None and path in store.error
    for call in (
        lambda: store.get("alice"),
        lambda: store.create(account()),
        lambda: store.sanctions(0.0),
        lambda: store.banned("#lobby", "alice", "", 0.0),
        lambda: store.ignores("alice"),
    ):
        with pytest.raises(ChatError) as caught:
            call()
        assert caught.value.code == "unavailable"
    store.close()


def test_after_close_it_refuses(db: str) -> None:
    store = SqliteAccounts(db)
    store.close()
    assert store.error is not None
    with pytest.raises(ChatError) as caught:
        store.get("alice")
    assert caught.value.code == "unavailable"
    store.close()  # twice is no error


# ----- Logins over the file -----------------------------------------------------------

SECRET = "Tr0ub4dor&3-unique-secret"
NEW_SECRET = "n3w-Secret-Nobody-Guesses"


@pytest.fixture
def logins(db: str) -> Iterator[Logins]:
    history = SqliteHistory(db)  # as the chat runs it: the history's file, in WAL mode
    store = SqliteAccounts(db)
    yield Logins(store)
    store.close()
    history.close()


def test_register_identify_change_unregister(logins: Logins) -> None:
    logins.register("Alice", "alice", SECRET)
    assert logins.registered("alice") and logins.registered("ALICE")
    assert logins.identify("Alice", SECRET, "10.0.0.1") == "alice"
    with pytest.raises(ChatError) as wrong:
        logins.identify("alice", "not-the-secret", "10.0.0.1")
    assert wrong.value.code == "wrong_password"
    assert SECRET not in str(wrong.value) and "not-the-secret" not in str(wrong.value)
    with pytest.raises(ChatError) as missing:
        logins.identify("alice", None, "10.0.0.1")
    assert missing.value.code == "password_required"

    logins.change("alice", SECRET, NEW_SECRET, "10.0.0.1")
    assert logins.identify("alice", NEW_SECRET, "10.0.0.1") == "alice"
    logins.unregister("alice", NEW_SECRET, "10.0.0.1")
    assert logins.identify("alice", None, "10.0.0.1") is None
    assert not logins.registered("alice")


def test_register_twice_is_already_registered(logins: Logins) -> None:
    logins.register("alice", "alice", SECRET)
    with pytest.raises(ChatError) as caught:
        logins.register("Alice", "alice", NEW_SECRET)
    assert caught.value.code == "already_registered"
    assert logins.identify("alice", SECRET, "") == "alice"  # the first password holds


def test_change_and_unregister_need_an_account(logins: Logins) -> None:
    with pytest.raises(ChatError) as changing:
        logins.change("nobody", SECRET, NEW_SECRET, "")
    assert changing.value.code == "not_registered"
    with pytest.raises(ChatError) as unregistering:
        logins.unregister("nobody", SECRET, "")
    assert unregistering.value.code == "not_registered"


def test_a_login_rehashes_a_hash_made_at_a_lower_cost(logins: Logins) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(SECRET)
    logins.store.create(Account("alice", "alice", cheap, 1.0))
    assert logins.identify("alice", SECRET, "") == "alice"
    stored = logins.store.get("alice")
    assert stored is not None and stored.hash != cheap
    assert not logins.passwords.needs_rehash(stored.hash)
    assert logins.identify("alice", SECRET, "") == "alice"


def test_wrong_passwords_are_counted_and_then_nothing_is_hashed(db: str) -> None:
    now = [100.0]
    store = SqliteAccounts(db)
    logins = Logins(store, guard=LoginGuard(2, 60.0, lambda: now[0]))
    try:
        logins.register("alice", "alice", SECRET)
        for _ in range(2):
            with pytest.raises(ChatError, match="wrong password"):
                logins.identify("alice", "wrong-password", "10.0.0.1")
        with pytest.raises(ChatError) as held:
            logins.identify("alice", SECRET, "10.0.0.2")  # even the right one, from elsewhere
        assert held.value.code == "too_many_attempts"
        now[0] += 60.0
        assert logins.identify("alice", SECRET, "10.0.0.2") == "alice"
    finally:
        store.close()


def test_wrong_server_passwords_hold_back_their_address_only(db: str) -> None:
    """docs/PROTOCOL.md: "Wrong server passwords count towards the same per-address
    limit." Not towards one shared count: a stranger failing on purpose from one
    address must not keep everybody else off a private server."""
    store = SqliteAccounts(db)
    passwords = Passwords()
    server_password = "server-pass-1"
    logins = Logins(
        store,
        passwords,
        LoginGuard(2, 60.0, lambda: 100.0),
        server_password_hash=passwords.hash(server_password),
    )
    try:
        with pytest.raises(ChatError) as missing:
            logins.check_server_password(None, "10.6.6.6")
        assert missing.value.code == "server_password_required"
        for _ in range(2):
            with pytest.raises(ChatError) as wrong:
                logins.check_server_password("guess-guess", "10.6.6.6")
            assert wrong.value.code == "wrong_server_password"
        with pytest.raises(ChatError) as held:
            logins.check_server_password(server_password, "10.6.6.6")
        assert held.value.code == "too_many_attempts"
        logins.register("alice", "alice", SECRET)  # the same per-address count
        with pytest.raises(ChatError) as also_held:
            logins.identify("alice", SECRET, "10.6.6.6")
        assert also_held.value.code == "too_many_attempts"

        logins.check_server_password(server_password, "10.0.0.2")  # anyone else: let in
    finally:
        store.close()


def file_bytes(db: str) -> dict[str, bytes]:
    """The database file and its companions (-wal, -shm, -journal) as they are now."""
    found = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(db + suffix)
        if path.exists():
            found[path.name] = path.read_bytes()
    return found


def test_no_password_reaches_the_file(db: str) -> None:
    history = SqliteHistory(db)
    store = SqliteAccounts(db)
    logins = Logins(store)
    logins.register("alice", "alice", SECRET)
    logins.change("alice", SECRET, NEW_SECRET, "10.0.0.1")
    logins.register("bob", "bob", SECRET)
    logins.unregister("bob", SECRET, "10.0.0.1")

    while_open = file_bytes(db)
    assert "history.db-wal" in while_open, "the file is not in WAL mode: nothing was checked"
    store.close()
    history.close()
    after_close = file_bytes(db)

    for when, files in (("while open", while_open), ("after close", after_close)):
        everything = b"".join(files.values())
        assert b"$argon2id$" in everything, f"{when}: the hash is not there; wrong file?"
        for password in (SECRET, NEW_SECRET):
            for encoded in (password.encode("utf-8"), password.encode("utf-16-le")):
                for name, data in files.items():
                    assert encoded not in data, f"{when}: a password is in {name}"
