"""Durations, and the mutes in force, which every post is checked against.

Bans are checked against the account store when someone joins or enters a room
(rare, and the store is the authority on every node). Mutes are checked on every
message, so each node keeps them in memory: loaded from the store when it starts,
then changed by the ``mute`` and ``unmute`` events as they pass, its own and the
other nodes'.
"""

from __future__ import annotations

import math
import re

from webchat.core.events import LOBBY
from webchat.text import ChatError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Anything longer is as good as "until lifted", which needs no duration at all.
MAX_DURATION = 3650 * 86400
_DURATION = re.compile(r"(\d{1,9})([smhd])")
_LOOKS_LIKE_DURATION = re.compile(r"\d+[a-zA-Z]*")


def parse_duration(text: str) -> int:
    """``30s``, ``10m``, ``2h``, ``7d`` -> seconds; ChatError bad_duration otherwise."""
    match = _DURATION.fullmatch(text.lower())
    seconds = int(match[1]) * UNITS[match[2]] if match else 0
    if not 1 <= seconds <= MAX_DURATION:
        raise ChatError(
            "bad_duration",
            f"{text!r} is not a duration: a number and s, m, h or d (like 30s, 10m, 2h, 7d), "
            f"from 1s to {MAX_DURATION // 86400}d; leave it out for 'until lifted'",
        )
    return seconds


def split_duration(args: str) -> tuple[int | None, str]:
    """``"10m spamming"`` -> (600, "spamming"); a reason without a duration -> (None, it)."""
    first, _, rest = args.partition(" ")
    if first and _LOOKS_LIKE_DURATION.fullmatch(first):
        return parse_duration(first), rest.strip()
    return None, args.strip()


def shown_duration(seconds: int) -> str:
    """The shortest exact form: 90 -> ``90s``, 600 -> ``10m``, 7200 -> ``2h``."""
    for unit in ("d", "h", "m"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


class Mutes:
    """Who may not post where: (scope, nick key) -> until (unix time; ``inf``: until
    lifted). Plain data under the hub's lock. ``#lobby`` as the scope mutes everywhere.
    """

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}

    def __bool__(self) -> bool:
        return bool(self._until)

    def set(self, scope: str, key: str, until: float | None) -> None:
        self._until[(scope, key)] = math.inf if until is None else until

    def carry(self, old_key: str, new_key: str) -> list[tuple[str, float]]:
        """Someone muted changed nick: the mutes follow them; the (scope, until) carried."""
        carried = [(scope, until) for (scope, key), until in self._until.items() if key == old_key]
        for scope, until in carried:
            self._until[(scope, new_key)] = until
        return carried

    def lift(self, scope: str, key: str) -> None:
        self._until.pop((scope, key), None)

    def muted(self, scope: str, key: str, now: float) -> float | None:
        """None if not muted there; else when the mute ends (``inf``: until lifted)."""
        for where in (scope, LOBBY):
            until = self._until.get((where, key))
            if until is not None:
                if until > now:
                    return until
                del self._until[(where, key)]
        return None
