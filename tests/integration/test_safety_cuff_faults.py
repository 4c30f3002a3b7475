#!/usr/bin/python3
"""Cuffs that lie, go deaf or lose their supervision (issue 8), end to end
with mosquitto + cuffsim + bfr-gateway. Each check failed before its fix:

- SR-24 a dead control channel: over the ceiling, the cuff does not answer
  the DEFLATE (cuffsim cp-hang: Control Point writes lost on the air). The
  gateway stops its supervision keepalives, so the cuff's own fail-safe
  deflates it within its timeout, then drops the link and reconnects. Before:
  the keepalives kept the fail-safe from firing and the cuff stayed inflated.
- SR-15 an impossible LOP: a cuff that answers MEASURE_LOP with 350 mmHg
  after a 250 mmHg search ceiling (cuffsim lop-value). The value is rejected,
  lop_invalid raised, the last valid LOP kept. Before: stored and used.
- SR-14 a cuff that deflated itself while its samples kept coming (cuffsim
  supervision-lost) ends its session `supervision_deflated`. Before: the
  session kept cueing reps on a deflated cuff.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, check_that, short_plan, sim_cuffs, start_session,  # noqa: E402
                     wait_phase, wait_session_end, wait_sim, wait_alarm, session_events)

CUFFS = 3
START_S = 25.0
LOP_S = 40.0


def online(col):
    col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online",
                 START_S, "status online")


def wait_cuff(col, cuff, pred, timeout, what):
    return col.wait_for(lambda c: (lambda p: p if p and pred(p) else None)(
        c.latest_payload("cuff/%s/state" % cuff)), timeout, "%s: %s" % (cuff, what))


def measure_lop(h, col, cuff):
    r = h.send_command(col, "lop/measure", {"cuff": cuff})
    check_that(r.get("ok") is True, "lop/measure refused: %s" % r.get("error"))


def main():
    suite = Suite("test_safety_cuff_faults")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(CUFFS)
        col = h.collector()
        h.start_gateway(h.write_gateway_config(sim_cuffs(sim)))
        online(col)

        def dead_control_channel():
            sid = start_session(h, col, short_plan("cuff-01", reps=30, tempo=(1, 1),
                                                   pct_lop=60))
            wait_phase(col, sid, "set", LOP_S)
            held = wait_sim(sim, 1, lambda s: s["true_pressure"] > 60, 5, "inflated")
            sim.control("cp-hang 1")
            t0 = time.monotonic()
            sim.control("spike 1 150 20000")  # the reading far over the 250 ceiling
            wait_session_end(col, sid, 5)
            s = wait_sim(sim, 1, lambda s: s["supervision_deflates"] >= 1 and
                         s["true_pressure"] < 20, 12, "deflated by its own fail-safe")
            dt = time.monotonic() - t0
            check_that(s["deflates"]["total"] == 0,
                       "a DEFLATE got through a dead channel: %s" % s["deflates"])
            print("  held %.0f mmHg, DEFLATE unanswered: cuff deflated itself after %.1f s"
                  % (held["true_pressure"], dt))
            # The gateway gave up on the link and comes back once the cuff answers.
            wait_cuff(col, "cuff-01", lambda p: p.get("link") != "connected", 10,
                      "link dropped")
            sim.control("clear 1")
            wait_cuff(col, "cuff-01", lambda p: p.get("link") == "connected", 20,
                      "reconnected")
            print("  link dropped and re-established after %.1f s" % (time.monotonic() - t0))

        suite.check("SR-24 an unanswered safety DEFLATE: keepalives stop, the cuff's fail-safe "
                    "deflates it, the link is re-established", dead_control_channel)

        def impossible_lop():
            measure_lop(h, col, "cuff-02")
            st = wait_cuff(col, "cuff-02", lambda p: p.get("lop_mmHg") is not None and
                           p.get("cuff_state") != "measuring_lop", LOP_S, "a LOP")
            valid = st["lop_mmHg"]
            sim.control("lop-value 2 350")
            t0 = time.monotonic()
            measure_lop(h, col, "cuff-02")
            a = wait_alarm(col, "cuff-02", "lop_invalid", LOP_S, since=t0)
            check_that(a.payload["values"].get("limit") == 350,
                       "lop_invalid values %s" % a.payload["values"])
            st = wait_cuff(col, "cuff-02", lambda p: p.get("cuff_state") != "measuring_lop",
                           10, "measurement over")
            check_that(st.get("lop_mmHg") == valid, "LOP %r after a 350 mmHg answer, was %s"
                       % (st.get("lop_mmHg"), valid))
            sim.control("clear 2")
            print("  350 mmHg after a 250 mmHg search: lop_invalid, LOP %.1f kept" % valid)

        suite.check("SR-15 a LOP above the search ceiling is rejected, the last valid one kept",
                    impossible_lop)

        def supervision_lost():
            sid = start_session(h, col, short_plan("cuff-03", reps=30, tempo=(1, 1),
                                                   pct_lop=60))
            wait_phase(col, sid, "set", LOP_S)
            t0 = time.monotonic()
            sim.control("supervision-lost 3")
            end = wait_session_end(col, sid, 10)
            check_that(end["type"] == "aborted" and end.get("reason") == "supervision_deflated",
                       "session ended %s %s" % (end["type"], end.get("reason")))
            reps = [e for e in session_events(col, sid) if e["type"] == "rep" and
                    e["seq"] > end["seq"]]
            check_that(not reps, "reps cued after the end: %s" % reps)
            print("  supervision writes lost: session aborted supervision_deflated after %.1f s"
                  % (time.monotonic() - t0))
            sim.control("clear 3")

        suite.check("SR-14 a cuff that deflated itself (supervision lost) ends its session",
                    supervision_lost)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
