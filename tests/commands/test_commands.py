"""Every chat command, over both transports, from one parameterised table.

Each row of ``CASES`` is one line a user types and what each person in the room
must then receive: the typist (alice), a peer (bob) and a bystander (carol). Every
row runs four times: alice on TCP or WebSocket, and bob on either transport, with
carol on the transport bob is not on, so each row is always watched from a
terminal and from a browser.

What a person receives is checked exactly: between two sync points, the events
listed in the row and nothing else (so "carol must not see the private message"
is part of every /msg row). A sync point works without sleeping: the actor sends a
probe (an unknown command whose error only they get); once its answer is back,
the server has finished with the line before it. Then a marker is published to
everyone; events reach everybody in one order, so whatever the line caused
arrives before the marker.

The server is shared by the tests of this module (starting one per test would
cost more than the tests); each test starts and ends with an empty room.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from tests.support.chat import RunningChat, start_chat
from tests.support.clients import TcpClient, WsClient, assert_no_tracebacks, wait_until
from webchat.commands.table import COMMANDS, Command

# The event types that belong to the shared order and so carry an id (docs/PROTOCOL.md).
SEQUENCED = frozenset(
    {"message", "me", "private", "join", "leave", "nick", "away", "back", "enter", "exit", "topic"}
)
SYNC_NICK = "~sync"  # not a valid nick, so no user can be confused with the marker
HOW = {"tcp": "terminal", "web": "browser"}


# ----- what someone must receive -----------------------------------------------------


@dataclass(frozen=True)
class Sees:
    """One thing a person must receive, described for both wires.

    With ``line`` set it is a conversation event, matched exactly: the TCP line
    must equal ``line`` and the JSON, without ``id`` and ``ts``, must equal
    ``fields``. Without it, it is a notice for one person (``error``, ``system``,
    ``users``): its text must hold every string in ``has`` (and the JSON must have
    ``code``, when given). ``{alice}``, ``{bob}`` and ``{carol}`` in the strings stand
    for how that person is connected: ``terminal`` or ``browser``.
    """

    type: str
    line: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    has: tuple[str, ...] = ()
    code: str | None = None
    no_tcp_echo: bool = False  # a plain message: a TCP typist is not sent it back

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.type} {self.line!r}"
        return f"{self.type} holding {list(self.has)!r}" + (
            f" code={self.code}" if self.code else ""
        )


def ev(type_: str, line: str, *, no_tcp_echo: bool = False, **fields: Any) -> Sees:
    if type_ in ("message", "me"):
        fields = {"room": "#lobby", **fields}  # talk always names its room
    return Sees(type_, line, {"type": type_, **fields}, no_tcp_echo=no_tcp_echo)


def note(type_: str, *has: str, code: str | None = None) -> Sees:
    return Sees(type_, has=has, code=code)


def error(*has: str, code: str | None = None) -> Sees:
    return note("error", *has, code=code)


def fill(text: str, how: Mapping[str, str]) -> str:
    for nick, word in how.items():
        text = text.replace("{" + nick + "}", word)
    return text


# ----- one person, on either transport -----------------------------------------------


class Chatter(Protocol):
    """The same person whatever the transport: type a line, read what arrives."""

    name: str  # the nick they joined with (rows refer to people by it)
    via: str  # "tcp" or "web"

    def send(self, text: str) -> None: ...

    def received_until(self, marker: str) -> list[Any]:
        """Everything that arrived before the sync marker ``marker``."""

    def probe(self, token: str) -> list[Any]:
        """Send a probe and return everything that arrived before its answer."""

    def shows(self, want: Sees, got: Any, how: Mapping[str, str]) -> bool: ...

    def expect(self, want: Sees, how: Mapping[str, str]) -> Any:
        """Read until something matches ``want``; return it."""

    def goodbye(self) -> tuple[str, int | None, str]:
        """Read until the server closes: (last TCP line or "", WS close code, WS reason)."""

    def close(self) -> None: ...


class TcpChatter:
    via = "tcp"

    def __init__(self, chat: RunningChat, nick: str) -> None:
        self.name = nick
        self.client: TcpClient = chat.tcp(nick)

    def send(self, text: str) -> None:
        self.client.line(text)

    def received_until(self, marker: str) -> list[Any]:
        return self.client.read_until(lambda line: line == f"{SYNC_NICK}: {marker}")[:-1]

    def probe(self, token: str) -> list[Any]:
        self.client.line(f"/{token}")
        answer = self.client.read_until(lambda s: s.startswith("*** error: ") and token in s)
        return answer[:-1]

    def shows(self, want: Sees, got: Any, how: Mapping[str, str]) -> bool:
        if not isinstance(got, str):
            return False
        if want.line is not None:
            return got == fill(want.line, how)
        prefix = "*** error: " if want.type == "error" else "*** "
        if not got.startswith(prefix) or (want.type != "error" and got.startswith("*** error:")):
            return False
        return all(fill(h, how) in got[len(prefix) :] for h in want.has)

    def expect(self, want: Sees, how: Mapping[str, str]) -> Any:
        return self.client.expect(lambda line: self.shows(want, line, how))

    def goodbye(self) -> tuple[str, int | None, str]:
        rest = self.client.read_until_closed().decode()
        assert rest.endswith("\r\n"), f"the last line has no CRLF: {rest!r}"
        return rest[:-2].rpartition("\r\n")[2], None, ""

    def close(self) -> None:
        self.client.close()


class WsChatter:
    via = "web"

    def __init__(self, chat: RunningChat, nick: str) -> None:
        self.name = nick
        self.client: WsClient = chat.ws(nick)

    def send(self, text: str) -> None:
        self.client.say(text)

    def received_until(self, marker: str) -> list[Any]:
        def is_marker(e: dict[str, Any]) -> bool:
            return e.get("type") == "message" and (e.get("nick"), e.get("text")) == (
                SYNC_NICK,
                marker,
            )

        return self.client.read_until(is_marker)[:-1]

    def probe(self, token: str) -> list[Any]:
        self.client.say(f"/{token}")
        answer = self.client.read_until(
            lambda e: e.get("type") == "error" and token in str(e.get("text"))
        )
        return answer[:-1]

    def shows(self, want: Sees, got: Any, how: Mapping[str, str]) -> bool:
        if not isinstance(got, dict) or got.get("type") != want.type or "ts" not in got:
            return False
        if ("id" in got) != (want.type in SEQUENCED):
            return False
        if want.line is not None:
            plain = {k: v for k, v in got.items() if k not in ("id", "ts")}
            return plain == {
                k: fill(v, how) if isinstance(v, str) else v for k, v in want.fields.items()
            }
        if want.code is not None and got.get("code") != want.code:
            return False
        text = got.get("text")
        return isinstance(text, str) and all(fill(h, how) in text for h in want.has)

    def expect(self, want: Sees, how: Mapping[str, str]) -> Any:
        return self.client.expect(lambda e: self.shows(want, e, how))

    def goodbye(self) -> tuple[str, int | None, str]:
        code, reason = self.client.wait_closed()
        return "", code, reason

    def close(self) -> None:
        self.client.close()


def other(via: str) -> str:
    return "web" if via == "tcp" else "tcp"


class Room:
    """The people of one test on the shared server, and the sync points between steps."""

    def __init__(self, chat: RunningChat) -> None:
        self.chat = chat
        self.hub = chat.runtime.hub
        self.people: list[Chatter] = []  # connected
        self.left: list[Chatter] = []
        self._count = 0

    def join(self, nick: str, via: str) -> Chatter:
        person: Chatter = (
            TcpChatter(self.chat, nick) if via == "tcp" else WsChatter(self.chat, nick)
        )
        self.people.append(person)
        return person

    def gone(self, person: Chatter) -> None:
        """``person`` was disconnected: stop waiting for sync markers on their side."""
        self.people.remove(person)
        self.left.append(person)

    def how(self) -> dict[str, str]:
        return {p.name: HOW[p.via] for p in self.people}

    def _token(self) -> str:
        self._count += 1
        return f"zz-probe-{self._count}"

    def settle(self, actor: Chatter | None, watchers: Sequence[Chatter]) -> dict[str, list[Any]]:
        """Wait until ``actor``'s lines are handled, then collect what each watcher got."""
        got: dict[str, list[Any]] = {p.name: [] for p in watchers}
        if actor is not None:
            got[actor.name] = actor.probe(self._token())
        marker = self._token()
        self.hub.publish("message", SYNC_NICK, marker)
        for person in watchers:
            got[person.name] += person.received_until(marker)
        return got

    def type(self, actor: Chatter, *lines: str) -> dict[str, list[Any]]:
        """``actor`` types the lines; return what everyone in the room got from them."""
        for line in lines:
            actor.send(line)
        return self.settle(actor, self.people)

    def close(self) -> None:
        for person in self.people + self.left:
            person.close()


