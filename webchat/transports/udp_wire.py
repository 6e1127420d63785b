"""What the UDP server and its clients share: sizes, timings, cookies and event framing.

The protocol is documented in docs/PROTOCOL.md ("UDP"). Every datagram of the
framed mode is one compact JSON object of at most :data:`MAX_DATAGRAM` bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from typing import Any

MAX_DATAGRAM = 1200  # QUIC's floor: fits every path's MTU without fragmenting
HELLO_SIZE = MAX_DATAGRAM  # a hello is padded to exactly this, so a reply never amplifies
WINDOW = 64  # unacknowledged datagrams in flight, per direction and session
RTO_MIN = 0.2  # seconds before the first retransmission of a datagram
RTO_MAX = 3.0  # the backoff doubles up to this
TICK = 0.05  # how often retransmissions and timeouts are checked
COOKIE_BUCKET = 30.0  # seconds: a cookie is valid in its bucket and the next one
PART_BYTES = 800  # raw bytes of an event per part when it does not fit one datagram
EVENT_ROOM = MAX_DATAGRAM - 40  # an event's JSON up to this size goes whole

Addr = tuple[str, int]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any] | None:
    """A framed datagram's object, or None if it is not one."""
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        return None
    return message


def hello() -> bytes:
    """The client's first datagram, padded to HELLO_SIZE bytes."""
    head = b'{"t":"hello","pad":"'
    return head + b" " * (HELLO_SIZE - len(head) - 2) + b'"}'


class Cookies:
    """Stateless proofs that a source address receives what is sent to it.

    An HMAC of the address, the port and a 30-second time bucket under a secret of
    this process: valid in its bucket and the next (30 to 60 seconds), kept nowhere.
    """

    def __init__(self, secret: bytes | None = None, clock: Callable[[], float] = time.time):
        self.secret = secret or os.urandom(32)
        self.clock = clock

    def _mac(self, label: str, addr: Addr, bucket: int) -> bytes:
        text = f"{label}|{addr[0]}|{addr[1]}|{bucket}".encode()
        return hmac.new(self.secret, text, hashlib.sha256).digest()

    def _bucket(self) -> int:
        return int(self.clock() // COOKIE_BUCKET)

    def cookie(self, addr: Addr) -> str:
        return self._mac("cookie", addr, self._bucket())[:16].hex()

    def valid_cookie(self, value: object, addr: Addr) -> bool:
        if not isinstance(value, str) or len(value) != 32:
            return False
        now = self._bucket()
        return any(
            hmac.compare_digest(value, self._mac("cookie", addr, bucket)[:16].hex())
            for bucket in (now, now - 1)
        )

    def code(self, addr: Addr) -> str:
        """Bare mode's cookie: six characters a person can type."""
        return self._short(self._mac("bare", addr, self._bucket()))

    def valid_code(self, value: str, addr: Addr) -> bool:
        now = self._bucket()
        value = value.lower()
        return len(value) == 6 and any(
            hmac.compare_digest(value, self._short(self._mac("bare", addr, bucket)))
            for bucket in (now, now - 1)
        )

    @staticmethod
    def _short(mac: bytes) -> str:
        return base64.b32encode(mac[:5]).decode().lower()[:6]


SequencedBody = Callable[[int], bytes]


def event_datagrams(event_json: bytes) -> list[SequencedBody]:
    """One event as sequenced datagrams: whole if it fits, else in base64 parts."""
    if len(event_json) <= EVENT_ROOM:
        return [_numbered(b',"e":' + event_json + b"}")]
    chunks = [event_json[i : i + PART_BYTES] for i in range(0, len(event_json), PART_BYTES)]
    bodies: list[SequencedBody] = []
    for index, chunk in enumerate(chunks):
        tail = (
            f',"part":{index},"of":{len(chunks)},"b64":"'.encode() + base64.b64encode(chunk) + b'"}'
        )
        bodies.append(_numbered(tail))
    return bodies


def end_datagram(reason: str, code: int) -> SequencedBody:
    return _numbered(b',"end":' + encode({"reason": reason, "code": code}) + b"}")


def _numbered(tail: bytes) -> SequencedBody:
    def body(n: int) -> bytes:
        return b'{"t":"ev","n":' + str(n).encode() + tail

    return body
