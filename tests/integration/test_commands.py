#!/usr/bin/python3
"""MQTT commands end to end, table-driven: every refusal the gateway gives
(DESIGN section 6, docs/sessions.md "Error codes") and every verb working.

For each refusal row: the reply arrives on the MQTT 5 Response Topic with the
Correlation Data echoed (some rows: as an MQTT 3.1.1 client, on
reply/{request_id}), has ok=false and the expected error code, echoes the
request_id (null when the command had none usable), validates against
schemas/reply.schema.json, and NOTHING reached a cuff: cuffsim's control-point
write counters of every cuff are unchanged, and no new session appears on MQTT.

Then the good commands: lop/measure (the LOP appears in the cuff state and
agrees with cuffsim), cuff/identify (cuffsim counts the IDENTIFY),
session/start + pause + stop, e-stop, alarm/ack; refusals that need state are
checked in between (cuff_busy, bad_state, alarm_unacked).
"""

import json
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs, wait_until  # noqa: E402

CONNECT_S = 25.0
LOP_S = 40.0


def ex(**kw):
    e = {"name": "knee extension", "cuffs": ["cuff-01"], "pct_lop": 50, "mode": "continuous",
         "sets": [3], "tempo_s": [1, 1], "rest_s": 5, "reperfusion_s": 60}
    for k, v in kw.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return {"plan": {"exercises": [e]}}


def start(**kw):
    return ("session/start", ex(**kw))


# (title, verb, payload dict | raw bytes, expected code, MQTT 3.1.1 client,
#  request_id echoed)
STATELESS = [
    ("malformed JSON", "session/start", b'{"request_id": "x1", "plan": {', "bad_json",
     False, False),
    ("duplicate keys", "session/start",
     b'{"request_id": "x2", "request_id": "x3", "plan": {}}', "bad_json", False, False),
    ("text where a comma belongs", "estop", b'{"request_id": "x5" SECRET}', "bad_json",
     False, False),
    ("not an object (array)", "session/start", b'[{"request_id": "x4"}]', "bad_request",
     False, False),
    ("not an object (string)", "estop", b'"stop everything"', "bad_request", False, False),
    ("missing request_id", "estop", b'{"cuffs": ["cuff-01"]}', "missing_field", False, False),
    ("request_id with white space", "estop", b'{"request_id": "a b"}', "bad_request",
     False, False),
    ("unknown field", "session/start", dict(ex(), colour="red"), "unknown_field", True, True),
    ("unknown field in an exercise", *start(colour="red"), "unknown_field", False, True),
    ("missing plan", "session/start", {}, "missing_field", True, True),
    ("missing pct_lop", *start(pct_lop=None), "missing_field", False, True),
    ("missing session_id (pause)", "session/pause", {}, "missing_field", False, True),
    ("missing by (alarm/ack)", "alarm/ack", {"alarm_id": "it-gw-1"}, "missing_field",
     False, True),
    ("missing cuff (lop/measure)", "lop/measure", {}, "missing_field", False, True),
    ("pct_lop a string", *start(pct_lop="50"), "wrong_type", True, True),
    ("pct_lop a fraction", *start(pct_lop=50.5), "wrong_type", False, True),
    ("sets not an array", *start(sets=3), "wrong_type", False, True),
    ("cuff a number (identify)", "cuff/identify", {"cuff": 1}, "wrong_type", False, True),
    ("pct_lop 0", *start(pct_lop=0), "out_of_range", False, True),
    ("pct_lop 101", *start(pct_lop=101), "out_of_range", True, True),
    ("sets []", *start(sets=[]), "out_of_range", False, True),
    ("reps 0", *start(sets=[3, 0]), "out_of_range", False, True),
    ("tempo 0", *start(tempo_s=[0, 1]), "out_of_range", False, True),
    ("reperfusion_s 59", *start(reperfusion_s=59), "out_of_range", False, True),
    ("mode bogus", *start(mode="bogus"), "out_of_range", False, True),
    ("no exercises", "session/start", {"plan": {"exercises": []}}, "out_of_range", False,
     True),
    ("sets in cycle mode", *start(mode="cycle", on_s=5, off_s=5, cycles=2, tempo_s=None,
                                  rest_s=None), "bad_request", False, True),
    ("duplicate cuffs", *start(cuffs=["cuff-01", "cuff-01"]), "bad_request", False, True),
    ("unknown cuff (start)", *start(cuffs=["cuff-99"]), "unknown_cuff", True, True),
    ("unknown second cuff (bilateral)", *start(cuffs=["cuff-01", "cuff-99"]), "unknown_cuff",
     False, True),
    ("unknown cuff (lop/measure)", "lop/measure", {"cuff": "cuff-99"}, "unknown_cuff", False,
     True),
    ("unknown cuff (identify)", "cuff/identify", {"cuff": "cuff-99"}, "unknown_cuff", True,
     True),
    ("unknown cuff (estop): nothing deflated", "estop", {"cuffs": ["cuff-01", "cuff-99"]},
     "unknown_cuff", False, True),
    ("cuff not connected (start)", *start(cuffs=["cuff-ghost"]), "not_connected", False, True),
    ("cuff not connected (lop/measure)", "lop/measure", {"cuff": "cuff-ghost"},
     "not_connected", False, True),
    ("cuff not connected (identify)", "cuff/identify", {"cuff": "cuff-ghost"},
     "not_connected", False, True),
    ("pct_lop 85 > leg limit 80", *start(pct_lop=85), "limit_exceeded", True, True),
    ("pct_lop 75 > cuff-03's configured 70", *start(cuffs=["cuff-03"], pct_lop=75),
     "limit_exceeded", False, True),
    ("bilateral: one cuff over its limit", *start(cuffs=["cuff-01", "cuff-03"], pct_lop=72),
     "limit_exceeded", False, True),
    ("pause unknown session", "session/pause", {"session_id": "s-nope"}, "not_found", True,
     True),
    ("resume unknown session", "session/resume", {"session_id": "s-nope"}, "not_found",
     False, True),
    ("stop unknown session", "session/stop", {"session_id": "s-nope"}, "not_found", False,
     True),
    ("ack unknown alarm", "alarm/ack", {"alarm_id": "it-gw-999999", "by": "nurse"},
     "not_found", True, True),
    ("unknown verb cmd/bogus", "bogus", {}, "unknown_verb", False, False),
    ("unknown verb cmd/session/bogus", "session/bogus", {"session_id": "s-1"}, "unknown_verb",
     False, False),
]


