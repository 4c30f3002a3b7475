#!/usr/bin/python3
"""bench_scale: the 2 000-cuff run of issue 13, with its no-gateway reference.

Run (from the repository root, Release build; docs/benchmarks.md "Scale tools
and baseline (issue 13)"):

    cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DBFR_WERROR=ON
    cmake --build build-release
    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_scale.py \
        [N ...] [--window 60] [--stagger] [--perf 10] [--json FILE]

Default N = 2000. For each N, one broker (mosquitto on a free loopback port with
the throughput settings of deploy/mosquitto/production.conf: max_inflight_messages,
max_queued_messages, set_tcp_nodelay, size limits) and, in this order:

1. Reference, no gateway running (tests/bench/bench_pub.c, bench_sub.c):
   - bench_sub subscribed to the reference topics, then bench_pub publishing
     telemetry-shaped QoS 0 messages on N topics at telemetry_hz each (the
     gateway's offered message rate) for --ref-window s: messages/s achieved,
     and loss = published - received (it must be 0: the subscriber is not
     the limit at that rate);
   - the same unpaced for --ref-window s: the ceiling of library + broker here;
   - bench_pub --mode outbox: QoS 1, 256 in flight like the outbox drain,
     --outbox-count messages: messages/s.
2. The gateway: ceil(N / 1000) cuffsim instances (N split evenly; without
   --stagger their ticks aligned to the first instance's, so every cuff samples
   at the same instant), bench_sub (--expect-cuffs N, the cuffsim clocks as
   sample epochs), the Release gateway with the N cuffs (telemetry_hz 10).
   - startup: gateway launch -> status online; -> every cuff state "connected"
     (bench_sub); -> every cuff supervised and streaming (cuffsim stats: a
     SET_SUPERVISION and samples sent on every cuff);
   - after --warmup s, a --window s window in three subscriber phases (first
     10 s, middle, last 10 s): ingested samples/s (cuffsim samples_sent),
     published samples/s and telemetry messages/s (bench_sub), telemetry lost
     between the cuffs and the subscriber (samples_missing: gaps in each cuff's
     sample times), lag = age of the newest sample of each message at receipt
     (p50/max, first vs last 10 s: equal = flat), broker latency (envelope ts
     -> receipt), gateway CPU (all threads, and per thread), VmRSS/VmHWM,
     cuffsim, mosquitto and bench_sub CPU;
   - the machine: load average before and after, and the processes that used
     the most CPU during the window (other engineers' builds show up there);
   - --perf S: `perf record -g` on the gateway for S s right after the window
     (same steady state, perf's cost outside the figures), the top symbols
     printed (perf_event_paranoid <= 1 or root).

Prints one summary table for all N, and every figure as JSON (--json FILE too).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

REF_PREFIX = "bfr/v1/bench/pub"


def reference(h, port, n, hz, window_s, outbox_count):
    """bench_pub against bench_sub on the broker, no gateway running."""
    out = {}
    epoch = int(time.time() * 1000) - 2000
    sub = B.BenchSub(h, port, [REF_PREFIX + "/#"], epochs={"p": epoch}, name="ref_sub")
    try:
        sub.phase("paced")
        pub = B.run_bench_pub(port, ["--topics", n, "--rate", hz, "--duration", window_s,
                                     "--epoch-ms", epoch])
        # What the broker still holds for the subscriber arrives, or is lost.
        sub.settle(pub["completed"])
        ph = sub.phase("unpaced")
        got = B.family(ph, "cuff/+/telemetry")
        out["paced"] = {"pub": pub, "received": got.get("msgs", 0),
                        "lost": pub["completed"] - got.get("msgs", 0),
                        "lat": got.get("lat_ms"), "age": got.get("age_ms"),
                        "sub_cpu_pct": 100.0 * ph["cpu_s"] / ph["span_s"]}
        pub = B.run_bench_pub(port, ["--topics", n, "--rate", 0, "--duration", window_s,
                                     "--epoch-ms", epoch])
        sub.settle(pub["completed"])
        ph = sub.phase("outbox")
        got = B.family(ph, "cuff/+/telemetry")
        out["unpaced"] = {"pub": pub, "received": got.get("msgs", 0),
                          "lost": pub["completed"] - got.get("msgs", 0),
                          "lat": got.get("lat_ms"),
                          "sub_cpu_pct": 100.0 * ph["cpu_s"] / ph["span_s"]}
        pub = B.run_bench_pub(port, ["--mode", "outbox", "--count", outbox_count,
                                     "--duration", 0, "--topics", 100])
        sub.settle(pub["completed"])
        ph = sub.quit()
        got = B.family(ph, "session/+/event")
        out["outbox"] = {"pub": pub, "received": got.get("msgs", 0),
                         "lost": pub["completed"] - got.get("msgs", 0)}
    finally:
        sub.kill()
    return out


def start_perf(pid, seconds, path):
    cmd = ["perf", "record", "-F", "999", "-g", "-o", path, "-p", str(pid), "--",
           "sleep", str(seconds)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def perf_top(path, n=25):
    """The top symbols, then the share of each thread and library."""
    out = []
    for sort, limit, rows in (("comm,dso,sym", "0.7", n), ("comm,dso", "1", 20)):
        rep = subprocess.run(["perf", "report", "-i", path, "--no-children", "--stdio",
                              "--percent-limit", limit, "-g", "none", "--sort", sort],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=300)
        out += [ln for ln in rep.stdout.decode(errors="replace").splitlines()
                if ln.strip() and not ln.startswith("#")][:rows]
        out.append("")
    return out


def gateway_system(h, port, n, args):
    out = {}
    sims, offsets = B.start_sims(h, n, ["--stagger"] if args.stagger else [],
                                 per_instance=args.per_instance, rate=args.rate,
                                 align=not args.stagger)
    out["instances"] = [s.cuffs for s in sims]
    out["tick_offsets_ms"] = offsets
    epochs = {B.instance_letter(i): B.sim_epoch_wall_ms(s) for i, s in enumerate(sims)}
    sub = B.BenchSub(h, port, [B.PREFIX + "/#"], epochs=epochs, expect_cuffs=n,
                     sample_period_ms=1000.0 / args.rate, name="gw_sub")
    status = B.LeanSub(port, [B.PREFIX + "/status"], name="bench-status")
    gw = None
    try:
        cfg = h.write_gateway_config(B.scale_cuffs(sims), telemetry_hz=args.telemetry_hz)
        t0 = time.monotonic()
        w0 = time.time()
        gw = h.start_gateway(cfg)
        status.wait(lambda: (status.status or {}).get("state") == "online", 60, "status online")
        out["t_online_s"] = time.monotonic() - t0
        out["t_connected_s"] = sub.connected_wall_ms(args.connect_timeout) / 1000.0 - w0
        deadline = time.monotonic() + args.connect_timeout
        while True:
            stl = B.sims_stats(sims)
            if B.all_supervised(stl):
                out["t_supervised_s"] = time.monotonic() - t0
                break
            if time.monotonic() > deadline:
                B.fail("not every cuff supervised and streaming after %.0f s"
                       % args.connect_timeout)
            time.sleep(0.2)  # polling cuffsim's counters (it cannot signal), with a deadline
        time.sleep(args.warmup)  # warm-up: not measured
        procs = {"gateway": gw.pid, "mosquitto": h.broker.proc.pid, "bench_sub": sub.pid}
        for i, s in enumerate(sims):
            procs["cuffsim-%s" % B.instance_letter(i)] = s.proc.pid
        cpu = B.CpuWindow(procs)
        load0 = B.loadavg()
        ticks0 = B.proc_cpu_ticks()
        threads0 = B.thread_cpu(gw.pid)
        st0 = B.sims_stats(sims)
        snaps = [B.Snapshot(procs)]
        sub.phase("first")
        cpu.start()
        m0 = time.monotonic()
        edge = min(10.0, args.window / 3)
        # The measuring window: phase boundaries at fixed times, not waits.
        time.sleep(max(0.0, m0 + edge - time.monotonic()))
        snaps.append(B.Snapshot(procs))
        ph_first = sub.phase("middle")
        time.sleep(max(0.0, m0 + args.window - edge - time.monotonic()))
        snaps.append(B.Snapshot(procs))
        ph_mid = sub.phase("last")
        time.sleep(max(0.0, m0 + args.window - time.monotonic()))
        snaps.append(B.Snapshot(procs))
        ph_last = sub.phase("after")
        cpu_pct = cpu.stop()
        span = time.monotonic() - m0
        st1 = B.sims_stats(sims)
        threads1 = B.thread_cpu(gw.pid)
        ticks1 = B.proc_cpu_ticks()
        load1 = B.loadavg()
        rss, hwm = B.ProcStat(gw.pid).mem_kib()
        phases = [ph_first, ph_mid, ph_last]
        if args.perf:
            # After the window, so that perf's own cost is in none of its figures.
            perf_path = os.path.join(h.tmp, "gateway.perf")
            perf = start_perf(gw.pid, args.perf, perf_path)
            perf.wait(args.perf + 60)
            out["perf_top"] = perf_top(perf_path)
            if args.perf_keep:
                shutil.copy(perf_path, args.perf_keep)
        sent0, _, _ = B.sims_totals(st0)
        sent1, drop1, conn1 = B.sims_totals(st1)
        dt_sim = sum((b["uptime_ms"] - a["uptime_ms"]) for a, b in zip(st0, st1)) / 1000.0 / len(sims)
        tel = [B.family(p, "cuff/+/telemetry") for p in phases]
        wspan = sum(p["span_s"] for p in phases)
        out.update({
            "window_s": wspan, "ingested_s": (sent1 - sent0) / dt_sim,
            "offered_s": n * args.rate, "sim_dropped": drop1 - sum(
                B.cuffsim_totals(st)[1] for st in st0), "sim_connected": conn1,
            "published_s": sum(t.get("samples", 0) for t in tel) / wspan,
            "tel_msgs_s": sum(t.get("msgs", 0) for t in tel) / wspan,
            "expected_msgs_s": n * args.telemetry_hz,
            "samples_missing": sum(p["samples_missing"] for p in phases),
            "samples_out_of_order": sum(p["samples_out_of_order"] for p in phases),
            "cuffs_with_telemetry": min(p["cuffs"]["with_telemetry"] for p in phases),
            "age_first": B.merge_hists([tel[0].get("age_ms")]),
            "age_last": B.merge_hists([tel[2].get("age_ms")]),
            "age_all": B.merge_hists([t.get("age_ms") for t in tel]),
            "lat_all": B.merge_hists([t.get("lat_ms") for t in tel]),
            "cpu": cpu_pct, "rss_kib": rss, "hwm_kib": hwm,
            "threads": B.thread_cpu_pct(threads0, threads1, span),
            "load_before": load0, "load_after": load1,
            "others": B.top_processes(ticks0, ticks1, span,
                                      exclude=set(procs.values()) | {os.getpid()}),
            "families": {p["phase"]: {k: v["msgs_s"] for k, v in p["families"].items()}
                         for p in phases},
            "machine": snaps[-1].since(snaps[0]),
            "per_phase": [phase_figures(p, b.since(a))
                          for p, a, b in zip(phases, snaps, snaps[1:])],
        })
    finally:
        status.close()
        sub.kill()
    return out


def phase_figures(ph, cpu):
    """One subscriber phase with the machine's CPU over it."""
    t = B.family(ph, "cuff/+/telemetry")
    age = B.merge_hists([t.get("age_ms")])
    lat = B.merge_hists([t.get("lat_ms")])
    return {"phase": ph["phase"], "span_s": ph["span_s"],
            "msgs_s": t.get("msgs", 0) / ph["span_s"],
            "samples_s": t.get("samples", 0) / ph["span_s"],
            "samples_per_msg": t["samples"] / t["msgs"] if t.get("msgs") else None,
            "age": age, "lat": lat, "missing": ph["samples_missing"],
            "busy": cpu["busy"], "steal": cpu["steal"], "ours": cpu["ours"],
            "others": cpu["others"], "gateway": cpu["procs"].get("gateway")}


