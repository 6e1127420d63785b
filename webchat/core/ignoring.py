"""Who ignores whom: ``/ignore`` stops someone's talk from reaching you.

A session holds the ids of the sessions it ignores (``Session.ignored``, replaced
whole, so the fan-out reads it without a lock); the fan-out drops their messages,
actions and private messages (``Session.select``). This index, from a nick key to
the local sessions that ignore whoever holds it, catches the person again when
they come back, take the nick, or arrive on another node. Plain data under the
hub's lock, like the roster it reads.
"""

from __future__ import annotations

from webchat.accounts import AccountStore
from webchat.core.roster import Roster
from webchat.core.session import Session
from webchat.text import ChatError


class Ignoring:
    def __init__(self, roster: Roster, store: AccountStore) -> None:
        self.roster = roster
        self.store = store
        self._ignorers: dict[str, set[int]] = {}  # nick key -> local sessions ignoring it

    def remembered(self, account: str) -> set[str]:
        """An account's stored ignore list; empty (and the join goes on) if the store
        cannot be read now. Unlocked: it may ask Redis."""
        try:
            return self.store.ignores(account)
        except ChatError:
            return set()

    def ignore_locked(self, session: Session, key: str, on: bool) -> None:
        """Start or stop ignoring whoever holds ``key``, now and whenever they come."""
        ignorers = self._ignorers.setdefault(key, set())
        if on:
            session.ignore_keys.add(key)
            ignorers.add(session.id)
        else:
            session.ignore_keys.discard(key)
            ignorers.discard(session.id)
            if not ignorers:
                del self._ignorers[key]
        holder = self.roster.by_key(key)
        if holder is not None:
            changed = {holder.id}
            session.ignored = session.ignored | changed if on else session.ignored - changed

    def arrived_locked(self, person: Session) -> None:
        """Someone (here or on another node) now holds their key: who ignores them?"""
        for ignorer_id in self._ignorers.get(person.key, ()):
            ignorer = self.roster.sessions.get(ignorer_id)
            if ignorer is not None:
                ignorer.ignored = ignorer.ignored | {person.id}

    def forget_locked(self, session: Session) -> None:
        """A local session left: it ignores nobody any more."""
        for key in session.ignore_keys:
            ignorers = self._ignorers.get(key)
            if ignorers is not None:
                ignorers.discard(session.id)
                if not ignorers:
                    del self._ignorers[key]
