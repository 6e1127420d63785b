"""Issue 14, "ten thousand people on two cores", measured with one command.

    .venv/bin/python -m benchmarks.crowd                        # the whole set, ~2-4 minutes
    .venv/bin/python -m benchmarks.crowd --clients 2000 --storm 200   # a quick try
    .venv/bin/python -m benchmarks.crowd --json
    .venv/bin/python -m benchmarks.crowd --server-python /tmp/other/.venv/bin/python
    .venv/bin/python -m benchmarks.crowd --nodes 2              # one node on each core

Two parts, each its own process with its own server, one after the other, with the
server pinned to ``--server-cpus`` (0) and the generator to ``--generator-cpus`` (1):

1. the connect storm (``benchmarks.connections storm``): ``--storm`` connections at once
   from ``--storm-addresses`` loopback addresses, on the server's defaults;
2. the crowd (``benchmarks.loadgen``): ``--clients`` mixed TCP/WebSocket clients in
   #lobby, the join storm, paced messages at ``--rate`` deliveries/s, then SIGTERM with
   every client still connected and reading (``--sigterm-connected``).

Latency is measured up to each message's arrival in its client's socket (the kernel's
receive stamp, ``--arrival-times``): each message is read 10,000 times by one generator
core, about 19 µs a read, while a real client has a CPU of its own. How long the
generator took to read is printed beside it. Above 1000 clients (the server's default
--presence-batch-above) the sending starts once a presence update counts everyone
(``--settle-presence``): the update that ends a join storm is not steady state.

With ``--nodes N`` the crowd's server is N webchat nodes sharing the chat through a
redis-server started for the run, node k alone on the k-th CPU of ``--server-cpus``
(by default one CPU per node: 0,1 for two), and the generator runs on every CPU under
SCHED_IDLE (``--generator-idle``), so each node has its core first and the generator
takes what is left. Latency up to arrival does not wait for the generator's reads;
their lag is reported. Redis's memory is counted with the nodes'. The storm stays one
server.

Then one table puts each figure next to its target. Exit status: 0 if every target was
met, 1 if some was not, 2 if a part did not produce a report.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from webchat.settings import Settings

REPO = Path(__file__).resolve().parent.parent

# The targets of issue 14.
JOIN_S = 60.0  # every client joined within this long after the first connect
RSS_PER_CONN_KB = 64.0  # server RSS per idle connection, after the join storm settles
THREADS_PER_CONN = 1.0  # server threads per idle connection
P99_MS = 100.0  # delivery latency p99 at the offered rate
STORM_S = 10.0  # every storm connection has its prompt or welcome within this long
SIGTERM_S = 3.0  # SIGTERM to exit, with everyone connected
# The server's default --presence-batch-above: a bigger crowd hears of its arrivals in
# presence updates, and is settled once an update counts everyone (--settle-presence).
PRESENCE_BATCH_ABOVE = Settings.presence_batch_above
PRESENCE_INTERVAL = Settings.presence_interval


@dataclass
class Row:
    """One line of the table: a figure, what it came out as, its target, and the verdict
    (None: not measured, so neither met nor missed)."""

    figure: str
    measured: str
    target: str
    met: bool | None


def run_part(name: str, argv: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run one part as its own process (its stderr, the progress, goes straight through)
    and parse the JSON it prints; (None, why) if it produced none."""
    print(f"crowd: {name}: {' '.join(argv)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(
            argv, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"{name} did not finish within {timeout:g} s"
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return None, f"{name} exited {done.returncode} without a JSON report"
    if not isinstance(report, dict):
        return None, f"{name} printed JSON that is not a report"
    return report, ""


def resolve_layout(opts: argparse.Namespace) -> None:
    """Fill in the CPUs and the generator's priority left to their defaults, by node count."""
    everyone = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    if not opts.server_cpus:
        opts.server_cpus = "0" if opts.nodes == 1 else ",".join(map(str, range(opts.nodes)))
    if not opts.generator_cpus:
        opts.generator_cpus = "1" if opts.nodes == 1 else everyone
    if opts.generator_idle is None:
        opts.generator_idle = opts.nodes > 1


def storm_argv(opts: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.connections"]
    if opts.server_python:
        argv += ["--server-python", opts.server_python]
    argv += ["storm", "--clients", str(opts.storm), "--addresses", str(opts.storm_addresses)]
    argv += ["--wait", str(opts.storm_wait)]
    argv += ["--server-cpus", opts.server_cpus, "--generator-cpus", opts.generator_cpus]
    return [*argv, "--json"]


def load_argv(opts: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--clients", str(opts.clients)]
    argv += ["--mix", "mixed", "--senders", str(opts.senders), "--messages", str(opts.messages)]
    argv += ["--rate", f"{opts.rate:g}", "--timeout", f"{opts.timeout:g}"]
    argv += ["--connect-timeout", f"{opts.connect_timeout:g}"]
    argv += ["--connect-concurrency", str(opts.connect_concurrency)]
    argv += ["--server-cpus", opts.server_cpus, "--generator-cpus", opts.generator_cpus]
    argv += ["--sigterm-connected", "--arrival-times", "--json"]
    if opts.nodes > 1:
        argv += ["--nodes", str(opts.nodes), "--pin-nodes"]
    if opts.generator_idle:
        argv.append("--generator-idle")
    if opts.clients > PRESENCE_BATCH_ABOVE:
        argv.append("--settle-presence")
        if opts.nodes > 1:  # every node's last update, each on its own interval
            argv += ["--settle-quiet", f"{PRESENCE_INTERVAL + 1:g}"]
    if opts.server_python:
        argv += ["--server-python", opts.server_python]
    if opts.quiet:
        argv.append("--quiet")
    return argv


def _num(v: Any, fmt: str = ",.2f", unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def storm_rows(s: dict[str, Any] | None, opts: argparse.Namespace) -> list[Row]:
    target = f"all prompted/welcomed, last <= {STORM_S:g} s"
    if s is None:
        return [Row(f"storm: {opts.storm:,} connects at once", "no report", target, None)]
    pc = s["per_connect_ms"]
    last = s["last_served_s"]
    measured = (
        f"{s['served']:,}/{s['clients']:,} (TCP {s['tcp_prompted']['served']:,}, WS"
        f" {s['ws_welcomed']['served']:,}); last {_num(last, '.2f', ' s')}; per connect p50"
        f" {_num(pc['p50'], ',.0f', ' ms')}, p99 {_num(pc['p99'], ',.0f', ' ms')}"
    )
    if s["refused"]:
        measured += f"; refused {s['refused']:,}: {s['refused_reasons']}"
    if s["silent"]:
        measured += f"; silent {s['silent']:,}"
    met = s["served"] == s["clients"] and last is not None and last <= STORM_S
    return [
        Row(
            f"storm: {s['clients']:,} connects at once from {s['addresses']} addresses",
            measured,
            target,
            met,
        )
    ]


def load_rows(r: dict[str, Any] | None, opts: argparse.Namespace) -> list[Row]:
    if r is None:
        return [Row(f"crowd of {opts.clients:,}", "no report", "", None)]
    c = r.get("connect", {})
    srv = r.get("server", {})
    d = r.get("deliveries")
    lat = r.get("latency_ms", {})
    lag = r.get("read_lag_ms", {})
    thr = r.get("throughput", {})
    sg = r.get("sigterm")
    n = r.get("workload", {}).get("clients", opts.clients)
    rows = []
    joined = c.get("all_joined_s")
    rows.append(
        Row(
            f"{n:,} clients (half TCP, half WS) joined #lobby",
            f"{c.get('ok', 0):,}/{n:,} in {_num(joined, '.1f', ' s')} (first connect to last"
            f" welcome; every list complete {_num(c.get('settled_s'), '.1f', ' s')} later)"
            + (f"; failed {c['errors']}" if c.get("errors") else ""),
            f"all, <= {JOIN_S:g} s",
            c.get("ok") == n and joined is not None and joined <= JOIN_S,
        )
    )
    per_conn = srv.get("rss_per_conn_kb")
    detail = (
        f"({_num(srv.get('rss_idle_kb'), ',')} KB idle,"
        f" {_num(srv.get('rss_base_kb'), ',')} KB before clients)"
    )
    measured = f"{_num(per_conn, ',.1f', ' KB')} {detail}"
    cluster = r.get("cluster", {})
    redis_kb = cluster.get("redis_rss_end_kb")
    if per_conn is not None and redis_kb is not None:  # all of Redis, counted as theirs
        share = redis_kb / n
        measured = (
            f"{per_conn + share:,.1f} KB: {per_conn:,.1f} in {len(cluster['nodes'])} nodes"
            f" {detail}, {share:,.1f} in Redis ({redis_kb:,} KB)"
        )
        per_conn += share
    rows.append(
        Row(
            "server RSS per idle connection",
            measured,
            f"<= {RSS_PER_CONN_KB:g} KB",
            None if per_conn is None else per_conn <= RSS_PER_CONN_KB,
        )
    )
    tpc = srv.get("threads_per_conn")
    rows.append(
        Row(
            "server threads per idle connection",
            f"{_num(tpc, '.2f')} ({_num(srv.get('threads_idle'), ',')} threads idle,"
            f" {_num(srv.get('threads_base'), ',')} before clients)",
            f"<= {THREADS_PER_CONN:g}",
            None if tpc is None else tpc <= THREADS_PER_CONN,
        )
    )
    p99 = lat.get("p99") if lat.get("count") else None
    rows.append(
        Row(
            f"latency p99 at {opts.rate:,.0f} deliveries/s offered, up to arrival",
            f"{_num(p99, ',.1f', ' ms')} (p50 {_num(lat.get('p50'), ',.1f', ' ms')}, max"
            f" {_num(lat.get('max'), ',.1f', ' ms')}; {_num(thr.get('deliveries_per_s'), ',')}"
            f" deliveries/s measured; the generator read them p99"
            f" {_num(lag.get('p99'), ',.1f', ' ms')} later)",
            f"<= {P99_MS:g} ms",
            None if p99 is None else p99 <= P99_MS,
        )
    )
    if d:
        bad = d["missing"] + d["duplicates"] + d["reordered"] + d["corrupt_lines"]
        rows.append(
            Row(
                "missing / duplicated / reordered (corrupt)",
                f"{d['missing']:,} / {d['duplicates']:,} / {d['reordered']:,}"
                f" ({d['corrupt_lines']:,}) of {d['expected']:,} deliveries",
                "0 / 0 / 0 (0)",
                bad == 0 and d["expected"] > 0,
            )
        )
    else:
        rows.append(Row("missing / duplicated / reordered", "not measured", "0 / 0 / 0", None))
    if sg:
        ended = sg.get("ended_after_sigterm_s", {})
        rows.append(
            Row(
                f"SIGTERM with {sg['connected']:,} connected: time to exit",
                f"{sg['stop_s']:.2f} s"
                + (" (SIGKILLed after the grace)" if sg["killed_after_sigterm"] else "")
                + f"; connections ended p50 {_num(ended.get('p50'), '.2f', ' s')}, max"
                f" {_num(ended.get('max'), '.2f', ' s')} after SIGTERM",
                f"<= {SIGTERM_S:g} s",
                sg["stop_s"] <= SIGTERM_S and not sg["killed_after_sigterm"],
            )
        )
        rows.append(
            Row(
                "  ... clients that got their goodbye",
                f"{sg['goodbye']:,}/{sg['connected']:,} (TCP {sg['tcp']['goodbye']:,}/"
                f"{sg['tcp']['connected']:,}, WS {sg['ws']['goodbye']:,}/"
                f"{sg['ws']['connected']:,})",
                "every one",
                sg["connected"] > 0 and sg["goodbye"] == sg["connected"],
            )
        )
    else:
        rows.append(Row("SIGTERM with everyone connected", "not measured", "", None))
    return rows


def context(storm: dict[str, Any] | None, load: dict[str, Any] | None) -> list[str]:
    """What to know to trust the table: where things ran, what else ran, what went wrong."""
    out = []
    if storm is not None:
        out.append(
            f"storm: server on CPUs {storm['server_actual']}, generator on"
            f" {storm['generator_actual']}; {storm['addresses']} source addresses, up to"
            f" {storm['per_address']} each (server's --max-connections-per-ip default:"
            f" {storm['server_per_ip_default'] or '?'}); server threads after"
            f" {storm['server_threads']['after']:,}; tracebacks {storm['server_tracebacks']}"
        )
    if load is not None:
        af = load.get("affinity", {})
        cpu = load.get("cpu", {})
        out.append(
            f"crowd: server on CPUs {af.get('server_actual')}, coordinator on"
            f" {af.get('coordinator_actual')}, workers on {af.get('workers_actual')}; while"
            f" sending: server {cpu.get('server_cores')} cores, generator"
            f" {cpu.get('generator_cores')}, other processes {cpu.get('other_cores')}"
        )
        sg = load.get("sigterm")
        if sg:
            out.append(f"goodbyes heard: {sg['words']}; ends {sg['ends']}")
            out += [f"without a goodbye: {s}" for s in sg["samples_without_goodbye"][:3]]
        out += [
            f"crowd server log: {p[:160]}" for p in load.get("server", {}).get("log_problems", [])
        ]
        out += [f"crowd note: {n.splitlines()[0][:160]}" for n in load.get("notes", []) if n]
    return out


def table(rows: list[Row]) -> str:
    width = max(len(r.figure) for r in rows)
    out = [f"{'figure':<{width}}  {'met':<4} {'target':<36} measured"]
    for r in rows:
        verdict = "-" if r.met is None else ("yes" if r.met else "NO")
        out.append(f"{r.figure:<{width}}  {verdict:<4} {r.target:<36} {r.measured}")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.crowd",
        description="Issue 14 in one command: a connect storm, then a crowd of clients"
        " (join, paced messages, SIGTERM with everyone connected), against their targets.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=10_000, help="the crowd: mixed TCP/WS")
    p.add_argument("--senders", type=int, default=10, help="clients that also send")
    p.add_argument("--messages", type=int, default=6, help="messages per sender")
    p.add_argument("--rate", type=float, default=20_000, help="offered deliveries/s")
    p.add_argument("--timeout", type=float, default=300, help="seconds for the crowd run")
    p.add_argument("--connect-timeout", type=float, default=90, help="seconds for joining")
    p.add_argument("--connect-concurrency", type=int, default=256, help="handshakes in flight")
    p.add_argument("--storm", type=int, default=1000, help="connects at once in the storm")
    p.add_argument("--storm-addresses", type=int, default=20, help="loopback sources")
    p.add_argument("--storm-wait", type=float, default=30, help="seconds a storm client waits")
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="the crowd's server as N nodes through Redis, each alone on one server CPU",
    )
    p.add_argument(
        "--server-cpus",
        metavar="LIST",
        default="",
        help="as taskset -c; default: 0 for one node, one CPU per node (0,1) for several",
    )
    p.add_argument(
        "--generator-cpus",
        metavar="LIST",
        default="",
        help="as taskset -c; default: 1 for one node, every CPU for several",
    )
    p.add_argument(
        "--generator-idle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the crowd's generator under SCHED_IDLE, after the server's threads on shared"
        " CPUs; default: for several nodes",
    )
    p.add_argument(
        "--server-python",
        metavar="PATH",
        default="",
        help="run PATH -m webchat (another checkout's virtualenv); default: this one's webchat",
    )
    p.add_argument("--json", action="store_true", help="print both reports and the table as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress from the crowd run")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    if not 1 <= opts.nodes <= len(os.sched_getaffinity(0)):
        parser.error(f"--nodes must be between 1 and the {len(os.sched_getaffinity(0))} CPUs")
    resolve_layout(opts)
    storm, storm_err = run_part("storm", storm_argv(opts), opts.storm_wait + 90)
    load, load_err = run_part("crowd", load_argv(opts), opts.timeout + 90)
    rows = storm_rows(storm, opts) + load_rows(load, opts)
    errors = [e for e in (storm_err, load_err) if e]
    all_met = all(r.met for r in rows)
    if opts.json:
        out = {
            "table": [asdict(r) for r in rows],
            "all_met": all_met,
            "errors": errors,
            "storm": storm,
            "crowd": load,
        }
        print(json.dumps(out, indent=2, default=str))
    else:
        print(table(rows))
        for line in context(storm, load) + errors:
            print(f"  {line}")
    if errors:
        return 2
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
