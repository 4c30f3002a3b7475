#!/usr/bin/python3
"""A broker outage in the middle of a set changes nothing on the safety and
timing path (docs/safety.md "nothing on the safety path waits"):

1. the broker is stopped mid-set: the session's rep cues keep their plan
   timing, measured on cuffsim's side (CUE write counts over time), before
   and during the outage;
2. a spike above the ceiling injected while the broker is down is deflated
   at once (cuffsim's sample -> DEFLATE latency), and aborts the session;
3. after the broker restarts on the same port, the outbox drains: every
   session event arrives with seq contiguous from 1 to the end (aborted),
   the rep events' timestamps follow the plan, and the alarm is retained.

The broker and the collector keep persistent sessions (harness), so what the
gateway publishes right after the restart is queued for the collector even
if it reconnects later.
"""

import calendar
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, alarm_records, check_that, session_events,  # noqa: E402
                     short_plan, sim_cuff_stats, sim_cuffs, start_session, wait_phase,
                     wait_until)

LOP = 120
START_S = 20.0
SET_S = 30.0
TEMPO = (1, 1)           # one cue (rep-up or rep-down) every second
REPS = 20                # 40 s set: the outage fits inside it
CUE_PERIOD_S = 1.0
CUE_TOL_S = 0.2          # per interval: polling (20 ms) + scheduling on a loaded 2-core VM
OUTAGE_CUES = 5          # cue intervals observed while the broker is down
DRAIN_S = 35.0         # the gateway reconnects with backoff 1 s doubling to 30 s


def cue_times(sim, n, timeout):
    """Monotonic times at which cuffsim's CUE count went up, n increments
    (polled every 20 ms; cuffsim cannot signal)."""
    times = []
    last = [sim_cuff_stats(sim, 1)["cp_writes"]["cue"]]

    def step():
        c = sim_cuff_stats(sim, 1)["cp_writes"]["cue"]
        if c > last[0]:
            now = time.monotonic()
            times.extend([now] * (c - last[0]))
            last[0] = c
        return len(times) >= n
    wait_until(step, timeout, "%d CUE writes" % n, poll=0.02)
    return times[:n]


def intervals(ts):
    return [b - a for a, b in zip(ts, ts[1:])]


def check_cue_intervals(ts, what):
    iv = intervals(ts)
    bad = [round(x, 3) for x in iv if abs(x - CUE_PERIOD_S) > CUE_TOL_S]
    print("  %s: CUE intervals %s s" % (what, " ".join("%.3f" % x for x in iv)))
    check_that(not bad, "%s: CUE intervals off the %.1f s plan by > %.1f s: %s" %
               (what, CUE_PERIOD_S, CUE_TOL_S, bad))
    return iv


def ts_seconds(ts):
    """RFC 3339 UTC with milliseconds -> seconds since the epoch."""
    base, frac = ts.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


