#!/usr/bin/python3
"""The cuff's own supervision fail-safe (DESIGN section 3, docs/gatt-profile.md): a
gateway that stops writing the Supervision keepalive gets its inflated cuff
deflated by the cuff itself within the timeout (3 s by default).

1. SIGSTOP the gateway while a cuff holds pressure: cuffsim counts a
   supervision deflate within the timeout and the cuff falls below 20 mmHg
   (time printed). SIGCONT: the gateway lives on, ends the session (aborted),
   raises supervision_deflated (SR-14) and/or telemetry_lost (SR-09), shows
   the deflated-by-supervision status bit (0x0100) in the cuff's state.
2. SIGKILL the gateway while another cuff holds pressure: deflated by
   supervision within the timeout plus margin.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Suite, alarm_records, check_that, session_events,  # noqa: E402
                     short_plan, sim_cuff_stats, sim_cuffs, start_session, wait_phase,
                     wait_session_end, wait_sim)

LOP = 120
START_S = 20.0
SET_S = 30.0
SUPERVISION_S = 3.0      # gateway default supervision_timeout_ms (docs/configuration.md)
MARGIN_S = 1.5           # tick granularity of cuffsim + the sanitizer build
DEFLATED_MMHG = 20.0
ST_SUPERVISION_DEFLATED = 0x0100


def holding(sim, index):
    return wait_sim(sim, index, lambda s: s["target"] > 50 and
                    abs(s["true_pressure"] - s["target"]) < 10, 10, "holding its target")


def measure_supervision(sim, index, t0, what):
    """Polls cuffsim (20 ms) from t0 until the cuff is below 20 mmHg; returns
    (seconds to the supervision deflate, seconds to < 20 mmHg)."""
    t_sup = None
    deadline = t0 + SUPERVISION_S + MARGIN_S + 4.0
    while True:
        s = sim_cuff_stats(sim, index)
        now = time.monotonic()
        if t_sup is None and s["supervision_deflates"] >= 1:
            t_sup = now - t0
        if s["true_pressure"] < DEFLATED_MMHG and t_sup is not None:
            t_low = now - t0
            break
        check_that(now < deadline, "%s: cuff %d not deflated by supervision within %.1f s "
                   "(pressure %.1f, supervision deflates %d)" %
                   (what, index, deadline - t0, s["true_pressure"], s["supervision_deflates"]))
        time.sleep(0.02)  # polling cuffsim, which cannot signal; bounded by the deadline
    check_that("supervision" in s["faults"], "cuffsim faults %s lack supervision" % s["faults"])
    check_that(s["state"] in ("deflating", "idle"), "cuff state %s" % s["state"])
    check_that(t_sup <= SUPERVISION_S + MARGIN_S,
               "%s: supervision deflate after %.2f s (timeout %.1f s)" %
               (what, t_sup, SUPERVISION_S))
    print("  %s: supervision deflate after %.2f s, below %.0f mmHg after %.2f s" %
          (what, t_sup, DEFLATED_MMHG, t_low))
    return t_sup, t_low


def main():
    suite = Suite("test_supervision")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(2, ["--lop", str(LOP)])
        col = h.collector()
        cuffs = sim_cuffs(sim)
        gw = h.start_gateway(h.write_gateway_config(cuffs))
        ids = {c["id"] for c in cuffs}
        col.wait_for(lambda c: set(c.cuff_links()) >= ids and
                     all(v == "connected" for v in c.cuff_links().values()),
                     START_S, "every cuff connected")

        state = {}

        def sigstop():
            sid = start_session(h, col, short_plan("cuff-01", reps=30))
            state["sid"] = sid
            wait_phase(col, sid, "set", SET_S)
            holding(sim, 1)
            check_that(sim_cuff_stats(sim, 1)["supervision_deflates"] == 0,
                       "supervision deflated before the test")
            t0 = time.monotonic()
            gw.send_signal(signal.SIGSTOP)
            try:
                measure_supervision(sim, 1, t0, "SIGSTOP")
            finally:
                gw.send_signal(signal.SIGCONT)
            state["t_cont"] = time.monotonic()

        suite.check("SIGSTOP while inflated: the cuff deflates itself within the supervision "
                    "timeout", sigstop)

        def recovers():
            check_that("sid" in state, "no session from the previous check")
            sid, t_cont = state["sid"], state["t_cont"]
            e = wait_session_end(col, sid, 10)
            check_that(e["type"] == "aborted", "session ended %s after the supervision "
                       "deflate" % e["type"])
            # SR-14: the status bit raises supervision_deflated (MEDIUM technical).
            sd = col.wait_for(lambda c: alarm_records(c, "cuff-01", "supervision_deflated"), 10,
                              "supervision_deflated on cuff-01")
            a = sd[0].payload
            check_that(a["priority"] == "medium" and a["kind"] == "technical",
                       "supervision_deflated %s %s" % (a["priority"], a["kind"]))
            check_that(a["condition_present"] is True, "supervision_deflated without condition")
            codes = sorted({m.payload["code"] for m in alarm_records(col, "cuff-01")})
            tl = alarm_records(col, "cuff-01", "telemetry_lost")
            if tl:
                check_that(tl[0].payload["priority"] == "high", "telemetry_lost not high")
            col.wait_for(lambda c: any(
                m.payload and m.payload["cuff"] == "cuff-01" and m.payload["link"] == "connected"
                and (m.payload["status_bits"] or 0) & ST_SUPERVISION_DEFLATED
                for m in c.select("cuff-state", t_cont)), 10,
                "cuff-01 state with the deflated-by-supervision status bit")
            check_that(gw.alive(), "the gateway died after SIGCONT")
            col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online",
                         15, "status online after SIGCONT")
            print("  after SIGCONT: session aborted (%s), alarms %s" % (e.get("reason"), codes))
            check_that(not any(x["type"] == "phase" and x.get("phase") == "inflating"
                               for x in session_events(col, sid)
                               if x["seq"] > 5), "the session re-inflated after the fail-safe")

        suite.check("SIGCONT: the gateway recovers, aborts the session, raises "
                    "supervision_deflated/telemetry_lost, shows status bit 0x0100", recovers)

        def sigkill():
            before = sim_cuff_stats(sim, 2)["supervision_deflates"]
            check_that(before == 0, "cuff 2 supervision deflates %d before the test" % before)
            sid = start_session(h, col, short_plan("cuff-02", reps=30))
            wait_phase(col, sid, "set", SET_S)
            holding(sim, 2)
            t0 = time.monotonic()
            gw.kill()
            measure_supervision(sim, 2, t0, "SIGKILL")
            s = sim_cuff_stats(sim, 2)
            check_that(not s["connected"], "cuff 2 still connected to a killed gateway")

        suite.check("SIGKILL while inflated: deflated by supervision within timeout + margin",
                    sigkill)
        col.assert_valid()
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
