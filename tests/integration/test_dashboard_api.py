#!/usr/bin/python3
"""What the MQTT API owes a dashboard (issue 10, DESIGN section 10), end to end
with a real mosquitto, cuffsim and the gateway:

- a page that joins late gets the whole picture from retained messages alone:
  the sessions index, each cuff's state with its configured label, serial,
  model, firmware, LOP with its measured time and the age of its data, and
  the session's patient, plan totals, prescription, targets and time left;
- during a LOP search a cuff's state says so and shows no target;
- a pause waits for reperfusion: the state's resume_at and the refusal's
  error.retry_after_s tell when a resume is accepted;
- a stop names who and why in the event and the summary;
- alarm records carry the unit of every number and a sentence with figures;
- cmd/snapshot publishes everything retained again;
- a gateway that stops leaves link "unknown"; one that dies leaves no cuff
  state behind after the 10 s expiry.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs, wait_until  # noqa: E402

CONNECT_S = 25.0
SET_S = 60.0


def plan():
    return {"patient": "p-0042", "plan": {"exercises": [
        {"name": "knee extension", "cuffs": ["cuff-01"], "pct_lop": 50, "mode": "continuous",
         "sets": [30, 15], "tempo_s": [1, 1], "rest_s": 10, "reperfusion_s": 60},
        {"name": "calf raise", "cuffs": ["cuff-01"], "pct_lop": 40, "mode": "intermittent",
         "sets": [10], "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60}]}}


def latest(col, topic, since=0.0):
    msgs = [m for m in col.select(topic=topic, since=since) if m.payload]
    return msgs[-1].payload if msgs else None


def main():
    suite = Suite("test_dashboard_api")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(2)
        col = h.collector()
        cuffs = sim_cuffs(sim)
        cuffs[0]["label"] = "Bay 1, left thigh (J\u00fcrgen)"
        # Ended sessions' retained topics expire after 10 s here (a day by default).
        config = h.write_gateway_config(cuffs, mqtt_extra="ended_retain_s = 10;")
        gw = h.start_gateway(config)
        col.wait_for(lambda c: all(v == "connected" for v in c.cuff_links().values()) and
                     len(c.cuff_links()) == 2, CONNECT_S, "both cuffs connected")
        st = {}

        def lop_search():
            t0 = time.monotonic()
            r = h.send_command(col, "lop/measure", {"cuff": "cuff-02"})
            check_that(r["ok"] is True, "lop/measure: %r" % r)
            m = col.wait_for(lambda c: [x for x in c.select("cuff-state", since=t0,
                                                             topic=PREFIX + "/cuff/cuff-02/state")
                                        if x.payload["measuring_lop"]], 20,
                             "a cuff state that says measuring_lop")[-1].payload
            check_that(m["target_mmHg"] is None, "a target during the search: %r" % m)
            check_that(isinstance(m["lop_search_mmHg"], (int, float)),
                       "no search pressure: %r" % m)
            done = col.wait_for(lambda c: [x for x in c.select(
                "cuff-state", since=t0, topic=PREFIX + "/cuff/cuff-02/state")
                if x.payload["lop_mmHg"] is not None and not x.payload["measuring_lop"]],
                90, "the LOP measured")[-1].payload
            check_that(done["lop_measured_at"] is not None, "no lop_measured_at: %r" % done)
            print("  during the search: target null, search at %.1f mmHg; LOP %.1f measured at %s"
                  % (m["lop_search_mmHg"], done["lop_mmHg"], done["lop_measured_at"]))

        suite.check("a LOP search shows measuring_lop and its pressure, never a target",
                    lop_search)

        def late_join():
            r = h.send_command(col, "session/start", plan())
            check_that(r["ok"] is True, "start: %r" % r)
            sid = st["sid"] = r["session_id"]
            col.wait_for(lambda c: (latest(c, "%s/session/%s/state" % (PREFIX, sid)) or {})
                         .get("phase") == "set", SET_S, "the first set")
            ret = h.retained(PREFIX + "/#")
            sessions = ret.get(PREFIX + "/sessions")
            check_that(sessions is not None, "no retained sessions index")
            check_that(json.loads(sessions)["active"] == [sid], "index: %s" % sessions)
            s = json.loads(ret["%s/session/%s/state" % (PREFIX, sid)])
            for k, want in (("patient", "p-0042"), ("n_exercises", 2), ("n_sets", 2),
                            ("n_reps", 30), ("pct_lop", 50), ("set", 1)):
                check_that(s.get(k) == want, "session state %s = %r, want %r" % (k, s.get(k), want))
            target = s["targets"].get("cuff-01")
            c1 = json.loads(ret[PREFIX + "/cuff/cuff-01/state"])
            check_that(target is not None and abs(target - c1["lop_mmHg"] * 0.5) < 0.2,
                       "target %r is not 50 %% of LOP %r" % (target, c1["lop_mmHg"]))
            # planned: sets 60 + 30 s, rest 10, reperfusion 60, calf raise 20 s
            check_that(s["phase_left_s"] is not None and s["phase_left_s"] <= 60,
                       "phase_left_s %r" % s["phase_left_s"])
            check_that(s["phase_left_s"] + 120 <= s["session_left_s"] <= s["phase_left_s"] + 121,
                       "session_left_s %r with phase_left_s %r" % (s["session_left_s"],
                                                                  s["phase_left_s"]))
            check_that(c1["label"] == "Bay 1, left thigh (J\u00fcrgen)", "label %r" % c1["label"])
            for k in ("serial", "model", "firmware", "lop_measured_at"):
                check_that(isinstance(c1.get(k), str) and c1[k], "cuff state %s = %r" % (k, c1.get(k)))
            check_that(c1["data_age_ms"] is not None and c1["data_age_ms"] < 1000,
                       "data_age_ms %r" % c1["data_age_ms"])
            check_that(c1["session_id"] == sid and c1["link"] == "connected", "cuff-01: %r" % c1)
            print("  late join: session %s set %s/%s rep of %s at %s %% LOP, %s s left of %s; "
                  "cuff %r serial %s" % (sid, s["set"], s["n_sets"], s["n_reps"], s["pct_lop"],
                                        s["phase_left_s"], s["session_left_s"], c1["label"],
                                        c1["serial"]))

        suite.check("a late-joining page gets the whole picture from retained messages",
                    late_join)
        if "sid" not in st:
            return suite.finish()
        sid = st["sid"]
        state_topic = "%s/session/%s/state" % (PREFIX, sid)

        def pause_waits():
            t0 = time.monotonic()
            r = h.send_command(col, "session/pause", {"session_id": sid})
            check_that(r["ok"] is True, "pause: %r" % r)
            s = col.wait_for(lambda c: [m for m in c.select(topic=state_topic, since=t0)
                                        if m.payload and m.payload.get("resume_at")], 20,
                             "a paused state with resume_at")[-1].payload
            r = h.send_command(col, "session/resume", {"session_id": sid})
            check_that(r["ok"] is False and r["error"]["code"] == "reperfusion",
                       "resume during reperfusion: %r" % r)
            wait = r["error"].get("retry_after_s")
            check_that(isinstance(wait, int) and 50 <= wait <= 60,
                       "retry_after_s %r (60 s of reperfusion just begun)" % wait)
            print("  paused: resume_at %s; resume refused, retry_after_s %d" %
                  (s["resume_at"], wait))

        suite.check("a paused session says when a resume is accepted (resume_at, retry_after_s)",
                    pause_waits)

        def stop_by():
            t0 = time.monotonic()
            r = h.send_command(col, "session/stop", {"session_id": sid, "by": "J. Meyer",
                                                     "reason": "patient tired"})
            check_that(r["ok"] is True, "stop: %r" % r)
            ev = col.wait_for(lambda c: [m for m in c.select(
                "session-event", since=t0, topic="%s/session/%s/event" % (PREFIX, sid))
                if m.payload["type"] == "stopped"], 15, "the stopped event")[0].payload
            check_that(ev.get("by") == "J. Meyer" and ev.get("note") == "patient tired",
                       "stopped event: %r" % ev)
            sm = col.wait_for(lambda c: c.select("session-summary", since=t0), 15,
                              "the summary")[0].payload
            st["ended"] = time.monotonic()
            check_that(sm["by"] == "J. Meyer" and sm["note"] == "patient tired" and
                       sm["patient"] == "p-0042", "summary: %r" % sm)
            col.wait_for(lambda c: (latest(c, PREFIX + "/sessions", t0) or {}).get("active") == [],
                         5, "the sessions index empty")

        suite.check("a stop names who and why in its event and summary; the index empties",
                    stop_by)

        def alarm_words():
            t0 = time.monotonic()
            sim.control("spike 1 280 300")
            a = col.wait_for(lambda c: [m for m in c.select("alarm", since=t0) if m.payload and
                                        m.payload["code"] == "over_pressure_ceiling"], 10,
                             "over_pressure_ceiling")[0].payload
            check_that("mmHg above the 250 mmHg ceiling" in a["message"], "message %r" % a["message"])
            check_that(a["units"].get("limit") == "mmHg" and
                       a["units"].get("pressure_mmHg") == "mmHg", "units %r" % a["units"])
            print("  %s: %r, units %s" % (a["code"], a["message"], a["units"]))

        suite.check("alarm records carry units and a sentence with figures", alarm_words)

        def snapshot():
            t0 = time.monotonic()
            r = h.send_command(col, "snapshot")
            check_that(r["ok"] is True, "snapshot: %r" % r)
            col.wait_for(lambda c: c.select("status", since=t0) and c.select("sessions", since=t0)
                         and len({m.topic for m in c.select("cuff-state", since=t0)}) == 2 and
                         c.select("alarm", since=t0), 5,
                         "status, sessions, both cuff states and the open alarm again")

        suite.check("cmd/snapshot publishes everything retained again", snapshot)

        def clean_stop():
            gw.expect_exit = True
            check_that(gw.stop() == 0, "the gateway did not exit 0 on SIGTERM")
            ret = h.retained(PREFIX + "/cuff/+/state")
            links = {t: json.loads(v)["link"] for t, v in ret.items()}
            check_that(len(links) == 2 and set(links.values()) == {"unknown"},
                       "after a clean stop: %r" % links)

        suite.check("a gateway that stops leaves link unknown on every cuff", clean_stop)

        def crash_expires():
            g2 = h.start_gateway(config)
            t0 = time.monotonic()
            col.wait_for(lambda c: len({m.topic for m in c.select("cuff-state", since=t0)
                                        if m.payload["link"] == "connected"}) == 2,
                         CONNECT_S, "both cuffs connected again")
            g2.kill()
            t_kill = time.monotonic()
            left = {}

            def gone():
                left.clear()
                left.update(h.retained(PREFIX + "/cuff/+/state"))
                return not left
            wait_until(gone, 20, "the dead gateway's cuff states to expire")
            took = time.monotonic() - t_kill
            check_that(took <= 12.0, "cuff states outlived the gateway by %.1f s" % took)
            print("  kill -9: no retained cuff state %.1f s later (expiry 10 s)" % took)

        suite.check("a gateway that dies leaves no cuff looking connected (10 s expiry)",
                    crash_expires)

        def ended_expire():
            left = {}

            def gone():
                left.clear()
                left.update(h.retained("%s/session/%s/+" % (PREFIX, sid)))
                return not left
            wait_until(gone, 30, "the ended session's retained state and summary to expire")
            took = time.monotonic() - st["ended"]
            check_that(took <= 15.0, "the ended session's topics stayed %.1f s" % took)
            print("  the ended session's state and summary left the broker %.1f s after the "
                  "end (ended_retain_s 10)" % took)

        suite.check("an ended session's retained state and summary expire (ended_retain_s)",
                    ended_expire)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
