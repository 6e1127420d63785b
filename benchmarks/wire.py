"""What goes on the wire: the benchmark payload, client-side WebSocket framing, and the
line formats of the three servers under test.

Everything here sits on the receive hot path of the load generator, so formats are
fixed-width and parsed by slicing or by one compiled regex per chunk, never per byte.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import re
import struct

# ----- the payload ------------------------------------------------------------------------
#
#   ~SSSSSQQQQQQQQTTTTTTTTTTTTTTTTTTpadding...
#   ^ sender id (5 digits, the same digits as its nick "cSSSSS")
#         ^ per-sender sequence number (8 digits, from 0)
#                 ^ send time: time.monotonic_ns() in 18 decimal digits (CLOCK_MONOTONIC
#                   is system-wide on Linux, so every process on the machine shares it)
#                                   ^ a fixed pattern up to the requested size
#
# Fixed widths make a payload self-checking: a split, merged or truncated message
# cannot pass for a whole one. All-decimal fields let one isdigit() check thousands.

HEADER_LEN = 32
FIELDS_LEN = 31  # sender id + sequence number + send time, after the "~"
MARKER = b"!sync"  # the barrier message; never counted as a delivery


def nick_of(index: int) -> str:
    return f"c{index:05d}"


def stall_nick_of(index: int) -> str:
    return f"s{index:05d}"


LOBBY = "#lobby"


def room_of(index: int, rooms: int) -> str:
    """The room of client ``index`` with ``--rooms``: ``#bench-(index % rooms)``, or the
    lobby (everyone's room) when ``rooms`` is 0."""
    return f"#bench-{index % rooms}" if rooms else LOBBY


def node_of(index: int, nodes: int) -> int:
    """The node client ``index`` connects to with ``--nodes N``: alternately, shifted by
    one each round of N, so that with ``--mix mixed`` (even clients TCP, odd WebSocket)
    every node gets both transports: with 2 nodes, clients 0..7 go to 0 1 1 0 0 1 1 0."""
    return (index + index // nodes) % nodes if nodes > 1 else 0


def padding(size: int) -> bytes:
    """Letters only: no marker, no `~`, nothing a server would clean or escape."""
    if size < HEADER_LEN:
        raise ValueError(f"--size must be at least {HEADER_LEN} bytes (the payload header)")
    alphabet = b"abcdefghijklmnopqrstuvwxyz"
    fill = size - HEADER_LEN
    return (alphabet * (fill // len(alphabet) + 1))[:fill]


def payload(sid: bytes, seq: int, t_ns: int, pad: bytes) -> bytes:
    return b"~%s%08d%018d%s" % (sid, seq, t_ns, pad)


# ----- WebSocket, client side (RFC 6455) --------------------------------------------------

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def ws_accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def ws_request(host: str, port: int, key: bytes) -> bytes:
    """A handshake with no Origin: a bot, which webchat allows."""
    return (
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nUser-Agent: webchat-loadgen\r\n\r\n"
    ).encode()


def _mask(data: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key through one big-int operation: C speed, no per-byte loop."""
    n = len(data)
    if n == 0:
        return data
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


def ws_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A final, masked client frame: servers must refuse unmasked ones."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = random.getrandbits(32).to_bytes(4, "big")
    return head + key + _mask(payload, key)


class WsProtocolError(Exception):
    """The server broke framing; the connection is useless after this."""


def ws_parse(buf: bytes) -> tuple[list[tuple[int, bool, bytes]], bytes]:
    """Split a byte stream into (opcode, fin, payload) frames; return the unparsed rest.

    One slice per frame and one at the end, so a 256 KiB chunk of small frames costs
    linear time.
    """
    frames: list[tuple[int, bool, bytes]] = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        if b1 & 0x80:
            raise WsProtocolError("the server sent a masked frame")
        n = b1 & 0x7F
        head = 2
        if n == 126:
            if end - pos < 4:
                break
            n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            head = 4
        elif n == 127:
            if end - pos < 10:
                break
            n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            head = 10
        if end - pos < head + n:
            break
        start = pos + head
        frames.append((b0 & 0x0F, bool(b0 & 0x80), buf[start : start + n]))
        pos = start + n
    return frames, buf[pos:]


# ----- line formats of the servers --------------------------------------------------------


def message_regex(prefix: bytes, suffix: bytes, pad: bytes) -> re.Pattern[bytes]:
    """One whole line carrying one whole message, with the sender's nick matching the id.

    ``prefix`` is a regex fragment before the payload with a group for the nick digits;
    the payload's id must repeat them (back-reference), so a mis-attributed line fails.
    """
    return re.compile(
        rb"(?m)^" + prefix + rb"~\1(\d{8})(\d{18})" + re.escape(pad) + re.escape(suffix)
    )


WEBCHAT_TCP_PREFIX = rb"c(\d{5}): "  # "c00012: ~00012..." then \r\n


def webchat_room_tag(room: str) -> bytes:
    """What starts a TCP line of a room event: nothing for the lobby, else "[#room] "."""
    return b"" if room == LOBBY else b"[" + room.encode() + b"] "


def any_room_message_regex(pad: bytes) -> re.Pattern[bytes]:
    """A whole webchat TCP message line of any room (a line without its CR), the tag in
    group 1: for telling a delivery into the wrong room from a corrupt line."""
    return re.compile(
        rb"(?:\[(#[a-z0-9_-]+)\] )?c(\d{5}): ~\2(\d{8})(\d{18})" + re.escape(pad) + rb"\r?"
    )


SEED_PREFIX = rb"c(\d{5}) send: "  # the sample relays f"{nick} send: {mail}"
IRC_PREFIX = rb":c(\d{5})!\S+ PRIVMSG #bench :"


class LineShape:
    """Where everything sits in a message line of fixed length, for whole-chunk checks.

    Every message line of a dialect has the same length (fixed-width nicks and payload
    fields), so a chunk of n such lines is n*L bytes and column c of all lines is the
    strided slice ``block[c::L]``: one C-level copy checks a column of thousands of lines.
    """

    def __init__(self, template: bytes, suffix: bytes, pad: bytes, nick: bytes = b"c00000"):
        self.prefix_len = len(template)
        self.line_len = len(template) + HEADER_LEN + len(pad) + len(suffix)
        self.sid_at = self.prefix_len + 1  # the sender id inside the payload
        digits: set[int] = set()
        self.same_cols: list[tuple[int, int]] = []
        start = template.find(nick)
        while start >= 0:
            for k in range(1, len(nick)):
                digits.add(start + k)
                self.same_cols.append((start + k, self.sid_at + k - 1))
            start = template.find(nick, start + 1)
        fixed = [(i, template[i : i + 1]) for i in range(len(template)) if i not in digits]
        fixed.append((self.prefix_len, b"~"))
        pad_at = self.prefix_len + HEADER_LEN
        if pad:
            fixed += [(pad_at, pad[:1]), (pad_at + len(pad) - 1, pad[-1:])]
        end = pad_at + len(pad)
        fixed += [(end + i, suffix[i : i + 1]) for i in range(len(suffix))]
        self.fixed_cols = fixed
        self.pad = pad
