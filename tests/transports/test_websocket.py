"""The WebSocket side: JSON frames, refusals that keep the socket open, limits, origins."""

from __future__ import annotations

import json

import pytest
import simple_websocket

from tests.support.clients import (
    RawWsClient,
    WsClient,
    assert_no_tracebacks,
    http_request,
    parse_ts,
    wait_until,
    websocket_upgrade_headers,
)
from webchat.web import origin_allowed, own_origins


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


def still_chatting(sender: WsClient, reader: WsClient, text: str = "still here") -> None:
    sender.say(text)
    assert reader.expect("message")["text"] == text


def test_join_then_say_reaches_others_with_id_ts_and_nick(chat):
    alice, bob = chat.ws("alice"), chat.ws("bob")
    alice.say("hello")
    event = bob.expect("message")
    assert event["nick"] == "alice" and event["text"] == "hello"
    assert isinstance(event["id"], int)
    parse_ts(event["ts"])


def test_browser_sender_gets_its_own_messages_back_with_increasing_ids(chat):
    alice = chat.ws("alice")
    ids = []
    for i in range(5):
        alice.say(f"m{i}")
        event = alice.expect("message")
        assert event["nick"] == "alice" and event["text"] == f"m{i}"
        ids.append(event["id"])
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_welcome_names_everyone_online(chat):
    terry, alice = chat.tcp("terry"), chat.ws("alice")
    event = WsClient(chat.url).join("bob")
    assert event["nick"] == "bob"
    assert [(u["nick"], u["via"]) for u in event["users"]] == [  # in the order they came
        ("terry", "tcp"),
        ("alice", "web"),
        ("bob", "web"),
    ]
    parse_ts(event["ts"])
    assert "id" not in event
    terry.close()
    alice.close()


@pytest.mark.parametrize(
    ("frame", "code", "why"),
    [
        ("not json", "bad_frame", "frames must be JSON"),
        ("[1, 2]", "bad_frame", "JSON objects"),
        ('"a string"', "bad_frame", "JSON objects"),
        ("42", "bad_frame", "JSON objects"),
        ("[" * 5000, "bad_frame", "frames must be JSON"),  # too deep for the parser
        ('{"type":"say","text":"early"}', "join_first", "join first"),
        ('{"type":"dance"}', "join_first", "join first"),
        ('{"nick":"alice"}', "join_first", "join first"),
        ('{"type":"join"}', "nick_empty", "join needs a nick"),
        ('{"type":"join","nick":42}', "nick_empty", "join needs a nick"),
        ('{"type":"join","nick":""}', "nick_empty", "a nickname is required"),
        ('{"type":"join","nick":"no way"}', "nick_invalid", "may only hold"),
        ('{"type":"join","nick":"root"}', "nick_reserved", "reserved"),
        ('{"type":"join","nick":"' + "x" * 25 + '"}', "nick_too_long", "the limit is 24"),
        ('{"type":"join","nick":"Taken"}', "nick_taken", "already taken"),
    ],
)
def test_refused_frames_before_join_get_an_error_and_the_socket_stays_open(chat, frame, code, why):
    holder = chat.tcp("taken")
    client = WsClient(chat.url)
    client.send(frame)
    error = client.expect("error")
    assert error["code"] == code and why in error["text"]
    assert client.join("fine")["nick"] == "fine"
    holder.line("hi")
    assert client.expect("message")["text"] == "hi"


@pytest.mark.parametrize(
    ("frame", "code", "why"),
    [
        ("not json", "bad_frame", "frames must be JSON"),
        ("[" * 5000, "bad_frame", "frames must be JSON"),
        ('["say", "hi"]', "bad_frame", "JSON objects"),
        ('{"type":"dance"}', "bad_frame", "unknown frame type 'dance'"),
        ('{"text":"no type"}', "bad_frame", "unknown frame type None"),
        ('{"type":"say"}', "bad_frame", "say needs a text"),
        ('{"type":"say","text":["x"]}', "bad_frame", "say needs a text"),
        ('{"type":"join","nick":"again"}', "already_joined", "already joined as alice"),
    ],
)
def test_refused_frames_after_join_get_an_error_and_the_socket_stays_open(chat, frame, code, why):
    alice, bob = chat.ws("alice"), chat.ws("bob")
    alice.send(frame)
    error = alice.expect("error")
    assert error["code"] == code and why in error["text"]
    assert "id" not in error
    still_chatting(alice, bob)


