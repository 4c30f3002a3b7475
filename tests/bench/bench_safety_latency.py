#!/usr/bin/python3
"""bench_safety_latency: over-limit sample leaves cuffsim -> DEFLATE arrives at cuffsim.

Run (from the repository root; tests/bench/run-all.sh does all of this):

    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_safety_latency.py \
        [N ...] [--stagger] [--per-instance 1000] [--instances K] [--measurements 200]
        [--burst-rounds R] [--burst-target-ms X]

Default N = 10 100 500. cuffsim measures the latency itself (docs/cuffsim.md,
`stats`): the clock starts when the first sample above the cuff's `limit` is
handed to the socket (CLOCK_REALTIME) and stops at the kernel's receive stamp
of the DEFLATE write; it re-arms once a sample is at or below the limit
again. The gateway deflates on every sample above the ceiling (SR-01),
whatever alarms are latched, so idle cuffs (0 mmHg) can be spiked again and
again: `spike CUFF 280 60` lifts the reported pressure by 280 mmHg for 60 ms
(3 samples at 50 Hz); the leg ceiling is 250 and cuffsim's `limit` is set to
250 so that both agree on "over the limit".

More than 1000 cuffs (cuffsim's maximum per instance, or --per-instance)
run on several cuffsim instances, the cuffs split evenly, each with its own
control socket and latency statistics; the figures merge every instance's
measurements. By default every cuff samples at the same instant, the worst
case for the receiver: the instances' ticks are aligned to the first one's
(benchlib.start_sims restarts an instance until its tick is within 1 ms;
the offsets are printed). --stagger spreads the sample instants instead
(cuffsim --stagger), as independent real cuffs would be.

Per N, one system (mosquitto, the cuffsim instances at 50 Hz, gateway) and four
phases:
  up/rotating   broker up, one cuff spiked at a time, rotating over all cuffs
                (the other cuffs keep streaming at 50 Hz: background load);
  up/burst      broker up, `spike all` written to every instance at the same
                moment, in the middle of a sample period: every cuff goes over
                the limit in the same period (N DEFLATEs queued behind each
                other). Besides p50/p99/max of all its measurements, each
                round's maximum is "the last DEFLATE leaves within X ms"; the
                table gives the median and the worst round (--burst-target-ms
                prints whether the worst round is within X);
  down/rotating and down/burst: the same after mosquitto is stopped (the
                gateway is reconnecting, its outbox growing: safety must not care).
Rotating phases take at least --measurements measurements (k spikes per cuff,
k <= 32), bursts --burst-rounds rounds (default enough rounds for
--measurements). Per-phase figures come from each cuff's last measurements in
`stats` (latency_us, the last 32 per cuff), after checking that each
instance's count grew by exactly the number of spikes it was sent (so each
spike produced one measurement and the last k of each cuff belong to this
phase). Spikes are paced (a load generator, not a wait); completion is awaited
on the stats count with a deadline.
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
RATE_HZ = 50
HISTORY = 32  # latency_us entries kept per cuff by cuffsim


class Cuffs:
    """The cuffsim instances of one run and a control connection to each."""

    def __init__(self, sims, offsets):
        self.sims = sims
        self.offsets = offsets
        self.ctls = [B.Ctl(s) for s in sims]
        self.n = sum(s.cuffs for s in sims)
        # Global cuff i (0-based) -> (instance, 1-based index in it).
        self.where = [(k, j) for k, s in enumerate(sims) for j in range(1, s.cuffs + 1)]
        self.start_ms = B.sim_start_ms(sims[0])  # tick phase of the first instance

    def counts(self):
        return [c.stats()["latency"]["count"] for c in self.ctls]

    def wait_counts(self, targets, timeout=60.0):
        """Polls each instance's measurement count (cuffsim cannot signal) until
        it reaches its target; returns every instance's stats."""
        deadline = time.monotonic() + timeout
        poll = 0.2 if self.n <= 1000 else 0.5  # a 1000-cuff stats reply costs cuffsim ms
        while True:
            stats = [c.stats() for c in self.ctls]
            got = [st["latency"]["count"] for st in stats]
            if all(g >= t for g, t in zip(got, targets)):
                return stats
            if time.monotonic() > deadline:
                B.fail("latency counts %s, expected %s" % (got, targets))
            time.sleep(poll)

    def mid_period(self):
        """The next monotonic time (s) half a sample period after a tick, >= 20 ms away."""
        period = 1000.0 / RATE_HZ
        now = time.monotonic() * 1000.0 + 20
        return (now + (self.start_ms + period / 2 - now) % period) / 1000.0

    def close(self):
        for c in self.ctls:
            c.close()