def assert_sees(
    person: Chatter,
    got: list[Any],
    want: Sequence[Sees],
    how: Mapping[str, str],
    *,
    typist: bool = False,
) -> None:
    """``got`` is exactly ``want``, in order: nothing missing, nothing extra."""
    echoless = typist and person.via == "tcp"
    wanted = [w for w in want if not (echoless and w.no_tcp_echo)]
    ok = len(got) == len(wanted) and all(
        person.shows(w, g, how) for w, g in zip(wanted, got, strict=True)
    )
    assert ok, (
        f"{person.name} ({HOW[person.via]}) should have received exactly "
        f"{[str(w) for w in wanted]}\nbut got {got!r}"
    )


# ----- fixtures ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


@pytest.fixture(scope="module")
def shared_chat() -> Iterator[RunningChat]:
    chat, stop = start_chat()
    yield chat
    stop()


@pytest.fixture
def room(shared_chat: RunningChat) -> Iterator[Room]:
    hub = shared_chat.runtime.hub
    assert hub.people.count() == 0, "the previous test left users behind"
    room = Room(shared_chat)
    yield room
    room.close()
    wait_until(lambda: hub.people.count() == 0, what="everyone of this test to leave")


VIA_PAIRS = [
    pytest.param("tcp", "tcp", id="alice:tcp-bob:tcp-carol:web"),
    pytest.param("tcp", "web", id="alice:tcp-bob:web-carol:tcp"),
    pytest.param("web", "web", id="alice:web-bob:web-carol:tcp"),
    pytest.param("web", "tcp", id="alice:web-bob:tcp-carol:web"),
]


