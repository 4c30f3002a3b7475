#!/usr/bin/python3
"""End-to-end fault tests of the safety engine (docs/safety.md) with cuffsim's
fault injection: one cuffsim with ten cuffs, one gateway, one fault per cuff,
injected in parallel into sessions that run at the same time.

For each fault: the alarm code, priority and kind (retained on alarm/{id},
validated), the reaction (DEFLATE reason safety counted by cuffsim, session
aborted with a reason, the cuff's alarms_active), and the alarm's lifecycle
(a HIGH latches until cmd/alarm/ack, then a 'cleared' record and an empty
retained payload; a MEDIUM/LOW closes by itself when its condition goes).

cuff  fault                               expected (docs/safety.md)
 1    spike +200 mmHg (above the ceiling) SR-01 over_pressure_ceiling HIGH + DEFLATE(safety)
 2    stuck-valve (pump runs away)        SR-01 at the ceiling; the cuff's relief valve vents
 3    leak (pump cannot hold the target)  SR-04 pressure_low, SR-05 leak MEDIUM; close when fixed
 4    stall (no more notifications)       SR-09 telemetry_lost HIGH + DEFLATE(safety)
 5    drop while inflated                 SR-10 link_lost_inflated HIGH until seen deflated
 6    deflate-fail + session/stop         SR-11 deflate_failed HIGH, SR-12 DEFLATE re-sent
 7    spike +45 mmHg held 4 s (>= LOP)    SR-02 full_occlusion HIGH + DEFLATE(safety)
 8    battery 15 %, then 5 %, then 50 %   SR-16 battery_low LOW, battery_critical MEDIUM, refusal
 9    lop-fail, then session/start        SR-15 session aborted lop_invalid, lop_invalid MEDIUM
10    sensor-freeze (reading stops)       SR-23 sensor_fault HIGH + DEFLATE(safety) after > 3 s
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, ack_alarm, alarm_records, check_that,  # noqa: E402
                     cuff_alarms_active, session_events, short_plan, sim_cuff_stats,
                     sim_cuffs, start_session, wait_alarm, wait_alarm_closed, wait_phase,
                     wait_session_end, wait_sim)

CUFFS = 10
LOP = 120          # cuffsim --lop: the LOP phase takes ~6 s; target = 80 % = ~96 mmHg
CEILING = 250      # leg
START_S = 20.0
SET_S = 40.0       # from session/start to the 'set' phase (LOP phase + inflating, 10 cuffs)
REACT_S = 5.0      # an alarm that should follow within a second or so
DEFLATE_TIMEOUT_S = 5.0
FREEZE_S = 3.0     # SR-23: SAFETY_FREEZE_MS

SPIKE, STUCK, LEAK, STALL, DROP, DEFL_FAIL, OCCLUSION, BATTERY, LOP_FAIL, FREEZE = range(1, 11)


def cid(i):
    return "cuff-%02d" % i


def expect_alarm(h, col, cuff, code, priority, kind, timeout=REACT_S, since=0.0):
    """Waits for the alarm, checks its fields and that the broker retains it; returns it."""
    m = wait_alarm(col, cuff, code, timeout, since)
    a = m.payload
    check_that(a["priority"] == priority and a["kind"] == kind,
               "%s: priority %s kind %s, expected %s %s" %
               (code, a["priority"], a["kind"], priority, kind))
    check_that(a["cuff"] == cuff, "%s names cuff %r" % (code, a["cuff"]))
    topic = "%s/alarm/%s" % (PREFIX, a["alarm_id"])
    got = h.retained(topic)
    check_that(topic in got, "alarm %s (%s) is not retained" % (a["alarm_id"], code))
    errs = h.validator.errors("alarm", json.loads(got[topic]))
    check_that(not errs, "retained alarm invalid: %s" % errs)
    return a


def expect_listed(col, cuff, alarm_id, timeout=REACT_S):
    col.wait_for(lambda c: alarm_id in (cuff_alarms_active(c, cuff) or []), timeout,
                 "%s in alarms_active of %s" % (alarm_id, cuff))


def expect_latched_then_acked(h, col, cuff, a, condition_gone_timeout=10.0):
    """A HIGH alarm: still open (retained) with its condition gone, closes only on ack."""
    aid = a["alarm_id"]
    col.wait_for(lambda c: any(m.payload["condition_present"] is False
                               for m in alarm_records(c, cuff, a["code"])
                               if m.payload["alarm_id"] == aid),
                 condition_gone_timeout, "%s condition_present false" % a["code"])
    check_that(not any(m.raw == b"" for m in col.select(
        "alarm", topic="%s/alarm/%s" % (PREFIX, aid))), "%s closed before ack" % a["code"])
    topic = "%s/alarm/%s" % (PREFIX, aid)
    got = h.retained(topic)
    check_that(topic in got, "latched %s not retained before ack" % a["code"])
    check_that(json.loads(got[topic])["state"] == "active",
               "latched %s state %s before ack" % (a["code"], json.loads(got[topic])["state"]))
    ack_alarm(h, col, aid, by="test_faults")
    wait_alarm_closed(col, aid, REACT_S)
    check_that(topic not in h.retained(topic), "%s still retained after closing" % a["code"])
    col.wait_for(lambda c: cuff_alarms_active(c, cuff) is not None and
                 aid not in cuff_alarms_active(c, cuff), REACT_S,
                 "%s gone from alarms_active of %s" % (aid, cuff))


def expect_aborted(col, sid, reasons, timeout=REACT_S):
    e = wait_session_end(col, sid, timeout)
    check_that(e["type"] == "aborted", "session %s ended %s, expected aborted" % (sid, e["type"]))
    check_that(e.get("reason") in reasons, "session aborted with reason %r, expected one of %s" %
               (e.get("reason"), sorted(reasons)))
    return e


def main():
    suite = Suite("test_faults")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(CUFFS, ["--lop", str(LOP)])
        col = h.collector()
        cuffs = sim_cuffs(sim)
        h.start_gateway(h.write_gateway_config(cuffs))
        ids = {c["id"] for c in cuffs}
        col.wait_for(lambda c: set(c.cuff_links()) >= ids and
                     all(v == "connected" for v in c.cuff_links().values()),
                     START_S, "every cuff connected")

        sessions = {}

        def start_all():
            sim.control("lop-fail %d" % LOP_FAIL)
            for i in (SPIKE, STUCK, LEAK, STALL, DROP, DEFL_FAIL, OCCLUSION, LOP_FAIL, FREEZE):
                sessions[i] = start_session(h, col, short_plan(cid(i), reps=30))
            for i in (SPIKE, STUCK, LEAK, STALL, DROP, DEFL_FAIL, OCCLUSION, FREEZE):
                wait_phase(col, sessions[i], "set", SET_S)
            # Held pressure: every cuff regulating near its target.
            for i in (SPIKE, STUCK, LEAK, STALL, DROP, DEFL_FAIL, OCCLUSION, FREEZE):
                wait_sim(sim, i, lambda s: abs(s["true_pressure"] - s["target"]) < 10 and
                         s["target"] > 50, 10, "holding its target")
            return True

        if not suite.check("9 sessions started, 8 cuffs inflated and holding", start_all):
            return suite.finish()

        t_inject = time.monotonic()
        sim.control("spike %d 200 300" % SPIKE)
        sim.control("stuck-valve %d" % STUCK)
        sim.control("leak %d 150" % LEAK)
        sim.control("stall %d" % STALL)
        sim.control("drop %d" % DROP)
        sim.control("deflate-fail %d" % DEFL_FAIL)
        r = h.send_command(col, "session/stop", {"session_id": sessions[DEFL_FAIL]})
        check_that(r.get("ok") is True, "session/stop refused: %s" % r.get("error"))
        sim.control("spike %d 45 4000" % OCCLUSION)
        sim.control("sensor-freeze %d" % FREEZE)

        def spike():
            a = expect_alarm(h, col, cid(SPIKE), "over_pressure_ceiling", "high", "physiological",
                             since=t_inject)
            check_that(a["values"].get("limit") in (None, CEILING),
                       "ceiling limit reported %r" % a["values"].get("limit"))
            s = wait_sim(sim, SPIKE, lambda s: s["deflates"]["safety"] >= 1, REACT_S,
                         "a DEFLATE with reason safety")
            check_that(s["latency_us"], "cuffsim measured no spike -> DEFLATE latency")
            lat = s["latency_us"][0]
            print("  spike above the ceiling -> DEFLATE(safety): %.2f ms (cuffsim, %d DEFLATEs)" %
                  (lat / 1000.0, s["deflates"]["safety"]))
            check_that(lat < 100000, "spike -> DEFLATE took %.1f ms" % (lat / 1000.0))
            expect_aborted(col, sessions[SPIKE], {"over_pressure_ceiling", "over_pressure"})
            expect_listed(col, cid(SPIKE), a["alarm_id"])
            wait_sim(sim, SPIKE, lambda s: s["true_pressure"] < 20, 10, "deflated")
            expect_latched_then_acked(h, col, cid(SPIKE), a)

        suite.check("SR-01 spike above the ceiling: over_pressure_ceiling HIGH, DEFLATE(safety), "
                    "aborted, latched until ack", spike)

        def stuck():
            a = expect_alarm(h, col, cid(STUCK), "over_pressure_ceiling", "high", "physiological",
                             timeout=20, since=t_inject)
            s = wait_sim(sim, STUCK, lambda s: s["deflates"]["safety"] >= 1, REACT_S,
                         "a DEFLATE with reason safety")
            peak = max(v[1] for m in col.select("telemetry", t_inject,
                                                "%s/cuff/%s/telemetry" % (PREFIX, cid(STUCK)))
                       for v in m.payload["samples"] if v[1] is not None)
            # On its way up the runaway passes the LOP: full_occlusion (> 2 s at >= LOP) may
            # be what deflates and aborts first; either is a safety abort.
            e = expect_aborted(col, sessions[STUCK], {"over_pressure_ceiling", "over_pressure",
                                                      "full_occlusion"})
            expect_listed(col, cid(STUCK), a["alarm_id"])
            # The DEFLATE cannot open a stuck valve: the cuff's relief valve (ceiling + 20) vents.
            s = wait_sim(sim, STUCK, lambda s: "over_pressure" in s["faults"], 20,
                         "the relief valve to trip")
            check_that("valve_stuck" in s["faults"], "cuffsim faults %s" % s["faults"])
            s = wait_sim(sim, STUCK, lambda s: s["true_pressure"] < 20, 20,
                         "the relief valve to vent the cuff")
            peak = max([peak] + [v[1] for m in col.select(
                "telemetry", t_inject, "%s/cuff/%s/telemetry" % (PREFIX, cid(STUCK)))
                for v in m.payload["samples"] if v[1] is not None])
            print("  stuck valve: peak %.1f mmHg reported, relief vented; %d DEFLATE(safety); "
                  "aborted %s" % (peak, s["deflates"]["safety"], e.get("reason")))
            check_that(peak <= CEILING + 20 + 15, "pressure ran to %.1f mmHg" % peak)
            sim.control("clear %d" % STUCK)
            expect_latched_then_acked(h, col, cid(STUCK), a)
            others = sorted({m.payload["code"] for m in alarm_records(col, cid(STUCK))
                             if m.payload["alarm_id"] != a["alarm_id"]})
            print("  (also raised on the stuck cuff: %s)" % ", ".join(others))

        suite.check("SR-01 stuck valve: runaway to the ceiling, DEFLATE(safety), relief valve "
                    "vents, latched until ack", stuck)

        def leak():
            low = expect_alarm(h, col, cid(LEAK), "pressure_low", "medium", "physiological",
                               since=t_inject)
            lk = expect_alarm(h, col, cid(LEAK), "leak", "medium", "technical", timeout=15,
                              since=t_inject)
            print("  leak: pressure_low after %.1f s, leak after %.1f s" %
                  (wait_alarm(col, cid(LEAK), "pressure_low", 0).t - t_inject,
                   wait_alarm(col, cid(LEAK), "leak", 0).t - t_inject))
            expect_listed(col, cid(LEAK), lk["alarm_id"])
            ev = session_events(col, sessions[LEAK])
            check_that(not any(e["type"] in ("aborted", "stopped") for e in ev),
                       "a MEDIUM leak ended the session: %s" % ev[-1])
            sim.control("clear %d" % LEAK)
            # MEDIUM: closes by itself, no ack.
            wait_alarm_closed(col, low["alarm_id"], 10)
            wait_alarm_closed(col, lk["alarm_id"], 15)
            got = h.retained(PREFIX + "/alarm/#")
            for aid in (low["alarm_id"], lk["alarm_id"]):
                check_that("%s/alarm/%s" % (PREFIX, aid) not in got, "%s still retained" % aid)
            r = h.send_command(col, "session/stop", {"session_id": sessions[LEAK]})
            check_that(r.get("ok") is True, "session/stop refused: %s" % r.get("error"))

        suite.check("SR-04/05 leak: pressure_low and leak MEDIUM, session goes on, both close "
                    "without ack when the leak is fixed", leak)

        def stall():
            a = expect_alarm(h, col, cid(STALL), "telemetry_lost", "high", "technical",
                             since=t_inject)
            print("  stall -> telemetry_lost after %.2f s (sample_timeout 0.5 s)" %
                  (wait_alarm(col, cid(STALL), "telemetry_lost", 0).t - t_inject))
            wait_sim(sim, STALL, lambda s: s["deflates"]["safety"] >= 1, REACT_S,
                     "a DEFLATE with reason safety")
            expect_aborted(col, sessions[STALL], {"telemetry_lost"})
            expect_listed(col, cid(STALL), a["alarm_id"])
            wait_sim(sim, STALL, lambda s: s["true_pressure"] < 20, 10, "deflated (unseen)")
            sim.control("clear %d" % STALL)
            expect_latched_then_acked(h, col, cid(STALL), a)
            # An unconfirmed deflation (no samples) may also have raised deflate_failed.
            for m in alarm_records(col, cid(STALL), "deflate_failed"):
                if not any(x.raw == b"" for x in col.select(
                        "alarm", topic="%s/alarm/%s" % (PREFIX, m.payload["alarm_id"]))):
                    ack_alarm(h, col, m.payload["alarm_id"])
                    wait_alarm_closed(col, m.payload["alarm_id"], REACT_S)
                    print("  (deflate_failed also raised while stalled: acknowledged)")
                    break

        suite.check("SR-09 stall: telemetry_lost HIGH, DEFLATE(safety), aborted, latched "
                    "until ack", stall)

        def drop():
            a = expect_alarm(h, col, cid(DROP), "link_lost_inflated", "high", "technical",
                             since=t_inject)
            t_alarm = wait_alarm(col, cid(DROP), "link_lost_inflated", 0).t
            s = wait_sim(sim, DROP, lambda s: s["connected"] and s["connections"] >= 2, 15,
                         "the gateway to reconnect")
            # The HIGH alarm ends the exercise (docs/safety.md, integrator notes): at link
            # loss ("link_lost"), or, in older wiring, only by the DEFLATE(safety) at link up.
            e = expect_aborted(col, sessions[DROP], {"link_lost", "link_lost_inflated",
                                                     "not_connected", "safety"}, timeout=15)
            t_end = [m.t for m in col.select("session-event") if m.payload and
                     m.payload.get("session_id") == sessions[DROP] and
                     m.payload.get("type") == "aborted"][0]
            print("  drop: link_lost_inflated, session aborted %.2f s later, reason %r" %
                  (t_end - t_alarm, e.get("reason")))
            s = wait_sim(sim, DROP, lambda s: s["true_pressure"] < 20, 10, "deflated")
            print("  drop: reconnected (%d connections), DEFLATE(safety) %d, supervision "
                  "deflates %d" % (s["connections"], s["deflates"]["safety"],
                                   s["supervision_deflates"]))
            check_that(s["deflates"]["safety"] >= 1 or s["supervision_deflates"] >= 1,
                       "nothing deflated the dropped cuff")
            expect_listed(col, cid(DROP), a["alarm_id"])
            expect_latched_then_acked(h, col, cid(DROP), a, condition_gone_timeout=15)

        suite.check("SR-10 drop while inflated: link_lost_inflated HIGH until seen deflated "
                    "after reconnect, then ack", drop)

        def deflate_fail():
            e = wait_session_end(col, sessions[DEFL_FAIL], REACT_S)
            check_that(e["type"] == "stopped", "session ended %s" % e["type"])
            a = expect_alarm(h, col, cid(DEFL_FAIL), "deflate_failed", "high", "technical",
                             timeout=DEFLATE_TIMEOUT_S + 5, since=t_inject)
            dt = wait_alarm(col, cid(DEFL_FAIL), "deflate_failed", 0).t - t_inject
            check_that(dt >= DEFLATE_TIMEOUT_S - 0.5, "deflate_failed after only %.1f s" % dt)
            check_that("remove the cuff manually" in a["message"], "message %r" % a["message"])
            s = wait_sim(sim, DEFL_FAIL, lambda s: s["deflates"]["total"] >= 4, 5,
                         "DEFLATE re-sent")
            check_that(s["true_pressure"] > 50, "the cuff deflated despite deflate-fail: %.1f" %
                       s["true_pressure"])
            print("  deflate-fail: deflate_failed after %.1f s, %d DEFLATEs (normal %d, "
                  "safety %d)" % (dt, s["deflates"]["total"], s["deflates"]["normal"],
                                  s["deflates"]["safety"]))
            expect_listed(col, cid(DEFL_FAIL), a["alarm_id"])
            sim.control("clear %d" % DEFL_FAIL)
            wait_sim(sim, DEFL_FAIL, lambda s: s["true_pressure"] < 20, 10,
                     "a re-sent DEFLATE to deflate the cuff once the valve works")
            expect_latched_then_acked(h, col, cid(DEFL_FAIL), a)

        suite.check("SR-11/12 deflate-fail: deflate_failed HIGH 'remove the cuff manually' after "
                    "5 s, DEFLATE re-sent, closes after deflation + ack", deflate_fail)

        def occlusion():
            a = expect_alarm(h, col, cid(OCCLUSION), "full_occlusion", "high", "physiological",
                             since=t_inject)
            dt = wait_alarm(col, cid(OCCLUSION), "full_occlusion", 0).t - t_inject
            print("  held spike >= LOP -> full_occlusion after %.2f s (rule: > 2 s)" % dt)
            check_that(dt > 1.9, "full_occlusion after only %.2f s" % dt)
            wait_sim(sim, OCCLUSION, lambda s: s["deflates"]["safety"] >= 1, REACT_S,
                     "a DEFLATE with reason safety")
            expect_aborted(col, sessions[OCCLUSION], {"full_occlusion"})
            expect_listed(col, cid(OCCLUSION), a["alarm_id"])
            expect_latched_then_acked(h, col, cid(OCCLUSION), a)

        suite.check("SR-02 pressure >= LOP for > 2 s (held spike): full_occlusion HIGH, "
                    "DEFLATE(safety), aborted", occlusion)

        def freeze():
            # SR-23: pressure and pulse amplitude bitwise identical for > 20 samples spanning
            # > 3000 ms while inflated -> sensor_fault HIGH technical + DEFLATE(safety).
            c = cid(FREEZE)
            a = expect_alarm(h, col, c, "sensor_fault", "high", "technical",
                             timeout=FREEZE_S + REACT_S, since=t_inject)
            dt = wait_alarm(col, c, "sensor_fault", 0, t_inject).t - t_inject
            print("  sensor-freeze -> sensor_fault after %.2f s (rule: > %.0f s)" % (dt, FREEZE_S))
            check_that(FREEZE_S - 0.1 < dt < FREEZE_S + REACT_S,
                       "sensor_fault after %.2f s" % dt)
            check_that(a["values"].get("limit") in (None, FREEZE_S),
                       "freeze limit reported %r" % a["values"].get("limit"))
            check_that("frozen" in a["message"], "message %r" % a["message"])
            # What the gateway saw: one frozen value from the injection to the alarm.
            topic = "%s/cuff/%s/telemetry" % (PREFIX, c)
            vals = [v[1] for m in col.select("telemetry", t_inject + 0.5, topic)
                    if m.t <= t_inject + dt for v in m.payload["samples"]]
            check_that(len(vals) >= 20 and len(set(vals)) == 1,
                       "telemetry before the alarm not frozen: %d samples, %s" %
                       (len(vals), sorted(set(vals))[:5]))
            wait_sim(sim, FREEZE, lambda s: s["deflates"]["safety"] >= 1, REACT_S,
                     "a DEFLATE with reason safety")
            expect_aborted(col, sessions[FREEZE], {"sensor_fault"})
            expect_listed(col, c, a["alarm_id"])
            # The cuff really deflates; its reading stays frozen above 20 mmHg, so the
            # deflation cannot be confirmed: deflate_failed (SR-11) follows.
            s = wait_sim(sim, FREEZE, lambda s: s["true_pressure"] < 20, 10, "deflated")
            df = expect_alarm(h, col, c, "deflate_failed", "high", "technical",
                              timeout=DEFLATE_TIMEOUT_S + REACT_S, since=t_inject)
            print("  sensor-freeze at %.1f mmHg: cuff deflated to %.1f unseen, deflate_failed, "
                  "%d DEFLATE(safety)" % (vals[0], s["true_pressure"], s["deflates"]["safety"]))
            sim.control("clear %d" % FREEZE)
            # The reading moves again: both conditions go, both latch until acknowledged.
            expect_latched_then_acked(h, col, c, a)
            expect_latched_then_acked(h, col, c, df)

        suite.check("SR-23 sensor-freeze: sensor_fault HIGH after > 3 s, DEFLATE(safety), "
                    "aborted, latched until ack", freeze)

        def lop_fail():
            sid = sessions[LOP_FAIL]
            e = expect_aborted(col, sid, {"lop_invalid"}, timeout=30)
            check_that(not any(x["type"] == "lop_measured" for x in session_events(col, sid)),
                       "a lop_measured event for a failed measurement")
            a = expect_alarm(h, col, cid(LOP_FAIL), "lop_invalid", "medium", "technical")
            expect_listed(col, cid(LOP_FAIL), a["alarm_id"])
            s = sim_cuff_stats(sim, LOP_FAIL)
            check_that(s["cp_writes"]["set_target"] == 0,
                       "%d SET_TARGET after a failed LOP" % s["cp_writes"]["set_target"])
            print("  lop-fail: aborted %s, lop_invalid %s" % (e.get("reason"), a["alarm_id"]))

        suite.check("SR-15 lop-fail: session aborted lop_invalid, lop_invalid MEDIUM, nothing "
                    "inflated", lop_fail)

        def battery():
            c = cid(BATTERY)
            t0 = time.monotonic()
            sim.control("battery %d 15" % BATTERY)
            low = expect_alarm(h, col, c, "battery_low", "low", "technical", since=t0)
            check_that(not alarm_records(col, c, "battery_critical"), "battery_critical at 15 %")
            sim.control("battery %d 5" % BATTERY)
            crit = expect_alarm(h, col, c, "battery_critical", "medium", "technical", since=t0)
            expect_listed(col, c, crit["alarm_id"])
            r = h.send_command(col, "session/start", {"plan": short_plan(c)})
            check_that(r.get("ok") is False and r["error"]["code"] == "battery_low",
                       "session/start at 5 %% battery: %s" % r)
            s = sim_cuff_stats(sim, BATTERY)
            check_that(s["cp_writes"]["set_target"] == 0 and s["cp_writes"]["measure_lop"] == 0,
                       "the refused session wrote to the cuff: %s" % s["cp_writes"])
            sim.control("battery %d 50" % BATTERY)
            wait_alarm_closed(col, crit["alarm_id"], REACT_S)
            wait_alarm_closed(col, low["alarm_id"], REACT_S)

        suite.check("SR-16 battery: battery_low LOW at 15 %, battery_critical MEDIUM and "
                    "session refused battery_low at 5 %, both close at 50 %", battery)

        def summary():
            col.assert_valid()
            n = len(col.select("alarm"))
            check_that(n > 0, "no alarm messages")
            print("  %d alarm messages, %d messages in all, validated" % (n, len(col.select())))

        suite.check("every payload valid against its schema", summary)
        if os.environ.get("BFR_DUMP"):  # debugging aid: every non-telemetry message
            with open(os.environ["BFR_DUMP"], "w") as f:
                for m in col.select():
                    if m.kind != "telemetry":
                        f.write("%.3f %s %s\n" % (m.t, m.topic, m.raw.decode("utf-8", "replace")))
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
