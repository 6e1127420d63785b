"""What every AccountStore must do, written once: ``test_sqlite_accounts`` and
``test_redis_accounts`` run it against a real SQLite file and a real redis-server.

A test class that inherits :class:`StoreContract` provides a ``store`` fixture.
"""

from __future__ import annotations

import dataclasses

from webchat.accounts import Account, AccountStore, Sanction

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo"
OTHER_HASH = "$argon2id$v=19$m=65536,t=3,p=4$b3RoZXJzYWx0$b3RoZXJoYXNob3RoZXJoYXNob3RoZXI"


def account(key: str = "alice", nick: str = "Alice", created: float = 1_700_000_000.5) -> Account:
    return Account(key, nick, HASH, created)


def sanction(
    kind: str = "ban",
    scope: str = "#dev",
    key: str = "bob",
    *,
    nick: str = "Bob",
    address: str | None = "10.0.0.9",
    by: str = "alice",
    reason: str = "spam",
    until: float | None = None,
    created: float = 1000.0,
) -> Sanction:
    return Sanction(kind, scope, key, nick, address, by, reason, until, created)


class StoreContract:
    # ----- accounts -------------------------------------------------------------------

    def test_it_works(self, store: AccountStore) -> None:
        assert store.error is None

    def test_get_unknown_is_none(self, store: AccountStore) -> None:
        assert store.get("nobody") is None

    def test_create_then_get(self, store: AccountStore) -> None:
        assert store.create(account()) is True
        assert store.get("alice") == account()

    def test_create_keeps_unicode_nicks(self, store: AccountStore) -> None:
        made = Account("zoë", "Zoë", HASH, 1.25)
        assert store.create(made)
        assert store.get("zoë") == made

    def test_keys_are_exact(self, store: AccountStore) -> None:
        """The store does not fold case: callers pass nick keys (webchat.text.nick_key)."""
        store.create(account())
        assert store.get("Alice") is None
        assert store.get("alic") is None

    def test_a_taken_key_is_refused_and_the_first_account_kept(self, store: AccountStore) -> None:
        assert store.create(account())
        second = Account("alice", "ALICE", OTHER_HASH, 5.0)
        assert store.create(second) is False
        assert store.get("alice") == account()

    def test_set_hash_changes_only_the_hash(self, store: AccountStore) -> None:
        store.create(account())
        store.set_hash("alice", OTHER_HASH)
        assert store.get("alice") == dataclasses.replace(account(), hash=OTHER_HASH)

    def test_set_hash_of_an_unknown_key_creates_nothing(self, store: AccountStore) -> None:
        store.set_hash("nobody", OTHER_HASH)
        assert store.get("nobody") is None

    def test_delete(self, store: AccountStore) -> None:
        store.create(account())
        store.create(account("bob", "bob"))
        store.delete("alice")
        assert store.get("alice") is None
        assert store.get("bob") == account("bob", "bob")
        assert store.create(account("alice", "alice again"))  # free to take again

    def test_delete_of_an_unknown_key_is_no_error(self, store: AccountStore) -> None:
        store.delete("nobody")
        assert store.get("nobody") is None

    # ----- sanctions ------------------------------------------------------------------

    def test_no_sanctions_at_first(self, store: AccountStore) -> None:
        assert store.sanctions(0.0) == []

    def test_add_then_list(self, store: AccountStore) -> None:
        ban = sanction(until=5000.0)
        store.add_sanction(ban)
        assert store.sanctions(1000.0) == [ban]

    def test_every_field_round_trips(self, store: AccountStore) -> None:
        odd = sanction(
            "mute",
            "#lobby",
            "zoë",
            nick="Zoë",
            address=None,
            by="Ünïcode 'op'",
            reason='said "that"; 👋',
            until=1234.5,
            created=1000.25,
        )
        store.add_sanction(odd)
        assert store.sanctions(1000.0) == [odd]

    def test_listed_in_the_order_made(self, store: AccountStore) -> None:
        later = sanction("mute", "#ops", "carol", created=300.0)
        first = sanction("ban", "#dev", "bob", created=100.0)
        middle = sanction("ban", "#lobby", "dave", created=200.0)
        for s in (later, first, middle):
            store.add_sanction(s)
        assert store.sanctions(0.0) == [first, middle, later]

    def test_the_same_kind_scope_and_key_replace(self, store: AccountStore) -> None:
        store.add_sanction(sanction(until=5000.0, reason="first"))
        newer = sanction(until=None, reason="second", by="carol", created=2000.0)
        store.add_sanction(newer)
        assert store.sanctions(0.0) == [newer]

    def test_another_kind_scope_or_key_is_another_sanction(self, store: AccountStore) -> None:
        made = [
            sanction("ban", "#dev", "bob", created=1.0),
            sanction("mute", "#dev", "bob", address=None, created=2.0),
            sanction("ban", "#ops", "bob", created=3.0),
            sanction("ban", "#dev", "carol", created=4.0),
        ]
        for s in made:
            store.add_sanction(s)
        assert store.sanctions(0.0) == made

    def test_remove(self, store: AccountStore) -> None:
        store.add_sanction(sanction("ban"))
        store.add_sanction(sanction("mute", address=None, created=2000.0))
        assert store.remove_sanction("ban", "#dev", "bob") is True
        assert store.sanctions(0.0) == [sanction("mute", address=None, created=2000.0)]
        assert store.remove_sanction("ban", "#dev", "bob") is False

    def test_remove_what_is_not_there(self, store: AccountStore) -> None:
        store.add_sanction(sanction("ban", "#dev", "bob"))
        assert store.remove_sanction("ban", "#ops", "bob") is False
        assert store.remove_sanction("mute", "#dev", "bob") is False
        assert store.remove_sanction("ban", "#dev", "carol") is False
        assert len(store.sanctions(0.0)) == 1

    def test_in_force_until_its_end_and_not_at_it(self, store: AccountStore) -> None:
        ban = sanction(until=5000.0)
        store.add_sanction(ban)
        assert store.sanctions(4999.999) == [ban]
        assert store.sanctions(5000.0) == []

    def test_an_expired_sanction_is_dropped_on_the_way(self, store: AccountStore) -> None:
        store.add_sanction(sanction(until=5000.0))
        assert store.sanctions(5000.0) == []
        assert store.sanctions(0.0) == []  # gone, not merely hidden at that time
        assert store.remove_sanction("ban", "#dev", "bob") is False

    def test_until_lifted_never_expires(self, store: AccountStore) -> None:
        ban = sanction(until=None)
        store.add_sanction(ban)
        assert store.sanctions(1e12) == [ban]

    def test_expiry_drops_only_the_expired(self, store: AccountStore) -> None:
        short = sanction("mute", "#dev", "bob", address=None, until=100.0, created=1.0)
        long = sanction("ban", "#dev", "bob", until=200.0, created=2.0)
        lifted = sanction("ban", "#dev", "carol", until=None, created=3.0)
        for s in (short, long, lifted):
            store.add_sanction(s)
        assert store.sanctions(150.0) == [long, lifted]
        assert store.sanctions(200.0) == [lifted]

    # ----- banned ---------------------------------------------------------------------

    def test_banned_by_key(self, store: AccountStore) -> None:
        ban = sanction(address="10.0.0.9")
        store.add_sanction(ban)
        assert store.banned("#dev", "bob", "192.168.0.1", 0.0) == ban
        assert store.banned("#dev", "bob", "", 0.0) == ban

    def test_banned_by_address(self, store: AccountStore) -> None:
        ban = sanction(address="10.0.0.9")
        store.add_sanction(ban)
        assert store.banned("#dev", "robert", "10.0.0.9", 0.0) == ban
        assert store.banned("#dev", "robert", "10.0.0.10", 0.0) is None

    def test_banned_only_in_its_scope(self, store: AccountStore) -> None:
        store.add_sanction(sanction(scope="#dev"))
        assert store.banned("#ops", "bob", "10.0.0.9", 0.0) is None
        assert store.banned("#lobby", "bob", "10.0.0.9", 0.0) is None

    def test_a_mute_is_no_ban(self, store: AccountStore) -> None:
        store.add_sanction(sanction("mute", address="10.0.0.9"))
        assert store.banned("#dev", "bob", "10.0.0.9", 0.0) is None

    def test_banned_until_its_end_and_not_at_it(self, store: AccountStore) -> None:
        ban = sanction(until=5000.0)
        store.add_sanction(ban)
        assert store.banned("#dev", "bob", "", 4999.999) == ban
        assert store.banned("#dev", "bob", "", 5000.0) is None
        assert store.banned("#dev", "other", "10.0.0.9", 5000.0) is None

    def test_no_address_matches_no_address(self, store: AccountStore) -> None:
        """A ban of someone who was offline has no address: it must not catch everyone
        whose address is unknown (an empty string)."""
        store.add_sanction(sanction(address=None))
        assert store.banned("#dev", "carol", "", 0.0) is None
        assert store.banned("#dev", "bob", "", 0.0) is not None

    def test_an_empty_address_is_no_address(self, store: AccountStore) -> None:
        store.add_sanction(sanction(address="10.0.0.9"))
        assert store.banned("#dev", "carol", "", 0.0) is None

    # ----- ignores --------------------------------------------------------------------

    def test_nobody_ignored_at_first(self, store: AccountStore) -> None:
        assert store.ignores("alice") == set()

    def test_ignore_and_unignore(self, store: AccountStore) -> None:
        store.set_ignore("alice", "bob", True)
        store.set_ignore("alice", "carol", True)
        store.set_ignore("alice", "bob", True)  # twice is once
        assert store.ignores("alice") == {"bob", "carol"}
        store.set_ignore("alice", "bob", False)
        assert store.ignores("alice") == {"carol"}
        store.set_ignore("alice", "bob", False)  # not ignored: no error
        assert store.ignores("alice") == {"carol"}

    def test_ignore_lists_are_per_account(self, store: AccountStore) -> None:
        store.set_ignore("alice", "bob", True)
        store.set_ignore("carol", "dave", True)
        assert store.ignores("alice") == {"bob"}
        assert store.ignores("carol") == {"dave"}
        assert store.ignores("bob") == set()

    def test_ignores_keep_unicode_keys(self, store: AccountStore) -> None:
        store.set_ignore("zoë", "渡辺", True)
        assert store.ignores("zoë") == {"渡辺"}

    def test_delete_forgets_the_ignore_list_too(self, store: AccountStore) -> None:
        store.create(account())
        store.set_ignore("alice", "bob", True)
        store.set_ignore("carol", "alice", True)
        store.delete("alice")
        assert store.ignores("alice") == set()
        assert store.ignores("carol") == {"alice"}  # others' lists are theirs