def three(room: Room, alice_via: str, bob_via: str) -> tuple[Chatter, Chatter, Chatter]:
    """alice, bob and carol joined, with everything up to now read."""
    alice = room.join("alice", alice_via)
    bob = room.join("bob", bob_via)
    carol = room.join("carol", other(bob_via))
    room.settle(None, room.people)
    return alice, bob, carol


# ----- the table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bye:
    """How the typist's connection must end: a last TCP line, or WS close 1000."""

    line: str
    reason: str | None  # the WS close reason, when it is specified


@dataclass(frozen=True)
class Case:
    id: str
    typed: str
    typist: tuple[Sees, ...] = ()
    peer: tuple[Sees, ...] = ()  # bob
    bystander: tuple[Sees, ...] = ()  # carol
    before: tuple[tuple[str, str], ...] = ()  # (who, line): typed first, not under test
    bye: Bye | None = None


def case(
    id: str,
    typed: str,
    *,
    typist: Sequence[Sees] = (),
    everyone: Sequence[Sees] = (),
    others: Sequence[Sees] = (),
    peer: Sequence[Sees] = (),
    bystander: Sequence[Sees] = (),
    before: Sequence[tuple[str, str]] = (),
    bye: Bye | None = None,
) -> Case:
    """``everyone``: all three; ``others``: bob and carol; ``peer``, ``bystander``: one."""
    return Case(
        id,
        typed,
        typist=(*typist, *everyone),
        peer=(*peer, *others, *everyone),
        bystander=(*bystander, *others, *everyone),
        before=tuple(before),
        bye=bye,
    )