def run(n, args):
    h = B.Harness("bench-scale-%d" % n)
    try:
        lines = B.production_broker_lines() if args.broker == "production" else []
        broker = h.start_broker(extra="".join(ln + "\n" for ln in lines))
        res = {"n": n, "broker_conf": lines, "load_start": B.loadavg()}
        if not args.no_reference:
            res["ref"] = reference(h, broker.port, n, args.telemetry_hz, args.ref_window,
                                   args.outbox_count)
        res["gw"] = gateway_system(h, broker.port, n, args)
        res["broker_drops"] = [ln for ln in broker.proc.lines if "drop" in ln.lower()][:5]
        gwlog = [p for p in h.procs if p.name == "gateway"][0].lines
        res["gw_warnings"] = [ln for ln in gwlog
                              if " warning" in ln or " error" in ln or "refused" in ln][:10]
        return res
    finally:
        h.teardown()


def strip_hists(x):
    """The figures without bench_sub's histograms (--json keeps them)."""
    if isinstance(x, dict):
        return {k: strip_hists(v) for k, v in x.items() if k != "hist"}
    if isinstance(x, list):
        return [strip_hists(v) for v in x]
    return x


def fmt(v, f="%.0f"):
    return "-" if v is None else f % v


def print_run(r):
    gw = r["gw"]
    print("\nN=%d (%s cuffs per cuffsim, tick offsets %s ms); broker: %s" % (
        r["n"], "+".join(map(str, gw["instances"])), gw["tick_offsets_ms"],
        "; ".join(r["broker_conf"]) or "harness default"))
    print("  load average before %s / window start %s / after %s" % (
        r["load_start"], gw["load_before"], gw["load_after"]))
    print("  other processes during the window (CPU %% of one core): %s" % ", ".join(
        "%s[%d] %.0f" % (c, p, u) for u, p, c in gw["others"]) or "none")
    print("  gateway threads (CPU %%): %s" % ", ".join(
        "%s %.1f" % (name, pct) for name, tid, pct in gw["threads"] if pct >= 0.05))
    if r.get("ref"):
        ref = r["ref"]
        print("  reference: paced %.0f msgs/s (offered %.0f, lost at bench_sub %d, bench_sub "
              "CPU %.1f %%); unpaced %.0f msgs/s (lost %d); outbox QoS 1 %.0f msgs/s" % (
                  ref["paced"]["pub"]["achieved_msgs_s"], ref["paced"]["pub"]["offered_msgs_s"],
                  ref["paced"]["lost"], ref["paced"]["sub_cpu_pct"],
                  ref["unpaced"]["pub"]["achieved_msgs_s"], ref["unpaced"]["lost"],
                  ref["outbox"]["pub"]["achieved_msgs_s"]))
    for ln in r["broker_drops"]:
        print("  broker: %s" % ln)
    for ln in r["gw_warnings"]:
        print("  gateway: %s" % ln)
    m = gw["machine"]
    print("  machine CPU over the window (%% of one core, %d cores): busy %.0f (steal %.0f), "
          "these processes %.0f, everything else %.0f" % (
              os.cpu_count(), m["busy"], m["steal"], m["ours"], m["others"]))
    print("  per phase: " + "; ".join(
        "%s %.0f s: %.0f msgs/s, %.0f samples/s (%.2f per msg), lag p50/max %s/%s ms, "
        "broker lat p50/max %s/%s ms, gw %.0f %%, machine busy %.0f %%, others %.0f %%" % (
            p["phase"], p["span_s"], p["msgs_s"], p["samples_s"], p["samples_per_msg"] or 0,
            fmt(p["age"]["p50"]), fmt(p["age"]["max"]), fmt(p["lat"]["p50"]),
            fmt(p["lat"]["max"]), p["gateway"] or 0, p["busy"], p["others"])
        for p in gw["per_phase"]))
    if gw.get("perf_top"):
        print("  perf (gateway, top symbols):")
        for ln in gw["perf_top"]:
            print("    " + ln)


