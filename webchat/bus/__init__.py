"""The Bus: gives events their ids and one order, and makes them durable before delivery.

The hub hands every outgoing item to the bus (replies to one session too, so each
session sees one order) and gets them back, in submission order, through the
``deliver`` callback once the sequenced ones are stored. The embedded bus is
:class:`~webchat.bus.local.LocalBus`: a counter and a group commit into SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from webchat.core.events import Audience, Event
from webchat.history.sqlite import StoredEvent


@dataclass(slots=True)
class Outgoing:
    """One item on its way to the ring: an event, who may see it, and how it is logged.

    The bus stamps ``event`` in place when it sequences the item (one is made for
    every message, so it is not copied); nothing else changes it.
    """

    event: Event
    audience: Audience
    # Who may read it back from history: None for public events, else the nick keys.
    parties: frozenset[str] | None = None
    # A past event shown again (/history): marked as such, never sequenced or stored again.
    replayed: bool = False
    # The session that starts receiving event.room at this item (an enter), and the
    # one that stops right after it (an exit).
    enters: int = 0
    exits: int = 0
    # The session that is closing: it is owed everything before this item, not after.
    closes: int = 0
    # Published by another node of a cluster (so not counted among this node's items),
    # and the state of the user it is about, for this node's mirror of them.
    remote: bool = False
    user: Mapping[str, Any] | None = None
    # time.monotonic() when it was published (for the delivery-latency histogram).
    born: float = 0.0


class Bus(Protocol):
    @property
    def error(self) -> str | None:
        """Why events cannot be sequenced now (a cluster's Redis is down); None if they can."""

    def start(self, deliver: Callable[[list[Outgoing]], None]) -> None:
        """Begin handing committed batches to ``deliver``, on the bus's own thread."""

    def submit(self, item: Outgoing) -> Outgoing:
        """Queue one item and return it as sequenced so far (with its id, if known now).

        Callers serialise their calls (the hub's lock): submission order is the order.
        """

    def last_id(self) -> int:
        """The highest id given out; the next one is larger, also after a restart."""

    def stop(self) -> None:
        """Deliver everything submitted, then stop."""


def stored(item: Outgoing) -> StoredEvent | None:
    """How an item is logged: only sequenced events, never a replayed one twice, and
    without what only those present need (Event.as_logged)."""
    if item.event.id is None or item.replayed:
        return None
    about_a_person = item.event.room is None and item.parties is None
    scope = item.audience.rooms if about_a_person else None
    return StoredEvent(item.event.as_logged(), item.parties, scope)