def distinct_commands() -> list[Command]:
    seen: dict[str, Command] = {}
    for entry in COMMANDS.values():
        seen.setdefault(entry.name, entry)
    return list(seen.values())


def takes_arguments(entry: Command) -> bool:
    """A usage like '/msg NICK TEXT' has a required argument; '/away [REASON]' does not."""
    required = re.sub(r"\[[^]]*\]", "", entry.usage).split()[1:]
    return bool(required)


def help_listing() -> tuple[Sees, ...]:
    """/help: a header saying how to get more, one line per command, and the // rule."""
    return (
        note("system", "/help COMMAND"),
        *(note("system", e.usage, e.summary) for e in distinct_commands()),
        note("system", "//"),
    )


def help_for(key: str) -> Sees:
    entry = COMMANDS[key]
    aliases = tuple(f"/{a}" for a in entry.aliases)
    return note("system", entry.usage, entry.summary, *aliases)


def private(frm: str, to: str, text: str) -> Sees:
    return ev("private", f"[private] {frm} -> {to}: {text}", nick=frm, to=to, text=text)


def message(nick: str, text: str, *, no_tcp_echo: bool = False) -> Sees:
    return ev("message", f"{nick}: {text}", nick=nick, text=text, no_tcp_echo=no_tcp_echo)


def said(text: str) -> Sees:
    """A plain message from alice: everyone sees it, but a TCP typist gets no echo."""
    return message("alice", text, no_tcp_echo=True)


NICK_TAKEN = ("already taken",)
WHO_ALL = (
    "3 online: alice ({alice}, idle ",
    "), bob ({bob}, idle ",
    "), carol ({carol}, idle ",
)

