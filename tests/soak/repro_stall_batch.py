#!/usr/bin/python3
"""Reproduction of a fault-campaign finding (docs/reliability.md, "Fault
campaign", finding 1; fixed by the loop change of commit b295b69):
after the gateway's event loop was held up (CPU starvation; here SIGSTOP for
1 s), more than 64 inflated cuffs get false `telemetry_lost` HIGH alarms,
safety DEFLATEs and aborted sessions, although every cuff kept sending and
its samples wait in its socket.

Why (before the fix): loop_run_once() (gateway/event/loop.c) took at most 64
ready descriptors from one epoll_wait() and then ran the due timers; the
sample-timeout check of every cuff whose socket was not among those 64 fired
before its waiting samples were read. Now one epoll_wait() returns every
ready descriptor (test_loop: test_every_ready_fd_before_timers).

    /usr/bin/python3 tests/soak/repro_stall_batch.py [--cuffs 100] [--control 40]

Runs the stall twice: with --control cuffs inflated (at most 64: expected 0
alarms) and with --cuffs cuffs inflated. Exit status 0 when neither run
raised a telemetry_lost alarm, 1 otherwise. Not run by ctest (100 inflated
cuffs under ASan for minutes, and a busy machine can starve the gateway for
real); the unit test above guards the fix.
"""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import (Suite, check_that, sim_cuff_stats, sim_cuffs, start_session,  # noqa: E402
                     wait_until)

STALL_S = 1.0


def run(suite, n_cuffs):
    result = {}
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(n_cuffs, ["--rate", "20", "--stagger"])
        col = h.collector()
        conf = h.write_gateway_config(sim_cuffs(sim), telemetry_hz=1)
        gw = h.start_gateway(conf)
        col.wait_for(lambda c: sum(v == "connected" for v in c.cuff_links().values()) ==
                     n_cuffs, 60, "%d cuffs connected" % n_cuffs)
        for i in range(1, n_cuffs + 1):
            cuff = "cuff-%02d" % i
            start_session(h, col, {"exercises": [{
                "name": "hold", "cuffs": [cuff], "pct_lop": 50, "mode": "continuous",
                "sets": [100], "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60}]})
        wait_until(lambda: all(c["pressure"] > 60 for c in sim.stats()["cuffs"]), 90,
                   "every cuff inflated", poll=0.5)
        t0 = time.monotonic()
        gw.send_signal(signal.SIGSTOP)
        time.sleep(STALL_S)  # the stall is the fault under test, not a wait for a condition
        gw.send_signal(signal.SIGCONT)
        t1 = time.monotonic()
        # A false alarm comes in the loop's first iteration after the stall, long
        # before every cuff's telemetry has been published again.
        col.wait_for(lambda c: len(c.telemetry_cuffs(t1 + 0.5)) == n_cuffs, 30,
                     "telemetry of every cuff after the stall")
        alarms = [m.payload for m in col.select("alarm", t0) if m.payload and
                  m.payload.get("code") == "telemetry_lost"]
        unsent = sum(sim_cuff_stats(sim, i)["samples_dropped"] for i in range(1, n_cuffs + 1))
        result = {"cuffs": n_cuffs, "telemetry_lost": len({a["alarm_id"] for a in alarms}),
                  "unsent": unsent}
        print("  %d cuffs inflated, gateway stopped %.1f s: %d telemetry_lost alarms "
              "(cuffsim could not send %d samples)" %
              (n_cuffs, STALL_S, result["telemetry_lost"], unsent), flush=True)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuffs", type=int, default=100)
    ap.add_argument("--control", type=int, default=40)
    a = ap.parse_args()
    suite = Suite("repro_stall_batch")
    for n in (a.control, a.cuffs):
        r = run(suite, n)  # a setup failure is counted by the harness
        if r:
            suite.check("stall of %.1f s with %d inflated cuffs: no telemetry_lost" % (STALL_S, n),
                        lambda r=r: check_that(r["telemetry_lost"] == 0,
                                               "%d false telemetry_lost alarms"
                                               % r["telemetry_lost"]))
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
