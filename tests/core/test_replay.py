"""History: replay on join, gap-free resume, scroll-back, retention, and a log that survives."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.chat import RunningChat
from tests.support.clients import TcpClient, WsClient, assert_no_tracebacks, wait_until


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


def join_ws(
    chat: RunningChat, nick: str, since: int | None = None
) -> tuple[WsClient, list[dict[str, Any]]]:
    """Join and return everything that came before and with the welcome."""
    client = chat.ws()
    frame: dict[str, Any] = {"type": "join", "nick": nick}
    if since is not None:
        frame["since"] = since
    client.send(frame)
    return client, client.read_until("welcome")


def join_tcp(chat: RunningChat, nick: str) -> tuple[TcpClient, list[str]]:
    client = TcpClient(chat.tcp_port)
    client.read_exact(b"Enter your nickname: ")
    client.line(nick)
    return client, client.read_until(lambda line: line.startswith("*** Welcome"))


def say_all(chat: RunningChat, nick: str, texts: list[str]) -> list[dict[str, Any]]:
    """Send from a browser user and return the messages as everyone got them (with ids)."""
    sender = chat.ws(nick)
    got = []
    for text in texts:
        sender.say(text)
        got.append(sender.expect(lambda e: e["type"] == "message" and e["text"] == text))  # noqa: B023
    return got


def test_a_newcomer_gets_the_last_public_events_marked_as_history_before_anything_live(
    make_chat,
):
    chat = make_chat(history_replay=3)
    sent = say_all(chat, "alice", ["one", "two", "three", "four"])
    bob, before = join_ws(chat, "bob")
    history = [e for e in before if e.get("history")]
    # Bob's join reaches bob only once it is in the log: from then on a newcomer's
    # replay holds it (before that it could still be on its way to the log).
    bob.expect(lambda e: e.get("type") == "join" and e.get("nick") == "bob")
    # The last 3 events: messages two..four (alice's own join is older).
    assert [(e["id"], e["text"]) for e in history] == [(m["id"], m["text"]) for m in sent[1:]]
    assert before[0]["type"] == "system" and "History: 3 earlier events" in before[0]["text"]
    assert before[-1]["type"] == "welcome" and "history" not in before[-1]

    _, lines = join_tcp(chat, "carol")
    assert lines[0] == "*** History: 3 earlier events (times in UTC)"
    stamp = sent[-1]["ts"][11:16]
    assert lines[1:4] == [
        f"[{sent[2]['ts'][11:16]}] alice: three",
        f"[{stamp}] alice: four",
        f"[{lines[3][1:6]}] *** bob joined (browser)",
    ]
    assert lines[4].startswith("*** Welcome, carol!")


def test_replay_can_be_turned_off(make_chat):
    chat = make_chat(history_replay=0)
    say_all(chat, "alice", ["hello"])
    _, before = join_ws(chat, "bob")
    assert [e["type"] for e in before] == ["welcome"]


def test_private_messages_are_never_replayed_to_anyone(make_chat):
    chat = make_chat(rate_per_second=0)
    alice, bob = chat.ws("alice"), chat.tcp("bob")
    alice.say("/msg bob the secret")
    bob.expect("the secret")
    alice.say("public")
    alice.expect(lambda e: e.get("text") == "public")
    _, lines = join_tcp(chat, "carol")
    assert not [line for line in lines if "secret" in line]
    _, before = join_ws(chat, "dave")
    assert not [e for e in before if "secret" in json.dumps(e)]
    assert [e["text"] for e in before if e["type"] == "message"] == ["public"]


def test_no_event_is_missed_or_repeated_at_the_seam_between_replay_and_live(make_chat):
    chat = make_chat(rate_per_second=0, history_replay=10_000)
    sender = chat.tcp("sender")

    def flood() -> None:  # 3,000 messages, fewer than the replay holds
        for start in range(0, 3000, 100):
            sender.send("".join(f"m{i}\r\n" for i in range(start, start + 100)))

    thread = threading.Thread(target=flood)
    thread.start()
    try:
        wait_until(lambda: chat.runtime.history.last_id() > 50)
        newcomers = [join_ws(chat, f"late{k}") for k in range(5)]
    finally:
        thread.join(30)
    sender.line("the end")
    for client, before in newcomers:
        after = client.read_until(lambda e: e.get("text") == "the end")
        texts = [e["text"] for e in before + after if e["type"] == "message"]
        numbers = [int(t[1:]) for t in texts[:-1]]
        assert numbers == list(range(len(numbers))), "a message was missed or repeated"
        ids = [e["id"] for e in before + after if "id" in e]
        assert ids == sorted(set(ids))


def test_resume_with_since_gets_exactly_what_was_missed_then_live(make_chat):
    chat = make_chat(history_replay=2)
    reader, _ = join_ws(chat, "reader")
    seen = say_all(chat, "alice", ["a1", "a2"])
    reader.expect(lambda e: e.get("text") == "a2")
    last_seen = seen[-1]["id"]
    reader.close()
    missed = say_all(chat, "bob", ["b1", "b2", "b3"])
    wait_until(lambda: chat.runtime.hub.people.find("reader") is None)
    again, before = join_ws(chat, "reader", since=last_seen)
    history = [e for e in before if e.get("history")]
    assert [e["text"] for e in history if e["type"] == "message"] == ["b1", "b2", "b3"]
    assert all(e["id"] > last_seen for e in history)
    assert not [e for e in before if e.get("code") == "history_gap"]
    assert {m["id"] for m in missed} <= {e["id"] for e in history}
    chat.tcp("live").line("now")
    assert again.expect("message")["text"] == "now"


def test_private_messages_are_not_replayed_on_resume_either(make_chat):
    # A nick is no proof of identity: whoever takes "bob" after he left must not read
    # his private messages from the log.
    chat = make_chat(rate_per_second=0)
    bob, _ = join_ws(chat, "bob")
    alice = chat.ws("alice")
    alice.say("/msg bob my secret")
    got = bob.expect("private")
    bob.close()
    wait_until(lambda: chat.runtime.hub.people.find("bob") is None)
    _, replay = join_ws(chat, "bob", since=got["id"] - 1)
    assert not [e for e in replay if "secret" in json.dumps(e)]
    _, replay = join_ws(chat, "mallory", since=0)
    assert not [e for e in replay if "secret" in json.dumps(e)]


def test_resume_is_capped_and_a_longer_absence_says_so(make_chat):
    chat = make_chat(rate_per_second=0, history_replay=5, history_resume_max=20)
    sent = say_all(chat, "alice", [f"r{i}" for i in range(30)])
    _, replay = join_ws(chat, "late", since=sent[0]["id"])  # missed 29: more than 20
    gap = [e for e in replay if e.get("code") == "history_gap"]
    assert gap and "more than 20" in gap[0]["text"] and "the last 5 events" in gap[0]["text"]
    assert [e["text"] for e in replay if e.get("history")] == [f"r{i}" for i in range(25, 30)]
    # Missed exactly 20 (19 messages and late's join): all of them, no notice.
    _, replay = join_ws(chat, "recent", since=sent[-20]["id"])
    assert not [e for e in replay if e.get("code") == "history_gap"]
    assert len([e for e in replay if e.get("history")]) == 20
    texts = [e["text"] for e in replay if e.get("history") and e["type"] == "message"]
    assert texts == [f"r{i}" for i in range(11, 30)]


def test_since_older_than_retention_says_so_in_a_system_event(make_chat):
    chat = make_chat(history_max_events=5, history_replay=3, rate_per_second=0)
    say_all(chat, "alice", [f"m{i}" for i in range(30)])
    store = chat.runtime.history
    wait_until(lambda: store.prune() >= 0 and store.recent(100) and len(store.recent(100)) <= 5)
    _, before = join_ws(chat, "late", since=1)
    gap = [e for e in before if e.get("code") == "history_gap"]
    assert gap and gap[0]["type"] == "system" and "not available" in gap[0]["text"]
    assert [e["text"] for e in before if e.get("history")][-1] == "m29"


@pytest.mark.parametrize("kind", ["tcp", "ws"])
def test_history_command_prints_recent_public_events(make_chat, kind):
    chat = make_chat(rate_per_second=0)
    client = chat.tcp("asker") if kind == "tcp" else chat.ws("asker")
    say_all(chat, "alice", ["x1", "x2", "x3"])
    if isinstance(client, TcpClient):
        client.expect("alice: x3")  # live
        client.line("/history 2")
        lines = client.read_until(lambda line: line.endswith("alice: x3"))
        assert lines[-3] == "*** History: 2 events (times in UTC)"
        assert lines[-2].endswith("] alice: x2")
    else:
        client.read_until(lambda e: e.get("text") == "x3")  # live
        client.say("/history 2")
        events = client.read_until(lambda e: e.get("text") == "x3")
        assert [e["text"] for e in events if e.get("history")] == ["x2", "x3"]


@pytest.mark.parametrize("arg", ["0", "201", "two", "-1"])
def test_history_command_refuses_a_bad_count(chat, arg):
    ws = chat.ws("asker")
    ws.say(f"/history {arg}")
    assert ws.expect("error")["code"] == "usage"


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_history_pages_backwards(make_chat):
    chat = make_chat(rate_per_second=0)
    sent = say_all(chat, "alice", [f"p{i}" for i in range(10)])
    status, page = get_json(f"{chat.url}/api/history?limit=4")
    assert status == 200 and page["more"] is True
    assert [e["text"] for e in page["events"]] == ["p6", "p7", "p8", "p9"]
    oldest = page["events"][0]["id"]
    status, page = get_json(f"{chat.url}/api/history?before={oldest}&limit=100")
    assert [e["text"] for e in page["events"] if e["type"] == "message"] == [
        f"p{i}" for i in range(6)
    ]
    assert page["more"] is False
    assert page["events"][-1]["id"] == sent[5]["id"]


@pytest.mark.parametrize("query", ["before=abc", "limit=0", "limit=-3", "before=0"])
def test_api_history_refuses_bad_parameters_with_400(chat, query):
    status, body = get_json(f"{chat.url}/api/history?{query}")
    assert status == 400 and "must be a whole number" in body["error"]


def test_ids_keep_increasing_across_a_restart_on_the_same_file(make_chat, tmp_path: Path):
    db = str(tmp_path / "chat.sqlite3")
    first = make_chat(history_db=db)
    sent = say_all(first, "alice", ["before restart"])
    first.stop()
    second = make_chat(history_db=db)
    again = say_all(second, "alice", ["after restart"])
    assert again[0]["id"] > sent[0]["id"]
    _, before = join_ws(second, "bob")
    texts = [e["text"] for e in before if e.get("history") and e["type"] == "message"]
    assert texts == ["before restart", "after restart"]


def test_resume_is_gap_free_across_a_server_restart(make_chat, tmp_path: Path):
    db = str(tmp_path / "chat.sqlite3")
    first = make_chat(history_db=db)
    reader, _ = join_ws(first, "reader")
    seen = say_all(first, "alice", ["seen"])
    reader.expect(lambda e: e.get("text") == "seen")
    reader.close()
    missed = say_all(first, "alicia", ["missed 1", "missed 2"])
    first.stop()
    second = make_chat(history_db=db)
    _, before = join_ws(second, "reader", since=seen[0]["id"])
    history = [e for e in before if e.get("history")]
    assert [(e["id"], e["text"]) for e in history if e["type"] == "message"] == [
        (m["id"], m["text"]) for m in missed
    ]
    assert history[0]["id"] == seen[0]["id"] + 1


def test_healthz_reports_history(chat):
    status, body = get_json(f"{chat.url}/healthz")
    assert status == 200 and body["status"] == "ok"
    assert body["history"]["ok"] is True and body["history"]["error"] is None


def test_since_beyond_the_log_says_so_too(make_chat):
    chat = make_chat(history_replay=5)
    say_all(chat, "alice", ["only this"])
    _, before = join_ws(chat, "visitor", since=10_000)  # e.g. a restart that lost its log
    gap = [e for e in before if e.get("code") == "history_gap"]
    assert gap and "never had it" in gap[0]["text"]
    assert [e["text"] for e in before if e.get("history") and e["type"] == "message"] == [
        "only this"
    ]
