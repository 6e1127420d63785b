"""A wheel built from the repository, installed into a fresh virtualenv, serves the page."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.support.clients import TcpClient
from tests.support.processes import REPO, ServerProcess


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel and install it (not editable) into a new venv; return its bin/."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(root / "dist"), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = (root / "dist").glob("webchat-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "webchat/templates/index.html" in names
    scripts = sorted(p.name for p in (REPO / "static" / "js").glob("*.js"))
    assert scripts and all(f"webchat/static/js/{name}" in names for name in scripts)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv / "bin"


def test_installed_wheel_serves_page_and_static_files(installed: Path, tmp_path: Path) -> None:
    # Run from an empty folder, so nothing can be found through the checkout.
    server = ServerProcess(
        [str(installed / "webchat"), "--web-port", "0", "--tcp-port", "0"], cwd=tmp_path
    )
    try:
        web_port = int(server.wait_for(r"Browser:\s+http://localhost:(\d+)/").group(1))
        tcp_port = int(server.wait_for(r"Terminal: nc localhost (\d+)").group(1))
        base = f"http://127.0.0.1:{web_port}"
        with urllib.request.urlopen(base + "/", timeout=10) as page:
            html = page.read().decode()
        assert "Nickname" in html and "js/main.js" in html
        modules = [f"js/{p.name}" for p in (REPO / "static" / "js").glob("*.js")]
        for name in ("chat.css", *modules):
            with urllib.request.urlopen(f"{base}/static/{name}", timeout=10) as response:
                assert response.read() == (REPO / "static" / name).read_bytes()
        client = TcpClient(tcp_port)
        client.join("wheeler")
        client.close()
    finally:
        assert server.stop() == 0


def test_installed_package_runs_as_module_and_client(installed: Path, tmp_path: Path) -> None:
    for argv in (
        [str(installed / "python"), "-m", "webchat", "--help"],
        [str(installed / "webchat-client"), "--help"],
    ):
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout
