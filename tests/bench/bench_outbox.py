#!/usr/bin/python3
"""bench_outbox: store-and-forward under a broker outage with 100 active cuffs.

Run (from the repository root; tests/bench/run-all.sh does all of this):

    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_outbox.py \
        [--cuffs 100] [--outage 60 180] [--runs K] [--production-broker]
        [--broker-conf LINE]... [--reference COUNT]

For each outage length: mosquitto, cuffsim (100 cuffs, 50 Hz), the gateway,
and one single-cuff session per cuff (continuous, tempo [1,1] s, two sets of
100 reps with no rest: 400 s inflated, below the 600 s limit), so that rep
events (QoS 1, never coalesced), session states, cuff states and alarms flow.
Once every session is in its first `set`, mosquitto is stopped for the outage
and started again on the same port. Measured:
- outbox depth (rows of the outbox table in <data_dir>/bfr-gateway.db, read
  with a separate read-only SQLite connection every 50 ms) at the end of the
  outage, and the rate at which it grew (messages committed per s);
- drain: time from mosquitto accepting connections again to the outbox
  depth first falling back to the live level (<= its pre-outage maximum + 10),
  and the drain rate (rows removed per s, net of new rows);
- delivery: per session, the rep/phase event seq numbers received by a
  subscriber (connected before the gateway's reconnect) have no gap across
  the outage (events are never dropped);
- with --reference COUNT (issue 13): right after the drain, on the same
  broker, tests/bench/bench_pub --mode outbox (bare Paho, QoS 1, 256 in
  flight) publishes COUNT messages: its rate, and the drain's share of it.
"""

import argparse
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def depth_reader(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)

    def depth():
        return con.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return depth


