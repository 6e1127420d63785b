"""Load generator for webchat: many TCP and WebSocket clients, exact delivery accounting.

    .venv/bin/python -m benchmarks.loadgen --clients 100 --senders 10 --messages 2000
    .venv/bin/python -m benchmarks.loadgen --compare --clients 100 --senders 10

It starts the server the way its users do (``webchat --web-port P --tcp-port Q`` from
this virtualenv), connects the clients from one or more worker processes, lets the join
storm settle, has the senders send, checks every delivery (exactly once, in order per
sender), samples the server's RSS, threads and CPU, stops the server and reports. See
benchmarks/README.md for what each figure means and the measured results.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from benchmarks import wire
from benchmarks.servers import (
    Fleet,
    ProcSample,
    affinity,
    machine_cpu,
    own_cpu,
    parse_cpus,
    pin,
    raise_nofile,
)
from benchmarks.worker import WorkerConfig, worker_main

TARGETS = ("webchat", "seed", "miniircd")
REDIS = "/usr/bin/redis-server"
SAMPLE_EVERY = 0.05
HANDSHAKE_TIMEOUT = 30.0
# webchat's defaults for --outbox-max-events and --outbox-max-bytes, for the stall estimate
OUTBOX_EVENTS = 4096
OUTBOX_BYTES = 2 * 1024 * 1024
SIGTERM_GRACE = 10.0  # seconds from SIGTERM to SIGKILL (Fleet.stop's default)
WATCH_AFTER_EXIT = 5.0  # --sigterm-connected: how long clients read after the grace
JSON_OVERHEAD = 92  # a message event's JSON around its text: the larger of its two forms


class RunAborted(Exception):
    """A phase could not finish: timeout, a worker died, or the server died."""


# ----- the plan ----------------------------------------------------------------------------


def transports(mix: str, n: int) -> list[str]:
    if mix == "tcp":
        return ["tcp"] * n
    if mix == "ws":
        return ["ws"] * n
    return ["tcp" if i % 2 == 0 else "ws" for i in range(n)]


def plan(
    opts: argparse.Namespace, target: str, server: Fleet, deadline: float
) -> list[WorkerConfig]:
    """Split clients round-robin over the workers; senders are clients 0..S-1, so with
    ``--mix mixed`` half of them are TCP and half WebSocket."""
    n, k = opts.clients, max(1, min(opts.procs, opts.clients))
    kinds = transports(opts.mix, n)
    senders = frozenset(range(min(opts.senders, n)))
    stall_kinds = [
        "tcp" if (i % 2 == 0 or target != "webchat") else "ws" for i in range(opts.stall)
    ]
    rate = opts.rate / max(1, n - 1) / max(1, len(senders)) if opts.rate else 0.0
    conc = opts.connect_concurrency
    if target != "webchat":
        conc = min(conc, 4)  # both listen(5): stay inside their backlog
    deadline_ns = time.monotonic_ns() + int((deadline - time.monotonic() + 15) * 1e9)
    cfgs = []
    for w in range(k):
        mine = tuple((i, kinds[i]) for i in range(w, n, k))
        cfgs.append(
            WorkerConfig(
                index=w,
                target=target,
                host="127.0.0.1",
                tcp_port=server.nodes[0].tcp_port,
                web_port=server.nodes[0].web_port,
                clients=mine,
                senders=frozenset(i for i, _ in mine if i in senders),
                all_senders=senders,
                stalls=tuple(enumerate(stall_kinds)) if w == 0 else (),
                messages=opts.messages,
                size=opts.size,
                per_sender_rate=rate,
                connect_concurrency=max(1, conc // k),
                stall_rcvbuf=opts.stall_rcvbuf,
                drain_s=opts.drain,
                handshake_timeout_s=HANDSHAKE_TIMEOUT,
                deadline_ns=deadline_ns,
                rooms=opts.rooms,
                node_ports=server.ports,
                cpus=tuple(sorted(opts.generator_cpu_set)),
                arrival_times=opts.arrival_times,
                settle_presence=opts.settle_presence,
                settle_quiet_s=opts.settle_quiet,
            )
        )
    return cfgs


# ----- the coordinator ---------------------------------------------------------------------


@dataclass
class Peak:
    rss_kb: int = 0
    threads: int = 0

    def add(self, s: ProcSample) -> None:
        self.rss_kb = max(self.rss_kb, s.rss_kb)
        self.threads = max(self.threads, s.threads)


@dataclass
class Crew:
    """The worker processes, their pipes, and a sampler that runs while we wait on them."""

    server: Fleet
    deadline: float
    log: Any
    procs: list[Any] = field(default_factory=list)
    pipes: list[Connection] = field(default_factory=list)
    inbox: dict[str, dict[int, Any]] = field(default_factory=dict)
    peak: Peak = field(default_factory=Peak)
    last_sample: float = 0.0
    # The last message each worker sends: a worker that sent it has nothing more to say.
    # "result" until the --sigterm-connected watch, which ends with "goodbyes".
    final: str = "result"
    server_may_exit: bool = False  # after our own SIGTERM, its exit is no abort

    def start(self, cfgs: list[WorkerConfig]) -> None:
        ctx = mp.get_context("fork")
        for cfg in cfgs:
            ours, theirs = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(cfg, theirs), daemon=True)
            p.start()
            theirs.close()
            self.procs.append(p)
            self.pipes.append(ours)

    def send(self, kind: str, arg: Any = None, only: int | None = None) -> None:
        for i, pipe in enumerate(self.pipes):
            if only is None or i == only:
                with contextlib.suppress(OSError):
                    pipe.send((kind, arg))

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for worker messages, sampling the server meanwhile."""
        now = time.monotonic()
        if now - self.last_sample >= SAMPLE_EVERY:
            self.last_sample = now
            self.peak.add(self.server.sample())
        done = self.inbox.get(self.final, {})
        live = [p for i, p in enumerate(self.pipes) if i not in done]
        if not live:
            time.sleep(min(timeout, SAMPLE_EVERY))
            return
        ready = wait(live, timeout=min(timeout, SAMPLE_EVERY))
        for pipe in ready:
            assert isinstance(pipe, Connection)
            i = self.pipes.index(pipe)
            try:
                kind, payload = pipe.recv()
            except (EOFError, OSError):
                raise RunAborted(f"worker {i} died") from None
            if kind == "error":
                raise RunAborted(f"worker {i} failed:\n{payload}")
            if kind == "progress":
                progress = self.inbox.setdefault("progress", {})
                progress[i] = payload
                ok = sum(p["ok"] for p in progress.values())
                bad = sum(p["failed"] for p in progress.values())
                s = self.server.sample()
                self.log(
                    f"[{self.server.target}] ... {ok:,} joined, {bad:,} failed;"
                    f" server RSS {s.rss_kb / 1024:,.0f} MB, {s.threads:,} threads"
                )
                continue
            self.inbox.setdefault(kind, {})[i] = payload
        if not self.server_may_exit and not self.server.alive():
            raise RunAborted(self.server.why_dead())

    def gather(
        self, kind: str, count: int | None = None, until: float | None = None
    ) -> dict[int, Any]:
        want = len(self.pipes) if count is None else count
        end = self.deadline if until is None else until
        while len(self.inbox.get(kind, {})) < want:
            left = end - time.monotonic()
            if left <= 0:
                raise RunAborted(f"timed out waiting for {kind!r}")
            self.pump(left)
        return self.inbox.get(kind, {})

    def stop(self) -> dict[int, Any]:
        """Ask every worker for what it has; give them a few seconds, then stop waiting."""
        self.send("stop")
        with contextlib.suppress(RunAborted):
            self.gather("result", until=time.monotonic() + 8)
        return self.inbox.get("result", {})

    def reap(self) -> None:
        for p in self.procs:
            p.join(2)
            if p.is_alive():
                p.terminate()
                p.join(2)
            if p.is_alive():
                p.kill()
                p.join(2)
        for pipe in self.pipes:
            pipe.close()