def main():
    suite = Suite("test_broker_down_session")
    with suite.harness() as h:
        broker = h.start_broker(persistence=True)
        sim = h.start_cuffsim(1, ["--lop", str(LOP)])
        col = h.collector(persistent=True, reconnect_max_s=0.5)
        gw = h.start_gateway(h.write_gateway_config(sim_cuffs(sim)))
        col.wait_for(lambda c: c.cuff_links().get("cuff-01") == "connected", START_S,
                     "cuff-01 connected")
        sid = start_session(h, col, short_plan("cuff-01", reps=REPS, tempo=TEMPO))
        wait_phase(col, sid, "set", SET_S)
        state = {}

        def timing():
            before = cue_times(sim, 3, 10)
            check_cue_intervals(before, "broker up")
            state["seq_before"] = max(e["seq"] for e in session_events(col, sid))
            t_down = time.monotonic()
            broker.stop()
            state["t_down"] = t_down
            check_that(not broker.proc.alive(), "the broker is still running")
            during = cue_times(sim, OUTAGE_CUES + 1, OUTAGE_CUES + 5)
            check_cue_intervals(during, "broker down")
            # The plan's clock did not slip across the outage either: the n-th cue after
            # the last one before the outage comes n seconds after it.
            drift = during[-1] - before[-1]
            n = round(drift / CUE_PERIOD_S)
            check_that(abs(drift - n * CUE_PERIOD_S) <= CUE_TOL_S,
                       "cues drifted across the outage: %.3f s for %d periods" % (drift, n))
            check_that(gw.alive(), "the gateway died without its broker")

        suite.check("broker stopped mid-set: rep cues keep the plan's 1 s tempo (cuffsim side)",
                    timing)

        def spike():
            check_that("t_down" in state, "the broker was not stopped")
            check_that(not broker.proc.alive(), "the broker is running")
            s0 = sim_cuff_stats(sim, 1)
            check_that(s0["deflates"]["total"] == 0, "DEFLATEs before the spike: %s" %
                       s0["deflates"])
            sim.control("spike 1 200 300")
            s = wait_until(lambda: (lambda x: x if x["deflates"]["safety"] >= 1 and
                                    x["latency_us"] else None)(sim_cuff_stats(sim, 1)),
                           5, "a DEFLATE(safety) with the broker down", poll=0.02)
            lat = s["latency_us"][-1]
            print("  broker down: spike above the ceiling -> DEFLATE(safety) in %.2f ms "
                  "(cuffsim)" % (lat / 1000.0))
            check_that(lat < 50000, "spike -> DEFLATE took %.1f ms with the broker down" %
                       (lat / 1000.0))
            wait_until(lambda: sim_cuff_stats(sim, 1)["true_pressure"] < 20, 10,
                       "the cuff deflated", poll=0.05)
            state["spiked"] = True

        suite.check("spike with the broker down: immediate DEFLATE(safety)", spike)

        def drain():
            check_that(not broker.proc.alive(), "the broker is running")
            down_s = time.monotonic() - state["t_down"]
            broker.start(port=broker.port, persistence=True)
            t_up = time.monotonic()

            def ended(c):
                ev = session_events(c, sid)
                return any(e["type"] in ("aborted", "stopped", "completed") for e in ev)
            col.wait_for(ended, DRAIN_S, "the session's end event after the broker restart")
            drained = time.monotonic() - t_up
            ev = session_events(col, sid)
            seqs = [e["seq"] for e in ev]
            by_seq = {}
            for e in ev:
                by_seq.setdefault(e["seq"], e)
            last = max(seqs)
            missing = sorted(set(range(1, last + 1)) - set(by_seq))
            check_that(not missing, "seq gaps %s (received %s)" % (missing, sorted(by_seq)))
            dups = {s: n for s in set(seqs) for n in [seqs.count(s)] if n > 1}
            for s_ in dups:  # a QoS 1 redelivery must be the same event
                same = [e for e in ev if e["seq"] == s_]
                check_that(all(e == same[0] for e in same), "seq %d reused: %s" % (s_, same))
            end = by_seq[last]
            check_that(end["type"] == "aborted", "last event %s, expected aborted" % end)
            check_that(end.get("reason") in ("over_pressure_ceiling", "over_pressure"),
                       "aborted with reason %r" % end.get("reason"))
            outage = [by_seq[s] for s in range(state["seq_before"] + 1, last + 1)]
            reps = [e for e in outage if e["type"] == "rep"]
            check_that(len(reps) >= OUTAGE_CUES // 2,
                       "only %d rep events from the outage" % len(reps))
            check_that(any(e["type"] == "alarm" for e in outage), "no alarm event")
            # Rep timestamps are the plan's: rep k at T + (k-1)(up+down).
            allreps = [by_seq[s] for s in sorted(by_seq) if by_seq[s]["type"] == "rep"]
            t1, k1 = ts_seconds(allreps[0]["ts"]), allreps[0]["rep"]
            off = [round(ts_seconds(e["ts"]) - t1 - (e["rep"] - k1) * sum(TEMPO), 3)
                   for e in allreps]
            check_that(all(abs(x) <= CUE_TOL_S for x in off),
                       "rep event times off the plan by %s s" % off)
            print("  broker down %.1f s; %d events (seq 1..%d contiguous, %d from the "
                  "outage) delivered within %.2f s of the restart; rep ts offsets max %.3f s" %
                  (down_s, len(by_seq), last, len(outage), drained, max(map(abs, off))))
            al = alarm_records(col, "cuff-01", "over_pressure_ceiling")
            check_that(al, "no over_pressure_ceiling alarm record after the restart")
            got = h.retained(PREFIX + "/alarm/" + al[0].payload["alarm_id"])
            check_that(got, "the open alarm is not retained after the restart")
            col.assert_valid()

        suite.check("broker restarted: outbox drains, session events seq 1..N contiguous, "
                    "rep times follow the plan", drain)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