def plan(cuff):
    return {"plan": {"exercises": [{
        "name": "bench", "cuffs": [cuff], "pct_lop": 50, "mode": "continuous",
        "sets": [100, 100], "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60}]}}


def run(n, outage_s, ref_count=0):
    h = B.Harness("bench-outbox-%d" % outage_s)
    sub = None
    try:
        broker = h.start_broker()
        port = broker.port
        sim = h.start_cuffsim(n, ["--rate", "50"])
        topics = [B.PREFIX + "/status", B.PREFIX + "/cuff/+/state", B.PREFIX + "/reply/#",
                  B.PREFIX + "/session/+/event"]
        sub = B.LeanSub(port, topics)
        cfg = h.write_gateway_config(B.sim_cuffs(sim))
        gw = h.start_gateway(cfg)
        sub.wait(lambda: sub.n_connected() >= n, 60, "all cuffs connected")
        # Discovery done: every cuff has sent samples.
        deadline = time.monotonic() + 60
        while not all(c["samples_sent"] > 0 for c in sim.stats()["cuffs"]):
            if time.monotonic() > deadline:
                B.fail("not every cuff streams")
            time.sleep(0.2)
        sub.wait(lambda: (sub.status or {}).get("state") == "online", 30, "status online")
        sessions = []
        for i in range(1, n + 1):
            try:
                r = sub.command("session/start", plan("cuff-%02d" % i), timeout=30)
            except B.harness.TestFailure:  # the gateway's cmd subscription may be in flight
                r = sub.command("session/start", plan("cuff-%02d" % i), timeout=30)
                if not r.get("ok") and r["error"]["code"] == "cuff_busy":
                    # The first start was accepted, its reply late: reuse its session.
                    r = {"ok": True, "session_id": r["error"]["message"].split()[-1]}
            if not r.get("ok"):
                B.fail("session/start refused: %r" % r)
            sessions.append(r["session_id"])
        # Every session in its first set (LOP measured, inflated).
        sub.wait(lambda: all(any(e[2] == "rep" for e in sub.events.get(s, ()))
                             for s in sessions), 90, "every session repping")
        depth = depth_reader(os.path.join(h.tmp, "data", "bfr-gateway.db"))
        live = []
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:  # live depth before the outage
            live.append(depth())
            time.sleep(0.05)
        live_max = max(live)
        # Stop the broker first, then read what the subscriber got: an event the
        # broker took from the gateway before stopping was forwarded to it (the
        # subscriber closing first made such an event a false gap: the broker
        # acknowledged it to the gateway and, not persistent, forgot it).
        broker.stop()
        t_down = time.monotonic()
        with sub.cond:
            seq_before = {s: max(e[1] for e in sub.events[s]) for s in sessions}
            last_before = {s: max(sub.events[s], key=lambda e: e[1])[2] for s in sessions}
        sub.close()
        sub = None
        cpu = B.CpuWindow({"gateway": gw.pid})
        cpu.start()
        d0 = depth()
        samples = []
        while time.monotonic() - t_down < outage_s:
            samples.append((time.monotonic() - t_down, depth()))
            time.sleep(0.5)
        d_end = depth()
        cpu_down = cpu.stop()
        grow_rate = (d_end - d0) / (time.monotonic() - t_down)
        # Broker back on the same port; a subscriber connected before the gateway's
        # reconnect (its backoff is >= the time the subscriber needs).
        broker.start(port=port)
        t_up = time.monotonic()
        sub = B.LeanSub(port, topics, name="bench-after")
        t_sub = time.monotonic() - t_up
        cpu.start()
        t_drained = None
        t_online = None  # the gateway reconnected: its retained status arrived
        d_online = None
        trace = []
        deadline = t_up + 120
        while time.monotonic() < deadline:
            d = depth()
            trace.append((time.monotonic() - t_up, d))
            if t_online is None and (sub.status or {}).get("state") == "online":
                t_online, d_online = time.monotonic() - t_up, d
            if d <= live_max + 10:
                t_drained = time.monotonic() - t_up
                break
            time.sleep(0.05)
        if t_online is None and (sub.status or {}).get("state") == "online":
            t_online, d_online = t_drained, trace[-1][1]
        cpu_up = cpu.stop()
        # Gaps: every seq after the last one seen before the outage must arrive.
        missing = 0
        missing_what = []
        ended = ("completed", "stopped", "aborted")

        def complete():
            nonlocal missing, missing_what
            missing = 0
            missing_what = []
            for s in sessions:
                got = {e[1] for e in sub.events.get(s, ())}
                if not got:
                    if last_before[s] not in ended:  # it had more to say
                        missing += 1
                        missing_what.append((s, "nothing after seq %d (%s)"
                                             % (seq_before[s], last_before[s])))
                    continue
                top = max(got)
                gap = [q for q in range(seq_before[s] + 1, top + 1) if q not in got]
                missing += len(gap)
                if gap:
                    missing_what.append((s, "seq %s" % gap[:10]))
            return missing == 0
        try:
            sub.wait(complete, 30, "every event seq after the outage")
        except B.harness.TestFailure:
            pass
        received = sum(len([e for e in sub.events.get(s, ()) if e[1] > seq_before[s]])
                       for s in sessions)
        rss, hwm = B.ProcStat(gw.pid).mem_kib()
        ref = None
        if ref_count:
            # The reference of issue 13, same broker, same run (the gateway's live
            # traffic goes on): bench_pub, QoS 1, 256 in flight like the drain.
            ref = B.run_bench_pub(port, ["--mode", "outbox", "--count", ref_count,
                                         "--duration", 0, "--topics", 100])
        dropped_lines = [ln for ln in broker.proc.lines if "dropped" in ln.lower()]
        return {"outage_s": outage_s, "t_online": t_online, "d_online": d_online,
                "broker_drop_lines": len(dropped_lines),
                "broker_drop_example": dropped_lines[0] if dropped_lines else None, "d0": d0, "d_end": d_end, "live_max": live_max,
                "grow_rate": grow_rate, "t_drained": t_drained, "t_sub": t_sub,
                "drain_rate": (d_end - (trace[-1][1] if trace else d_end)) / t_drained
                if t_drained else None,
                "missing": missing, "missing_what": missing_what[:10], "received_after": received, "cpu_down": cpu_down["gateway"],
                "cpu_up": cpu_up["gateway"], "hwm": hwm, "rss": rss, "ref": ref,
                "trace": trace[:: max(1, len(trace) // 20)]}
    finally:
        if sub:
            sub.close()
        h.teardown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuffs", type=int, default=100)
    ap.add_argument("--outage", type=int, nargs="*", default=[60, 180])
    ap.add_argument("--broker-conf", action="append", default=[],
                    help="extra mosquitto.conf line, e.g. 'max_inflight_messages 0' (repeatable)")
    ap.add_argument("--production-broker", action="store_true",
                    help="the throughput settings of deploy/mosquitto/production.conf "
                         "(max_inflight_messages, max_queued_messages, ...) before --broker-conf")
    ap.add_argument("--runs", type=int, default=1, help="runs of each outage length")
    ap.add_argument("--reference", type=int, default=0, metavar="COUNT",
                    help="after each drain, bench_pub --mode outbox with COUNT messages on "
                         "the same broker: the bare QoS 1 rate of issue 13 (needs bench_pub)")
    args = ap.parse_args()
    conf = (B.production_broker_lines() if args.production_broker else []) + args.broker_conf
    if conf:
        B.broker_extra(conf)
        print("broker config + %r" % conf)
    info = B.require_release()
    B.hr("bench_outbox (build %s, %s)" % (B.harness.BUILD_DIR, info.get("CMAKE_BUILD_TYPE")))
    rows = []
    for o in [o for o in args.outage for _ in range(args.runs)]:
        r = run(args.cuffs, o, args.reference)
        print("outage %d s: %r" % (o, r), flush=True)
        proper = (r["t_drained"] - r["t_online"]
                  if r["t_drained"] is not None and r["t_online"] is not None else None)
        rows.append([args.cuffs, o, r["live_max"], r["d_end"], "%.1f" % r["grow_rate"],
                     "%.2f" % r["t_drained"] if r["t_drained"] is not None else "not drained",
                     "%.2f" % r["t_online"] if r["t_online"] is not None else "-",
                     "%.2f" % proper if proper is not None else "-",
                     "%.0f" % ((r["d_online"] - r["live_max"]) / proper) if proper else "-",
                     "%.0f" % r["drain_rate"] if r["drain_rate"] else "-",
                     r["received_after"], r["missing"], "%.1f" % r["cpu_down"],
                     "%.1f" % r["cpu_up"], "%.1f" % (r["hwm"] / 1024), r["broker_drop_lines"],
                     "%.0f" % r["ref"]["achieved_msgs_s"] if r["ref"] else "-",
                     "%.2f" % ((r["d_online"] - r["live_max"]) / proper /
                               r["ref"]["achieved_msgs_s"]) if r["ref"] and proper else "-"])
    B.hr("outbox: %d cuffs in sessions, broker down then back" % args.cuffs)
    B.table(["cuffs", "outage s", "live depth", "depth at end", "committed/s during outage",
             "broker up -> drained s", "broker up -> gw online s", "gw online -> drained s",
             "drain rows/s after online", "net drain rows/s whole", "events received after",
             "event seq missing", "gw CPU % down", "gw CPU % drain", "gw HWM MiB",
             "broker 'dropped' log lines", "bare QoS 1 msgs/s", "drain / bare"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