CASES: list[Case] = [
    # /help
    case("help-lists-every-command", "/help", typist=help_listing()),
    *(case(f"help-{key}-explains-it", f"/help {key}", typist=[help_for(key)]) for key in COMMANDS),
    case("help-accepts-a-slash", "/help /msg", typist=[help_for("msg")]),
    case("help-ignores-case", "/HELP MSG", typist=[help_for("msg")]),
    case("help-unknown-says-what-to-type", "/help dance", typist=[error("/dance", "/help")]),
    # /nick
    case(
        "nick-everyone-sees-it",
        "/nick alicia",
        everyone=[ev("nick", "*** alice is now known as alicia", nick="alice", new="alicia")],
    ),
    case(
        "nick-case-change-of-own-nick",
        "/nick Alice",
        everyone=[ev("nick", "*** alice is now known as Alice", nick="alice", new="Alice")],
    ),
    case("nick-taken", "/nick bob", typist=[error("'bob'", *NICK_TAKEN, code="nick_taken")]),
    case(
        "nick-taken-other-case",
        "/nick BOB",
        typist=[error("'BOB'", *NICK_TAKEN, code="nick_taken")],
    ),
    case("nick-taken-look-alike", "/nick ｂｏｂ", typist=[error(*NICK_TAKEN, code="nick_taken")]),
    case("nick-same", "/nick alice", typist=[error("already alice", code="nick_same")]),
    case(
        "nick-bad-character", "/nick b@d", typist=[error("'@' is not allowed", code="nick_invalid")]
    ),
    case(
        "nick-bad-start",
        "/nick .alice",
        typist=[error("must start with a letter or a digit", code="nick_invalid")],
    ),
    case("nick-reserved", "/nick admin", typist=[error("reserved", code="nick_reserved")]),
    case(
        "nick-too-long",
        "/nick " + "a" * 25,
        typist=[error("25 characters", "24", code="nick_too_long")],
    ),
    case(
        "nick-two-words",
        "/nick two words",
        typist=[error("cannot contain spaces", "usage: /nick NEW", code="nick_bad")],
    ),
    case(
        "nick-ignores-case-and-spaces",
        "/NICK   alicia   ",
        everyone=[ev("nick", "*** alice is now known as alicia", nick="alice", new="alicia")],
    ),
    # /me
    case("me", "/me waves", everyone=[ev("me", "* alice waves", nick="alice", text="waves")]),
    case(
        "me-ignores-case-and-outer-spaces",
        "/ME   waves  at you   ",
        everyone=[ev("me", "* alice waves  at you", nick="alice", text="waves  at you")],
    ),
    case("me-spaces-only", "/me    ", typist=[error("usage: /me ACTION", code="usage")]),
    # /msg and its aliases
    case(
        "msg-only-the-two-see-it",
        "/msg bob see you at 5",
        typist=[private("alice", "bob", "see you at 5")],
        peer=[private("alice", "bob", "see you at 5")],
    ),
    *(
        case(
            f"{alias}-only-the-two-see-it",
            f"/{alias} bob hi",
            typist=[private("alice", "bob", "hi")],
            peer=[private("alice", "bob", "hi")],
        )
        for alias in COMMANDS["msg"].aliases
    ),
    case(
        "msg-nick-in-any-case",
        "/Msg BOB hi",
        typist=[private("alice", "bob", "hi")],
        peer=[private("alice", "bob", "hi")],
    ),
    case(
        "msg-extra-spaces",
        "/msg   bob   hi there   ",
        typist=[private("alice", "bob", "hi there")],
        peer=[private("alice", "bob", "hi there")],
    ),
    case(
        "msg-unknown-nick",
        "/msg nobody hi",
        typist=[error("nobody", code="no_such_nick")],
    ),
    case("msg-no-text", "/msg bob", typist=[error("usage: /msg NICK|#ROOM TEXT", code="usage")]),
    case("msg-to-yourself", "/msg ALICE hi me", typist=[error("that is you", code="self")]),
    case(
        "msg-spaces-for-text",
        "/msg bob    ",
        typist=[error("usage: /msg NICK|#ROOM TEXT", code="usage")],
    ),
    # /reply and its alias
    *(
        case(
            f"{name}-goes-to-the-last-private-sender",
            f"/{name} pong",
            before=[("bob", "/msg alice ping")],
            typist=[private("alice", "bob", "pong")],
            peer=[private("alice", "bob", "pong")],
        )
        for name in ("reply", *COMMANDS["reply"].aliases)
    ),
    case(
        "reply-goes-to-the-latest-of-two",
        "/reply pong",
        before=[("bob", "/msg alice ping"), ("carol", "/msg alice ping too")],
        typist=[private("alice", "carol", "pong")],
        bystander=[private("alice", "carol", "pong")],
    ),
    case(
        "reply-with-nobody-to-answer",
        "/reply pong",
        typist=[error("no one has messaged you", "/msg NICK TEXT")],
    ),
    case(
        "reply-to-own-message-is-not-a-reply",
        "/reply pong",
        before=[("alice", "/msg bob ping")],
        typist=[error("no one has messaged you", "/msg NICK TEXT")],
    ),
    # /history, /who, /names
    # What /history prints is tested in core/test_replay.py: this table's sync markers are
    # public messages, so they would be the history.
    case(
        "history-bad-count",
        "/history lots",
        typist=[error("usage: /history [N], with N from 1 to 200", code="usage")],
    ),
    case("who-lists-everyone", "/who", typist=[note("users", *WHO_ALL)]),
    case(
        "names-lists-the-room",
        "/names",
        typist=[note("names", "3 in #lobby: alice ({alice}, idle ", "), bob ({bob}, idle ")],
    ),
    # rooms
    case("join-bad-name", "/join #no!", typist=[error("not a room name", code="bad_room")]),
    case("rooms-lists-them", "/rooms", typist=[note("rooms", "#lobby (3)")]),
    case(
        "topic-is-set-for-the-room",
        "/topic hello all",
        everyone=[
            ev(
                "topic",
                "*** alice set the topic: hello all",
                nick="alice",
                room="#lobby",
                text="hello all",
            )
        ],
    ),
    case(
        "topic-shows-it",
        "/topic",
        before=[("bob", "/topic the lobby")],
        typist=[note("system", "Topic of #lobby: the lobby", code="topic")],
    ),
    case(
        "part-leaves-the-lobby",
        "/part #lobby brb",
        typist=[
            ev("exit", "*** alice left #lobby (brb)", nick="alice", room="#lobby", text="brb"),
            note("system", "You left #lobby; you are in no room", code="parted"),
        ],
        others=[ev("exit", "*** alice left #lobby (brb)", nick="alice", room="#lobby", text="brb")],
    ),
    case("who-ignores-case", "/WHO", typist=[note("users", *WHO_ALL)]),
    case(
        "who-shows-away",
        "/who",
        before=[("bob", "/away lunch")],
        typist=[note("users", "bob ({bob}, away: lunch)")],
    ),
    # /away and /back
    case(
        "away-with-reason",
        "/away lunch",
        everyone=[ev("away", "*** alice is away: lunch", nick="alice", text="lunch")],
    ),
    case("away-no-reason", "/away", everyone=[ev("away", "*** alice is away", nick="alice")]),
    case(
        "away-outer-spaces",
        "/away   out for lunch   ",
        everyone=[
            ev("away", "*** alice is away: out for lunch", nick="alice", text="out for lunch")
        ],
    ),
    case(
        "back-after-away",
        "/back",
        before=[("alice", "/away lunch")],
        everyone=[ev("back", "*** alice is back", nick="alice")],
    ),
    case("back-when-not-away", "/back", typist=[error("not away", "/away")]),
    case(
        "back-after-back",
        "/back",
        before=[("alice", "/away"), ("alice", "/back")],
        typist=[error("not away")],
    ),
    # /quit
    case(
        "quit-with-reason",
        "/quit see you",
        bye=Bye("*** bye (see you)", "see you"),
        others=[ev("leave", "*** alice left (see you)", nick="alice", text="see you")],
    ),
    case(
        "quit-no-reason",
        "/quit",
        bye=Bye("*** bye", None),
        others=[ev("leave", "*** alice left", nick="alice")],
    ),
    case(
        "quit-ignores-case",
        "/QUIT later",
        bye=Bye("*** bye (later)", "later"),
        others=[ev("leave", "*** alice left (later)", nick="alice", text="later")],
    ),
    # commands that do not exist, and saying what looks like one
    case(
        "unknown-command-says-what-to-type",
        "/dance now",
        typist=[error("/dance", "/help", "//dance now", code="unknown_command")],
    ),
    case("bare-slash", "/", typist=[error("/help", code="unknown_command")]),
    case(
        "double-slash-says-a-slash-line",
        "//etc/passwd is a path",
        everyone=[said("/etc/passwd is a path")],
    ),
    case("double-slash-alone", "//", everyone=[said("/")]),
    case("double-slash-command-is-not-run", "//quit", everyone=[said("/quit")]),
    # messages and spaces
    case("plain-message", "hello there", everyone=[said("hello there")]),
    case("trailing-spaces-dropped", "hello   ", everyone=[said("hello")]),
    case("blank-line-does-nothing", "    "),
    # What the code does today: only a line whose first character is "/" is a command, so
    # leading spaces make it a message. (An open question for the protocol, not a rule yet.)
    case("leading-spaces-make-a-message", "  /me waves", everyone=[said("  /me waves")]),
    # Every command that needs arguments, typed bare, answers with its usage.
    *(
        case(
            f"{key}-bare-gives-usage",
            f"/{key}",
            typist=[error(f"usage: {entry.usage}", code="usage")],
        )
        for key, entry in COMMANDS.items()
        if takes_arguments(entry)
    ),
]


