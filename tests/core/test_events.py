"""Events and their two wire forms."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.clients import parse_ts
from webchat.core.events import (
    Audience,
    Event,
    encode_json,
    encode_line,
    make_packet,
    render_line,
    utc_now,
)


def test_utc_now_is_iso8601_utc_with_milliseconds():
    before = datetime.now(UTC)
    stamp = parse_ts(utc_now())
    after = datetime.now(UTC)
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(milliseconds=1) <= stamp <= after


def test_event_is_frozen():
    event = Event("message", "alice", "hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.text = "changed"  # type: ignore[misc]


def test_as_dict_leaves_out_missing_fields_and_adds_extra():
    assert Event("back", "alice").as_dict() == {"type": "back", "nick": "alice"}
    event = Event("private", "alice", "psst", 7, "2026-01-01T00:00:00.000Z", {"to": "bob"})
    assert event.as_dict() == {
        "type": "private",
        "id": 7,
        "ts": "2026-01-01T00:00:00.000Z",
        "nick": "alice",
        "text": "psst",
        "to": "bob",
    }


def test_encode_json_is_compact_utf8_json():
    event = Event("message", "zoë", "héllo 👋", 3, "2026-01-01T00:00:00.000Z")
    data = encode_json(event)
    assert b" " not in data.replace("héllo 👋".encode(), b"")
    assert "héllo 👋".encode() in data  # not \\u escapes
    assert json.loads(data) == event.as_dict()


TS = "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (Event("message", "alice", "hello"), "alice: hello"),
        (Event("me", "alice", "waves"), "* alice waves"),
        (Event("private", "alice", "psst", extra={"to": "bob"}), "[private] alice -> bob: psst"),
        (Event("join", "alice", extra={"via": "tcp"}), "*** alice joined (terminal)"),
        (Event("join", "bob", extra={"via": "web"}), "*** bob joined (browser)"),
        (Event("leave", "alice", "gone"), "*** alice left (gone)"),
        (Event("leave", "alice"), "*** alice left"),
        (Event("nick", "alice", extra={"new": "alicia"}), "*** alice is now known as alicia"),
        (Event("away", "alice", "lunch"), "*** alice is away: lunch"),
        (Event("away", "alice"), "*** alice is away"),
        (Event("back", "alice"), "*** alice is back"),
        (Event("error", text="nope"), "*** error: nope"),
        (Event("welcome", "alice", "2 online"), "*** Welcome, alice! 2 online"),
        (Event("users", text="2 online: a, b"), "*** 2 online: a, b"),
        (Event("system", text="help text"), "*** help text"),
    ],
)
def test_each_event_renders_as_one_terminal_line(event, line):
    assert render_line(event) == line
    encoded = encode_line(dataclasses.replace(event, id=1, ts=TS))
    assert encoded == (line + "\r\n").encode()
    assert encoded.count(b"\r\n") == 1 and encoded.count(b"\n") == 1


def test_packet_carries_both_forms_and_its_audience():
    event = Event("message", "alice", "x" * 100, 1, TS)
    packet = make_packet(event, Audience.only(4, 5))
    assert packet.line == encode_line(event)
    assert packet.json == encode_json(event)
    assert packet.size == max(len(packet.line), len(packet.json))
    assert packet.audience == Audience(sessions=frozenset({4, 5}))
    assert make_packet(event).audience == Audience(everyone=True)
