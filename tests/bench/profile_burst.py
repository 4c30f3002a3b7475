#!/usr/bin/python3
"""profile_burst: where the gateway spends its time during `spike all` bursts.

Run (from the repository root, as root or with perf_event_paranoid <= 1):

    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/profile_burst.py \
        [--cuffs 500] [--rounds 20] [--broker down|up] [--out /tmp/burst.perf]

One system (mosquitto, cuffsim --cuffs N --rate 50, gateway), cuffsim's limit
set to the leg ceiling (250), optionally mosquitto stopped; then
`perf record -F 4999 -g -p GATEWAY_PID` around R rounds of `spike all 280 60`
(each round waits for its N latency measurements: bench_safety_latency's
burst(), over its Cuffs: several cuffsim instances past 1 000 cuffs, ticks
aligned unless --stagger).
Prints cuffsim's latency figures of the rounds and `perf report --no-children`
(top symbols). Not a benchmark with a pass/fail: a tool to find hot spots.

--mode rotating: one cuff spiked at a time instead (bench_safety_latency's
rotating phase). --probes F1,F2: instead of sampling, record uprobes on entry
and return of those gateway functions (created beforehand with
`tests/bench/uprobes.sh add BUILD/bfr-gateway F1 F2`, removed with
`uprobes.sh clear`) and print how long each call took (count, p50, p99, max,
total ms): which loop callbacks run long enough to delay a DEFLATE behind
them.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402
import bench_safety_latency as L  # noqa: E402


def durations(path):
    """Entry/return uprobe pairs from `perf script` -> per-function call durations."""
    out = subprocess.run(["perf", "script", "-i", path, "-F", "time,event"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    start, per = {}, {}
    for ln in out.splitlines():
        parts = ln.replace(":", " ").split()
        if len(parts) < 2:
            continue
        try:
            t = float(parts[0])  # "TIME: probe_bfr:NAME:" with ':' -> ' '
        except ValueError:
            continue
        name = parts[-1]
        if name.endswith("__return"):
            f = name[:-len("__return")]
            if f in start:
                per.setdefault(f, []).append((t - start.pop(f)) * 1000.0)
        else:
            start[name] = t
    for f, v in sorted(per.items()):
        print("%-20s calls %6d  p50 %.3f ms  p99 %.3f ms  max %.3f ms  total %.0f ms" %
              (f, len(v), B.pct(v, 50), B.pct(v, 99), max(v), sum(v)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuffs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--broker", choices=["up", "down"], default="down")
    ap.add_argument("--out", default="/tmp/bfr-burst.perf")
    ap.add_argument("--no-perf", action="store_true", help="only the latency figures")
    ap.add_argument("--mode", choices=["burst", "rotating"], default="burst")
    ap.add_argument("--stagger", action="store_true", help="cuffsim --stagger")
    ap.add_argument("--probes", default="", help="comma-separated uprobe functions")
    ap.add_argument("--call-graph", default="fp",
                    help="perf --call-graph (fp, dwarf): dwarf attributes user-space time "
                         "in a build without frame pointers")
    args = ap.parse_args()
    B.require_release()
    n = args.cuffs
    h = B.Harness("profile-burst")
    cuffs = sub = broker = None
    perf = None
    try:
        broker = h.start_broker()
        sims, offsets = B.start_sims(h, n, ["--stagger"] if args.stagger else [],
                                     align=not args.stagger)
        cuffs = L.Cuffs(sims, offsets)
        sub = B.LeanSub(broker.port)
        gw = h.start_gateway(h.write_gateway_config(B.scale_cuffs(sims)))
        sub.wait(lambda: sub.n_connected() >= n, 120, "all %d cuffs connected" % n)
        for c in cuffs.ctls:
            c.command("limit all %d" % L.LIMIT)
        deadline = time.monotonic() + 120
        while not B.all_supervised([c.stats() for c in cuffs.ctls]):
            if time.monotonic() > deadline:
                B.fail("discovery not done everywhere")
            time.sleep(0.2)  # polling cuffsim's counters, with a deadline
        if args.broker == "down":
            sub.close()
            sub = None
            broker.stop()
        if not args.no_perf:
            if args.probes:
                ev = []
                for f in args.probes.split(","):
                    ev += ["-e", "probe_bfr:%s" % f, "-e", "probe_bfr:%s__return" % f]
                cmd = ["perf", "record"] + ev + ["-o", args.out, "-p", str(gw.pid)]
            else:
                cmd = ["perf", "record", "-F", "4999", "--call-graph", args.call_graph,
                       "-o", args.out, "-p", str(gw.pid)]
            perf = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # perf attaching (no event to wait on); excluded from figures
        if args.mode == "rotating":
            vals = L.rotating(cuffs, args.rounds * n)["values"]
        else:
            vals = L.burst(cuffs, args.rounds, L.SPIKE_MS + 60)["values"]
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        print("%d cuffs, broker %s, %s, %d rounds: n=%d p50 %.3f ms p99 %.3f ms max %.3f ms" %
              (n, args.broker, args.mode, args.rounds, len(vals), B.pct(vals, 50) / 1000,
               B.pct(vals, 99) / 1000, max(vals) / 1000), flush=True)
    finally:
        if perf and perf.poll() is None:
            perf.kill()
        if cuffs:
            cuffs.close()
        if sub:
            sub.close()
        h.teardown()
    if args.probes:
        durations(args.out)
    elif not args.no_perf:
        rep = subprocess.run(["perf", "report", "-i", args.out, "--no-children", "--stdio",
                              "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.7"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        print("\n".join(ln for ln in rep.stdout.splitlines() if ln and not ln.startswith("#")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
