#!/usr/bin/python3
"""bench_throughput: N simulated cuffs at 50 Hz through bfr-gateway to a real broker.

Run (from the repository root; tests/bench/run-all.sh does all of this):

    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build-release
    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_throughput.py [N ...] \
        [--window S]

Default N = 10 100 500, window 25 s. For each N: mosquitto (free loopback port),
`cuffsim --cuffs N --rate 50`, the gateway configured with the N sim cuffs
(telemetry_hz 10). Measured:
- connect: gateway start -> status online, -> every cuff's retained state "connected";
- over a steady window (after all cuffs connected + 3 s): samples/s ingested
  (delta of cuffsim's samples_sent, i.e. notifications the gateway's sockets
  accepted), samples/s published (samples inside telemetry messages received by
  mosquitto_sub on the broker), CPU % of the gateway, cuffsim and mosquitto
  (utime+stime from /proc/PID/stat over the window; 100 % = one core), gateway
  VmRSS at the end and VmHWM;
- lag: age of the newest sample of each telemetry message at receipt =
  receipt wall time - (cuffsim start + t_ms), cuffsim's start located in wall
  time from its stats uptime_ms; p50/max over the first and last 5 s of the
  window. Growing lag = falling behind. It includes the telemetry batching
  (up to 1/telemetry_hz = 100 ms) by construction.
Prints a table; exit status 0 unless a run failed to start.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def run(n, window_s):
    h = B.Harness("bench-thr-%d" % n)
    sysd = None
    try:
        sysd = B.start_system(h, n)
        sim, gw, broker, sub = sysd["sim"], sysd["gw"], sysd["broker"], sysd["sub"]
        # Steady state: every cuff sends telemetry (discovery done).
        sub.wait(lambda: sub.msg_count.get("cuff", 0) >= n, 30, "cuff states")
        tap = B.TelemetryTap(h, broker.port)
        # 3 s warm-up after subscription, then the window (a measuring window, not a wait).
        time.sleep(3.0)
        cpu = B.CpuWindow({"gateway": gw.pid, "cuffsim": sim.proc.pid,
                           "mosquitto": broker.proc.pid})
        st0 = B.stats_with_clock(sim)
        cpu.start()
        w0 = time.time()
        time.sleep(window_s)
        w1 = time.time()
        cpu_pct = cpu.stop()
        st1 = B.stats_with_clock(sim)
        rss, hwm = B.ProcStat(gw.pid).mem_kib()
        # Let the last in-flight telemetry land before stopping the tap.
        time.sleep(0.5)
        tap.stop()
        sent0, drop0, _ = B.cuffsim_totals(st0)
        sent1, drop1, conn1 = B.cuffsim_totals(st1)
        dt_sim = (st1["uptime_ms"] - st0["uptime_ms"]) / 1000.0
        ingested = (sent1 - sent0) / dt_sim
        epoch = st1["_wall"] - st1["uptime_ms"] / 1000.0  # cuffsim t_ms 0 in wall time
        pub_samples = 0
        pub_msgs = 0
        lag_first, lag_last = [], []
        cuffs_seen = set()
        for t, cuff, ns, newest in tap.records():
            if w0 <= t < w1:
                pub_samples += ns
                pub_msgs += 1
                cuffs_seen.add(cuff)
                if newest is not None:
                    lag = (t - (epoch + newest / 1000.0)) * 1000.0
                    if t < w0 + 5:
                        lag_first.append(lag)
                    elif t >= w1 - 5:
                        lag_last.append(lag)
        published = pub_samples / (w1 - w0)
        msgs_s = pub_msgs / (w1 - w0)
        return {
            "n": n, "online_s": sysd["t_online"], "connected_s": sysd["t_all_connected"],
            "ingested": ingested, "expected": n * 50.0, "published": published, "msgs_s": msgs_s,
            "expected_msgs": n * 10.0,
            "dropped": drop1 - drop0, "connected": conn1, "cuffs_seen": len(cuffs_seen),
            "cpu": cpu_pct, "rss_kib": rss, "hwm_kib": hwm,
            "lag_first": (B.pct(lag_first, 50), B.pct(lag_first, 100)),
            "lag_last": (B.pct(lag_last, 50), B.pct(lag_last, 100)),
            "window_s": w1 - w0, "stats_rtt_ms": st1["_rtt_s"] * 1000,
        }
    finally:
        if sysd:
            sysd["sub"].close()
        h.teardown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="*", type=int, default=[10, 100, 500])
    ap.add_argument("--window", type=float, default=25.0)
    args = ap.parse_args()
    info = B.require_release()
    B.hr("bench_throughput (build %s, %s)" % (B.harness.BUILD_DIR, info.get("CMAKE_BUILD_TYPE")))
    rows = []
    for n in args.n:
        r = run(n, args.window)
        print("N=%d: %r" % (n, r), flush=True)
        rows.append([
            n, "%.2f" % r["online_s"], "%.2f" % r["connected_s"],
            "%.0f" % r["expected"], "%.0f" % r["ingested"], "%.0f" % r["published"],
            "%.0f / %.0f" % (r["msgs_s"], r["expected_msgs"]),
            "%.3f" % (r["published"] / r["ingested"] if r["ingested"] else 0),
            r["dropped"],
            "%.0f / %.0f" % r["lag_first"], "%.0f / %.0f" % r["lag_last"],
            "%.1f" % r["cpu"]["gateway"], "%.1f" % r["cpu"]["cuffsim"],
            "%.1f" % r["cpu"]["mosquitto"],
            "%.1f" % (r["rss_kib"] / 1024), "%.1f" % (r["hwm_kib"] / 1024)])
    B.hr("throughput, window %.0f s, 50 Hz per cuff, telemetry_hz 10" % args.window)
    B.table(["cuffs", "online s", "all conn s", "offered/s", "ingested/s", "published/s", "msgs/s got / expected",
             "pub/ingest", "sim dropped", "lag p50/max first 5 s ms",
             "lag p50/max last 5 s ms", "gw CPU %", "cuffsim CPU %", "mosq CPU %",
             "gw RSS MiB", "gw HWM MiB"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
