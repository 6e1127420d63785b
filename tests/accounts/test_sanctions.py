"""Durations (parse, split, show), the Mutes in force, and a Sanction's own rules."""

from __future__ import annotations

import math

import pytest

from webchat.accounts import Sanction
from webchat.core.events import LOBBY
from webchat.core.sanctions import (
    MAX_DURATION,
    Mutes,
    parse_duration,
    shown_duration,
    split_duration,
)
from webchat.text import ChatError

DAY = 86400

# ----- parse_duration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1),
        ("30s", 30),
        ("59s", 59),
        ("90s", 90),
        ("1m", 60),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 7 * DAY),
        ("3650d", 3650 * DAY),
        ("87600h", 3650 * DAY),  # the longest, in another unit
        ("315360000s", 3650 * DAY),
        ("010m", 600),
        ("10M", 600),
        ("2H", 7200),
        ("7D", 7 * DAY),
        ("30S", 30),
    ],
)
def test_parse_duration_accepts(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "0s",  # too short
        "0m",
        "0d",
        "3651d",  # longer than 3650 days
        "87601h",
        "315360001s",
        "999999999d",
        "1000000000s",  # ten digits
        "",
        "s",
        "m10",
        "10",  # no unit
        "10 m",
        " 10m",
        "10m ",
        "-5m",
        "+5m",
        "1.5h",
        "10mm",
        "10x",
        "10w",
        "10y",
        "forever",
        "ten minutes",
    ],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ChatError) as caught:
        parse_duration(text)
    assert caught.value.code == "bad_duration"
    assert repr(text) in str(caught.value)


def test_the_limit_is_3650_days() -> None:
    assert MAX_DURATION == 3650 * DAY
    with pytest.raises(ChatError, match="from 1s to 3650d"):
        parse_duration("3651d")


# ----- split_duration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "split"),
    [
        ("10m spamming", (600, "spamming")),
        ("10m  spamming a lot ", (600, "spamming a lot")),
        ("2h", (7200, "")),
        ("7D off topic", (7 * DAY, "off topic")),
        ("spamming", (None, "spamming")),
        ("being rude again", (None, "being rude again")),
        ("forever", (None, "forever")),  # no digit: a reason, not a duration
        ("", (None, "")),
        ("  ", (None, "")),
    ],
)
def test_split_duration(args: str, split: tuple[int | None, str]) -> None:
    assert split_duration(args) == split


@pytest.mark.parametrize("args", ["0s", "0s spam", "10x spam", "3651d", "7days of spam"])
def test_split_duration_refuses_what_looks_like_a_bad_duration(args: str) -> None:
    """A first word of digits and letters is meant as a duration: a typo is not a reason."""
    with pytest.raises(ChatError) as caught:
        split_duration(args)
    assert caught.value.code == "bad_duration"


# ----- shown_duration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (61, "61s"),
        (90, "90s"),
        (600, "10m"),
        (3600, "1h"),
        (5400, "90m"),
        (7200, "2h"),
        (DAY, "1d"),
        (DAY + 3600, "25h"),
        (DAY + 1, "86401s"),
        (7 * DAY, "7d"),
        (MAX_DURATION, "3650d"),
    ],
)
def test_shown_duration(seconds: int, shown: str) -> None:
    assert shown_duration(seconds) == shown


@pytest.mark.parametrize("text", ["1s", "30s", "90s", "10m", "90m", "2h", "25h", "7d", "3650d"])
def test_shown_duration_is_what_was_typed_in_its_shortest_form(text: str) -> None:
    assert shown_duration(parse_duration(text)) == text


def test_shown_duration_reads_back() -> None:
    for seconds in (1, 45, 60, 61, 3599, 3600, 3660, DAY - 1, DAY, 8 * DAY + 60, MAX_DURATION):
        assert parse_duration(shown_duration(seconds)) == seconds


# ----- Mutes --------------------------------------------------------------------------


def test_nobody_is_muted_at_first() -> None:
    mutes = Mutes()
    assert not mutes
    assert mutes.muted("#dev", "bob", 0.0) is None


def test_a_mute_holds_until_its_end_and_not_at_it() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", 100.0)
    assert mutes
    assert mutes.muted("#dev", "bob", 99.999) == 100.0
    assert mutes.muted("#dev", "bob", 100.0) is None
    assert not mutes  # an expired mute is dropped once seen


def test_an_expired_mute_stays_expired() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", 100.0)
    assert mutes.muted("#dev", "bob", 100.0) is None
    assert mutes.muted("#dev", "bob", 50.0) is None  # dropped: an earlier clock cannot revive it


def test_until_lifted_is_infinite() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", None)
    assert mutes.muted("#dev", "bob", 1e12) == math.inf


def test_lift() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", None)
    mutes.lift("#dev", "bob")
    assert mutes.muted("#dev", "bob", 0.0) is None
    assert not mutes
    mutes.lift("#dev", "nobody")  # lifting what is not there is no error


def test_a_room_mute_covers_that_room_only() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", None)
    assert mutes.muted("#dev", "bob", 0.0) == math.inf
    assert mutes.muted("#ops", "bob", 0.0) is None
    assert mutes.muted(LOBBY, "bob", 0.0) is None  # nor #lobby, nor private messages
    assert mutes.muted("#dev", "carol", 0.0) is None


def test_a_lobby_mute_covers_every_room() -> None:
    mutes = Mutes()
    mutes.set(LOBBY, "bob", 200.0)
    for room in (LOBBY, "#dev", "#ops", "#a-room-made-later"):
        assert mutes.muted(room, "bob", 199.0) == 200.0
    assert mutes.muted("#dev", "bob", 200.0) is None
    assert mutes.muted(LOBBY, "bob", 200.0) is None


def test_the_lobby_mute_holds_after_a_room_mute_ended() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", 50.0)
    mutes.set(LOBBY, "bob", 200.0)
    assert mutes.muted("#dev", "bob", 100.0) == 200.0


def test_the_room_mute_holds_after_the_lobby_mute_ended() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", 300.0)
    mutes.set(LOBBY, "bob", 200.0)
    assert mutes.muted("#dev", "bob", 100.0) == 300.0
    assert mutes.muted("#dev", "bob", 250.0) == 300.0
    assert mutes.muted("#ops", "bob", 250.0) is None


def test_a_new_mute_replaces_the_old_one() -> None:
    mutes = Mutes()
    mutes.set("#dev", "bob", None)
    mutes.set("#dev", "bob", 100.0)
    assert mutes.muted("#dev", "bob", 50.0) == 100.0
    assert mutes.muted("#dev", "bob", 100.0) is None


# ----- Sanction -----------------------------------------------------------------------


def sanction(until: float | None) -> Sanction:
    return Sanction("ban", "#dev", "bob", "Bob", "10.0.0.9", "alice", "spam", until, 10.0)


def test_a_sanction_is_active_until_its_end_and_not_at_it() -> None:
    assert sanction(100.0).active(99.999)
    assert not sanction(100.0).active(100.0)
    assert sanction(None).active(1e12)


def test_a_listed_sanction_never_shows_the_address() -> None:
    shown = sanction(0.0).as_dict()
    assert shown == {
        "nick": "Bob",
        "by": "alice",
        "reason": "spam",
        "until": "1970-01-01T00:00:00.000Z",
    }
    assert "10.0.0.9" not in repr(shown)
    assert sanction(None).as_dict()["until"] is None
