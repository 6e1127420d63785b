"""docs/webchat.service: systemd accepts it, and webchat runs with what it sets.

``systemd-analyze verify`` checks every directive and that ExecStart's program
exists, so it runs on a copy whose ExecStart is this virtualenv's ``webchat``
(the unit's own path, /opt/webchat/bin/webchat, exists only where it is installed).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.clients import TcpClient
from tests.support.processes import REPO, ServerProcess
from webchat.cli import build_parser
from webchat.settings import ENV_PREFIX, Settings

UNIT = REPO / "docs" / "webchat.service"
INSTALLED = "/opt/webchat/bin/webchat"
WEBCHAT = str(Path(sys.executable).parent / "webchat")


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every line; a key may repeat (Environment=)."""
    out, section = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(key: str) -> list[str]:
    return [v for _, k, v in directives(UNIT.read_text()) if k == key]


def environment() -> dict[str, str]:
    env = {}
    for assignment in values("Environment"):
        name, _, value = assignment.partition("=")
        env[name] = value
    return env


def test_the_unit_sets_what_production_needs():
    [service_user] = values("User")
    assert service_user == "webchat" and values("Group") == ["webchat"]
    assert values("LimitNOFILE") == ["65536"]
    assert values("StateDirectory") == ["webchat"]
    assert environment()["WEBCHAT_HISTORY_DB"] == "/var/lib/webchat/webchat.sqlite3"
    assert values("Restart") == ["on-failure"]
    assert values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert values("ProtectSystem") == ["strict"] and values("NoNewPrivileges") == ["yes"]
    assert values("PrivateTmp") == ["yes"]
    [start] = values("ExecStart")
    assert start.split()[0] == INSTALLED


def test_every_setting_the_unit_makes_is_one_webchat_knows():
    env = environment()
    fields = {ENV_PREFIX + name.upper() for name in Settings.__dataclass_fields__}
    assert set(env) <= fields, set(env) - fields
    Settings.from_env(env)  # every value parses
    [start] = values("ExecStart")
    build_parser().parse_args(start.split()[1:])  # and so do any flags


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_systemd_analyze_verify_accepts_it(tmp_path):
    copy = tmp_path / "webchat.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED, WEBCHAT))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    # It also warns (unknown keys, values it ignores) with exit code 0: no output at all.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_webchat_runs_with_the_units_settings_reloads_on_sighup_and_stops_on_sigterm(tmp_path):
    env = {
        **environment(),
        "WEBCHAT_HISTORY_DB": str(tmp_path / "webchat.sqlite3"),  # not /var/lib here
        "WEBCHAT_WEB_HOST": "127.0.0.1",
        "WEBCHAT_TCP_HOST": "127.0.0.1",
        "WEBCHAT_WEB_PORT": "0",
        "WEBCHAT_TCP_PORT": "0",
    }
    [start] = values("ExecStart")
    server = ServerProcess([WEBCHAT, *start.split()[1:]], cwd=tmp_path, env=env)
    try:
        banner = server.wait_for(r"Terminal: nc localhost (\d+)")
        client = TcpClient(int(banner.group(1)))
        client.join("alice")
        server.proc.send_signal(signal.SIGHUP)  # ExecReload
        server.wait_for(r"SIGHUP")
        client.line("still here")
        client.line("/who")
        assert "alice" in client.expect("alice")  # the server still answers
        assert server.proc.poll() is None
    finally:
        assert server.stop(signal.SIGTERM) == 0  # KillSignal: a clean exit
    for line in server.output().splitlines():  # WEBCHAT_LOG_FORMAT=json
        json.loads(line)
    assert (tmp_path / "webchat.sqlite3").exists()