@pytest.mark.parametrize(("alice_via", "bob_via"), VIA_PAIRS)
@pytest.mark.parametrize("row", CASES, ids=lambda c: c.id)
def test_command(room: Room, row: Case, alice_via: str, bob_via: str) -> None:
    alice, bob, carol = three(room, alice_via, bob_via)
    by_name = {"alice": alice, "bob": bob, "carol": carol}
    for who, line in row.before:
        room.type(by_name[who], line)
    how = room.how()

    alice.send(row.typed)
    if row.bye is None:
        got = room.settle(alice, room.people)
        assert_sees(alice, got["alice"], row.typist, how, typist=True)
    else:
        last_line, code, reason = alice.goodbye()
        if alice.via == "tcp":
            assert last_line == row.bye.line
        else:
            assert code == 1000
            if row.bye.reason is not None:
                assert reason == row.bye.reason
        wait_until(lambda: room.hub.people.find("alice") is None, what="alice to be gone")
        room.gone(alice)
        got = room.settle(None, room.people)
    assert_sees(bob, got["bob"], row.peer, how)
    assert_sees(carol, got["carol"], row.bystander, how)


# ----- the table covers the command set ----------------------------------------------


def test_every_command_and_alias_is_typed_in_some_row() -> None:
    typed = {row.typed.split()[0].lstrip("/").lower() for row in CASES if row.typed.strip()}
    missing = set(COMMANDS) - typed
    assert not missing, f"no row types these commands: {sorted(missing)}"