def test_lone_surrogates_in_json_are_replaced_not_fatal(chat):
    alice, bob = chat.ws("alice"), chat.tcp("bob")
    alice.send('{"type":"say","text":"a\\ud800b"}')
    assert alice.expect("message")["text"] == "a\ufffdb"
    assert bob.expect("alice:") == "alice: a\ufffdb"


def test_a_binary_frame_is_read_as_utf8_json(chat):
    alice, bob = chat.ws("alice"), chat.ws("bob")
    alice.ws.send(json.dumps({"type": "say", "text": "bïnary"}).encode())
    assert bob.expect("message")["text"] == "bïnary"


def test_frame_at_the_limit_passes_and_one_byte_more_closes_with_1009(make_chat):
    chat = make_chat(max_frame_bytes=1000, max_message_chars=5000)
    bob, carol = chat.ws("bob"), chat.tcp("carol")
    sender = RawWsClient(chat.web.server_port)
    sender.join("alice")
    frame = json.dumps({"type": "say", "text": ""})
    fits = json.dumps({"type": "say", "text": "a" * (1000 - len(frame))}).encode()
    assert len(fits) == 1000
    sender.send_frame(fits)
    assert bob.expect("message")["text"] == "a" * (1000 - len(frame))
    sender.send_frame(fits[:-2] + b'b"}')  # 1001 bytes
    sender.read_until_closed()
    assert sender.close_code == 1009
    assert carol.expect("alice left").startswith("*** alice left")
    still_chatting(chat.ws("dave"), bob)


def test_frame_far_over_the_limit_closes_with_1009_and_others_are_unaffected(chat):
    bob = chat.ws("bob")
    sender = RawWsClient(chat.web.server_port)
    sender.join("alice")
    sender.send_frame(json.dumps({"type": "say", "text": "x" * 1_000_000}).encode())
    sender.read_until_closed()
    assert sender.close_code == 1009
    bob.expect(lambda e: e["type"] == "leave" and e["nick"] == "alice")
    wait_until(lambda: chat.runtime.hub.people.count() == 1)
    still_chatting(chat.ws("carol"), bob)


def test_no_join_in_time_gets_an_error_and_close_1008(make_chat):
    chat = make_chat(nick_timeout=0.5)
    client = RawWsClient(chat.web.server_port)
    events = client.read_until_closed()
    assert [e["type"] for e in events] == ["error"]
    assert "no join within 0.5 seconds" in events[0]["text"]
    assert client.close_code == 1008


def test_quit_closes_with_1000_and_the_reason(chat):
    alice, bob = chat.ws("alice"), chat.ws("bob")
    alice.say("/quit see you")
    assert alice.wait_closed() == (1000, "see you")
    leave = bob.expect("leave")
    assert leave["nick"] == "alice" and leave["text"] == "see you"


def test_client_closing_is_a_leave(chat):
    alice, bob = chat.ws("alice"), chat.ws("bob")
    alice.close()
    assert bob.expect("leave")["nick"] == "alice"
    wait_until(lambda: chat.runtime.hub.people.count() == 1)


def upgrade(chat, origin: str | None = None) -> int:
    extra = {} if origin is None else {"Origin": origin}
    return http_request(chat.web.server_port, "GET", "/ws", websocket_upgrade_headers(extra)).status