def run_once(opts: argparse.Namespace, target: str) -> dict[str, Any]:
    """One target, one workload, bounded by --timeout from start to report."""
    log = Logger(opts.quiet)
    t_begin = time.monotonic()
    deadline = t_begin + opts.timeout
    server = Fleet.make(
        target,
        opts.server_arg if target == "webchat" else [],
        nodes=opts.nodes,
        keep_limits=opts.keep_limits,
        python=opts.server_python,
        cpus=opts.server_cpu_set,
        pin_nodes=opts.pin_nodes,
    )
    try:
        return measure(opts, target, server, deadline, log)
    finally:
        server.cleanup(keep_log=opts.keep_logs)


def measure(
    opts: argparse.Namespace, target: str, server: Fleet, deadline: float, log: Logger
) -> dict[str, Any]:
    """The phases of one run; the caller removes the server's scratch files afterwards."""
    r: dict[str, Any] = {"target": target, "phase": "start", "notes": []}
    crew = Crew(server, deadline, log)
    marks: dict[str, Any] = {}
    try:
        if server.redis is not None:
            log(f"[{target}] starting redis-server on port {server.redis.port}")
        for s in server.nodes:
            log(f"[{target}] starting: {' '.join(s.argv)}")
        server.start(deadline)
        server.wait_ready(min(deadline, time.monotonic() + 30))
        r["affinity"] = pin_generator(opts, server)
        marks["base"] = server.sample()
        cfgs = plan(opts, target, server, deadline)
        r["phase"] = "connect"
        marks["t_connect"] = time.monotonic()
        marks["cpu_connect0"] = (server.sample(), own_cpu())
        crew.start(cfgs)
        budget = opts.connect_timeout or 0.6 * opts.timeout
        try:
            crew.gather("connected", until=min(deadline, marks["t_connect"] + budget))
        except RunAborted:
            if time.monotonic() >= deadline:
                raise
            log(f"[{target}] connect budget of {budget:g} s spent; going on with who joined")
            r["notes"].append(f"connect budget of {budget:g} s ran out")
            crew.send("stop_connect")
        connected = crew.gather("connected")
        r["connect"] = merge_connect(connected)
        marks["t_connected"] = time.monotonic()
        log(
            f"[{target}] connected {r['connect']['ok']} ({r['connect']['failed']} failed)"
            f" in {marks['t_connected'] - marks['t_connect']:.2f} s"
        )
        if opts.stall:
            crew.send("stall", only=0)
            r["stall_connect"] = merge_connect(crew.gather("stalled", count=1))
        r["phase"] = "barrier"
        crew.send("barrier", r["connect"]["ok"])
        synced = crew.gather("synced")
        marks["t_synced"] = time.monotonic()
        counted = max(p.get("presence_users", 0) for p in synced.values())
        if opts.settle_presence and counted < r["connect"]["ok"]:
            r["notes"].append(
                f"no presence update counted everyone ({counted:,} of {r['connect']['ok']:,})"
                " before the barrier stopped waiting: the send phase may hold the last one"
            )
        marks["cpu_connect1"] = (server.sample(), own_cpu())
        r["connect_peak"] = {"rss_kb": crew.peak.rss_kb, "threads": crew.peak.threads}
        marks["idle"] = server.sample()
        r["connect"]["settled_s"] = round(marks["t_synced"] - marks["t_connected"], 2)
        log(f"[{target}] settled in {r['connect']['settled_s']:.2f} s; sending")
        crew.peak = Peak()
        r["phase"] = "send"
        marks["fleet_go"] = server.snapshot()
        t_go = time.monotonic_ns() + 20_000_000
        marks["go"] = (server.sample(), own_cpu(), machine_cpu(), time.monotonic())
        crew.peak.add(marks["go"][0])
        crew.send("go", (t_go, go_rate(opts, connected)))
        sent = crew.gather("sent")
        merged_sent: dict[int, int] = {}
        for payload in sent.values():
            merged_sent.update(payload["sent"])
        crew.send("all_sent", merged_sent)
        r["phase"] = "drain"
        crew.gather("result")
        r["phase"] = "done"
        close_books(r, marks, crew, server)  # before the server goes: its last samples
        if opts.sigterm_connected:
            r["sigterm"] = sigterm_connected(crew, server, log)
    except (RunAborted, TimeoutError, RuntimeError) as exc:
        r["notes"].append(f"stopped in phase {r['phase']}: {exc}")
        r["timed_out"] = time.monotonic() >= deadline
        log(f"[{target}] {r['notes'][-1]}")
        if crew.pipes:
            crew.stop()
    finally:
        close_books(r, marks, crew, server)
        server.stop()  # with the clients still connected, as in real life (once only)
        crew.send("bye")
        crew.reap()
        log(
            f"[{target}] server stopped in {server.stop_s:.1f} s"
            + (" (killed)" if server.killed else "")
        )
    results = crew.inbox.get("result", {})
    build_report(r, opts, target, server, marks, results, cfgs_count=len(crew.pipes))
    return r


