#!/usr/bin/python3
"""Patient-safety defects found by outside trials (issue 8), end to end with
mosquitto + cuffsim + bfr-gateway. Each check failed on the gateway before
the fix it names (docs/safety.md):

- SR-26 time limits at plan acceptance: a plan whose continuous set, whose
  session total or whose reperfusion breaks a configured limit is refused
  with that limit named, nothing sent to the cuff;
- SR-16 battery read at connect: after a restart a cuff at 5 % shows
  battery_pct 5 and lop/measure is refused battery_low;
- SR-25 a cuff that reports a fault (relief valve tripped) refuses lop/measure;
- SR-15 a failed LOP measurement keeps the last valid LOP, and a restart
  restores it from the database (a session starts without a lop phase).
(test_safety_cuff_faults.py has the cuffs that lie, go deaf or lose their
supervision.)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, check_that, short_plan, sim_cuffs,  # noqa: E402
                     start_session, wait_phase, wait_session_end, wait_sim, session_events)

CUFFS = 6
START_S = 25.0
LOP_S = 40.0

def gateway(h):
    """The gateway process started last."""
    return [p for p in h.procs if p.name.startswith("gateway")][-1]


def stop_gateway(h):
    """An orderly stop on purpose (SIGTERM): exit status 0."""
    g = gateway(h)
    g.expect_exit = True
    rc = g.stop()
    check_that(rc == 0, "the gateway stopped with status %r" % rc)


def config(h, sim, extra=""):
    cuffs = sim_cuffs(sim)
    return h.write_gateway_config(cuffs, extra=extra)


def online(col, since=0.0):
    col.wait_for(lambda c: any(m.payload and m.payload.get("state") == "online"
                               for m in c.select("status", since)),
                 START_S, "status online")


def cuff_state(col, cuff):
    return col.latest_payload("cuff/%s/state" % cuff) or {}


def wait_cuff(col, cuff, pred, timeout, what):
    return col.wait_for(lambda c: (lambda p: p if p and pred(p) else None)(
        c.latest_payload("cuff/%s/state" % cuff)), timeout, "%s: %s" % (cuff, what))


def measure_lop(h, col, cuff):
    r = h.send_command(col, "lop/measure", {"cuff": cuff})
    check_that(r.get("ok") is True, "lop/measure refused: %s" % r.get("error"))
    return wait_cuff(col, cuff, lambda p: p.get("lop_mmHg") is not None and
                     p.get("cuff_state") != "measuring_lop", LOP_S, "a LOP")["lop_mmHg"]


def main():
    suite = Suite("test_safety_limits")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(CUFFS)
        col = h.collector()
        # Tight limits keep the plans short: a 40 s set breaks max_inflation_s
        # 30, three inflations of 14 + 7 s break session_total_s 60, and
        # min_reperfusion_s 120 makes a 60 s reperfusion too short.
        extra = ("limits = { leg = { max_pressure_mmHg = 250; max_pct_lop = 80; "
                 "session_total_s = 60; }; arm = { max_pressure_mmHg = 200; "
                 "max_pct_lop = 60; }; max_inflation_s = 30; min_reperfusion_s = 120; };\n")
        conf = config(h, sim)
        with open(conf) as f:
            text = f.read()
        # the harness writes its own limits block: replace it by the tight one
        start = text.index("limits = {")
        end = text.index("cuffs = (")
        text = text[:start] + extra + text[end:]
        with open(conf, "w") as f:
            f.write(text)
        h.start_gateway(conf)
        online(col)

        def plan_limits():
            before = sim.stats()
            cases = [
                ("a continuous 40 s set over max_inflation_s 30",
                 short_plan("cuff-01", reps=20, tempo=(1, 1)), "limit_exceeded",
                 "max_inflation_s"),
                ("three 14 s inflations over session_total_s 60",
                 short_plan("cuff-01", reps=7, tempo=(1, 1), mode="intermittent", rest_s=10,
                            sets=3), "session_total", "session_total_s"),
                ("reperfusion_s 60 under min_reperfusion_s 120",
                 {"exercises": [short_plan("cuff-01", reps=2)["exercises"][0],
                                short_plan("cuff-01", reps=2)["exercises"][0]]},
                 "reperfusion", "min_reperfusion_s"),
            ]
            for what, plan, code, named in cases:
                r = h.send_command(col, "session/start", {"plan": plan})
                check_that(r.get("ok") is False, "%s: accepted" % what)
                err = r.get("error") or {}
                check_that(err.get("code") == code, "%s: refused %r, want %s" %
                           (what, err.get("code"), code))
                check_that(named in err.get("message", ""), "%s: message %r does not name %s"
                           % (what, err.get("message"), named))
                print("  %s: %s: %s" % (what, code, err.get("message")))
            after = sim.stats()
            for b, a in zip(before["cuffs"], after["cuffs"]):
                check_that(a["cp_writes"] == b["cp_writes"],
                           "cuff %d got control-point writes: %s -> %s"
                           % (a["cuff"], b["cp_writes"], a["cp_writes"]))
            # within the limits: accepted
            r = h.send_command(col, "session/start",
                               {"plan": short_plan("cuff-01", reps=5, tempo=(1, 1))})
            check_that(r.get("ok") is True, "a 10 s plan refused: %s" % r.get("error"))
            r = h.send_command(col, "session/stop", {"session_id": r["session_id"]})

        suite.check("SR-26 plans over max_inflation_s, session_total_s or under "
                    "min_reperfusion_s refused at start, the limit named, nothing sent",
                    plan_limits)

        def lop_kept_and_restored():
            lop = measure_lop(h, col, "cuff-02")
            sim.control("lop-fail 2")
            r = h.send_command(col, "lop/measure", {"cuff": "cuff-02"})
            check_that(r.get("ok") is True, "lop/measure refused: %s" % r.get("error"))
            col.wait_for(lambda c: any(m.payload.get("code") == "lop_invalid" and
                                       m.payload.get("cuff") == "cuff-02"
                                       for m in c.select("alarm") if m.payload),
                         LOP_S + 30, "lop_invalid on cuff-02")
            st = wait_cuff(col, "cuff-02", lambda p: p.get("cuff_state") != "measuring_lop",
                           10, "measurement over")
            check_that(st.get("lop_mmHg") == lop, "a failed measurement replaced LOP %s by %r"
                       % (lop, st.get("lop_mmHg")))
            sim.control("clear 2")
            # The failed search left the cuff deflating: wait till it is down.
            wait_sim(sim, 2, lambda s: s["true_pressure"] < 10, 30, "deflated")
            # A restart keeps it: restored from the database.
            stop_gateway(h)
            t0 = time.monotonic()
            h.start_gateway(conf)
            online(col, t0)
            wait_cuff(col, "cuff-02", lambda p: p.get("link") == "connected", START_S,
                      "connected again")
            col.wait_for(lambda c: (c.latest_payload("cuff/cuff-02/state") or {})
                         .get("lop_mmHg") == lop, 10, "LOP %s restored" % lop)
            sid = start_session(h, col, short_plan("cuff-02", reps=3, tempo=(1, 1)))
            wait_phase(col, sid, "inflating", 10)
            phases = [e.get("phase") for e in session_events(col, sid) if e["type"] == "phase"]
            check_that("lop" not in phases, "the restored LOP was not used: %s" % phases)
            print("  LOP %.1f mmHg kept after a failed measurement and restored at restart"
                  % lop)
            h.send_command(col, "session/stop", {"session_id": sid})

        suite.check("SR-15 a failed LOP measurement keeps the last valid LOP; a restart "
                    "restores it", lop_kept_and_restored)

        def battery_at_connect():
            sim.control("battery 3 5")
            stop_gateway(h)
            t0 = time.monotonic()
            h.start_gateway(conf)
            online(col, t0)
            st = wait_cuff(col, "cuff-03", lambda p: p.get("link") == "connected" and
                           p.get("battery_pct") is not None, START_S, "battery known")
            check_that(st["battery_pct"] == 5, "battery_pct %r, cuff at 5" % st["battery_pct"])
            r = h.send_command(col, "lop/measure", {"cuff": "cuff-03"})
            check_that(r.get("ok") is False and r["error"]["code"] == "battery_low",
                       "lop/measure at 5 %%: %s" % r)
            print("  after a restart: battery_pct 5, lop/measure refused %s" %
                  r["error"]["message"])

        suite.check("SR-16 battery read at connect: after a restart a cuff at 5 % refuses "
                    "lop/measure", battery_at_connect)

        def fault_refuses():
            sid = start_session(h, col, short_plan("cuff-04", reps=10, tempo=(1, 1)))
            wait_phase(col, sid, "set", 40)
            sim.control("stuck-valve 4")
            wait_session_end(col, sid, 15)
            wait_sim(sim, 4, lambda s: "over_pressure" in s["faults"], 10,
                     "relief valve tripped")
            r = h.send_command(col, "lop/measure", {"cuff": "cuff-04"})
            check_that(r.get("ok") is False and r["error"]["code"] == "cuff_fault",
                       "lop/measure on a tripped cuff: %s" % r)
            print("  relief valve tripped: lop/measure refused %s" % r["error"]["message"])
            sim.control("clear 4")

        suite.check("SR-25 a cuff whose relief valve tripped refuses lop/measure", fault_refuses)

    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