def cp_counters(sim):
    return {c["cuff"]: dict(c["cp_writes"], **{"deflates_" + k: v
                                               for k, v in c["deflates"].items()})
            for c in sim.stats()["cuffs"]}


def main():
    suite = Suite("test_commands")
    figures = {}
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(3)
        col = h.collector()
        cuffs = sim_cuffs(sim)
        cuffs[2]["limits"] = {"max_pct_lop": 70}
        cuffs.append({"id": "cuff-ghost", "address": "sim:" + os.path.join(h.tmp, "nope.sock"),
                      "limb": "leg"})
        h.start_gateway(h.write_gateway_config(cuffs))
        real = {"cuff-01", "cuff-02", "cuff-03"}
        col.wait_for(lambda c: set(c.cuff_links()) >= real and
                     all(c.cuff_links()[i] == "connected" for i in real),
                     CONNECT_S, "the three simulated cuffs connected")
        known_sessions = set()

        def send(verb, payload, v311=False):
            if isinstance(payload, bytes):
                return h.send_command(col, verb, raw=payload, v5=True)
            return h.send_command(col, verb, dict(payload), v5=not v311)

        def refused(title, verb, payload, code, v311=False, echo=True):
            """One row: refused with code, valid reply, nothing sent, no new session."""
            request_id = "req-%s" % uuid.uuid4().hex[:12]
            if isinstance(payload, dict):
                payload = dict(payload, request_id=request_id)
            before = cp_counters(sim)
            since = time.monotonic()
            r = send(verb, payload, v311)
            errs = h.validator.errors("reply", r)
            check_that(not errs, "%s: reply invalid: %s" % (title, errs))
            check_that(r["ok"] is False and r["error"]["code"] == code,
                       "%s: expected %s, got %r" % (title, code, r))
            check_that(r["request_id"] == (request_id if echo else None),
                       "%s: request_id %r in the reply" % (title, r["request_id"]))
            check_that("session_id" not in r, "%s: refusal with a session_id" % title)
            after = cp_counters(sim)
            check_that(after == before, "%s: cuffsim counters changed: %r -> %r" %
                       (title, before, after))
            new = {m.topic for m in col.select(since=since)
                   if (m.kind or "").startswith("session-") and
                   m.payload and m.payload["session_id"] not in known_sessions}
            check_that(not new, "%s: session topics appeared: %s" % (title, sorted(new)))
            return r

        def table():
            before = cp_counters(sim)
            n311 = 0
            for title, verb, payload, code, v311, echo in STATELESS:
                r = refused(title, verb, payload, code, v311, echo)
                n311 += v311
                # bad_json says what kind of error and where, never the payload's text.
                if code == "bad_json":
                    msg = r["error"]["message"]
                    check_that(re.fullmatch(r"payload: invalid JSON \([a-zA-Z0-9 \\-]+\) at "
                                            r"line \d+ column \d+, byte \d+", msg) and
                               "SECRET" not in msg and "request_id" not in msg,
                               "%s: message %r" % (title, msg))
            # The whole table once more against the counters, after the last reply.
            check_that(cp_counters(sim) == before, "cuffsim counters changed over the table")
            print("  %d refusals (%d of them as an MQTT 3.1.1 client)" %
                  (len(STATELESS), n311))

        suite.check("every stateless refusal: code, reply schema, Correlation Data or "
                    "reply/{request_id}, nothing sent to any cuff", table)

        def lop_measure():
            b = cp_counters(sim)[1]
            t = time.monotonic()
            r = send("lop/measure", {"cuff": "cuff-01"})
            check_that(r["ok"] is True and "error" not in r, "lop/measure: %r" % r)
            # Measuring: a second measurement and a session on it are cuff_busy.
            refused("lop/measure while measuring", "lop/measure", {"cuff": "cuff-01"},
                    "cuff_busy")
            st = col.wait_for(lambda c: (c.latest_payload("cuff/cuff-01/state") or {})
                              .get("lop_mmHg"), LOP_S, "lop_mmHg in cuff-01's state")
            figures["lop_measure_s"] = round(time.monotonic() - t, 1)
            s = sim.stats()["cuffs"][0]
            check_that(s["cp_writes"]["measure_lop"] == b["measure_lop"] + 1,
                       "cuffsim counted %d MEASURE_LOP" % (s["cp_writes"]["measure_lop"] -
                                                           b["measure_lop"]))
            check_that(abs(st - s["last_lop"]) <= 0.5 and abs(st - s["lop"]) <= 5,
                       "lop_mmHg %r, cuffsim measured %r, model %r" % (st, s["last_lop"],
                                                                      s["lop"]))
            figures["lop"] = {"gateway": st, "cuffsim_model": s["lop"]}
            ret = h.retained(PREFIX + "/cuff/cuff-01/state")
            check_that(json.loads(ret[PREFIX + "/cuff/cuff-01/state"])["lop_mmHg"] == st,
                       "retained cuff state without the LOP")

        suite.check("lop/measure: ok, MEASURE_LOP sent once, LOP in the cuff state agrees "
                    "with cuffsim; cuff_busy while measuring", lop_measure)

        def identify():
            b = sim.stats()["cuffs"][1]
            r = send("cuff/identify", {"cuff": "cuff-02"}, v311=True)
            check_that(r["ok"] is True, "identify: %r" % r)
            wait_until(lambda: sim.stats()["cuffs"][1]["cp_writes"]["identify"] ==
                       b["cp_writes"]["identify"] + 1, 5, "cuffsim to count one IDENTIFY")
            others = [c["cp_writes"]["identify"] for c in sim.stats()["cuffs"]]
            check_that(others[0] == 0 and others[2] == 0, "IDENTIFY to other cuffs: %r" %
                       others)

        suite.check("cuff/identify (MQTT 3.1.1 client): ok, cuffsim counts the IDENTIFY",
                    identify)

        state = {}

        def session_busy():
            r = send("session/start", ex(sets=[30]))
            check_that(r["ok"] is True and r.get("session_id"), "start: %r" % r)
            sid = state["sid"] = r["session_id"]
            known_sessions.add(sid)
            # LOP known: straight to inflating; pause there.
            r = send("session/pause", {"session_id": sid})
            check_that(r["ok"] is True, "pause: %r" % r)
            col.wait_for(lambda c: (c.latest_payload("session/%s/state" % sid) or {})
                         .get("phase") == "paused", 5, "session state paused")
            wait_until(lambda: sim.stats()["cuffs"][0]["pressure"] < 20, 10,
                       "cuff-01 deflated after pause")
            refused("start on a cuff in a session", *start(), "cuff_busy")
            refused("bilateral start, one cuff in a session",
                    *start(cuffs=["cuff-02", "cuff-01"]), "cuff_busy")
            refused("lop/measure on a cuff in a session", "lop/measure", {"cuff": "cuff-01"},
                    "cuff_busy", v311=True)
            refused("pause a paused session", "session/pause", {"session_id": sid},
                    "bad_state")
            # The reply goes straight out, the event through the outbox (after
            # its commit): the reply may arrive first.
            col.wait_for(lambda c: "refused" in [
                m.payload["type"] for m in
                c.select("session-event", topic="%s/session/%s/event" % (PREFIX, sid))],
                5, "a refused event after a bad pause")
            r = send("session/stop", {"session_id": sid})
            check_that(r["ok"] is True, "stop: %r" % r)
            col.wait_for(lambda c: (c.latest_payload("session/%s/summary" % sid) or {})
                         .get("outcome") == "stopped", 10, "summary outcome stopped")
            # An ended session is forgotten: not_found (docs/sessions.md says bad_state).
            refused("stop an ended session", "session/stop", {"session_id": sid}, "not_found")

        suite.check("session/start, pause, stop ok; cuff_busy (start, bilateral, lop/measure) "
                    "and bad_state (pause twice) while it runs", session_busy)

        def estop_and_ack():
            # Only cuff-01 is named: the others get no DEFLATE (an e-stop DEFLATE starts
            # the 60 s reperfusion even on an idle cuff), but the alarm is gateway-wide.
            b = cp_counters(sim)
            r = send("estop", {"cuffs": ["cuff-01"]})
            check_that(r["ok"] is True, "estop: %r" % r)
            alarm = col.wait_for(lambda c: next((m.payload for m in c.select("alarm")
                                                 if m.payload and m.payload["code"] == "estop"),
                                                None), 5, "the estop alarm")
            check_that(alarm["priority"] == "high" and alarm["state"] == "active",
                       "estop alarm %r" % alarm)
            # Let the e-stop's own DEFLATEs land before counting.
            wait_until(lambda: cp_counters(sim)[1]["deflates_estop"] == 1, 10,
                       "cuff-01 got its e-stop DEFLATE")
            a = cp_counters(sim)
            check_that(a[2] == b[2] and a[3] == b[3], "cuffs not named got writes: %r -> %r" %
                       (b, a))
            refused("start with an unacknowledged HIGH alarm", *start(cuffs=["cuff-02"]),
                    "alarm_unacked")
            refused("lop/measure with an unacknowledged HIGH alarm", "lop/measure",
                    {"cuff": "cuff-02"}, "alarm_unacked", v311=True)
            refused("ack with an empty by", "alarm/ack", {"alarm_id": alarm["alarm_id"],
                                                          "by": ""}, "out_of_range")
            # by: at most 64 bytes of UTF-8, what the alarm record holds; the reply names it.
            for by, code, text in (("n" * 65, "out_of_range", "by: 65 bytes, at most 64"),
                                   ("\u00fc" * 33, "out_of_range", "by: 66 bytes, at most 64"),
                                   ("J\u0085rgen", "bad_request", "by: must not contain")):
                refused("ack with by %r" % by, "alarm/ack",
                        {"alarm_id": alarm["alarm_id"], "by": by}, code)
                r = send("alarm/ack", {"alarm_id": alarm["alarm_id"], "by": by})
                check_that(r["error"]["message"].startswith(text),
                           "by %r: message %r" % (by, r["error"]["message"]))
            by = "Dr. J\u00fcrgen M\u00fcller-L\u00fcdenscheid, Station 4 " + "x" * 20
            check_that(len(by.encode()) == 64, "by is %d bytes" % len(by.encode()))
            r = send("alarm/ack", {"alarm_id": alarm["alarm_id"], "by": by})
            check_that(r["ok"] is True, "ack: %r" % r)
            col.wait_for(lambda c: any(m.payload and m.payload["alarm_id"] == alarm["alarm_id"]
                                       and m.payload["state"] in ("acknowledged", "cleared")
                                       and m.payload["acked_by"] == by
                                       for m in c.select("alarm")), 5,
                         "the alarm acknowledged by %s" % by)
            r = send("session/start", ex(cuffs=["cuff-02"], pct_lop=40))
            check_that(r["ok"] is True, "start after the ack: %r" % r)
            known_sessions.add(r["session_id"])
            r = send("session/stop", {"session_id": r["session_id"]})
            check_that(r["ok"] is True, "stop: %r" % r)

        suite.check("estop of cuff-01 ok, DEFLATE(e-stop) to it alone; alarm_unacked for "
                    "start and lop/measure until alarm/ack ok; start accepted after the ack",
                    estop_and_ack)

        def all_valid():
            col.assert_valid()
            replies = col.select("reply")
            check_that(len(replies) >= len(STATELESS), "only %d replies seen" % len(replies))
            check_that(all(m.qos == 1 and not m.retain for m in replies),
                       "a reply was not QoS 1 / unretained")

        suite.check("every payload valid; replies QoS 1, not retained", all_valid)
        print("  figures: %s" % json.dumps(figures, sort_keys=True))
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
