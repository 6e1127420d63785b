"""Starting, watching and stopping the server under test, and reading /proc about it.

Readiness is read from /proc/net/tcp (the port is in LISTEN state), never by connecting:
a probe connection that closes without a nickname would wreck the seed server, which
takes an empty recv() as a nick and keeps the dead socket in its broadcast list.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

# webchat's fairness limits, off for a load test: every client comes from 127.0.0.1 and
# senders go faster than a person types. Passed only if this webchat has the flag.
UNLIMITED = {
    "--rate-per-second": "0",
    "--flood-refusals": "0",
    "--max-connections-per-ip": "0",
}


def webchat_flags(command: list[str]) -> set[str]:
    """The flags this webchat build knows, from its --help (the code is a moving target)."""
    try:
        out = subprocess.run(
            [*command, "--help"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {word.strip("[],") for word in out.split() if word.startswith(("--", "[--"))}


def raise_nofile() -> tuple[int, int]:
    """Soft limit up to the hard one; thousands of sockets need it on both sides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _child_setup() -> None:
    """In the server process before exec: many files, and die with the generator."""
    raise_nofile()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def listening(port: int) -> bool:
    """Is some socket on this machine in LISTEN state on 127.0.0.1:port (or any address)?"""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "0A":
                    return True
    return False


@dataclass
class ProcSample:
    rss_kb: int = 0
    threads: int = 0
    cpu_s: float = 0.0


def sample(pid: int) -> ProcSample:
    """VmRSS and Threads from status, utime+stime from stat; zeros once it is gone."""
    s = ProcSample()
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    s.rss_kb = int(line.split()[1])
                elif line.startswith("Threads:"):
                    s.threads = int(line.split()[1])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        s.cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        pass
    return s


def machine_cpu() -> tuple[float, float]:
    """(busy, total) seconds of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    total = sum(vals[:8])
    idle = vals[3] + vals[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Server:
    """A server under test, started the way its users start it."""

    target: str
    tcp_port: int
    web_port: int
    argv: list[str]
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    stop_s: float = 0.0
    killed: bool = False
    exit_code: int | None = None
    workdir: Path | None = None

    @classmethod
    def make(
        cls, target: str, extra_args: list[str], keep_limits: bool = False, python: str = ""
    ) -> Server:
        """``python``: run webchat as ``python -m webchat`` (another checkout's virtualenv),
        instead of the ``webchat`` command next to this interpreter."""
        bindir = Path(sys.executable).parent
        # A scratch working directory: whatever the server writes there goes away with it.
        workdir = Path(tempfile.mkdtemp(prefix=f"loadgen-{target}-"))
        tcp_port = free_port()
        web_port = 0
        if target == "webchat":
            web_port = free_port()
            exe = bindir / "webchat"
            if python:
                argv = [python, "-m", "webchat"]
            else:
                argv = [str(exe) if exe.exists() else "webchat"]
            command = list(argv)
            argv += ["--web-host", "127.0.0.1", "--web-port", str(web_port)]
            argv += ["--tcp-host", "127.0.0.1", "--tcp-port", str(tcp_port)]
            known = webchat_flags(command)
            given = {a.split("=", 1)[0] for a in extra_args}
            wanted = dict(UNLIMITED) if not keep_limits else {}
            # History on disk as by default, but in a scratch folder: no run sees another's.
            wanted["--history-db"] = str(workdir / "history.sqlite3")
            for flag, value in wanted.items():
                if flag in known and flag not in given:
                    argv += [flag, value]
        elif target == "seed":
            argv = [sys.executable, str(HERE / "seed_server.py"), str(tcp_port)]
        elif target == "miniircd":
            argv = [sys.executable, "-m", "miniircd", "--listen", "127.0.0.1"]
            argv += ["--ports", str(tcp_port)]
            if os.getuid() == 0:
                argv += ["--setuid", "root"]  # miniircd refuses root otherwise
        else:
            raise ValueError(f"unknown target {target!r}")
        return cls(target, tcp_port, web_port, argv + extra_args, extra_args, workdir=workdir)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        fd, name = tempfile.mkstemp(prefix=f"loadgen-{self.target}-", suffix=".log")
        self.log_path = Path(name)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_child_setup,
            start_new_session=True,
        )
        os.close(fd)

    def wait_ready(self, deadline: float) -> None:
        ports = [p for p in (self.tcp_port, self.web_port) if p]
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.target} exited at start:\n{self.log_tail()}")
            if all(listening(p) for p in ports):
                return
            time.sleep(0.02)
        raise TimeoutError(f"{self.target} did not listen in time:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_grep(self, *needles: str, limit: int = 5) -> list[str]:
        """Lines of the server's log worth showing: tracebacks and warnings."""
        if self.log_path is None:
            return []
        found: list[str] = []
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            for line in f:
                if any(n in line for n in needles) and len(found) < limit:
                    found.append(line.rstrip()[:240])
        return found

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, as a service manager would; SIGKILL if it does not go within ``grace``."""
        if self.proc is None:
            return
        t0 = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.killed = True
        if self.killed or self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        else:
            # Reap anything the server left behind in its own process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.stop_s = time.monotonic() - t0
        self.exit_code = self.proc.returncode

    def cleanup(self, keep_log: bool) -> None:
        if self.log_path is not None and not keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
