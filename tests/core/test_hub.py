"""The hub on its own: sequencing, encode-once fan-out, nicks, audiences, slow sessions.

The sessions here use an in-memory transport that records what its writer sends;
the transport is not what is under test, the hub and the session writer are.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.clients import parse_ts, wait_until
from tests.support.hub import Recorder, StuckRecorder, flush, join, new_hub, take, writer_of
from webchat.core.events import Audience, Packet
from webchat.core.hub import Hub
from webchat.core.limits import HubLimits
from webchat.text import ChatError, NickError


@pytest.fixture
def make_hub() -> Iterator[Callable[..., Hub]]:
    hubs: list[Hub] = []

    def make(**limits: Any) -> Hub:
        hub = new_hub(**limits)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.shutdown()


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    return make_hub()


def test_sequencer_gives_increasing_ids_and_utc_timestamps(hub):
    alice, _ = join(hub, "alice", writer=False)
    start = datetime.now(UTC)
    events = [hub.publish("message", "alice", f"m{i}", origin=alice) for i in range(20)]
    end = datetime.now(UTC)
    ids = [e.id for e in events]
    assert all(isinstance(i, int) for i in ids)
    assert ids == list(range(ids[0], ids[0] + 20))
    stamps = [parse_ts(e.ts or "") for e in events]
    assert stamps == sorted(stamps)
    assert all(s.utcoffset() == timedelta(0) for s in stamps)
    assert start - timedelta(milliseconds=1) <= stamps[0] and stamps[-1] <= end


def test_replies_to_one_session_have_a_timestamp_but_no_id(hub):
    alice, recorder = join(hub, "alice")
    hub.notify(alice, "error", "nope", code="x")
    wait_until(lambda: recorder.texts("error"))
    error = next(e for e in recorder.events() if e.type == "error")
    assert error.id is None and error.extra == {"code": "x"}
    parse_ts(error.ts or "")


def test_an_event_is_encoded_once_and_the_same_bytes_reach_every_receiver(hub):
    alice, _ = join(hub, "alice", writer=False)
    bob, _ = join(hub, "bob", "tcp", writer=False)
    event = hub.publish("message", "carol", "shared bytes")
    assert flush(hub)
    taken = []
    for session in (alice, bob):
        packets, closing = take(hub, session, 0)
        assert not closing
        taken.append(next(p for p in packets if p.event.id == event.id))
    assert taken[0] is taken[1]
    assert taken[0].line is taken[1].line and taken[0].json is taken[1].json


def test_writers_of_both_kinds_send_the_very_same_packet_objects(hub):
    _, web = join(hub, "alice")
    _, tcp = join(hub, "bob", "tcp")
    hub.publish("message", "carol", "one encoding")
    web.wait_for_text("one encoding")
    tcp.wait_for_text("one encoding")
    sent = [next(p for p in r.packets if p.event.text == "one encoding") for r in (web, tcp)]
    assert sent[0] is sent[1]


def test_join_is_announced_to_everyone_including_the_joiner(hub):
    _, alice = join(hub, "alice")
    _, bob = join(hub, "bob", "tcp")
    for recorder in (alice, bob):

        def bob_joined(r: Recorder = recorder) -> bool:
            joins = [(e.nick, (e.extra or {}).get("via")) for e in r.events() if e.type == "join"]
            return ("bob", "tcp") in joins

        wait_until(bob_joined)


def test_welcome_lists_who_is_online_and_goes_only_to_the_joiner(hub):
    _, alice = join(hub, "alice", "tcp")
    _, bob = join(hub, "bob")
    wait_until(lambda: [e for e in bob.events() if e.type == "welcome"])
    welcome = next(e for e in bob.events() if e.type == "welcome")
    assert welcome.nick == "bob"
    assert welcome.text == "2 online: bob, alice. Type /help for commands."
    packet = next(p for p in bob.packets if p.event.type == "welcome")
    users = json.loads(packet.json)["users"]
    assert [(u["nick"], u["via"], u["away"]) for u in users] == [
        ("alice", "tcp", None),
        ("bob", "web", None),
    ]
    wait_until(lambda: "bob" in [e.nick for e in alice.events() if e.type == "join"])
    assert [e.nick for e in alice.events() if e.type == "welcome"] == ["alice"]
    first = next(e for e in alice.events() if e.type == "welcome")
    assert first.text == "You are the only one here. Type /help for commands."


@pytest.mark.parametrize("other", ["alice", "ALICE", "Alice", "ａｌｉｃｅ", "ＡＬＩＣＥ"])
def test_nicks_are_unique_without_regard_to_case(hub, other):
    join(hub, "Alice", writer=False)
    with pytest.raises(NickError) as info:
        hub.join(other, Recorder())
    assert info.value.code == "nick_taken"
    assert hub.people.count() == 1


def test_join_refuses_a_bad_nick_with_its_code(hub):
    with pytest.raises(NickError) as info:
        hub.join("no spaces", Recorder())
    assert info.value.code == "nick_invalid"
    assert hub.people.count() == 0


def test_leave_announces_the_reason_frees_the_nick_and_happens_once(hub):
    alice, alice_rec = join(hub, "alice")
    _, bob = join(hub, "bob")
    hub.leave(alice, "gone fishing")
    hub.leave(alice, "twice")
    wait_until(lambda: alice_rec.goodbye is not None)
    assert alice_rec.goodbye == ("gone fishing", 1000)
    assert hub.people.find("alice") is None and hub.people.count() == 1
    again, _ = join(hub, "ALICE")
    hub.publish("message", "bob", "marker")
    bob.wait_for_text("marker")
    leaves = [e for e in bob.events() if e.type == "leave"]
    assert [(e.nick, e.text) for e in leaves] == [("alice", "gone fishing")]
    assert hub.people.find("alice") is again


def test_rename_moves_the_nick_and_tells_everyone(hub):
    alice, _ = join(hub, "alice")
    _, bob = join(hub, "bob")
    hub.people.rename(alice, "alicia")
    assert alice.nick == "alicia"
    assert hub.people.find("ALICIA") is alice and hub.people.find("alice") is None
    wait_until(lambda: [e for e in bob.events() if e.type == "nick"])
    event = next(e for e in bob.events() if e.type == "nick")
    assert event.nick == "alice" and (event.extra or {})["new"] == "alicia"
    join(hub, "alice", writer=False)  # the old nick is free again


def test_rename_refusals(hub):
    alice, _ = join(hub, "alice", writer=False)
    join(hub, "bob", writer=False)
    for nick, code in [("BOB", "nick_taken"), ("alice", "nick_same"), ("a b", "nick_invalid")]:
        with pytest.raises(NickError) as info:
            hub.people.rename(alice, nick)
        assert info.value.code == code
    assert alice.nick == "alice"
    hub.people.rename(alice, "Alice")  # changing only the case is a rename of one's own nick
    assert alice.nick == "Alice" and hub.people.find("alice") is alice


def test_private_event_reaches_only_its_audience(hub):
    alice, alice_rec = join(hub, "alice", "tcp")
    bob, bob_rec = join(hub, "bob")
    _, carol_rec = join(hub, "carol")
    hub.publish(
        "private",
        "alice",
        "psst",
        extra={"to": "bob"},
        audience=Audience.only(alice.id, bob.id),
        parties=frozenset({alice.key, bob.key}),
        origin=alice,
    )
    hub.publish("message", "dave", "after")
    for recorder in (alice_rec, bob_rec, carol_rec):
        recorder.wait_for_text("after")
    assert alice_rec.texts("private") == ["psst"]  # a TCP sender sees its own private line
    assert bob_rec.texts("private") == ["psst"]
    assert carol_rec.texts("private") == []


def test_tcp_sender_gets_no_echo_of_a_plain_message_but_a_web_sender_does(hub):
    tcp_user, tcp_rec = join(hub, "terminal", "tcp")
    web_user, web_rec = join(hub, "browser", "web")
    hub.publish("message", "terminal", "from nc", origin=tcp_user)
    hub.publish("me", "terminal", "waves", origin=tcp_user)
    hub.publish("message", "browser", "from page", origin=web_user)
    web_rec.wait_for_text("from page")
    tcp_rec.wait_for_text("from page")
    assert web_rec.texts() == ["from nc", "from page"]
    assert tcp_rec.texts() == ["from page"]
    assert tcp_rec.texts("me") == ["waves"]  # only plain messages are not echoed


def test_presence_shows_via_away_and_idle(hub):
    alice, _ = join(hub, "alice", "tcp", writer=False)
    join(hub, "bob", writer=False)
    hub.people.set_away(alice, "lunch")
    people = {p.nick: p for p in hub.people.presence()}
    assert people["alice"].via == "tcp" and people["alice"].away == "lunch"
    assert people["bob"].via == "web" and people["bob"].away is None
    assert 0 <= people["bob"].idle < 60
    hub.people.set_away(alice, None)
    assert hub.people.presence()[0].away is None


def test_concurrent_joins_of_one_nick_admit_exactly_one(hub):
    spellings = ["sam", "Sam", "SAM", "ｓａｍ", "sAm", "saM", "SAm", "Ｓam"] * 4
    barrier = threading.Barrier(len(spellings))
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(nick: str) -> None:
        barrier.wait()
        try:
            hub.join(nick, Recorder())
            result = "joined"
        except NickError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in spellings]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert outcomes.count("joined") == 1
    assert outcomes.count("nick_taken") == len(spellings) - 1
    assert hub.people.count() == 1


def test_many_threads_join_leave_and_publish_and_every_stayer_sees_one_order(make_hub):
    hub = make_hub(outbox_max_events=100_000, outbox_max_bytes=1 << 30)
    stayers = [join(hub, f"stay{i}", "web") for i in range(4)]
    workers, rounds, per_round, stayer_messages = 12, 15, 3, 40
    barrier = threading.Barrier(workers + len(stayers))
    failures: list[BaseException] = []

    def churn(w: int) -> None:
        try:
            barrier.wait()
            for r in range(rounds):
                session, _ = join(hub, f"worker{w}", "tcp" if w % 2 else "web")
                for k in range(per_round):
                    hub.publish("message", session.nick, f"w{w}.{r}.{k}", origin=session)
                hub.leave(session, f"round {r} done")
        except BaseException as exc:
            failures.append(exc)

    def talk(i: int) -> None:
        try:
            session = stayers[i][0]
            barrier.wait()
            for k in range(stayer_messages):
                hub.publish("message", session.nick, f"s{i}.{k}", origin=session)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(workers)]
    threads += [threading.Thread(target=talk, args=(i,)) for i in range(len(stayers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures
    assert hub.people.count() == len(stayers)
    end = hub.publish("message", "stay0", "END", origin=stayers[0][0])
    for _, recorder in stayers:
        recorder.wait_for_text("END")

    # Everyone is here from the last stayer's join on; from there each stayer must
    # have received every sequenced event exactly once, in the same order.
    joined = next(e.id for e in stayers[0][1].events() if e.type == "join" and e.nick == "stay3")
    assert joined is not None and end.id is not None
    views = []
    for _, recorder in stayers:
        seen = [(e.id, e.type, e.nick, e.text) for e in recorder.events() if e.id is not None]
        ids = [s[0] for s in seen]
        assert len(ids) == len(set(ids)), "an event arrived twice"
        views.append([s for s in seen if s[0] > joined])
    assert all(view == views[0] for view in views[1:])
    assert [s[0] for s in views[0]] == list(range(joined + 1, end.id + 1)), "an event is missing"
    texts = [s[3] for s in views[0] if s[1] == "message"]
    expected = workers * rounds * per_round + len(stayers) * stayer_messages + 1
    assert len(texts) == expected
    for i in range(len(stayers)):  # each sender's messages keep the order they were sent in
        mine = [t for t in texts if t and t.startswith(f"s{i}.")]
        assert mine == [f"s{i}.{k}" for k in range(stayer_messages)]
    joins = [s for s in views[0] if s[1] == "join"]
    leaves = [s for s in views[0] if s[1] == "leave"]
    assert len(joins) == len(leaves) == workers * rounds


def test_session_whose_peer_stopped_reading_is_cut_at_the_event_bound(make_hub):
    hub = make_hub(outbox_max_events=16, reap_interval=0.01, close_grace=0.2)
    slow, slow_rec = join(hub, "slow", transport=StuckRecorder())  # its first send never ends
    fast, fast_rec = join(hub, "fast")
    for i in range(40):
        hub.publish("message", "fast", f"m{i}", origin=fast)
        fast_rec.wait_for_text(f"m{i}")  # keep the fast one well inside its bound
    wait_until(lambda: slow.closing, what="the slow session being closed")
    assert slow.close_code == 1008 and "too slow" in slow.close_reason
    assert not fast.closing
    assert fast_rec.texts() == [f"m{i}" for i in range(40)]
    assert slow_rec.aborted.wait(10), "the stuck connection was never cut"


def test_session_whose_peer_stopped_reading_is_cut_at_the_byte_bound(make_hub):
    hub = make_hub(outbox_max_events=10_000, outbox_max_bytes=8_000, reap_interval=0.01)
    slow, _ = join(hub, "slow", transport=StuckRecorder())
    fast, fast_rec = join(hub, "fast")
    for i in range(12):
        hub.publish("message", "fast", f"{i:02d}" + "x" * 998, origin=fast)
        fast_rec.wait_for_text(f"{i:02d}" + "x" * 998)
    wait_until(lambda: slow.closing, what="the slow session being closed")
    assert slow.close_code == 1008 and "bytes" in slow.close_reason
    assert not fast.closing


def test_a_writer_that_only_waits_for_the_cpu_holds_the_publisher_back_instead(make_hub):
    hub = make_hub(outbox_max_events=16, close_grace=30)
    late, _ = join(hub, "late", writer=False)  # not in a send: just not scheduled yet
    published: list[int] = []

    def flood() -> None:
        for i in range(40):
            hub.publish("message", "x", f"m{i}")
            published.append(i)

    publisher = threading.Thread(target=flood)
    publisher.start()
    received: list[str | None] = []
    while len(received) < 40:
        packets, closing = take(hub, late, 5)
        assert not closing, late.close_reason
        received += [p.event.text for p in packets if p.event.type == "message"]
        assert hub.fanout.head - late.cursor <= 16
    publisher.join(10)
    assert received == [f"m{i}" for i in range(40)] and len(published) == 40
    assert not late.closing


def test_a_writer_that_never_takes_is_cut_after_the_grace(make_hub):
    hub = make_hub(outbox_max_events=16, close_grace=0.2)
    never, _ = join(hub, "never", writer=False)
    for i in range(40):
        hub.publish("message", "x", f"m{i}")
    assert flush(hub)
    assert never.closing and "too slow" in never.close_reason


def test_backlog_of_exactly_the_event_bound_is_not_too_slow(make_hub):
    capacity = 12
    hub = make_hub(outbox_max_events=capacity, reap_interval=0.005, close_grace=0)
    edge, _ = join(hub, "edge", writer=False)
    witness, witness_rec = join(hub, "witness", writer=False)
    assert flush(hub)
    backlog = hub.fanout.head - edge.cursor  # its welcome and the two joins
    for i in range(capacity - backlog):
        hub.publish("message", "x", f"m{i}")
    assert flush(hub)
    assert hub.fanout.head - edge.cursor == capacity
    # With no grace, the witness is cut by the reaper's next pass, which weighs `edge` too.
    hub.close_session(witness, "witness", 1000)
    assert witness_rec.aborted.wait(10)
    assert not edge.closing, edge.close_reason
    packets, closing = take(hub, edge, 0)
    assert not closing and len(packets) == capacity + 1  # and its welcome, from its splice


def test_closing_session_with_a_stuck_writer_is_cut_after_the_grace(make_hub):
    hub = make_hub(close_grace=0.2, reap_interval=0.01)
    stuck, transport = join(hub, "stuck", transport=StuckRecorder())
    hub.publish("message", "x", "this send never completes")
    hub.close_session(stuck, "going", 1000)
    assert writer_of(hub, stuck).done.wait(10), "the stuck writer was never cut"
    assert transport.aborted.is_set()


def test_shutdown_says_goodbye_to_everyone_with_1001(make_hub):
    hub = make_hub()
    recorders = [join(hub, f"user{i}")[1] for i in range(3)]
    hub.shutdown("maintenance")
    for recorder in recorders:
        assert recorder.goodbye == ("maintenance", 1001)


class PingCounter(Recorder):
    """Counts keepalives, like a WebSocket that pings when its writer idles."""

    keepalive_interval = 60.0

    def __init__(self) -> None:
        super().__init__("web")
        self.pings = 0

    def keepalive(self) -> str | None:
        self.pings += 1
        return None


def test_a_writer_does_not_ping_when_woken_early_by_someone_elses_close(hub):
    watcher = PingCounter()
    join(hub, "watcher", transport=watcher)
    others = [join(hub, f"other{i}") for i in range(5)]
    wait_until(lambda: len([e for e in watcher.events() if e.type == "join"]) == 6)
    for session, recorder in others:
        hub.close_session(session, "bye")  # wakes every writer, with nothing new for the watcher
        wait_until(lambda: recorder.goodbye is not None)  # noqa: B023 (used at once)
    assert watcher.pings == 0


class DirectPings:
    """A browser-like transport with a direct send that counts the pings it is sent."""

    kind = "web"
    shows_own_input = False
    direct = True
    keepalive_interval = 10.0

    def __init__(self) -> None:
        self.pings = 0
        self.written = threading.Event()  # the preamble, or anything, went out
        self.ended = threading.Event()

    def send_packets(self, packets: list[Packet]) -> None:
        self.written.set()

    def frame(self, packets: list[Packet]) -> bytes:
        return b"".join(p.json for p in packets)

    def send_nowait(self, data: bytes) -> int:
        self.pings += data == b"ping"
        return len(data)

    def send_raw(self, data: bytes) -> None:
        self.send_nowait(data)

    def keepalive(self) -> str | None:
        self.pings += 1
        return None

    def unanswered(self) -> str | None:
        return None

    def ping(self) -> bytes:
        return b"ping"

    def goodbye(self, reason: str, code: int) -> bytes:
        return b"bye"

    def send_goodbye(self, reason: str, code: int) -> None:
        return None

    def end_write(self) -> None:
        return None

    def flush_control(self) -> None:
        return None

    def abort(self) -> None:
        self.ended.set()


def test_keepalives_go_out_one_interval_apart_and_stop_once_the_session_is_gone(make_hub):
    # Only the writers that may be due are looked at: each ping queues the next one a
    # whole interval later, and a writer that is gone is dropped from the queue.
    hub = make_hub(reap_interval=3600)  # the reaper stays out: times are given here
    began = time.monotonic()
    peer = DirectPings()
    session = hub.join("idle", peer)
    hub.start(session)  # the preamble, written by the connection's own thread
    assert peer.written.is_set()
    hub.delivery.ring_keepalives(began + 9)
    assert peer.pings == 0
    hub.delivery.ring_keepalives(began + 11)
    assert peer.pings == 1
    hub.delivery.ring_keepalives(began + 20)  # 9 s after that ping
    assert peer.pings == 1
    hub.delivery.ring_keepalives(began + 22)
    assert peer.pings == 2
    hub.close_session(session, "bye")
    assert peer.ended.wait(10)
    hub.leave(session)
    hub.wait_closed(session, 10)
    hub.delivery.ring_keepalives(began + 40)
    assert peer.pings == 2


def test_a_big_room_welcome_names_thirty_and_counts_the_rest_but_lists_everyone(hub):
    for i in range(40):
        join(hub, f"user{i:02d}", writer=False)
    _, newcomer = join(hub, "newcomer")
    wait_until(lambda: [p for p in newcomer.packets if p.event.type == "welcome"])
    packet = next(p for p in newcomer.packets if p.event.type == "welcome")
    names = ", ".join(f"user{i:02d}" for i in range(30))
    assert packet.event.text == (
        f"41 online: newcomer, {names} and 10 more (/who lists everyone). Type /help for commands."
    )
    assert len(json.loads(packet.json)["users"]) == 41
    assert packet.line.decode().startswith("*** Welcome, newcomer! 41 online: newcomer, user00")


def test_a_small_ring_that_wraps_many_times_loses_and_repeats_nothing(make_hub):
    # A ring of 16 and 2,400 events: every slot is reused 150 times while writers
    # race the publishers for the CPU. Each receiver must still get each event once.
    hub = make_hub(outbox_max_events=16, close_grace=30)
    recorders = [join(hub, f"r{i}")[1] for i in range(6)]

    def publish(k: int) -> None:
        for i in range(600):
            hub.publish("message", f"p{k}", f"p{k}-{i}")

    publishers = [threading.Thread(target=publish, args=(k,)) for k in range(4)]
    for thread in publishers:
        thread.start()
    for thread in publishers:
        thread.join(60)
    assert flush(hub)
    wait_until(lambda: all(len(r.texts()) >= 2400 for r in recorders), 30, "every delivery")
    first = recorders[0].texts()
    assert len(first) == len(set(first)) == 2400
    for recorder in recorders:
        assert recorder.texts() == first
        assert recorder.goodbye is None


def test_hub_limits_take_every_field_of_the_same_name_from_the_settings():
    from webchat.settings import Settings

    settings = Settings(max_nick_chars=7, rate_burst=3, history_resume_max=9, close_grace=0.5)
    limits = HubLimits.from_settings(settings)
    assert (limits.max_nick_chars, limits.rate_burst) == (7, 3)
    assert (limits.history_resume_max, limits.close_grace) == (9, 0.5)
    assert limits.reap_interval == HubLimits().reap_interval  # not a setting: its default


def test_a_join_after_shutdown_began_is_refused(make_hub):
    """shutdown() says goodbye to the sessions it found; a later one would be left open."""
    hub = make_hub()
    hub.shutdown()
    with pytest.raises(ChatError) as refused:
        hub.join("late", Recorder())
    assert refused.value.code == "unavailable" and "shutting down" in str(refused.value)