def test_every_command_with_arguments_has_a_missing_argument_row() -> None:
    bare = {row.typed for row in CASES}
    needed = {f"/{key}" for key, entry in COMMANDS.items() if takes_arguments(entry)}
    assert {"/nick", "/me", "/msg", "/reply"} <= needed
    assert needed <= bare


# ----- what needs more than one line --------------------------------------------------


@pytest.mark.parametrize("via", ["tcp", "web"])
def test_help_mentions_every_alias(room: Room, via: str) -> None:
    """/help lists every name in the command table, so /query, /tell, /r, /names show too."""
    alice = room.join("alice", via)
    room.settle(None, room.people)
    got = room.type(alice, "/help")["alice"]
    listing = "\n".join(str(item) for item in got)
    aliases = [key for key, entry in COMMANDS.items() if key != entry.name]
    assert aliases
    missing = [key for key in aliases if not re.search(rf"/{key}\b", listing)]
    assert not missing, f"/help does not mention {missing}:\n{listing}"


@pytest.mark.parametrize("via", ["tcp", "web"])
def test_who_shows_how_each_is_connected_their_idle_time_and_away_state(
    room: Room, via: str
) -> None:
    alice = room.join("alice", via)
    bob = room.join("bob", "tcp")
    room.join("carol", "web")
    room.join("dave", "tcp")
    room.settle(None, room.people)
    room.type(bob, "/away lunch")
    now = time.monotonic()
    # Idle is measured from the last thing said; set it back rather than wait.
    for nick, idle in (("alice", 0), ("carol", 125), ("dave", 3 * 3600 + 7 * 60 + 30)):
        session = room.hub.people.find(nick)
        assert session is not None
        session.last_active = now - idle

    alice.send("/who")
    if via == "tcp":
        line = room.settle(alice, room.people)["alice"]
        assert len(line) == 1
        assert re.fullmatch(
            r"\*\*\* 4 online: alice \(terminal, idle \ds\), bob \(terminal, away: lunch\), "
            r"carol \(browser, idle 2m\), dave \(terminal, idle 3h07m\)",
            line[0],
        ), line
    else:
        [event] = room.settle(alice, room.people)["alice"]
        assert event["type"] == "users" and "id" not in event
        users = {u["nick"]: u for u in event["users"]}
        assert list(users) == ["alice", "bob", "carol", "dave"]
        assert {n: (u["via"], u["away"]) for n, u in users.items()} == {
            "alice": ("web", None),
            "bob": ("tcp", "lunch"),
            "carol": ("web", None),
            "dave": ("tcp", None),
        }
        assert 0 <= users["alice"]["idle"] < 5
        assert 125 <= users["carol"]["idle"] < 185
        assert 3 * 3600 + 450 <= users["dave"]["idle"] < 3 * 3600 + 500
        assert "4 online: alice (browser, idle " in event["text"]


@pytest.mark.parametrize("via", ["tcp", "web"])
def test_who_shows_away_without_reason_as_away(room: Room, via: str) -> None:
    alice = room.join("alice", via)
    bob = room.join("bob", other(via))
    room.settle(None, room.people)
    room.type(bob, "/away")
    [reply] = room.type(alice, "/who")["alice"]
    text = reply if via == "tcp" else reply["text"]
    assert f"bob ({HOW[other(via)]}, away)" in text
    if via == "web":
        assert [u["away"] for u in reply["users"] if u["nick"] == "bob"] == [""]


