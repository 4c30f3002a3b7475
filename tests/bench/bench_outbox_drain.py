#!/usr/bin/python3
"""bench_outbox_drain: the real gateway drains a big backlog (docs/benchmarks.md
"Outbox memory").

Run (from the repository root, with a Release build):

    tests/bench/bench_outbox_memory.sh 24 e2e          # makes the backlog, then runs this
    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_outbox_drain.py \\
        DATA_DIR [--broker-conf "max_inflight_messages 0" ...] [--production-broker]
        [--poll S] [--reference COUNT]

DATA_DIR holds a bfr-gateway.db whose outbox has a backlog, as
bench_outbox_memory --no-drain leaves it (a simulated outage of 100 cuffs; the
rows keep their own topics). The gateway starts on it (outbox_max_mib 4096,
so nothing is refused) with mosquitto up and one cuffsim cuff, and drains it
to the broker. Measured: the start-up (process start -> the "messages waiting"
log line: the outbox's scan of the table; -> status online), the drain
(status online -> the outbox table empty, polled with SELECT min(id) on a
read-only connection), its rate in rows/s, and the gateway's VmRSS every
0.5 s and VmHWM. Order is checked by bench_outbox_memory (the same outbox
code without the network) and the integration tests; no subscriber here, so
the broker does not wait for one.

Issue 13's drain target with a faster-than-real-time producer: a 10-minute
outage is `bench_outbox_memory --hours 0.1667 --no-drain DIR` (seconds, not
10 minutes), drained here with --production-broker (the throughput settings
of deploy/mosquitto/production.conf), --poll 0.05 (the depth poll, s) and
--reference COUNT: on the same broker, before the gateway starts and again
right after the drain, bench_pub --mode outbox (bare Paho, QoS 1, 256 in
flight) publishes COUNT messages, and the drain's rate is given as a share
of the faster of the two (and of their mean). The drain here starts at a
gateway start (status online), not at a reconnect.
"""

import argparse
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def reference(port, count):
    """bench_pub --mode outbox (bare Paho, QoS 1, 256 in flight): msgs/s."""
    ref = B.run_bench_pub(port, ["--mode", "outbox", "--count", count, "--duration", 0,
                                 "--topics", 100])
    return ref["achieved_msgs_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--broker-conf", action="append", default=[],
                    help="extra mosquitto.conf line (repeatable)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--production-broker", action="store_true",
                    help="the throughput settings of deploy/mosquitto/production.conf")
    ap.add_argument("--poll", type=float, default=0.5, help="depth poll period, s")
    ap.add_argument("--reference", type=int, default=0, metavar="COUNT",
                    help="then bench_pub --mode outbox, COUNT messages, same broker")
    args = ap.parse_args()
    db = os.path.join(os.path.abspath(args.data_dir), "bfr-gateway.db")
    if not os.path.exists(db):
        B.fail("no database in %s" % args.data_dir)
    info = B.require_release()
    B.broker_extra((B.production_broker_lines() if args.production_broker else []) +
                   args.broker_conf)
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
    rows0 = con.execute("SELECT count(*) FROM outbox").fetchone()[0]
    size = os.path.getsize(db) / 2**20
    B.hr("gateway drains a backlog of %d rows (%.0f MiB database), build %s" %
         (rows0, size, info.get("CMAKE_BUILD_TYPE")))
    h = B.Harness("bench-outbox-drain")
    try:
        broker = h.start_broker()
        sim = h.start_cuffsim(1)
        sub = B.LeanSub(broker.port, [B.PREFIX + "/status"])
        cfg = h.write_gateway_config(B.sim_cuffs(sim), data_dir=os.path.abspath(args.data_dir),
                                     extra="store = { outbox_max_mib = 4096; };\n")
        refs = []
        if args.reference:
            # Before the gateway too: the machine's rate moves from one
            # second to the next, and one reference after a short drain
            # measured the machine as much as the gateway.
            refs.append(reference(broker.port, args.reference))
        t0 = time.monotonic()
        gw = h.start_gateway(cfg)
        stat = B.ProcStat(gw.pid)
        gw.wait_line(r"outbox: \d+ messages waiting", 600)
        t_loaded = time.monotonic() - t0
        sub.wait(lambda: (sub.status or {}).get("state") == "online", 600, "status online")
        t_online = time.monotonic()
        cpu0 = stat.cpu_s()
        max_rss, samples, last = 0, [], None
        while True:
            rss, hwm = stat.mem_kib()
            max_rss = max(max_rss, rss)
            now = time.monotonic()
            lo = con.execute("SELECT min(id) FROM outbox").fetchone()[0]
            if lo is None:
                break
            if last is None or now - last >= 10:
                last = now
                samples.append((now - t_online, lo, rss))
                print("  %7.1f s  oldest id %9d  gateway RSS %6.1f MiB" %
                      (now - t_online, lo, rss / 1024.0), flush=True)
            if now - t_online > args.timeout:
                B.fail("not drained after %.0f s" % args.timeout)
            time.sleep(args.poll)  # a sampling period, not a wait for a condition
        t_drained = time.monotonic()
        cpu = 100.0 * (stat.cpu_s() - cpu0) / (t_drained - t_online)
        rss, hwm = stat.mem_kib()
        dt = t_drained - t_online
        print("start-up: backlog counted after %.2f s, status online after %.2f s" %
              (t_loaded, t_online - t0))
        print("drain: %d rows in %.1f s = %.0f rows/s (status online -> outbox empty), "
              "gateway CPU %.0f %%" % (rows0, dt, rows0 / dt, cpu))
        print("gateway memory: VmRSS max %.1f MiB during the drain, VmHWM %.1f MiB" %
              (max_rss / 1024.0, hwm / 1024.0))
        if args.reference:
            refs.append(reference(broker.port, args.reference))
            best = max(refs)
            print("reference: bare QoS 1 %.0f msgs/s before the gateway, %.0f after the drain "
                  "(%d messages each); drain / bare %.2f (against the faster), %.2f (against "
                  "their mean)" % (refs[0], refs[1], args.reference,
                                   (rows0 / dt) / best if best else 0,
                                   (rows0 / dt) / (sum(refs) / 2) if best else 0))
        sub.close()
    finally:
        h.teardown()
        con.close()


if __name__ == "__main__":
    main()