def phase_values(stats_list, per_cuff):
    vals = []
    for st in stats_list:
        for c in st["cuffs"]:
            vals.extend(c["latency_us"][-per_cuff:] if per_cuff else [])
    return vals


def check_grew(stats_list, before, sent, what):
    got = [st["latency"]["count"] - b for st, b in zip(stats_list, before)]
    if got != sent:
        B.fail("%s: %s measurements for %s spikes (per instance)" % (what, got, sent))


def rotating(cuffs, total_min):
    """k spikes per cuff, one cuff at a time; returns the latencies (us)."""
    n = cuffs.n
    k = max(1, -(-total_min // n))
    if k > HISTORY:
        B.fail("too many spikes per cuff for the per-cuff history")
    total = k * n
    # Same cuff again only after >= 150 ms (spike 60 ms + re-arm below the limit).
    rate = min(100.0, n / 0.15)
    before = cuffs.counts()
    sent = [0] * len(cuffs.sims)
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i / rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)  # pacing the load generator
        inst, j = cuffs.where[i % n]
        cuffs.ctls[inst].command("spike %d %d %d" % (j, SPIKE_MMHG, SPIKE_MS))
        sent[inst] += 1
    st = cuffs.wait_counts([b + s for b, s in zip(before, sent)])
    check_grew(st, before, sent, "rotating")
    return {"values": phase_values(st, k)}


def burst(cuffs, rounds, gap_ms):
    """`spike all` on every instance at once, R rounds; per-round maxima too.

    gap_ms before every round: a spike on a cuff whose previous DEFLATE is
    still unanswered gets no DEFLATE of its own (the gateway keeps one in
    flight per cuff: the cuff is deflating already), so cuffsim would wait
    for a measurement that never comes. On a loaded machine the answer to
    the last rotating spike can take longer than the spike itself."""
    if rounds > HISTORY:
        B.fail("too many rounds for the per-cuff history")
    time.sleep(gap_ms / 1000.0)  # pacing the load generator
    before = cuffs.counts()
    sizes = [s.cuffs for s in cuffs.sims]
    spreads = []
    for r in range(rounds):
        spreads.append(B.send_all(cuffs.ctls, "spike all %d %d" % (SPIKE_MMHG, SPIKE_MS),
                                  cuffs.mid_period()))
        cuffs.wait_counts([b + (r + 1) * s for b, s in zip(before, sizes)])
        # Re-armed once the spike is over (pressure back below the limit).
        time.sleep(max(SPIKE_MS + 60, gap_ms) / 1000.0)
    st = [c.stats() for c in cuffs.ctls]
    check_grew(st, before, [rounds * s for s in sizes], "burst")
    # Cuff histories end with this phase's rounds, oldest first.
    round_max = []
    for r in range(rounds):
        round_max.append(max(c["latency_us"][-rounds + r] for s in st for c in s["cuffs"]))
    return {"values": phase_values(st, rounds), "round_max": round_max,
            "spread_ms": max(spreads)}


def run(n, args):
    h = B.Harness("bench-lat-%d" % n)
    sub = cuffs = None
    out = {}
    try:
        broker = h.start_broker()
        sims, offsets = B.start_sims(h, n, ["--stagger"] if args.stagger else [],
                                     per_instance=args.per_instance, instances=args.instances,
                                     rate=RATE_HZ, align=not args.stagger)
        cuffs = Cuffs(sims, offsets)
        sub = B.LeanSub(broker.port)
        cfg = h.write_gateway_config(B.scale_cuffs(sims))
        gw = h.start_gateway(cfg)
        sub.wait(lambda: (sub.status or {}).get("state") == "online", 60, "status online")
        sub.wait(lambda: sub.n_connected() >= n, 120, "all %d cuffs connected" % n)
        for c in cuffs.ctls:
            c.command("limit all %d" % LIMIT)
        # Discovery done everywhere: every cuff supervised and streaming.
        deadline = time.monotonic() + 120
        while not B.all_supervised([c.stats() for c in cuffs.ctls]):
            if time.monotonic() > deadline:
                B.fail("not every cuff supervised and streaming")
            time.sleep(0.2)  # polling cuffsim's counters, with a deadline
        procs = {"gateway": gw.pid}
        procs.update({"cuffsim-%s" % B.instance_letter(i): s.proc.pid
                      for i, s in enumerate(sims)})
        cpu = B.CpuWindow(procs)
        rounds = args.burst_rounds or max(1, -(-args.measurements // n))
        load = [B.loadavg()]
        snap0 = B.Snapshot(procs)
        cpu.start()
        out["up/rotating"] = rotating(cuffs, args.measurements)
        out["up/burst"] = burst(cuffs, rounds, args.round_gap_ms)
        cpu_up = cpu.stop()
        sub.close()
        sub = None
        broker.stop()
        # The gateway notices at once (socket closed); go on straight away.
        cpu.start()
        out["down/rotating"] = rotating(cuffs, args.measurements)
        out["down/burst"] = burst(cuffs, rounds, args.round_gap_ms)
        cpu_down = cpu.stop()
        load.append(B.loadavg())
        machine = B.Snapshot(procs).since(snap0)
        if not gw.alive():
            B.fail("gateway exited")
        rss, hwm = B.ProcStat(gw.pid).mem_kib()
        return out, {"cpu_up": cpu_up, "cpu_down": cpu_down, "hwm": hwm, "load": load,
                     "machine": machine,
                     "instances": [s.cuffs for s in sims], "offsets": offsets}
    finally:
        if cuffs:
            cuffs.close()
        if sub:
            sub.close()
        h.teardown()


def sim_cpu(cpu):
    return sum(v for k, v in cpu.items() if k.startswith("cuffsim"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="*", type=int, default=[10, 100, 500])
    ap.add_argument("--stagger", action="store_true",
                    help="cuffsim --stagger: cuffs sample at spread instants, as independent "
                         "real cuffs do (default: all at the same instant, the worst case)")
    ap.add_argument("--per-instance", type=int, default=B.SIM_MAX_CUFFS,
                    help="at most this many cuffs per cuffsim instance (default 1000)")
    ap.add_argument("--instances", type=int, default=None,
                    help="exactly this many cuffsim instances")
    ap.add_argument("--measurements", type=int, default=200,
                    help="at least this many measurements per rotating phase")
    ap.add_argument("--burst-rounds", type=int, default=None,
                    help="spike-all rounds per burst phase (default: enough for "
                         "--measurements)")
    ap.add_argument("--round-gap-ms", type=float, default=SPIKE_MS + 60,
                    help="pause before each burst round (longer on a loaded machine)")
    ap.add_argument("--burst-target-ms", type=float, default=None,
                    help="say whether the last DEFLATE of every round left within this")
    args = ap.parse_args()
    info = B.require_release()
    B.hr("bench_safety_latency (build %s, %s; load %s)" % (
        B.harness.BUILD_DIR, info.get("CMAKE_BUILD_TYPE"), B.loadavg()))
    rows = []
    for n in args.n:
        res, extra = run(n, args)
        print("N=%d: cuffsim instances %s, tick offsets %s ms; gateway CPU up %.1f %% down "
              "%.1f %%, cuffsim CPU up %.1f %%, HWM %.1f MiB; load %s -> %s; machine busy "
              "%.0f %% of one core, everything else %.0f %%"
              % (n, extra["instances"], ["%.1f" % o for o in extra["offsets"]],
                 extra["cpu_up"]["gateway"], extra["cpu_down"]["gateway"],
                 sim_cpu(extra["cpu_up"]), extra["hwm"] / 1024, extra["load"][0],
                 extra["load"][1], extra["machine"]["busy"], extra["machine"]["others"]),
              flush=True)
        for phase in ("up/rotating", "up/burst", "down/rotating", "down/burst"):
            r = res[phase]
            v = r["values"]
            last = "-"
            verdict = ""
            if "round_max" in r:
                rm = r["round_max"]
                last = "%.3f / %.3f (%d)" % (B.pct(rm, 50) / 1000, max(rm) / 1000, len(rm))
                if args.burst_target_ms is not None:
                    verdict = "met" if max(rm) / 1000 <= args.burst_target_ms else "missed"
            rows.append([n, phase.split("/")[0], phase.split("/")[1], len(v),
                         "%.3f" % (B.pct(v, 50) / 1000), "%.3f" % (B.pct(v, 99) / 1000),
                         "%.3f" % (max(v) / 1000), last, verdict])
            print("  %s: n=%d p50 %.3f ms p99 %.3f ms max %.3f ms%s" %
                  (phase, len(v), B.pct(v, 50) / 1000, B.pct(v, 99) / 1000, max(v) / 1000,
                   "; last DEFLATE of a round median/worst %s ms, commands %.2f ms apart"
                   % (last, r["spread_ms"]) if "round_max" in r else ""), flush=True)
    B.hr("safety reaction latency (over-limit sample sent -> DEFLATE received), 50 Hz per cuff%s"
         % (", staggered cuffs" if args.stagger else ""))
    target = (" <= %g ms" % args.burst_target_ms) if args.burst_target_ms is not None else ""
    B.table(["cuffs", "broker", "spikes", "samples", "p50 ms", "p99 ms", "max ms",
             "last DEFLATE of a round: median / worst ms (rounds)", "worst" + target], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