def summary_row(r):
    gw = r["gw"]
    ref = r.get("ref")
    ratio = None
    if ref and ref["paced"]["pub"]["achieved_msgs_s"]:
        ratio = gw["tel_msgs_s"] / ref["paced"]["pub"]["achieved_msgs_s"]
    return [r["n"], "%.2f / %.2f / %.2f" % (gw["t_online_s"], gw["t_connected_s"],
                                             gw["t_supervised_s"]),
            "%.0f" % gw["offered_s"], "%.0f" % gw["ingested_s"], "%.0f" % gw["published_s"],
            "%.3f" % (gw["published_s"] / gw["ingested_s"] if gw["ingested_s"] else 0),
            "%.0f / %.0f" % (gw["tel_msgs_s"], gw["expected_msgs_s"]),
            fmt(ref and ref["paced"]["pub"]["achieved_msgs_s"]), fmt(ratio, "%.3f"),
            gw["samples_missing"],
            "%s / %s" % (fmt(gw["age_first"]["p50"]), fmt(gw["age_first"]["max"])),
            "%s / %s" % (fmt(gw["age_last"]["p50"]), fmt(gw["age_last"]["max"])),
            "%s / %s" % (fmt(gw["lat_all"]["p50"]), fmt(gw["lat_all"]["max"])),
            "%.1f" % gw["cpu"]["gateway"],
            "%.1f" % sum(v for k, v in gw["cpu"].items() if k.startswith("cuffsim")),
            "%.1f" % gw["cpu"]["mosquitto"], "%.1f" % gw["cpu"]["bench_sub"],
            "%.1f / %.1f" % (gw["rss_kib"] / 1024, gw["hwm_kib"] / 1024),
            fmt(ref and ref["unpaced"]["pub"]["achieved_msgs_s"]),
            fmt(ref and ref["outbox"]["pub"]["achieved_msgs_s"]), gw["load_before"],
            "%.0f / %.0f" % (gw["machine"]["busy"], gw["machine"]["others"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="*", type=int, default=[2000])
    ap.add_argument("--window", type=float, default=60.0, help="measuring window, s")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--ref-window", type=float, default=20.0,
                    help="each telemetry reference run, s")
    ap.add_argument("--outbox-count", type=int, default=50000)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--stagger", action="store_true",
                    help="cuffsim --stagger (default: every cuff samples at the same instant)")
    ap.add_argument("--rate", type=int, default=50, help="samples/s per cuff")
    ap.add_argument("--telemetry-hz", type=int, default=10)
    ap.add_argument("--per-instance", type=int, default=B.SIM_MAX_CUFFS,
                    help="cuffs per cuffsim instance at most")
    ap.add_argument("--broker", choices=("production", "harness"), default="production",
                    help="production: the throughput settings of deploy/mosquitto/production.conf")
    ap.add_argument("--connect-timeout", type=float, default=120.0)
    ap.add_argument("--perf", type=float, default=0.0,
                    help="perf record -g on the gateway for S s mid-window")
    ap.add_argument("--perf-keep", metavar="FILE",
                    help="keep the perf.data (the last N's) for `perf report -i FILE`")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args()
    info = B.require_release()
    B.hr("bench_scale (build %s, %s; nproc %d; load %s)" % (
        B.harness.BUILD_DIR, info.get("CMAKE_BUILD_TYPE"), os.cpu_count(), B.loadavg()))
    results = []
    for n in args.n:
        r = run(n, args)
        results.append(r)
        print_run(r)
        print("N=%d: %s" % (n, json.dumps(strip_hists(r))), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    B.hr("scale: %d Hz per cuff, telemetry_hz %d, window %.0f s%s" % (
        args.rate, args.telemetry_hz, args.window, ", staggered cuffs" if args.stagger else ""))
    B.table(["cuffs", "start s online / connected / supervised", "offered/s", "ingested/s",
             "published/s", "pub/ingest", "tel msgs/s got / expected", "bare pub msgs/s",
             "gw/bare", "samples missing", "lag p50/max first 10 s ms",
             "lag p50/max last 10 s ms", "broker lat p50/max ms", "gw CPU %",
             "cuffsim CPU %", "mosq CPU %", "bench_sub CPU %", "gw RSS / HWM MiB",
             "bare unpaced msgs/s", "bare QoS 1 msgs/s", "load at window",
             "machine busy / others %"],
            [summary_row(r) for r in results])
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    sys.exit(main())
