"""Cleaning what users type, and the nickname rules, at their edges."""

from __future__ import annotations

import pytest

from webchat.text import NickError, check_nick, clean_text, nick_key, strip_telnet


@pytest.mark.parametrize(
    "text", ["hello", "héllo wörld", "日本語のテキスト", "emoji 👋🏽 ok", "a  b", "العربية", ""]
)
def test_clean_text_keeps_printable_text_as_is(text):
    assert clean_text(text) == text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[31mred\x1b[0m", "red"),  # CSI colour
        ("\x1b[2J\x1b[Hwiped", "wiped"),  # clear screen, cursor home
        ("\x1b[?25lhidden cursor", "hidden cursor"),  # private-mode CSI
        ("\x1b]0;owned\x07title", "title"),  # OSC ended by BEL
        ("\x1b]8;;http://evil\x1b\\link", "link"),  # OSC 8 hyperlink ended by ST
        ("\x1bP1$r\x1b\\dcs", "dcs"),  # DCS
        ("\x9b31mc1 csi", "c1 csi"),  # the one-character C1 CSI
        ("bell\x07", "bell"),
        ("back\x08\x08\x08space", "backspace"),
        ("fake\rmallory: hi", "fakemallory: hi"),  # CR cannot rewrite the line
        ("del\x7f", "del"),
        ("nul\x00byte", "nulbyte"),
        ("bare esc\x1b", "bare esc"),
        ("esc \x1bc reset", "esc  reset"),  # ESC c (full reset) is dropped whole
        ("\u202eevil\u202c", "evil"),  # right-to-left override and pop
        ("\u2066isolate\u2069", "isolate"),
    ],
)
def test_clean_text_drops_escapes_and_control_characters(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_turns_tabs_and_line_breaks_into_spaces():
    assert clean_text("a\tb\nc\u2028d\u2029e\x0bf\x0cg") == "a b c d e f g"


def test_clean_text_replaces_lone_surrogates():
    # JSON can carry "\ud800"; such a string cannot be encoded as UTF-8 for anyone.
    cleaned = clean_text("x\ud800y\udfffz")
    assert cleaned == "x\ufffdy\ufffdz"
    cleaned.encode("utf-8")


def test_strip_telnet_removes_negotiation_and_keeps_the_text():
    data = b"\xff\xfd\x03\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0alice"
    assert strip_telnet(data) == b"alice"
    assert strip_telnet(b"hi \xff\xf1there") == b"hi there"  # IAC NOP


def test_strip_telnet_leaves_data_without_iac_untouched():
    data = "plain ünïcode".encode()
    assert strip_telnet(data) is data


@pytest.mark.parametrize(
    "other", ["alice", "ALICE", "aLiCe", "ａｌｉｃｅ", "ali\u200bce", "al\u00adice"]
)
def test_nick_key_makes_look_alikes_equal(other):
    assert nick_key(other) == nick_key("Alice")


def test_nick_key_keeps_different_names_apart():
    assert nick_key("alice") != nick_key("alice2")
    assert nick_key("bob") != nick_key("b0b")


@pytest.mark.parametrize(
    "nick", ["alice", "Bob_2", "x.y-z", "Łukasz", "日本", "ünïcödé", "a", "9lives", "q\u0303a"]
)
def test_check_nick_accepts_letters_digits_and_punctuation(nick):
    assert check_nick(nick, 24) == nick


def test_check_nick_normalises_to_nfc():
    assert check_nick("e\u0301a", 24) == "\u00e9a"


def test_check_nick_strips_spaces_around():
    assert check_nick("  alice \t", 24) == "alice"


def test_check_nick_length_edge():
    assert check_nick("a" * 24, 24) == "a" * 24
    with pytest.raises(NickError) as info:
        check_nick("a" * 25, 24)
    assert info.value.code == "nick_too_long"
    assert "24" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "nick_empty"),
        ("   ", "nick_empty"),
        ("two words", "nick_invalid"),
        ("bang!", "nick_invalid"),
        ("a/b", "nick_invalid"),
        ("esc\x1b[31m", "nick_invalid"),
        ("zero\u200bwidth", "nick_invalid"),
        ("rtl\u202e", "nick_invalid"),
        ("_under", "nick_invalid"),
        ("-dash", "nick_invalid"),
        (".dot", "nick_invalid"),
        ("\u0301mark", "nick_invalid"),
        ("server", "nick_reserved"),
        ("Admin", "nick_reserved"),
        ("ＲＯＯＴ", "nick_reserved"),
    ],
)
def test_check_nick_refuses_with_a_stable_code_and_a_reason(raw, code):
    with pytest.raises(NickError) as info:
        check_nick(raw, 24)
    assert info.value.code == code
    assert str(info.value)