@pytest.mark.parametrize("via", ["tcp", "web"])
def test_speaking_resets_idle_time(room: Room, via: str) -> None:
    alice = room.join("alice", via)
    bob = room.join("bob", other(via))
    room.settle(None, room.people)
    session = room.hub.people.find("bob")
    assert session is not None
    session.last_active = time.monotonic() - 600
    [before] = room.type(alice, "/who")["alice"]
    assert alice.shows(note("users", "bob ({bob}, idle 10m)"), before, room.how()), before
    room.type(bob, "I am here")
    [reply] = room.type(alice, "/who")["alice"]
    text = reply if via == "tcp" else reply["text"]
    assert re.search(r"bob \((terminal|browser), idle \ds\)", text), text


@pytest.mark.parametrize(("alice_via", "bob_via"), VIA_PAIRS)
def test_after_nick_the_new_name_is_used_reachable_and_the_old_one_is_free(
    room: Room, alice_via: str, bob_via: str
) -> None:
    alice, bob, carol = three(room, alice_via, bob_via)
    how = room.how()
    room.type(alice, "/nick alicia")
    got = room.type(alice, "hello again", "/me waves")
    assert_sees(
        bob,
        got["bob"],
        [message("alicia", "hello again"), ev("me", "* alicia waves", nick="alicia", text="waves")],
        how,
    )
    got = room.type(bob, "/msg alicia psst", "/msg alice psst")
    assert_sees(alice, got["alice"], [private("bob", "alicia", "psst")], how)
    assert_sees(
        bob,
        got["bob"],
        [private("bob", "alicia", "psst"), error("alice", code="no_such_nick")],
        how,
    )
    assert_sees(carol, got["carol"], [], how)
    got = room.type(carol, "/nick alice")
    assert_sees(
        alice,
        got["alice"],
        [ev("nick", "*** carol is now known as alice", nick="carol", new="alice")],
        how,
    )


@pytest.mark.parametrize(("alice_via", "bob_via"), VIA_PAIRS)
def test_reply_reaches_the_sender_after_they_changed_nick(
    room: Room, alice_via: str, bob_via: str
) -> None:
    alice, bob, carol = three(room, alice_via, bob_via)
    how = room.how()
    room.type(bob, "/msg alice ping")
    room.type(bob, "/nick robert")
    got = room.type(alice, "/reply pong")
    assert_sees(alice, got["alice"], [private("alice", "robert", "pong")], how)
    assert_sees(bob, got["bob"], [private("alice", "robert", "pong")], how)
    assert_sees(carol, got["carol"], [], how)


@pytest.mark.parametrize(("alice_via", "bob_via"), VIA_PAIRS)
def test_reply_never_goes_to_someone_who_took_the_senders_old_nick(
    room: Room, alice_via: str, bob_via: str
) -> None:
    alice, bob, carol = three(room, alice_via, bob_via)
    how = room.how()
    room.type(bob, "/msg alice ping")
    room.type(bob, "/nick robert")
    room.type(carol, "/nick bob")  # carol now holds the name alice would /reply to
    got = room.type(alice, "/reply the secret")
    assert not any(
        carol.shows(private("alice", "bob", "the secret"), g, how) for g in got["carol"]
    ), f"carol, now called bob, received alice's reply to robert: {got['carol']!r}"


@pytest.mark.parametrize(("alice_via", "bob_via"), VIA_PAIRS)
def test_after_quit_who_no_longer_lists_them(room: Room, alice_via: str, bob_via: str) -> None:
    alice, bob, _ = three(room, alice_via, bob_via)
    alice.send("/quit bye all")
    alice.goodbye()
    wait_until(lambda: room.hub.people.find("alice") is None, what="alice to be gone")
    room.gone(alice)
    room.settle(None, room.people)
    [reply] = room.type(bob, "/who")["bob"]
    text = reply if bob.via == "tcp" else reply["text"]
    assert text.removeprefix("*** ").startswith("2 online: bob (")
    assert "alice" not in text