def close_books(r: dict[str, Any], marks: dict[str, Any], crew: Crew, server: Fleet) -> None:
    """The end-of-run samples (CPU, peaks), once: after the drain, or when a run stops."""
    if "end" in marks:
        return
    if r["phase"] in ("connect", "barrier"):
        r["connect_peak"] = {"rss_kb": crew.peak.rss_kb, "threads": crew.peak.threads}
        crew.peak = Peak()
    marks["end"] = (server.sample(), own_cpu(), machine_cpu(), time.monotonic())
    if "fleet_go" in marks:
        marks["fleet_end"] = server.snapshot()
    if r["phase"] in ("send", "drain", "done"):
        crew.peak.add(marks["end"][0])
        r["send_peak"] = {"rss_kb": crew.peak.rss_kb, "threads": crew.peak.threads}


def pin_generator(opts: argparse.Namespace, server: Fleet) -> dict[str, Any]:
    """--generator-cpus: this coordinator runs there from now on (its workers too, each
    pins itself); the server's CPUs were set before it started. Both as the kernel says.

    --generator-idle: from now on this coordinator, and the workers it starts, run only
    when no server thread wants the CPU (SCHED_IDLE; the server started before, as usual).
    Niceness 19 was not enough: each time the generator woke on a server's core it took
    the core from the server for a moment, and a node sharing its core with the generator
    fanned out in 107-150 ms against 55-106 ms. Latency up to arrival (--arrival-times)
    does not wait for the generator's reads, so sharing the server's cores this way costs
    the figures nothing but read lag, which is reported."""
    gen = sorted(opts.generator_cpu_set)
    own = pin(0, opts.generator_cpu_set) if gen else affinity(0)
    if opts.generator_idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    return {
        "server_cpus": sorted(opts.server_cpu_set) or None,
        "generator_cpus": gen or None,
        "generator_idle": os.sched_getscheduler(0) == os.SCHED_IDLE,
        "server_actual": server.affinity(),
        "coordinator_actual": own,
    }


def sigterm_connected(crew: Crew, server: Fleet, log: Logger) -> dict[str, Any]:
    """--sigterm-connected: SIGTERM with every client still connected and reading.

    The workers put every joined client's socket back in their selectors and say
    "watching"; only then does the server get SIGTERM (``Fleet.stop``: SIGKILL after
    SIGTERM_GRACE). Each worker reads until every connection has ended and reports, per
    client, whether its goodbye came before the end. The time is SIGTERM to the exit.
    """
    crew.final = "goodbyes"
    t0 = time.monotonic()
    watch_until = time.monotonic_ns() + int((SIGTERM_GRACE + WATCH_AFTER_EXIT) * 1e9)
    crew.send("watch", watch_until)
    watching = crew.gather("watching", until=t0 + 30)
    connected = sum(p["connected"] for p in watching.values())
    log(f"[{server.target}] SIGTERM with {connected:,} clients connected")
    crew.server_may_exit = True
    server.stop(SIGTERM_GRACE)
    log(
        f"[{server.target}] server gone {server.stop_s:.2f} s after SIGTERM"
        + (" (killed)" if server.killed else "")
    )
    parts = crew.gather("goodbyes", until=time.monotonic() + WATCH_AFTER_EXIT + 5)
    return sigterm_report(list(parts.values()), server)


