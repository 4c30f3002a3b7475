#!/usr/bin/python3
"""bench_safety_latency: over-limit sample leaves cuffsim -> DEFLATE arrives at cuffsim.

Run (from the repository root; tests/bench/run-all.sh does all of this):

    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_safety_latency.py [N ...]

Default N = 10 100 500. cuffsim measures the latency itself with
CLOCK_MONOTONIC (docs/cuffsim.md, `stats`): the clock starts when the first
sample above the cuff's `limit` is handed to the socket and stops when a
DEFLATE write is parsed from the gateway; it re-arms once a sample is at or
below the limit again. The gateway deflates on every sample above the
ceiling (SR-01), whatever alarms are latched, so idle cuffs (0 mmHg) can be
spiked again and again: `spike CUFF 280 60` lifts the reported pressure by
280 mmHg for 60 ms (3 samples at 50 Hz); the leg ceiling is 250 and cuffsim's
`limit` is set to 250 so that both agree on "over the limit".

Per N, one system (mosquitto, cuffsim --cuffs N --rate 50, gateway) and four
phases, each >= 200 measurements:
  up/rotating   broker up, one cuff spiked at a time, rotating over all cuffs
                (the other N-1 cuffs keep streaming at 50 Hz: background load);
  up/burst      broker up, `spike all`: every cuff over the limit in the same
                cuffsim tick (worst case: N DEFLATEs queued behind each other);
  down/rotating and down/burst: the same after mosquitto is stopped (the
                gateway is reconnecting, its outbox growing: safety must not care).
Per-phase figures come from each cuff's last measurements in `stats`
(latency_us, the last 32 per cuff), after checking that the global count grew
by exactly the number of spikes sent (so each spike produced one measurement
and the last k of each cuff belong to this phase). Spikes are paced (a load
generator, not a wait); completion is awaited on the stats count with a deadline.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

SPIKE_MMHG = 280
SPIKE_MS = 60
LIMIT = 250


def lat_count(sim):
    return sim.stats()["latency"]["count"]


def wait_count(sim, target, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        st = sim.stats()
        if st["latency"]["count"] >= target:
            return st
        if time.monotonic() > deadline:
            B.fail("latency count %d, expected %d" % (st["latency"]["count"], target))
        time.sleep(0.2)  # polling a counter nobody can signal, with a deadline


def phase_values(st, per_cuff):
    vals = []
    for c in st["cuffs"]:
        lat = c["latency_us"]
        vals.extend(lat[-per_cuff:] if per_cuff else [])
    return vals


def rotating(sim, n, total_min=200, rate_hz=None):
    """k spikes per cuff, one cuff at a time; returns the list of latencies (us)."""
    k = max(1, -(-total_min // n))
    if k > 32:
        B.fail("too many spikes per cuff for the per-cuff history")
    total = k * n
    # Same cuff again only after >= 150 ms (spike 60 ms + re-arm below the limit).
    rate = rate_hz or min(100.0, n / 0.15)
    before = lat_count(sim)
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i / rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)  # pacing the load generator
        sim.control("spike %d %d %d" % (i % n + 1, SPIKE_MMHG, SPIKE_MS))
    st = wait_count(sim, before + total)
    got = st["latency"]["count"] - before
    if got != total:
        B.fail("rotating: %d measurements for %d spikes" % (got, total))
    return phase_values(st, k)


def burst(sim, n, total_min=200):
    """`spike all` R times; each round waits for its N measurements."""
    rounds = max(1, -(-total_min // n))
    if rounds > 32:
        B.fail("too many rounds for the per-cuff history")
    before = lat_count(sim)
    for r in range(rounds):
        sim.control("spike all %d %d" % (SPIKE_MMHG, SPIKE_MS))
        wait_count(sim, before + (r + 1) * n)
        # Re-armed once the spike is over (pressure back below the limit).
        time.sleep((SPIKE_MS + 60) / 1000.0)
    st = sim.stats()
    got = st["latency"]["count"] - before
    if got != rounds * n:
        B.fail("burst: %d measurements for %d spikes" % (got, rounds * n))
    return phase_values(st, rounds)


def run(n, sim_args=()):
    h = B.Harness("bench-lat-%d" % n)
    sysd = None
    out = {}
    try:
        sysd = B.start_system(h, n, sim_args)
        sim, gw, broker, sub = sysd["sim"], sysd["gw"], sysd["broker"], sysd["sub"]
        sub.wait(lambda: sub.msg_count.get("cuff", 0) >= n, 30, "cuff states")
        sim.control("limit all %d" % LIMIT)
        # Discovery done everywhere: wait until every cuff has sent samples.
        deadline = time.monotonic() + 60
        while True:
            st = sim.stats()
            if all(c["samples_sent"] > 0 and c["cp_writes"]["set_supervision"] > 0
                   for c in st["cuffs"]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        cpu = B.CpuWindow({"gateway": gw.pid, "cuffsim": sim.proc.pid})
        cpu.start()
        t = time.monotonic()
        out["up/rotating"] = rotating(sim, n)
        out["up/burst"] = burst(sim, n)
        cpu_up = cpu.stop()
        up_s = time.monotonic() - t
        sub.close()
        broker.stop()
        # The gateway notices at once (socket closed); go on straight away.
        cpu.start()
        out["down/rotating"] = rotating(sim, n)
        out["down/burst"] = burst(sim, n)
        cpu_down = cpu.stop()
        if not gw.alive():
            B.fail("gateway exited")
        rss, hwm = B.ProcStat(gw.pid).mem_kib()
        return out, {"cpu_up": cpu_up, "cpu_down": cpu_down, "hwm": hwm, "up_s": up_s}
    finally:
        if sysd and sysd["broker"].proc.alive():
            sysd["sub"].close()
        h.teardown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="*", type=int, default=[10, 100, 500])
    ap.add_argument("--stagger", action="store_true",
                    help="cuffsim --stagger: cuffs sample at spread instants, as independent "
                         "real cuffs do (default: all at the same instant, the worst case)")
    args = ap.parse_args()
    info = B.require_release()
    B.hr("bench_safety_latency (build %s, %s)" % (B.harness.BUILD_DIR,
                                                  info.get("CMAKE_BUILD_TYPE")))
    rows = []
    for n in args.n:
        res, extra = run(n, ["--stagger"] if args.stagger else [])
        print("N=%d: gateway CPU up %.1f %% down %.1f %%, cuffsim CPU up %.1f %%, HWM %.1f MiB"
              % (n, extra["cpu_up"]["gateway"], extra["cpu_down"]["gateway"],
                 extra["cpu_up"]["cuffsim"], extra["hwm"] / 1024), flush=True)
        for phase in ("up/rotating", "up/burst", "down/rotating", "down/burst"):
            v = res[phase]
            rows.append([n, phase.split("/")[0], phase.split("/")[1], len(v),
                         "%.3f" % (B.pct(v, 50) / 1000), "%.3f" % (B.pct(v, 99) / 1000),
                         "%.3f" % (max(v) / 1000)])
            print("  %s: n=%d p50 %.3f ms p99 %.3f ms max %.3f ms" %
                  (phase, len(v), B.pct(v, 50) / 1000, B.pct(v, 99) / 1000, max(v) / 1000),
                  flush=True)
    B.hr("safety reaction latency (over-limit sample sent -> DEFLATE received), 50 Hz per cuff%s"
         % (", staggered cuffs" if args.stagger else ""))
    B.table(["cuffs", "broker", "spikes", "samples", "p50 ms", "p99 ms", "max ms"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