def test_foreign_origin_is_refused_with_403(chat):
    reply = http_request(
        chat.web.server_port,
        "GET",
        "/ws",
        websocket_upgrade_headers({"Origin": "http://evil.example"}),
    )
    assert reply.status == 403
    assert b"not allowed" in reply.body
    with pytest.raises(simple_websocket.ConnectionError) as info:
        WsClient(chat.url, headers={"Origin": "https://evil.example"})
    assert info.value.status_code == 403
    assert chat.runtime.hub.people.count() == 0


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "HTTP://127.0.0.1:{port}/"])
def test_the_pages_own_origin_is_allowed(chat, origin):
    assert upgrade(chat, origin.format(port=chat.web.server_port)) == 101
    client = WsClient(chat.url, headers={"Origin": chat.url})
    assert client.join("alice")["nick"] == "alice"


def test_no_origin_at_all_is_a_script_and_allowed(chat):
    assert upgrade(chat) == 101


def test_another_port_on_the_same_host_is_a_foreign_origin(chat):
    assert upgrade(chat, f"http://127.0.0.1:{chat.web.server_port + 1}") == 403


def test_allowed_origins_setting_admits_a_listed_origin(make_chat):
    chat = make_chat(allowed_origins=("https://chat.example.org",))
    assert upgrade(chat, "https://chat.example.org") == 101
    assert upgrade(chat, "https://other.example.org") == 403
    client = WsClient(chat.url, headers={"Origin": "https://chat.example.org"})
    assert client.join("alice")["nick"] == "alice"


def test_plain_get_of_the_websocket_path_is_400_not_500(chat):
    reply = http_request(chat.web.server_port, "GET", "/ws")
    assert reply.status == 400


def test_healthz_reports_users_and_the_tcp_port(chat):
    alice, bob = chat.ws("alice"), chat.tcp("bob")
    reply = http_request(chat.web.server_port, "GET", "/healthz")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    body = json.loads(reply.body)
    assert body["status"] == "ok" and body["users"] == 2
    assert body["tcp"] == {"listening": True, "port": chat.tcp_port}
    assert body["history"]["ok"] is True
    alice.close()
    bob.close()


@pytest.mark.parametrize(
    ("host", "origin", "allowed"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000", True),
        ("127.0.0.1", "http://127.0.0.1:5000", True),  # Host without port: the port we listen on
        ("127.0.0.1", "http://127.0.0.1:9999", False),  # same host, other port: another origin
        ("[::1]", "http://[::1]:5000", True),
        ("[::1]:5000", "http://[::1]:5001", False),
        ("example.org:80", "http://example.org", True),
        ("chat.example.org:5000", "http://evil.example.org:5000", False),
    ],
)
def test_origin_check_compares_whole_origins(host, origin, allowed):
    own = own_origins("http", host, "5000")
    assert origin_allowed(origin, own, ()) is allowed


@pytest.mark.parametrize("joined", [False, True])
def test_a_client_ping_gets_a_pong_with_its_payload(chat, joined):
    client = RawWsClient(chat.web.server_port)
    if joined:
        client.join("pinger")
    client.send_frame(b"are you there", opcode=0x9)
    frame = client.read_frame()
    while frame is not None and frame[0] == 0x1:  # events that were already on their way
        frame = client.read_frame()
    assert frame == (0xA, b"are you there")


def test_a_message_in_fragments_is_put_back_together(chat):
    bob = chat.ws("bob")
    client = RawWsClient(chat.web.server_port)
    client.join("alice")
    text = json.dumps({"type": "say", "text": "in three parts"}).encode()
    client.send_frame(text[:5], opcode=0x1, fin=False)
    client.send_frame(b"", opcode=0x9)  # a ping may come between the parts
    client.send_frame(text[5:12], opcode=0x0, fin=False)
    client.send_frame(text[12:], opcode=0x0, fin=True)
    assert bob.expect("message")["text"] == "in three parts"


def test_invalid_utf8_in_a_text_frame_closes_with_a_reason_and_nobody_else_notices(chat):
    bob = chat.ws("bob")
    client = RawWsClient(chat.web.server_port)
    client.join("alice")
    client.send_frame(b'{"type":"say","text":"\xff\xfe"}')
    client.read_until_closed()
    assert client.close_code in (1002, 1007)
    bob.expect(lambda e: e["type"] == "leave" and e["nick"] == "alice")
    still_chatting(chat.ws("carol"), bob)
