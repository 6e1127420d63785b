"""The hub's limits: its share of the server settings, taken by field name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from webchat.core.replay import ReplayLimits
from webchat.core.rooms import RoomLimits


@dataclass(frozen=True)
class HubLimits(ReplayLimits, RoomLimits):
    max_nick_chars: int = 24
    max_message_chars: int = 2000
    outbox_max_events: int = 4096
    outbox_max_bytes: int = 2 * 1024 * 1024
    close_grace: float = 2.0
    reap_interval: float = 0.25
    rate_per_second: float = 3.0
    rate_burst: int = 15
    flood_refusals: int = 20
    flood_window: float = 10.0
    people_page: int = 1000
    presence_batch_above: int = 1000
    presence_interval: float = 10.0

    def __post_init__(self) -> None:
        if self.people_page < 1 or self.presence_interval <= 0:
            raise ValueError("people_page must be at least 1, presence_interval above 0")

    @classmethod
    def from_settings(cls, settings: object) -> HubLimits:
        """The hub's share of the server settings: every field of the same name."""
        names = [f.name for f in dataclasses.fields(cls) if hasattr(settings, f.name)]
        return cls(**{name: getattr(settings, name) for name in names})
