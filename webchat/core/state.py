"""What the hub's helpers (membership, people, the welcome) may use of it.

They work on the hub's state under its lock and publish through it. Naming that
here, as a protocol the hub satisfies, keeps them from importing the hub itself:
the hub is built from them, not the other way round.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from webchat.bus import Outgoing
from webchat.core.delivery import Delivery
from webchat.core.events import Audience, Event
from webchat.core.fanout import Fanout
from webchat.core.ignoring import Ignoring
from webchat.core.limits import HubLimits
from webchat.core.rooms import Rooms
from webchat.core.roster import Claims, Roster
from webchat.core.session import Session
from webchat.core.stats import HubStats
from webchat.history import History

if TYPE_CHECKING:  # it works on this state too: a type, not an import cycle
    from webchat.core.presence import PresenceBatches


class Moderating(Protocol):
    """What membership and people use of moderation (webchat.core.moderation)."""

    def check_post_locked(self, session: Session, room: str | None) -> None:
        """Raise ChatError ``muted`` if the user may not post there."""

    def check_ban(self, scope: str, key: str, address: str) -> None:
        """Raise ChatError ``banned`` while a ban holds; reads the store, so unlocked."""

    def is_server_operator(self, session: Session) -> bool: ...

    def is_operator_account(self, account: str | None) -> bool: ...

    def may_moderate_locked(self, session: Session, room: str) -> bool: ...

    def apply_locked(self, event: Event) -> None:
        """Apply another node's moderation event here."""

    def renamed_locked(self, old_key: str, new_key: str) -> list[tuple[str, float]]:
        """Carry a renamed person's mutes to their new nick."""

    def store_carried(self, session: Session, carried: list[tuple[str, float]]) -> None:
        """Store the carried mutes (unlocked)."""


class HubState(Protocol):
    lock: threading.Lock
    limits: HubLimits
    history: History
    claims: Claims
    roster: Roster
    rooms: Rooms
    delivery: Delivery
    fanout: Fanout
    stats: HubStats

    ignoring: Ignoring
    presence: PresenceBatches
    closing_all: bool

    @property
    def moderation(self) -> Moderating: ...

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
