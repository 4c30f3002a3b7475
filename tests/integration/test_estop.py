#!/usr/bin/python3
"""E-stop end to end: a bilateral session on cuff-01 + cuff-02 and a single
session on cuff-03 are inflated and in their first set (cuff-04 idle), then
cmd/estop without cuffs (= every cuff):

- every inflated cuff gets DEFLATE with reason e-stop (cuffsim counts it per
  reason) and is below 20 mmHg within a deadline (time measured);
- both sessions end `aborted`, reason `estop` (event, retained state, retained
  summary);
- a HIGH technical `estop` alarm is published retained on alarm/{id};
- session/start and lop/measure are refused `alarm_unacked` until
  cmd/alarm/ack; then the latched alarm (condition gone) is cleared: a final
  record with state cleared, then an empty retained payload removes it.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs, wait_until  # noqa: E402

CONNECT_S = 25.0
SET_S = 60.0        # start to first set: LOP measurement + inflation, ASan, busy cores
DEFLATE_S = 10.0


def plan(cuffs):
    return {"plan": {"exercises": [
        {"name": "hold", "cuffs": cuffs, "pct_lop": 50, "mode": "continuous", "sets": [40],
         "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60}]}}


def events(col, sid):
    seen, out = set(), []
    for m in col.select("session-event", topic="%s/session/%s/event" % (PREFIX, sid)):
        if m.payload and m.payload["msg_id"] not in seen:
            seen.add(m.payload["msg_id"])
            out.append(m.payload)
    return out


def main():
    suite = Suite("test_estop")
    figures = {}
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(4)
        col = h.collector()
        cuffs = sim_cuffs(sim)
        ids = {c["id"] for c in cuffs}
        h.start_gateway(h.write_gateway_config(cuffs))
        col.wait_for(lambda c: set(c.cuff_links()) >= ids and
                     all(v == "connected" for v in c.cuff_links().values()),
                     CONNECT_S, "every cuff connected")
        sids = {}
        st = {}

        def inflate():
            for key, cs in (("bilateral", ["cuff-01", "cuff-02"]), ("single", ["cuff-03"])):
                r = h.send_command(col, "session/start", plan(cs))
                check_that(r["ok"] is True, "start %s: %r" % (key, r))
                sids[key] = r["session_id"]
            for sid in sids.values():
                col.wait_for(lambda c: any(p["type"] == "rep" for p in events(c, sid)),
                             SET_S, "the first rep of session %s" % sid)
            s = sim.stats()["cuffs"]
            for c in s[:3]:
                check_that(c["pressure"] > 50 and c["target"] > 50,
                           "cuff %d not inflated: %.1f mmHg" % (c["cuff"], c["pressure"]))
            check_that(s[3]["target"] == 0 and s[3]["pressure"] < 20, "cuff-04 is not idle")
            st["base"] = s

        suite.check("two sessions (bilateral + single) inflated, in their first set", inflate)
        if "base" not in st:
            return suite.finish()

        def estop():
            t = time.monotonic()
            r = h.send_command(col, "estop", {})
            figures["estop_reply_ms"] = round((time.monotonic() - t) * 1000)
            check_that(r["ok"] is True and "error" not in r, "estop: %r" % r)
            base = st["base"]
            wait_until(lambda: all(c["deflates"]["estop"] >= 1 for c in sim.stats()["cuffs"][:3]),
                       5, "DEFLATE(e-stop) counted on cuffs 1-3")
            figures["estop_to_deflate_counted_ms"] = round((time.monotonic() - t) * 1000)
            wait_until(lambda: all(c["pressure"] < 20 for c in sim.stats()["cuffs"][:3]),
                       DEFLATE_S, "cuffs 1-3 below 20 mmHg")
            figures["estop_to_below_20_mmHg_s"] = round(time.monotonic() - t, 2)
            now = sim.stats()["cuffs"]
            for b, a in zip(base[:3], now[:3]):
                # At least one; today a cuff in a session gets two (the session's abort
                # and the e-stop's own), both with reason e-stop.
                check_that(a["deflates"]["estop"] - b["deflates"]["estop"] >= 1,
                           "cuff %d: no e-stop DEFLATE" % a["cuff"])
                check_that(a["deflates"]["safety"] == b["deflates"]["safety"] and
                           a["deflates"]["normal"] == b["deflates"]["normal"],
                           "cuff %d: a DEFLATE with another reason: %r" % (a["cuff"],
                                                                          a["deflates"]))
                figures.setdefault("estop_deflates_per_inflated_cuff", []).append(
                    a["deflates"]["estop"] - b["deflates"]["estop"])
                check_that(a["target"] == 0, "cuff %d target %r" % (a["cuff"], a["target"]))
            figures["idle_cuff_estop_deflates"] = now[3]["deflates"]["estop"]
            # Nothing inflates again: no SET_TARGET after the e-stop.
            for b, a in zip(base, now):
                check_that(a["cp_writes"]["set_target"] == b["cp_writes"]["set_target"],
                           "cuff %d got a SET_TARGET after the e-stop" % a["cuff"])

        suite.check("estop: DEFLATE(e-stop) to every inflated cuff, all below 20 mmHg", estop)

        def aborted():
            for key, sid in sids.items():
                end = col.wait_for(lambda c: next((p for p in events(c, sid) if p["type"] in
                                                   ("completed", "stopped", "aborted")), None),
                                   5, "the end of session %s" % sid)
                check_that(end["type"] == "aborted" and end.get("reason") == "estop",
                           "%s ended %r" % (key, end))
                seqs = sorted(p["seq"] for p in events(col, sid))
                check_that(seqs == list(range(1, len(seqs) + 1)), "seq %r" % seqs)
                col.wait_for(lambda c: c.latest_payload("session/%s/summary" % sid), 5,
                             "summary of %s" % sid)
                ret = h.retained("%s/session/%s/+" % (PREFIX, sid))
                state = json.loads(ret["%s/session/%s/state" % (PREFIX, sid)])
                summary = json.loads(ret["%s/session/%s/summary" % (PREFIX, sid)])
                check_that(state["phase"] == "aborted", "%s state %r" % (key, state["phase"]))
                check_that(summary["outcome"] == "aborted" and summary["reason"] == "estop",
                           "%s summary outcome %r reason %r" %
                           (key, summary["outcome"], summary["reason"]))
                n = 2 if key == "bilateral" else 1
                sets = summary["exercises"][0]["sets"]
                check_that(len(sets) == n and all(s["set"] == 1 for s in sets),
                           "%s: the set cut short is not in the summary: %r" % (key, sets))
            for cuff in ("cuff-01", "cuff-02", "cuff-03"):
                col.wait_for(lambda c: (c.latest_payload("cuff/%s/state" % cuff) or {})
                             .get("session_id", "x") is None, 5,
                             "%s released from its session" % cuff)

        suite.check("both sessions aborted with reason estop (event, state, summary)", aborted)

        alarm = {}

        def alarm_raised():
            a = col.wait_for(lambda c: next((m.payload for m in c.select("alarm")
                                             if m.payload and m.payload["code"] == "estop"),
                                            None), 5, "the estop alarm")
            topic = "%s/alarm/%s" % (PREFIX, a["alarm_id"])
            ret = h.retained(PREFIX + "/alarm/+")
            check_that(topic in ret, "estop alarm not retained: %s" % sorted(ret))
            r = json.loads(ret[topic])
            check_that(r["priority"] == "high" and r["kind"] == "technical" and
                       r["state"] == "active" and r["cuff"] is None and
                       r["acked_at"] is None and r["cleared_at"] is None,
                       "retained estop alarm %r" % r)
            alarm.update(r)

        suite.check("a HIGH technical estop alarm is retained on alarm/{id}", alarm_raised)
        if not alarm:
            return suite.finish()

        def sessions_name_it():
            # The e-stop ended both sessions: each one's end event names its alarm,
            # and its summary lists it (issue 9 item 6d).
            for key, sid in sids.items():
                end = next(p for p in events(col, sid) if p["type"] == "aborted")
                check_that(end.get("alarm_id") == alarm["alarm_id"],
                           "%s: the aborted event does not name the e-stop alarm %s: %r" %
                           (key, alarm["alarm_id"], end))
                summary = json.loads(h.retained("%s/session/%s/summary" % (PREFIX, sid))
                                     ["%s/session/%s/summary" % (PREFIX, sid)])
                check_that(alarm["alarm_id"] in summary["alarms"],
                           "%s: summary alarms %r lack the e-stop alarm %s" %
                           (key, summary["alarms"], alarm["alarm_id"]))

        suite.check("each session's aborted event and summary name the e-stop alarm",
                    sessions_name_it)

        def unacked():
            b = sim.stats()["cuffs"]
            for verb, payload in (("session/start", plan(["cuff-04"])),
                                  ("lop/measure", {"cuff": "cuff-04"}),
                                  ("session/start", plan(["cuff-01"]))):
                r = h.send_command(col, verb, payload)
                check_that(r["ok"] is False and r["error"]["code"] == "alarm_unacked",
                           "%s %r: %r" % (verb, payload, r))
            a = sim.stats()["cuffs"]
            check_that([c["cp_writes"] for c in a] == [c["cp_writes"] for c in b],
                       "a refused command reached a cuff")

        suite.check("session/start and lop/measure refused alarm_unacked", unacked)

        def every_cuff_lists_it():
            # The gateway-wide alarm blocks every cuff, so every cuff's retained
            # state lists it in alarms_active (issue 9 item 6e), also cuff-04, which
            # the e-stop did not change otherwise.
            aid = alarm["alarm_id"]
            cuffs = ["cuff-%02d" % i for i in range(1, 5)]
            col.wait_for(lambda c: all(aid in (c.latest_payload("cuff/%s/state" % x) or {})
                                       .get("alarms_active", []) for x in cuffs), 5,
                         "%s in alarms_active of every cuff" % aid)
            ret = h.retained(PREFIX + "/cuff/+/state")
            for x in cuffs:
                active = json.loads(ret["%s/cuff/%s/state" % (PREFIX, x)])["alarms_active"]
                check_that(aid in active, "retained %s state: alarms_active %r" % (x, active))

        suite.check("every cuff's state lists the unacknowledged e-stop in alarms_active",
                    every_cuff_lists_it)

        def ack():
            aid = alarm["alarm_id"]
            topic = "%s/alarm/%s" % (PREFIX, aid)
            t = time.monotonic()
            r = h.send_command(col, "alarm/ack", {"alarm_id": aid, "by": "nurse-2"})
            check_that(r["ok"] is True, "ack: %r" % r)
            # Latched HIGH, condition gone (every cuff deflated): the ack closes it.
            col.wait_for(lambda c: any(m.payload and m.payload["state"] == "cleared"
                                       for m in c.select("alarm", since=t, topic=topic)),
                         5, "a cleared record of %s" % aid)
            col.wait_for(lambda c: any(m.raw == b"" for m in c.select(since=t, topic=topic)),
                         5, "the empty payload removing %s" % aid)
            rec = [m.payload for m in col.select("alarm", since=t, topic=topic) if m.payload]
            last = rec[-1]
            check_that(last["acked_by"] == "nurse-2" and last["acked_at"] and
                       last["cleared_at"], "final record %r" % last)
            check_that(topic not in h.retained(PREFIX + "/alarm/+"),
                       "alarm/%s is still retained" % aid)
            # Closed: no cuff lists it any more.
            cuffs = ["cuff-%02d" % i for i in range(1, 5)]
            col.wait_for(lambda c: not any(aid in (c.latest_payload("cuff/%s/state" % x) or {})
                                           .get("alarms_active", []) for x in cuffs), 5,
                         "%s gone from every cuff's alarms_active" % aid)
            # The alarm no longer blocks; an e-stopped cuff now waits for reperfusion
            # (docs/safety.md SR-08): the refusal, if any, is not alarm_unacked.
            r = h.send_command(col, "session/start", plan(["cuff-04"]))
            check_that(r["ok"] is True or r["error"]["code"] == "reperfusion",
                       "start after the ack: %r" % r)
            figures["start_after_ack"] = "ok" if r["ok"] else r["error"]["code"]
            if r["ok"]:
                h.send_command(col, "session/stop", {"session_id": r["session_id"]})

        suite.check("alarm/ack clears the latched estop alarm: cleared record, empty retained "
                    "payload; alarm_unacked no longer given", ack)

        def all_valid():
            col.assert_valid()

        suite.check("every payload valid against its schema", all_valid)
        print("  figures: %s" % json.dumps(figures, sort_keys=True))
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
