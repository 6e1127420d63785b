"""What the hub's helpers (membership, people, the welcome) may use of it.

They work on the hub's state under its lock and publish through it. Naming that
here, as a protocol the hub satisfies, keeps them from importing the hub itself:
the hub is built from them, not the other way round.
"""

from __future__ import annotations

import threading
from typing import Protocol

from webchat.bus import Outgoing
from webchat.core.delivery import Delivery
from webchat.core.events import Audience, Event
from webchat.core.fanout import Fanout
from webchat.core.limits import HubLimits
from webchat.core.rooms import Rooms
from webchat.core.roster import Claims, Roster
from webchat.core.session import Session
from webchat.history import History


class HubState(Protocol):
    lock: threading.Lock
    limits: HubLimits
    history: History
    claims: Claims
    roster: Roster
    rooms: Rooms
    delivery: Delivery
    fanout: Fanout

    def require_bus(self) -> None:
        """Raise ChatError ``unavailable`` while events cannot be sequenced."""

    def publish_locked(
        self,
        event: Event,
        audience: Audience,
        parties: frozenset[str] | None = None,
        *,
        enters: int = 0,
        exits: int = 0,
        hold: bool = True,
        about: Session | None = None,
    ) -> Event:
        """Sequence and hand over one event; the caller holds ``lock``."""

    def submit_locked(self, item: Outgoing) -> Outgoing:
        """Hand one prepared item to the bus; the caller holds ``lock``."""
