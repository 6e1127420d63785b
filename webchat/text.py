"""Cleaning what users type, so one user's bytes can never steer another user's screen.

A terminal obeys escape sequences and control characters; a browser obeys bidi
overrides. Everything a user sends passes through :func:`clean_text` (messages) or
:func:`check_nick` (names) before anyone else sees it, whatever the transport.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from confusable_homoglyphs.confusables import confusables_data

# Telnet negotiation (RFC 854): IAC SB ... IAC SE, IAC + verb + option, IAC + command.
_TELNET = re.compile(rb"\xff\xfa.*?\xff\xf0|\xff[\xfb-\xfe].|\xff[\xf0-\xfa]", re.DOTALL)

# Terminal escape sequences (ECMA-48): CSI, OSC and string controls, then any other ESC pair.
_ESCAPES = re.compile(
    r"""
      [\x1b][\[][0-?]*[ -/]*[@-~]?            # CSI ... final byte
    | \x9b[0-?]*[ -/]*[@-~]?                  # C1 CSI
    | [\x1b][\]P^_X][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?   # OSC, DCS, PM, APC, SOS
    | [\x9d\x90\x9e\x9f\x98][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?
    | [\x1b][ -/]*[0-~]?                      # any other escape, or a bare ESC
    """,
    re.VERBOSE,
)

# Lone surrogates (JSON can carry "\ud800") cannot be encoded as UTF-8 for anyone.
_SURROGATES = re.compile("[\ud800-\udfff]")

# Line breaks and tabs become spaces: a message is one line on every screen.
_SPACES = dict.fromkeys(map(ord, "\t\n\v\f\u0085\u2028\u2029"), " ")
# C0, DEL, C1, and the bidi embeddings, overrides and isolates that reorder text.
_DROP = dict.fromkeys(
    [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)
_TEXT_TABLE = {**_DROP, **_SPACES}

# Characters that draw nothing; removed before comparing nicks.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u034f"))

NICK_PUNCTUATION = "_-."
RESERVED_NICKS = frozenset({"server", "system", "webchat", "admin", "root", "operator"})


class ChatError(ValueError):
    """A refused request; ``code`` is stable for clients, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NickError(ChatError):
    """A refused nickname."""


def strip_telnet(data: bytes) -> bytes:
    """Drop telnet negotiation so `telnet host 8080` behaves like `nc`."""
    if b"\xff" not in data:
        return data
    return _TELNET.sub(b"", data)


def clean_text(text: str) -> str:
    """Remove escapes and control characters; keep every printable character."""
    if text.isprintable():
        return text
    text = _ESCAPES.sub("", text)
    return _SURROGATES.sub("\ufffd", text.translate(_TEXT_TABLE))


def nick_key(nick: str) -> str:
    """The identity used for uniqueness (and accounts): look-alikes map to the same key.

    NFKC folds compatibility forms (fullwidth, ligatures), invisible characters are
    dropped, case is folded, and a letter of another script that looks like a Latin
    letter or digit is read as that one (Unicode's confusables, UTS #39): ``Alice``,
    ``ａｌｉｃｅ`` and ``аlice`` (a Cyrillic a) are all ``alice``.
    """
    folded = unicodedata.normalize("NFKC", nick).translate(_INVISIBLE).casefold()
    folded = unicodedata.normalize("NFKC", folded)
    return folded if folded.isascii() else folded.translate(_latin_look_alikes())


@functools.cache
def _latin_look_alikes() -> dict[int, str]:
    """Non-ASCII characters that look like an ASCII letter or digit -> that character.

    Built once, from the confusables data of ``confusable-homoglyphs`` (Unicode's
    confusables.txt), on the first non-ASCII nick.
    """
    table: dict[int, str] = {}
    for char, glyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        latin = [
            g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalnum()
        ]
        if latin:
            table[ord(char)] = min(latin, key=lambda c: (not c.islower(), c)).lower()
    return table


def _plain(char: str) -> bool:
    return char.isascii() and char.isalnum()


def check_nick(raw: str, max_chars: int) -> str:
    """Return the nick to use, or raise :class:`NickError` saying why not."""
    nick = unicodedata.normalize("NFC", raw.strip())
    if not nick:
        raise NickError("nick_empty", "a nickname is required")
    if len(nick) > max_chars:
        raise NickError(
            "nick_too_long", f"nickname is {len(nick)} characters; the limit is {max_chars}"
        )
    for ch in nick:
        if ch in NICK_PUNCTUATION:
            continue
        category = unicodedata.category(ch)
        if category[0] in "LM" or category == "Nd":
            continue
        shown = f"U+{ord(ch):04X}" if not ch.isprintable() or ch.isspace() else repr(ch)
        raise NickError(
            "nick_invalid",
            f"nickname may only hold letters, digits, '_', '-' and '.'; {shown} is not allowed",
        )
    if nick[0] in NICK_PUNCTUATION or unicodedata.category(nick[0])[0] == "M":
        raise NickError("nick_invalid", "nickname must start with a letter or a digit")
    if nick_key(nick) in RESERVED_NICKS:
        raise NickError("nick_reserved", f"the nickname {nick!r} is reserved")
    return nick
