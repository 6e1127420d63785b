"""Starting, watching and stopping the server under test, and reading /proc about it.

Readiness is read from /proc/net/tcp (the port is in LISTEN state), never by connecting:
a probe connection that closes without a nickname would wreck the seed server, which
takes an empty recv() as a nick and keeps the dead socket in its broadcast list.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
# The CPUs this process may use before anything pins it: a server started without
# --server-cpus gets these back, not the generator's set it would otherwise inherit.
ALL_CPUS = frozenset(os.sched_getaffinity(0))

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


def parse_cpus(text: str) -> frozenset[int]:
    """``"0"``, ``"0,2"`` or ``"0-3"`` (as taskset -c writes them) as a set of CPU numbers;
    empty text is the empty set (no pinning). Raises ValueError for CPUs we may not use."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if first < 0 or last < first:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(first, last + 1))
    if cpus - ALL_CPUS:
        raise ValueError(
            f"CPUs {sorted(cpus - ALL_CPUS)} are not available (have {sorted(ALL_CPUS)})"
        )
    return frozenset(cpus)


def pin(pid: int, cpus: frozenset[int]) -> list[int]:
    """Pin ``pid`` (0: this process) to ``cpus``, or give it every CPU when empty; returns
    the set the kernel then reports, so a report says what was in force, not what was
    asked. Threads started afterwards inherit it."""
    os.sched_setaffinity(pid, cpus or ALL_CPUS)
    return sorted(os.sched_getaffinity(pid))


def affinity(pid: int) -> list[int]:
    """The CPUs ``pid`` may run on (empty once it is gone)."""
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return []


def _child_setup(cpus: frozenset[int] = frozenset()) -> None:
    """In the server process before exec: many files, die with the generator, and run on
    ``cpus`` (every CPU when empty: not the generator's, if it pinned itself first)."""
    raise_nofile()
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, cpus or ALL_CPUS)
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


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait up to ``timeout`` for ``proc`` to exit; when it did, time.monotonic() then
    (0.0 if it did not). A pidfd turns readable the moment the process exits, where
    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms: the stop time is a target."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (OSError, AttributeError):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return 0.0
        return time.monotonic()
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        exited = time.monotonic()
    finally:
        os.close(fd)
    if not ready:
        return 0.0
    proc.wait(5)  # reap it
    return exited


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
    cpus: frozenset[int] = frozenset()  # --server-cpus; empty: every CPU
    stopped: bool = False
    sigterm_ns: int = 0  # time.monotonic_ns() when stop() sent SIGTERM

    @classmethod
    def make(
        cls,
        target: str,
        extra_args: list[str],
        keep_limits: bool = False,
        python: str = "",
        cpus: frozenset[int] = frozenset(),
    ) -> Server:
        """``python``: run webchat as ``python -m webchat`` (another checkout's virtualenv),
        instead of the ``webchat`` command next to this interpreter. ``cpus``: the CPUs it
        runs on (``--server-cpus``), set before exec so every thread it starts has them."""
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
        return cls(
            target, tcp_port, web_port, argv + extra_args, extra_args, workdir=workdir, cpus=cpus
        )

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
            preexec_fn=functools.partial(_child_setup, self.cpus),
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
        """SIGTERM, as a service manager would; SIGKILL if it does not go within ``grace``.

        Once only: ``stop_s`` is the time from that SIGTERM to the process's exit, and a
        later call (a run's ``finally``) must not overwrite it with a no-op's duration."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        t0 = time.monotonic()
        self.sigterm_ns = time.monotonic_ns()
        exited_at = 0.0
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            exited_at = wait_exit(self.proc, grace)
            self.killed = not exited_at
        if self.killed or self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        else:
            # Reap anything the server left behind in its own process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.stop_s = (exited_at or time.monotonic()) - t0
        self.exit_code = self.proc.returncode

    def cleanup(self, keep_log: bool) -> None:
        if self.log_path is not None and not keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ----- --nodes N: a redis-server of our own and N webchat nodes on it ----------------------


def resp(port: int, *args: str, timeout: float = 2.0) -> object:
    """One command to the Redis on 127.0.0.1:``port`` over a plain socket (RESP2): no
    client library, so the generator needs nothing beyond the standard library."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        sock.sendall(b"".join(parts))
        with sock.makefile("rb") as f:
            return _reply(f)


