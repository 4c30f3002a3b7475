#!/usr/bin/python3
"""bench_outbox_drain: the real gateway drains a big backlog (docs/benchmarks.md
"Outbox memory").

Run (from the repository root, with a Release build):

    tests/bench/bench_outbox_memory.sh 24 e2e          # makes the backlog, then runs this
    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_outbox_drain.py \\
        DATA_DIR [--broker-conf "max_inflight_messages 0" ...]

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
"""

import argparse
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--broker-conf", action="append", default=[],
                    help="extra mosquitto.conf line (repeatable)")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args()
    db = os.path.join(os.path.abspath(args.data_dir), "bfr-gateway.db")
    if not os.path.exists(db):
        B.fail("no database in %s" % args.data_dir)
    info = B.require_release()
    B.broker_extra(args.broker_conf)
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
            time.sleep(0.5)  # a sampling period, not a wait for a condition
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
        sub.close()
    finally:
        h.teardown()
        con.close()


if __name__ == "__main__":
    main()