def sigterm_report(parts: list[dict[str, Any]], server: Fleet) -> dict[str, Any]:
    """Goodbyes per transport, how the connections ended and when, what they were told."""
    out: dict[str, Any] = {"connected": 0, "goodbye": 0}
    for kind in ("tcp", "ws"):
        c = sum(p["connected"][kind] for p in parts)
        g = sum(p["goodbye"][kind] for p in parts)
        out[kind] = {"connected": c, "goodbye": g}
        out["connected"] += c
        out["goodbye"] += g
    out["without_goodbye"] = out["connected"] - out["goodbye"]
    out["stop_s"] = round(server.stop_s, 2)
    out["killed_after_sigterm"] = server.killed
    out["exit_code"] = server.exit_code
    ends: dict[str, int] = {}
    words: dict[str, int] = {}
    for p in parts:
        for k, v in p["ends"].items():
            ends[k] = ends.get(k, 0) + v
        for k, v in p["words"].items():
            words[k] = words.get(k, 0) + v
    out["ends"] = ends
    out["words"] = dict(sorted(words.items(), key=lambda kv: -kv[1])[:5])
    out["samples_without_goodbye"] = [s for p in parts for s in p["without"]][:5]
    t0 = server.sigterm_ns
    after = sorted((t - t0) / 1e9 for p in parts for t in p["end_ns"])
    if after and t0:
        out["ended_after_sigterm_s"] = {
            "p50": round(after[len(after) // 2], 3),
            "p99": round(after[min(len(after) - 1, int(0.99 * len(after)))], 3),
            "max": round(after[-1], 3),
        }
    return out


def room_members(parts: dict[int, Any]) -> dict[str, int]:
    """Clients that joined, per room (everyone in #lobby without --rooms)."""
    members: dict[str, int] = {}
    for p in parts.values():
        for room, k in p.get("rooms_ok", {}).items():
            members[room] = members.get(room, 0) + k
    return members


def go_rate(opts: argparse.Namespace, connected: dict[int, Any]) -> float:
    """Messages/s per sender that offer --rate deliveries/s to the clients that joined.

    Each message of sender s is delivered to the other members of its room, so one
    round of one message from every sender is sum(members(room(s)) - 1) deliveries.
    """
    senders = [i for p in connected.values() for i in p.get("senders_ok", [])]
    if not opts.rate or not senders:
        return 0.0
    members = room_members(connected)
    per_round = sum(max(1, members.get(wire.room_of(i, opts.rooms), 0) - 1) for i in senders)
    return float(opts.rate / per_round)


def merge_connect(parts: dict[int, Any]) -> dict[str, Any]:
    times = sorted(t for p in parts.values() for t in p["connect_ns"])
    errors: dict[str, int] = {}
    for p in parts.values():
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    firsts = [p["first_connect_ns"] for p in parts.values() if p.get("first_connect_ns")]
    lasts = [p["last_joined_ns"] for p in parts.values() if p.get("last_joined_ns")]
    return {
        "ok": sum(p["ok"] for p in parts.values()),
        "failed": sum(p["failed"] for p in parts.values()),
        "errors": errors,
        "p50_ms": round(times[len(times) // 2] / 1e6, 2) if times else None,
        "max_ms": round(times[-1] / 1e6, 2) if times else None,
        # The join storm's length: the first connect() to the last welcome, any worker.
        "all_joined_s": round((max(lasts) - min(firsts)) / 1e9, 2) if firsts and lasts else None,
    }


# ----- the report --------------------------------------------------------------------------


def percentile(hist: list[tuple[int, int]], total: int, q: float) -> float | None:
    """The bucket at quantile ``q`` of a sorted (lower bound ns, count) histogram, in ms."""
    if total == 0:
        return None
    rank = max(1, int(q * total + 0.999999))
    seen = 0
    for lower, count in hist:
        seen += count
        if seen >= rank:
            return lower / 1e6
    return hist[-1][0] / 1e6


def time_of(timeline: list[tuple[int, int]], k: int) -> int | None:
    """When the observer had received k messages, from its (count, time) curve."""
    for got, t in timeline:
        if got >= k:
            return t
    return None


def build_report(
    r: dict[str, Any],
    opts: argparse.Namespace,
    target: str,
    server: Fleet,
    marks: dict[str, Any],
    results: dict[int, Any],
    cfgs_count: int,
) -> None:
    n = opts.clients
    kinds = transports(opts.mix, n)
    r["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    r["machine"] = {"cores": os.cpu_count(), "nofile": os.sysconf("SC_OPEN_MAX")}
    r["workload"] = {
        "clients": n,
        "tcp": kinds.count("tcp"),
        "ws": kinds.count("ws"),
        "senders": min(opts.senders, n),
        "messages": opts.messages,
        "size": opts.size,
        "rate_deliveries_per_s": opts.rate or None,
        "procs": cfgs_count,
        "stall": opts.stall,
        "rooms": opts.rooms,
        "nodes": opts.nodes,
    }
    r["server"] = server_report(server, marks, r)
    if "affinity" in r:
        r["affinity"]["workers_actual"] = [p.get("cpus") for p in results.values()]
    if not results:
        r["server"]["rss_per_conn_kb"] = None
        r["notes"].append("no worker reported results")
        return
    res = list(results.values())
    if "connect" not in r:
        r["connect"] = merge_connect({i: p["connect"] for i, p in results.items()})
    members = room_members({i: p["connect"] for i, p in results.items()})
    sent: dict[int, int] = {}
    for p in res:
        sent.update(p["sent"])
    total_sent = sum(sent.values())
    # Each message is owed once to every other member of its room (with --rooms 0,
    # everyone is in #lobby: joined - 1).
    expected = sum(
        v * max(0, members.get(wire.room_of(i, opts.rooms), 0) - 1) for i, v in sent.items()
    )
    delivered = sum(p["delivered"] for p in res)
    echoing = {i for i in sent if target == "seed" or (target == "webchat" and kinds[i] == "ws")}
    echo_expected = sum(sent[i] for i in echoing)
    echoes = sum(p["echoes"] for p in res)
    first_send = min((p["first_send"] for p in res if p["first_send"]), default=0)
    last_send = max((p["last_send"] for p in res), default=0)
    last_recv = max((p["last_recv"] for p in res), default=0)
    corrupt_samples = [s for p in res for s in p["corrupt_samples"]][:5]
    r["deliveries"] = {
        "messages_sent": total_sent,
        "expected": expected,
        "delivered": delivered,
        "missing": max(0, expected - delivered),
        "duplicates": sum(p["dups"] for p in res),
        "reordered": sum(p["reorders"] for p in res),
        "corrupt_lines": sum(p["corrupt"] for p in res),
        "corrupt_samples": corrupt_samples,
        "unattributed_lines": sum(p["unattributed"] for p in res),
        "echoes_expected": echo_expected,
        "echoes": echoes,
        "echoes_missing": max(0, echo_expected - echoes),
        "echo_duplicates": sum(p["echo_dups"] for p in res),
        "unexpected_echoes": sum(p["unexpected_echoes"] for p in res),
        "wrong_room": sum(p.get("wrong_room", 0) for p in res),
        "wrong_room_samples": [s for p in res for s in p.get("wrong_room_samples", [])][:5],
        "tcp_chunks_fast_path": sum(p["fast_chunks"] for p in res),
        "tcp_chunks_line_by_line": sum(p["slow_chunks"] for p in res),
    }
    span = (last_recv - first_send) / 1e9 if last_recv > first_send else 0.0
    send_span = (last_send - first_send) / 1e9 if last_send > first_send else 0.0
    r["throughput"] = {
        "deliveries_per_s": round(delivered / span) if span else None,
        "seconds": round(span, 3),
        "messages_per_s_in": round(total_sent / send_span) if send_span else None,
        "send_seconds": round(send_span, 3),
        "max_send_lag_ms": round(max(p["max_send_lag"] for p in res) / 1e6, 2),
    }
    # "hist" holds the deliveries from a sender on the receiver's own node (all of them
    # with one node), "hist_cross" those from a sender on another node.
    r["latency_ms"] = latency(res, ("hist", "lat_max"), ("hist_cross", "lat_max_cross"))
    r["latency_up_to"] = "arrival" if opts.arrival_times else "read"
    if opts.arrival_times:
        r["read_lag_ms"] = latency(res, ("hist_read_lag", "read_lag_max"))
    if opts.nodes > 1:
        r["latency_same_node_ms"] = latency(res, ("hist", "lat_max"))
        r["latency_cross_node_ms"] = latency(res, ("hist_cross", "lat_max_cross"))
    r["cpu"] = cpu_report(marks, res, redis_cpu(marks))
    if server.redis is not None:
        r["cluster"] = cluster_report(server, marks, r)
    closed = [c for p in res for c in p["closed"]]
    reasons: dict[str, int] = {}
    for _nick, _t, why in closed:
        key = why.split(":", 1)[0] if why.startswith("too slow") else why
        reasons[key[:100]] = reasons.get(key[:100], 0) + 1
    r["cut_off"] = {"clients": len(closed), "reasons": reasons}
    r["stalls"] = stall_report(res, first_send, outbox_messages(opts))
    stalled = [p for p in res if p["stopped"]]
    if stalled:
        r["notes"].append(f"{len(stalled)} worker(s) were stopped before they were done")


def latency(res: list[dict[str, Any]], *parts: tuple[str, str]) -> dict[str, Any]:
    """Percentiles over the workers' histograms named in ``parts`` (histogram, max)."""
    hist: dict[int, int] = {}
    top = 0
    for p in res:
        for name, top_name in parts:
            for k, v in p.get(name, {}).items():
                hist[k] = hist.get(k, 0) + v
            top = max(top, p.get(top_name, 0))
    items = sorted(hist.items())
    count = sum(hist.values())
    return {
        "count": count,
        "p50": percentile(items, count, 0.50),
        "p90": percentile(items, count, 0.90),
        "p99": percentile(items, count, 0.99),
        "p999": percentile(items, count, 0.999),
        "max": round(top / 1e6, 3) if count else None,
    }


def cluster_report(server: Fleet, marks: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    """--nodes N: each node's CPU, Redis's CPU and commands, and the stream's rate, over
    the send phase (the same window as the CPU line: go to the end of the drain)."""
    assert server.redis is not None
    out: dict[str, Any] = {
        "redis_port": server.redis.port,
        "redis_pid": server.redis.proc.pid if server.redis.proc else None,
        "redis_version": server.redis.version,
        "redis_stop_s": round(server.redis.stop_s, 2),
    }
    if "fleet_go" not in marks or "fleet_end" not in marks:
        return out
    (nodes0, redis0), (nodes1, redis1) = marks["fleet_go"], marks["fleet_end"]
    wall = max(1e-9, marks["end"][3] - marks["go"][3])
    out["nodes"] = [
        {
            "node": f"node{k}",
            "cores": round((b.cpu_s - a.cpu_s) / wall, 2),
            "rss_end_kb": b.rss_kb,
            "threads_end": b.threads,
        }
        for k, (a, b) in enumerate(zip(nodes0, nodes1, strict=True))
    ]
    redis_s = redis1.proc.cpu_s - redis0.proc.cpu_s
    out["redis_cpu_s"] = round(redis_s, 2)
    out["redis_cores"] = round(redis_s / wall, 2)
    out["redis_rss_end_kb"] = redis1.proc.rss_kb
    if redis0.commands is not None and redis1.commands is not None:
        out["redis_commands"] = redis1.commands - redis0.commands
        out["redis_commands_per_s"] = round(out["redis_commands"] / wall)
    calls = {k: v - redis0.calls.get(k, 0) for k, v in redis1.calls.items()}
    # Commands a script runs (XADD, INCRBY, ...) are counted as well as the EVALSHA.
    out["redis_calls"] = dict(
        sorted(((k, v) for k, v in calls.items() if v), key=lambda kv: -kv[1])
    )
    if redis0.events is not None and redis1.events is not None:
        out["stream_events_appended"] = redis1.events - redis0.events
    t = r.get("throughput", {})
    d = r.get("deliveries", {})
    if t.get("seconds"):
        # Every message went through the stream before any node delivered it, so the
        # messages over first send to last delivery is a floor on the stream's rate.
        out["stream_messages_per_s"] = round(d.get("messages_sent", 0) / t["seconds"])
    return out


def server_report(server: Fleet, marks: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    base: ProcSample | None = marks.get("base")
    idle: ProcSample | None = marks.get("idle")
    n = r.get("connect", {}).get("ok", 0) + r.get("stall_connect", {}).get("ok", 0)
    out: dict[str, Any] = {
        "pid_argv": server.argv,
        "rss_base_kb": base.rss_kb if base else None,
        "threads_base": base.threads if base else None,
        "rss_idle_kb": idle.rss_kb if idle else None,
        "threads_idle": idle.threads if idle else None,
        "rss_connect_peak_kb": r.get("connect_peak", {}).get("rss_kb"),
        "threads_connect_peak": r.get("connect_peak", {}).get("threads"),
        "rss_load_peak_kb": r.get("send_peak", {}).get("rss_kb"),
        "threads_load_peak": r.get("send_peak", {}).get("threads"),
        "rss_per_conn_kb": round((idle.rss_kb - base.rss_kb) / n, 1)
        if base and idle and n
        else None,
        "threads_per_conn": round((idle.threads - base.threads) / n, 3)
        if base and idle and n
        else None,
        "stop_s": round(server.stop_s, 2),
        "killed_after_sigterm": server.killed,
        "exit_code": server.exit_code,
        "log_problems": server.log_grep("Traceback", "Error", "ERROR", "Exception", "WARNING"),
    }
    c0, c1 = marks.get("cpu_connect0"), marks.get("cpu_connect1")
    if c0 and c1:
        out["connect_cpu_s"] = round(c1[0].cpu_s - c0[0].cpu_s, 2)
        out["connect_wall_s"] = round(marks["t_synced"] - marks["t_connect"], 2)
    return out


def redis_cpu(marks: dict[str, Any]) -> float:
    """Seconds of CPU our own redis-server used over the send phase (0 without one)."""
    go, end = marks.get("fleet_go"), marks.get("fleet_end")
    if not go or not end or go[1] is None or end[1] is None:
        return 0.0
    return float(end[1].proc.cpu_s - go[1].proc.cpu_s)


def cpu_report(
    marks: dict[str, Any], res: list[dict[str, Any]], redis_s: float = 0.0
) -> dict[str, Any]:
    """Generator CPU against server CPU over the send phase: who had the cores?
    With --nodes N, "server" is all the nodes together and Redis is counted apart."""
    if "go" not in marks:
        return {}
    s0, own0, m0, t0 = marks["go"]
    s1, own1, m1, t1 = marks["end"]
    wall = max(1e-9, t1 - t0)
    per_worker = [p["cpu"].get("end", 0) - p["cpu"].get("go", p["cpu"].get("end", 0)) for p in res]
    gen = sum(per_worker) + (own1 - own0)
    server = s1.cpu_s - s0.cpu_s
    busy = (m1[0] - m0[0]) / max(1e-9, m1[1] - m0[1])
    out = {
        "wall_s": round(wall, 2),
        "server_s": round(server, 2),
        "server_cores": round(server / wall, 2),
        "generator_s": round(gen, 2),
        "generator_cores": round(gen / wall, 2),
        "generator_busiest_process": round(max(per_worker, default=0) / wall, 2),
        "machine_busy": round(busy, 2),
        # Whatever else ran meanwhile (other processes on the machine): noise to know of.
        "other_cores": round(
            max(0.0, busy * (os.cpu_count() or 1) - (server + gen + redis_s) / wall), 2
        ),
    }
    if marks.get("fleet_go") and marks["fleet_go"][1] is not None:
        out["redis_cores"] = round(redis_s / wall, 2)
    return out


def outbox_messages(opts: argparse.Namespace) -> int:
    """How many benchmark messages fill webchat's outbox: events or bytes, whichever first."""
    limits = {"--outbox-max-events": OUTBOX_EVENTS, "--outbox-max-bytes": OUTBOX_BYTES}
    args = list(opts.server_arg)
    for i, arg in enumerate(args):
        name, _, value = arg.partition("=")
        if name in limits:
            with contextlib.suppress(ValueError, IndexError):
                limits[name] = int(value or args[i + 1])
    per_message = opts.size + JSON_OVERHEAD
    return min(limits["--outbox-max-events"], limits["--outbox-max-bytes"] // per_message)


def stall_report(res: list[dict[str, Any]], first_send: int, outbox: int) -> list[dict[str, Any]]:
    """When a stalled client was dropped, against when its outbox must have been full.

    It took messages until its kernel buffers filled (what we read from it at the end);
    the server's outbox holds ``outbox`` more. So the outbox was full when the others had
    received absorbed + outbox messages: one listener's arrival times give that moment.
    """
    leaves: dict[str, tuple[int, str]] = {}
    for p in res:
        for nick, (t, why) in p["leaves"].items():
            if nick not in leaves or t < leaves[nick][0]:
                leaves[nick] = (t, why)
    timeline: list[tuple[int, int]] = next((p["timeline"] for p in res if p["timeline"]), [])
    out = []
    for p in res:
        for s in p["stalls"]:
            item = dict(s)
            if s["nick"] in leaves:
                t, why = leaves[s["nick"]]
                item["left_after_s"] = round((t - first_send) / 1e9, 3) if first_send else None
                item["leave_reason"] = why
                absorbed = s.get("drained_messages", 0)
                t_full = time_of(timeline, absorbed + outbox)
                if t_full is not None and first_send:
                    item["outbox_full_after_s"] = round((t_full - first_send) / 1e9, 3)
                    item["cut_after_full_s"] = round((t - t_full) / 1e9, 3)
            if "state_change_ns" in s and first_send:
                item["socket_closed_after_s"] = round((s["state_change_ns"] - first_send) / 1e9, 3)
            item.pop("state_change_ns", None)
            out.append(item)
    return out


# ----- output ------------------------------------------------------------------------------


class Logger:
    """Progress on stderr, so stdout stays the report (or the JSON)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def _n(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def describe(r: dict[str, Any]) -> str:
    w = r.get("workload", {})
    rate = w.get("rate_deliveries_per_s")
    how = f"offered {rate:,} deliveries/s" if rate else "as fast as possible"
    return (
        f"{r['target']}: {w.get('clients')} clients ({w.get('tcp')} TCP, {w.get('ws')} WS),"
        f" {w.get('senders')} senders x {w.get('messages')} messages x {w.get('size')} B, {how},"
        f" {w.get('procs')} generator process(es)"
        + (f", {w.get('stall')} stalled" if w.get("stall") else "")
        + (f", in {w.get('rooms')} rooms" if w.get("rooms") else "")
        + (f", on {w.get('nodes')} nodes through Redis" if (w.get("nodes") or 1) > 1 else "")
    )


def human(r: dict[str, Any]) -> str:
    lines = [describe(r)]

    def row(label: str, text: str) -> None:
        lines.append(f"  {label:<15}{text}")

    c = r.get("connect")
    if c:
        srv = r.get("server", {})
        row(
            "connect",
            f"{c['ok']:,} ok, {c['failed']:,} failed"
            + (f" {c['errors']}" if c["errors"] else "")
            + f"; handshake p50 {_n(c['p50_ms'], ' ms')}, max {_n(c['max_ms'], ' ms')};"
            + f" all joined {_n(c.get('all_joined_s'), ' s')} after the first connect;"
            + f" connect+settle {_n(srv.get('connect_wall_s'), ' s')}"
            + f" using {_n(srv.get('connect_cpu_s'), ' s')} server CPU",
        )
    d = r.get("deliveries")
    if d:
        row(
            "deliveries",
            f"{d['delivered']:,} of {d['expected']:,} expected ({d['messages_sent']:,} messages"
            f" sent); missing {d['missing']:,}, duplicates {d['duplicates']:,},"
            f" reordered {d['reordered']:,}, corrupt lines {d['corrupt_lines']:,}",
        )
        if d["unattributed_lines"]:
            row(
                "",
                f"({d['unattributed_lines']:,} of the corrupt lines are a whole payload without"
                " its nick: merged into the line before)",
            )
        if d["echoes_expected"] or d["unexpected_echoes"]:
            row(
                "own echoes",
                f"{d['echoes']:,} of {d['echoes_expected']:,} (not counted as deliveries);"
                f" unexpected {d['unexpected_echoes']:,}",
            )
        for s in d["corrupt_samples"][:3]:
            row("  e.g.", repr(s)[:110])
        if r["workload"].get("rooms") or d.get("wrong_room"):
            row(
                "rooms",
                f"{r['workload'].get('rooms') or 1} rooms; deliveries to a non-member or"
                f" into the wrong room: {d.get('wrong_room', 0):,}",
            )
            for s in d.get("wrong_room_samples", [])[:3]:
                row("  e.g.", repr(s)[:110])
    t = r.get("throughput")
    if t:
        row(
            "throughput",
            f"{_n(t['deliveries_per_s'])} deliveries/s over {t['seconds']} s"
            f" (first send to last receive); {_n(t['messages_per_s_in'])} messages/s sent"
            + (
                f"; max send lag {t['max_send_lag_ms']} ms"
                if r["workload"]["rate_deliveries_per_s"]
                else ""
            ),
        )
    notes = {
        "latency_ms": "  (up to arrival in the socket)" if r.get("read_lag_ms") else "",
        "read_lag_ms": "  (arrival to read, per read)",
    }
    for label, key in (
        ("latency", "latency_ms"),
        ("  same node", "latency_same_node_ms"),
        ("  cross node", "latency_cross_node_ms"),
        ("  read lag", "read_lag_ms"),
    ):
        lat = r.get(key)
        if lat and lat["count"]:
            row(
                label,
                f"p50 {_n(lat['p50'], ' ms')}  p90 {_n(lat['p90'], ' ms')}"
                f"  p99 {_n(lat['p99'], ' ms')}  p99.9 {_n(lat['p999'], ' ms')}"
                f"  max {_n(lat['max'], ' ms')}"
                + notes.get(key, f"  ({lat['count']:,} deliveries)"),
            )
    cl = r.get("cluster")
    if cl and "nodes" in cl:
        row(
            "stream",
            f"{_n(cl.get('stream_messages_per_s'))} messages/s through the Redis stream"
            f" (messages sent / first send to last delivery);"
            f" {_n(cl.get('stream_events_appended'))} events appended while sending",
        )
        row(
            "redis",
            f"{cl['redis_cores']} cores ({cl['redis_cpu_s']} s CPU),"
            f" {_n(cl.get('redis_commands_per_s'))} commands/s"
            f" ({_n(cl.get('redis_commands'))} commands), RSS {_n(cl['redis_rss_end_kb'], ' KB')}"
            f" at the end; redis-server {cl['redis_version']}, port {cl['redis_port']}",
        )
        top = list(cl.get("redis_calls", {}).items())[:6]
        if top:
            row(
                "", "by command (scripts' own included): " + ", ".join(f"{k} {v:,}" for k, v in top)
            )
        row(
            "nodes",
            "; ".join(
                f"{n['node']} {n['cores']} cores, RSS {_n(n['rss_end_kb'], ' KB')}"
                for n in cl["nodes"]
            )
            + " (CPU over the send phase)",
        )
    s = r.get("server", {})
    if s.get("rss_base_kb") is not None:
        row(
            "server RSS",
            f"{_n(s['rss_base_kb'], ' KB')} before clients, {_n(s['rss_idle_kb'], ' KB')} idle"
            f" ({_n(s['rss_per_conn_kb'], ' KB')} per connection), peak"
            f" {_n(s['rss_connect_peak_kb'], ' KB')} connecting, {_n(s['rss_load_peak_kb'], ' KB')}"
            " sending",
        )
        row(
            "server threads",
            f"{_n(s['threads_base'])} before clients, {_n(s['threads_idle'])} idle"
            f" ({_n(s.get('threads_per_conn'))} per connection), peak"
            f" {_n(s['threads_load_peak'])} sending",
        )
    cpu = r.get("cpu")
    if cpu:
        row(
            "CPU (sending)",
            f"over {cpu['wall_s']} s: server {cpu['server_cores']} cores"
            + (f" + redis {cpu['redis_cores']}" if "redis_cores" in cpu else "")
            + ", generator"
            f" {cpu['generator_cores']} cores (busiest process"
            f" {cpu['generator_busiest_process']:.0%} of a core);"
            f" machine {cpu['machine_busy']:.0%} busy of {r['machine']['cores']} cores"
            f" ({cpu.get('other_cores', 0)} cores by other processes)",
        )
    co = r.get("cut_off")
    if co:
        row("cut off", "none" if not co["clients"] else f"{co['clients']} clients: {co['reasons']}")
    for st in r.get("stalls", []):
        row("stalled", stall_line(st))
    row(
        "server stop",
        f"{_n(s.get('stop_s'), ' s')} after SIGTERM"
        + (" (then SIGKILL)" if s.get("killed_after_sigterm") else "")
        + f", exit code {s.get('exit_code')}"
        + (" (with every client connected and reading)" if r.get("sigterm") else ""),
    )
    sg = r.get("sigterm")
    if sg:
        ended = sg.get("ended_after_sigterm_s", {})
        row(
            "goodbyes",
            f"{sg['goodbye']:,} of {sg['connected']:,} connected at SIGTERM got theirs before"
            f" the end (TCP {sg['tcp']['goodbye']:,}/{sg['tcp']['connected']:,},"
            f" WS {sg['ws']['goodbye']:,}/{sg['ws']['connected']:,}); connections ended"
            f" p50 {_n(ended.get('p50'), ' s')}, max {_n(ended.get('max'), ' s')} after SIGTERM;"
            f" {sg['ends']}",
        )
        for words, k in sg["words"].items():
            row("  last words", f"{k:,} x {words!r}"[:120])
        for sample in sg["samples_without_goodbye"][:3]:
            row("  without", sample[:120])
    af = r.get("affinity")
    if af and (af.get("server_cpus") or af.get("generator_cpus")):
        row(
            "CPUs",
            f"server on {af['server_actual']}, generator on {af['coordinator_actual']}"
            + (" (SCHED_IDLE)" if af.get("generator_idle") else "")
            + f" (asked: --server-cpus {af['server_cpus']}, --generator-cpus"
            f" {af['generator_cpus']})",
        )
    for p in s.get("log_problems", [])[:3]:
        row("server log", p[:120])
    for note in r.get("notes", []):
        row("note", note.splitlines()[0][:200] if note else "")
    verdict = bottleneck_verdict(r)
    if verdict:
        row("generator", verdict)
    return "\n".join(lines)


def stall_line(st: dict[str, Any]) -> str:
    text = f"{st['nick']} ({st['via']}): "
    if "left_after_s" in st:
        text += f"dropped from the chat {st['left_after_s']} s after sending began"
        if "cut_after_full_s" in st:
            text += (
                f" (outbox est. full at {st['outbox_full_after_s']} s,"
                f" so {st['cut_after_full_s']} s later)"
            )
        text += f", reason {st.get('leave_reason')!r}"
    else:
        text += "never dropped from the chat"
    if "socket_closed_after_s" in st:
        text += f"; socket {st.get('state_change')} at {st['socket_closed_after_s']} s"
    if "end" in st:
        text += f"; read at the end: {st['end']} after {st.get('drained_bytes', 0):,} bytes"
    if st.get("last_words"):
        text += f", last words {st['last_words'][:80]!r}"
    return text


def bottleneck_verdict(r: dict[str, Any]) -> str:
    cpu = r.get("cpu")
    if not cpu:
        return ""
    busiest = cpu["generator_busiest_process"]
    if busiest > 0.85:
        return (
            f"WARNING: a generator process was {busiest:.0%} busy; it may be the bottleneck"
            " (try --procs 2)"
        )
    if cpu["machine_busy"] > 0.9:
        return "the machine was saturated: compare server and generator cores above"
    return f"had headroom (busiest process {busiest:.0%} of a core)"


def compare_table(reports: list[dict[str, Any]]) -> str:
    """Side by side, with each figure's ratio to webchat's."""
    base = reports[0]

    def get(r: dict[str, Any], path: str) -> Any:
        cur: Any = r
        for part in path.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return None
            cur = cur[part]
        return cur

    rows = [
        ("deliveries/s", "throughput.deliveries_per_s"),
        ("delivered", "deliveries.delivered"),
        ("missing", "deliveries.missing"),
        ("duplicates", "deliveries.duplicates"),
        ("reordered", "deliveries.reordered"),
        ("corrupt lines", "deliveries.corrupt_lines"),
        ("wrong room", "deliveries.wrong_room"),
        ("latency p50 ms", "latency_ms.p50"),
        ("latency p99 ms", "latency_ms.p99"),
        ("latency max ms", "latency_ms.max"),
        ("RSS idle KB", "server.rss_idle_kb"),
        ("RSS/conn KB", "server.rss_per_conn_kb"),
        ("threads idle", "server.threads_idle"),
        ("server cores", "cpu.server_cores"),
        ("generator cores", "cpu.generator_cores"),
    ]
    head = f"{'':<17}" + "".join(f"{r['target']:>22}" for r in reports)
    out = [describe(base).split(": ", 1)[1], head]
    for label, path in rows:
        cells = []
        b = get(base, path)
        for r in reports:
            v = get(r, path)
            cell = _n(v)
            if r is not base and isinstance(v, int | float) and isinstance(b, int | float) and b:
                cell += f" ({v / b:.2f}x)"
            cells.append(f"{cell:>22}")
        out.append(f"{label:<17}" + "".join(cells))
    for r in reports:
        for note in r.get("notes", []):
            out.append(f"{r['target']}: {note.splitlines()[0][:200]}")
    return "\n".join(out)


# ----- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description="Load-test webchat (or a reference server) with many TCP/WebSocket clients.",
        epilog="See benchmarks/README.md for what each figure means.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--target", choices=TARGETS, default="webchat", help="server to test")
    p.add_argument("--compare", action="store_true", help="run webchat, seed and miniircd in turn")
    p.add_argument("--clients", type=int, default=100, help="receiving clients (N)")
    p.add_argument("--mix", choices=("tcp", "ws", "mixed"), default="tcp", help="transports")
    p.add_argument("--senders", type=int, default=10, help="clients that also send (S)")
    p.add_argument("--messages", type=int, default=1000, help="messages per sender (M)")
    p.add_argument("--size", type=int, default=64, help="message text size in bytes (B)")
    p.add_argument(
        "--rate",
        type=float,
        default=0,
        help="offered load in deliveries/s (messages/s x (N-1)); 0: as fast as possible",
    )
    p.add_argument(
        "--rooms",
        type=int,
        default=0,
        help="spread clients over R rooms #bench-0..#bench-(R-1) (client i in room i %% R);"
        " each sender posts into its room only; 0: everyone in #lobby",
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="N webchat nodes sharing one chat through a redis-server started for the run"
        " (--redis-url); clients alternate over the nodes; 1: one process, no Redis",
    )
    p.add_argument("--procs", type=int, default=1, help="generator worker processes (K)")
    p.add_argument("--stall", type=int, default=0, help="extra clients that join and never read")
    p.add_argument("--stall-rcvbuf", type=int, default=4096, help="SO_RCVBUF of stalled clients")
    p.add_argument("--timeout", type=float, default=120, help="seconds for a whole run")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=0,
        help="seconds for connecting, then go on with who joined (0: 60%% of --timeout)",
    )
    p.add_argument("--drain", type=float, default=5, help="seconds without progress that end a run")
    p.add_argument(
        "--settle-presence",
        action="store_true",
        help="the join storm is over only once a crowded room's presence update counts"
        " everyone who joined (the server gathers joins above 1000 people, every 10 s)",
    )
    p.add_argument(
        "--settle-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="with --settle-presence, also wait until no presence update came for S seconds:"
        " in a cluster each node sends its own arrivals' update, on its own clock, so one"
        " that counts everyone can come before another node's last",
    )
    p.add_argument(
        "--arrival-times",
        action="store_true",
        help="latency up to each message's arrival in its client's socket (the kernel's"
        " receive stamp), not up to this generator reading it; the read lag is reported"
        " beside it. For crowds, where one generator core reads each message 10,000 times",
    )
    p.add_argument("--connect-concurrency", type=int, default=64, help="handshakes in flight")
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra webchat flag, as --server-arg=--outbox-max-events=8192 (repeatable)",
    )
    p.add_argument(
        "--server-python",
        metavar="PATH",
        default="",
        help="run webchat as PATH -m webchat (e.g. another checkout's .venv/bin/python);"
        " default: the webchat command next to this Python",
    )
    p.add_argument(
        "--keep-limits",
        action="store_true",
        help="leave webchat's per-connection rate limit and per-address cap on",
    )
    p.add_argument(
        "--server-cpus",
        metavar="LIST",
        default="",
        help="CPUs the server (every node, and Redis) runs on, as taskset -c: 0 or 0,2 or 0-3;"
        " default: any",
    )
    p.add_argument(
        "--generator-cpus",
        metavar="LIST",
        default="",
        help="CPUs the generator (coordinator and workers) runs on; default: any",
    )
    p.add_argument(
        "--pin-nodes",
        action="store_true",
        help="with --nodes: node k runs on the k-th CPU of --server-cpus alone (in turn);"
        " Redis on all of them",
    )
    p.add_argument(
        "--generator-idle",
        action="store_true",
        help="the generator runs under SCHED_IDLE once the server has started: on CPUs it"
        " shares with the server, only when no server thread wants them",
    )
    p.add_argument(
        "--sigterm-connected",
        action="store_true",
        help="after the drain, keep every client connected and reading, SIGTERM the server,"
        " and count the clients that got their goodbye before their connection ended",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--keep-logs", action="store_true", help="keep the server's log file")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def check(opts: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    try:
        opts.server_cpu_set = parse_cpus(opts.server_cpus)
        opts.generator_cpu_set = parse_cpus(opts.generator_cpus)
    except ValueError as exc:
        p.error(f"--server-cpus/--generator-cpus: {exc}")
    if opts.clients < 2:
        p.error("--clients must be at least 2")
    if opts.pin_nodes and (opts.nodes < 2 or not opts.server_cpu_set):
        p.error("--pin-nodes needs --nodes 2 or more and --server-cpus")
    if not 0 <= opts.senders <= opts.clients:
        p.error("--senders must be between 0 and --clients")
    if opts.clients > 99_999:
        p.error("--clients is at most 99999 (five-digit client ids)")
    try:
        wire.padding(opts.size)
    except ValueError as exc:
        p.error(str(exc))
    if opts.messages < 1 or opts.messages > 99_999_999:
        p.error("--messages must be between 1 and 99999999")
    targets = TARGETS if opts.compare else (opts.target,)
    if opts.nodes < 1 or opts.nodes > 16:
        p.error("--nodes must be between 1 and 16")
    if opts.nodes > 1 and any(t != "webchat" for t in targets):
        p.error("--nodes is for webchat only (and not with --compare)")
    if opts.nodes > 1 and not shutil.which("redis-server") and not os.path.exists(REDIS):
        p.error(f"--nodes needs redis-server ({REDIS} or on PATH)")
    if opts.mix != "tcp" and any(t != "webchat" for t in targets):
        p.error("seed and miniircd speak TCP only: use --mix tcp with them (and with --compare)")
    if opts.rooms:
        if any(t != "webchat" for t in targets):
            p.error("--rooms is for webchat only (seed and miniircd have no rooms here)")
        if not 0 < opts.rooms <= min(opts.clients, 1000):
            p.error("--rooms must be between 0 and --clients (and at most 1000)")
        if opts.stall:
            p.error("--stall with --rooms is not supported (stalled clients stay in #lobby)")


def interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    check(opts, parser)
    raise_nofile()
    # A SIGTERM unwinds like Ctrl-C, so every run's finally stops its server and workers.
    signal.signal(signal.SIGTERM, interrupted)
    targets = list(TARGETS) if opts.compare else [opts.target]
    try:
        reports = [run_once(opts, t) for t in targets]
    except KeyboardInterrupt:
        print("loadgen: interrupted; servers and workers stopped", file=sys.stderr)
        return 130
    if opts.json:
        out: Any = reports if opts.compare else reports[0]
        print(json.dumps(out, indent=2, default=str))
    else:
        print("\n\n".join(human(r) for r in reports))
        if opts.compare:
            print("\n" + compare_table(reports))
    return 0 if all(r.get("phase") == "done" for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