def _reply(f: object) -> object:
    readline = f.readline  # type: ignore[attr-defined]
    line = readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(f"redis: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()  # type: ignore[attr-defined]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise RuntimeError(f"redis: unexpected reply {line[:60]!r}")


@dataclass
class RedisSample:
    """What Redis has done so far: its process's CPU and RSS, its command count, and the
    chat's event counter (every event appended to the stream took one id from it)."""

    proc: ProcSample
    commands: int | None
    events: int | None
    calls: dict[str, int] = field(default_factory=dict)  # per command, from INFO commandstats


class RedisProcess:
    """``redis-server`` on a free port (never 6379), a scratch ``--dir``, no snapshots."""

    def __init__(self, executable: str = "", cpus: frozenset[int] = frozenset()) -> None:
        self.executable = executable or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        while self.port == 6379:
            self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="loadgen-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_s = 0.0
        self.version = ""
        self.cpus = cpus  # the server side's CPUs, as the nodes it serves

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, deadline: float) -> None:
        argv = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.workdir), "--save", "", "--appendonly", "no"]
        argv += ["--logfile", str(self.workdir / "redis.log")]
        self.proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=functools.partial(_child_setup, self.cpus),
            start_new_session=True,
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError, RuntimeError):
                if resp(self.port, "PING", timeout=0.5) == "PONG":
                    info = self.info("server")
                    self.version = info.get("redis_version", "")
                    return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer in time:\n{self.log_tail()}")

    def info(self, section: str) -> dict[str, str]:
        text = resp(self.port, "INFO", section)
        assert isinstance(text, str)
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {k: v for k, v in pairs}

    def sample(self, prefix: str = "webchat:") -> RedisSample:
        commands = events = None
        calls: dict[str, int] = {}
        with contextlib.suppress(OSError, RuntimeError, ValueError, ConnectionError):
            commands = int(self.info("stats")["total_commands_processed"])
            counter = resp(self.port, "GET", prefix + "counter")
            events = int(str(counter)) if counter is not None else 0
            for name, stats in self.info("commandstats").items():
                # cmdstat_xadd:calls=40000,usec=...: commands run by scripts count too
                calls[name.removeprefix("cmdstat_")] = int(stats.split(",")[0].split("=")[1])
        return RedisSample(sample(self.pid), commands, events, calls)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.workdir / "redis.log").read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stop_s = time.monotonic() - t0

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Fleet:
    """What the coordinator runs against: one server, or ``--nodes N`` webchat nodes on
    a Redis of their own. Samples add up over the nodes (Redis apart)."""

    nodes: list[Server]
    redis: RedisProcess | None = None

    @classmethod
    def make(
        cls,
        target: str,
        extra_args: list[str],
        nodes: int = 1,
        keep_limits: bool = False,
        python: str = "",
        cpus: frozenset[int] = frozenset(),
        pin_nodes: bool = False,
    ) -> Fleet:
        """``cpus`` (``--server-cpus``) pins every node, and their Redis: the server side.
        With ``pin_nodes`` each node gets one of them (node k the k-th, in turn) and
        Redis all: one process on a core has that core's caches and time to itself,
        where two sharing both were seen on one core at once, sending half as fast."""
        if nodes <= 1:
            return cls([Server.make(target, extra_args, keep_limits, python, cpus)])
        redis = RedisProcess(cpus=cpus)
        ordered = sorted(cpus)
        servers = []
        for k in range(nodes):
            cluster = ["--redis-url", redis.url, "--node-id", f"node{k}"]
            mine = frozenset({ordered[k % len(ordered)]}) if pin_nodes and ordered else cpus
            servers.append(Server.make(target, cluster + extra_args, keep_limits, python, mine))
        return cls(servers, redis)

    @property
    def target(self) -> str:
        return self.nodes[0].target

    @property
    def argv(self) -> list[str]:
        return self.nodes[0].argv

    @property
    def ports(self) -> tuple[tuple[int, int], ...]:
        """(tcp, web) of each node when there are several; empty for one server."""
        if len(self.nodes) == 1:
            return ()
        return tuple((s.tcp_port, s.web_port) for s in self.nodes)

    def start(self, deadline: float) -> None:
        if self.redis is not None:
            self.redis.start(min(deadline, time.monotonic() + 10))
        for s in self.nodes:
            s.start()

    def wait_ready(self, deadline: float) -> None:
        for s in self.nodes:
            s.wait_ready(deadline)

    def sample(self) -> ProcSample:
        total = ProcSample()
        for s in self.nodes:
            one = sample(s.pid)
            total.rss_kb += one.rss_kb
            total.threads += one.threads
            total.cpu_s += one.cpu_s
        return total

    def affinity(self) -> list[list[int]]:
        """The CPUs each node may run on, read back from the kernel."""
        return [affinity(s.pid) for s in self.nodes]

    @property
    def sigterm_ns(self) -> int:
        """When the first SIGTERM went out (0: not yet)."""
        return min((s.sigterm_ns for s in self.nodes if s.sigterm_ns), default=0)

    def snapshot(self) -> tuple[list[ProcSample], RedisSample | None]:
        """Each node's sample, and Redis's, for the per-node and Redis figures."""
        nodes = [sample(s.pid) for s in self.nodes]
        return nodes, (self.redis.sample() if self.redis is not None else None)

    def alive(self) -> bool:
        return all(s.alive() for s in self.nodes) and (self.redis is None or self.redis.alive())

    def why_dead(self) -> str:
        for k, s in enumerate(self.nodes):
            if not s.alive():
                code = s.proc.poll() if s.proc else None
                name = f"node {k}" if len(self.nodes) > 1 else "the server"
                return f"{name} exited (code {code})"
        return "redis-server exited" if self.redis is not None else "the server exited"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to every node at once (each waits its own grace), then Redis."""
        if len(self.nodes) == 1:
            self.nodes[0].stop(grace)
        else:
            threads = [threading.Thread(target=s.stop, args=(grace,)) for s in self.nodes]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if self.redis is not None:
            self.redis.stop()

    @property
    def stop_s(self) -> float:
        return max(s.stop_s for s in self.nodes)

    @property
    def killed(self) -> bool:
        return any(s.killed for s in self.nodes)

    @property
    def exit_code(self) -> int | None:
        codes = [s.exit_code for s in self.nodes]
        return next((c for c in codes if c), codes[0])

    def log_grep(self, *needles: str, limit: int = 5) -> list[str]:
        if len(self.nodes) == 1:
            return self.nodes[0].log_grep(*needles, limit=limit)
        found = []
        for k, s in enumerate(self.nodes):
            found += [f"node{k}: {line}" for line in s.log_grep(*needles, limit=limit)]
        return found[: limit * len(self.nodes)]

    def cleanup(self, keep_log: bool) -> None:
        for s in self.nodes:
            s.cleanup(keep_log)
        if self.redis is not None:
            self.redis.cleanup()
