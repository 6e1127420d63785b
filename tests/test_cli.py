"""The `webchat` command: flags and variables reach the server, and it says where to connect."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.clients import TcpClient
from tests.support.processes import ServerProcess
from webchat.cli import banner, build_parser
from webchat.settings import Settings

WEBCHAT = str(Path(sys.executable).parent / "webchat")


def test_banner_names_the_url_and_the_nc_command() -> None:
    text = banner(Settings(), 5000, 8080)
    assert "http://localhost:5000/" in text
    assert "nc localhost 8080" in text


def test_banner_for_all_addresses_explains_what_others_use() -> None:
    text = banner(Settings(web_host="0.0.0.0", tcp_host="0.0.0.0"), 5000, 8080)
    assert "this machine's address" in text


def test_every_setting_has_a_flag() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--tcp-port", "9001", "--allowed-origins", "https://a.example,http://b"]
    )
    assert args.tcp_port == 9001
    assert args.allowed_origins == ("https://a.example", "http://b")


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {"WEBCHAT_TCP_PORT": "9100", "WEBCHAT_TCP_ENABLED": "false", "WEBCHAT_NICK_TIMEOUT": "2.5"}
    )
    assert (settings.tcp_port, settings.tcp_enabled, settings.nick_timeout) == (9100, False, 2.5)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="WEBCHAT_TCP_PORT: expected a whole number"):
        Settings.from_env({"WEBCHAT_TCP_PORT": "eighty"})


def test_bad_flag_exits_2_with_a_message() -> None:
    result = subprocess.run(
        [WEBCHAT, "--tcp-port", "eighty"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "expected a whole number" in result.stderr


def test_webchat_serves_with_flags_and_env_and_stops_on_sigterm() -> None:
    server = ServerProcess(
        [WEBCHAT, "--web-port", "0", "--tcp-port", "0"], env={"WEBCHAT_MAX_NICK_CHARS": "5"}
    )
    try:
        web_port = int(server.wait_for(r"Browser:\s+http://localhost:(\d+)/").group(1))
        tcp_port = int(server.wait_for(r"Terminal: nc localhost (\d+)").group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=10) as r:
            assert b'"status":"ok"' in r.read().replace(b" ", b"")
        client = TcpClient(tcp_port)
        client.read_exact(b"Enter your nickname: ")
        client.line("toolong")
        assert "the limit is 5" in client.expect("error")
        client.close()
    finally:
        assert server.stop() == 0


def test_no_tcp_flag_leaves_the_port_closed() -> None:
    server = ServerProcess([WEBCHAT, "--web-port", "0", "--no-tcp"])
    try:
        server.wait_for(r"Browser:")
        assert "Terminal:" not in server.output()
    finally:
        assert server.stop() == 0


def test_an_abbreviated_flag_is_an_error_not_another_flag(capsys) -> None:
    """--max-conn must not silently become --max-connections or --max-connections-per-ip,
    and each of those two means itself."""
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["--max-conn", "50"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --max-conn" in capsys.readouterr().err
    both = build_parser().parse_args(["--max-connections", "50", "--max-connections-per-ip", "3"])
    assert (both.max_connections, both.max_connections_per_ip) == (50, 3)
