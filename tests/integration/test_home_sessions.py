#!/usr/bin/python3
"""Home sessions (issue 11, DESIGN section 11) with real brokers: a home
gateway on its own mosquitto, bridged over TLS to the clinic broker, both
from deploy/make-site-credentials.sh; cuffsim; a clinician at the clinic.

- a prescription set from the clinic is checked (a plan beyond the cuff's
  limits is refused), published retained, and comes back after a restart of
  the gateway;
- a start outside the prescription's window is refused, with the patient's
  sentence on the console, in the log and on home/event at the clinic;
- ctl status as root; ctl start / stop / status as a user without permission
  refused (SO_PEERCRED), nothing started;
- ctl start, status and stop;
- a prescribed session started by a long press of the cuff's button
  (cuffsim control) runs while the bridge is cut (the home's link: a TCP
  proxy drops it), is stopped by a short
  press during the cut, and once the bridge is restored every session event
  and home event arrives at the clinic, in order, once;
- the prescription and the day's starts survive a restart.

BFR_HOME_CUT_S (default 15) is how long the bridge stays cut; the figure
of docs/benchmarks.md ("Home gateway") is this test with 600.
"""

import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PREFIX, Suite, check_that, wait_sim, wait_until  # noqa: E402
from test_home_common import (CONNECT_S, HOME, NOBODY, HomeSite, ctl, ctl_json,  # noqa: E402
                              first_copies, home_events, plan, rx_body, session_events,
                              utcnow, validate_all, wait_home_event)
from test_security_common import rss_kib, sanitized_build  # noqa: E402

CUT_S = float(os.environ.get("BFR_HOME_CUT_S", "15"))
RSS_TARGET_KIB = 16 * 1024
HOUR = datetime.timedelta(hours=1)


def main():
    suite = Suite("test_home_sessions")
    figures = {"cut_s": CUT_S}
    with suite.harness() as h:
        site = HomeSite(h)
        st = {}

        def ready():
            site.wait_ready()

        suite.check("home gateway -> own broker -> TLS bridge -> clinic", ready)

        def window_refused():
            # valid from in 2 hours: a long press is refused, and says why
            body = rx_body(utcnow() + 2 * HOUR, utcnow() + 50 * HOUR)
            r = site.command("prescription/set", body)
            check_that(r.get("ok") is True, "prescription/set refused: %r" % r)
            since = time.monotonic()
            site.sim.control("button 1 long")
            e = wait_home_event(site.clinician, lambda e: e["type"] == "start_refused", 20,
                                "start_refused at the clinic", since)
            print("  home/event: %s" % e["message"])
            check_that(e["code"] == "not_yet_valid" and e["source"] == "button" and
                       e["cuff"] == "cuff-01", "refusal: %r" % e)
            check_that("Your prescription starts in 2 h" in e["message"] or
                       "Your prescription starts in 1 h 59 min" in e["message"],
                       "the sentence: %r" % e["message"])
            site.gw.wait_line(r"start from the button of cuff cuff-01 refused: not_yet_valid: "
                              r"Your prescription starts in", 5)
            rc, out = ctl(h, site.socket, "start")
            print("  console: " + out.strip())
            check_that(rc == 1 and "refused (not_yet_valid): Your prescription starts in" in out,
                       "ctl start: %d %s" % (rc, out))
            check_that(site.sim.stats()["cuffs"][0]["cp_writes"]["set_target"] == 0,
                       "the cuff was inflated")
            # let go (2.5 s), so that the next press is a press of its own
            wait_sim(site.sim, 1, lambda s: not s["button"], 10, "the button let go")

        suite.check("a start outside the window: refused, the reason on the console, in the "
                    "log and at the clinic", window_refused)

        def prescription_checked_and_retained():
            r = site.command("prescription/set", rx_body(utcnow() - HOUR, utcnow() + 50 * HOUR,
                                                         the_plan=plan(pct_lop=90)))
            check_that((r.get("error") or {}).get("code") == "limit_exceeded",
                       "90 %% of LOP on a leg: %r" % r)
            # about 10 minutes of exercise: it runs through the longest cut
            body = rx_body(utcnow() - HOUR, utcnow() + 50 * HOUR, max_per_day=3,
                           the_plan=plan(sets=(30, 30, 30, 30), tempo=(2, 2), rest_s=30))
            r = site.command("prescription/set", body)
            check_that(r.get("ok") is True, "prescription/set refused: %r" % r)
            p = site.clinician.wait_for(
                lambda c: [m for m in c.select(PREFIX + "/prescription")
                           if m.payload and m.payload.get("request_id") == r["request_id"]],
                20, "the retained prescription at the clinic")[-1].payload
            check_that(p["plan"] == body["plan"] and p["max_per_day"] == 3 and
                       p["supervision"] == "remote", "published: %r" % p)
            st["rx"] = p

        suite.check("prescription set from the clinic: checked against the cuff's limits, "
                    "published retained", prescription_checked_and_retained)

        def console_permissions():
            rc, out = ctl(h, site.socket, "status")
            print("  " + out.strip().replace("\n", "\n  "))
            check_that(rc == 0 and "Prescription: home knee" in out and
                       "Next session: you can start it now." in out, "status: %d %s" % (rc, out))
            for verb in ("start", "status", "stop"):
                rc, out = ctl(h, site.socket, verb, user=NOBODY)
                check_that(rc == 1 and "refused (permission_denied)" in out,
                           "%s as nobody: %d %s" % (verb, rc, out))
            site.gw.wait_line(r"ctl: uid %d gid %d \(pid \d+\) refused" % (NOBODY, NOBODY), 5)
            rc, out = ctl(h, site.socket, "start", "--plan")
            check_that(rc == 2, "an option that is not one: %d %s" % (rc, out))
            rc, out = ctl(h, site.socket, "inflate")
            check_that(rc == 2 and "unknown request" in out, "ctl inflate: %d %s" % (rc, out))
            check_that(site.sim.stats()["cuffs"][0]["cp_writes"]["measure_lop"] == 0,
                       "something started")

        suite.check("ctl status as root; a user without permission is refused "
                    "(SO_PEERCRED), nothing starts", console_permissions)

        def console_start_and_stop():
            # A cuff that inflated needs its reperfusion time before the next
            # session: the console would say so, and start once it has passed.
            refusals = set()
            rc, before = ctl_json(h, site.socket, "status")

            def try_start():
                rc, reply = ctl_json(h, site.socket, "start")
                if reply.get("code") == "reperfusion":
                    refusals.add(reply["message"])
                    return None
                return rc, reply
            rc, reply = wait_until(try_start, 90, "the cuff's reperfusion time to pass", poll=2)
            check_that(rc == 0 and reply["ok"] is True, "ctl start: %d %r" % (rc, reply))
            for m in refusals:
                print("  console (before): " + m)
            sid = reply["session_id"]
            e = wait_home_event(site.clinician, lambda e: e["type"] == "started" and
                                e["session_id"] == sid, 20, "started from the console")
            check_that(e["source"] == "console", "source: %r" % e)
            rc, status = ctl_json(h, site.socket, "status")
            check_that(rc == 0 and status["session"]["session_id"] == sid and
                       status["today"]["started"] == before["today"]["started"] + 1,
                       "status: %r" % status)
            rc, out = ctl(h, site.socket, "start")
            check_that(rc == 1 and "session_running" in out, "a second start: %s" % out)
            rc, out = ctl(h, site.socket, "stop")
            check_that(rc == 0 and "stopped" in out, "ctl stop: %d %s" % (rc, out))
            ended = site.clinician.wait_for(
                lambda c: [x for x in session_events(c, sid) if x["type"] == "stopped"], 20,
                "the stopped event")
            check_that(ended, "no stopped event")
            wait_home_event(site.clinician, lambda e: e["type"] == "stopped" and
                            e["session_id"] == sid and e["source"] == "console", 20,
                            "stopped from the console")
            rc, out = ctl(h, site.socket, "stop")
            check_that(rc == 1 and "no_session" in out, "stop again: %d %s" % (rc, out))

        suite.check("ctl start, status and stop", console_start_and_stop)

        def button_session_through_a_cut():
            sim = site.sim
            since = time.monotonic()
            sim.control("button 1 long")
            started = wait_home_event(site.clinician, lambda e: e["type"] == "started", 20,
                                      "the started event at the clinic", since)
            check_that(started["source"] == "button", "started: %r" % started)
            sid = st["sid"] = started["session_id"]
            site.clinician.wait_for(lambda c: any(e["type"] == "rep"
                                                  for e in session_events(c, sid)),
                                    60, "the session's first rep at the clinic")
            st["clinic_log"] = site.clinic.log_index()
            rss, hwm = rss_kib(site.gw.pid)
            figures.update(home_gateway_rss_kib=rss, home_gateway_hwm_kib=hwm,
                           sanitized_build=sanitized_build())
            if not sanitized_build():
                check_that(hwm <= RSS_TARGET_KIB, "VmHWM %d KiB > 16 MiB" % hwm)
            cues = sim.stats()["cuffs"][0]["cp_writes"]["cue"]
            site.link.cut()
            t_cut = time.monotonic()
            site.gw.wait_line(r"the bridge to the clinic is down", 20)
            wait_sim(sim, 1, lambda s: s["cp_writes"]["cue"] >= cues + 2, 20,
                     "two rep cues during the cut")
            # the rest of the cut; the session goes on, or ends on its own
            wait_until(lambda: time.monotonic() - t_cut >= CUT_S or not site.gw.alive(),
                       CUT_S + 5, "the end of the cut", poll=0.5)
            check_that(site.gw.alive(), "the gateway died during the cut")
            st["pressed"] = sim.stats()["cuffs"][0]["target"] > 0
            if st["pressed"]:
                sim.control("button 1 short")
                site.gw.wait_line(r"session %s stopped from the button of cuff cuff-01" % sid,
                                  10)
            wait_sim(sim, 1, lambda s: s["pressure"] < 20, 15, "the cuff deflated")
            figures["events_during_cut_s"] = round(time.monotonic() - t_cut, 1)
            figures["rss_kib_after_cut"], figures["hwm_kib_after_cut"] = rss_kib(site.gw.pid)
            site.link.restore()
            t0 = time.monotonic()
            site.clinic.proc.wait_line(r"New client connected .* as %s\.bridge " % HOME, 60,
                                       start=st["clinic_log"])
            figures["bridge_reconnect_s"] = round(time.monotonic() - t0, 2)
            # Up to date: the session's final event and its summary and, after a
            # stop by the button, the home event saying so, are at the clinic. (Not
            # the summary alone: the home broker's bridge subscribes again at every
            # reconnect attempt and so queues retained messages again, a summary
            # among them, ahead of events still waiting.)
            site.recorder.wait_for(
                lambda c: any(e["type"] in ("stopped", "completed", "aborted")
                              for e in session_events(c, sid)) and
                c.select("%s/session/%s/summary" % (PREFIX, sid)) and
                (not st["pressed"] or any(e["type"] == "stopped" and e["session_id"] == sid
                                          for e in home_events(c))),
                max(120, CUT_S), "the session's end (and stop) at the clinic")
            figures["bridge_restore_to_up_to_date_s"] = round(time.monotonic() - t0, 2)
            raw = [m.payload for m in site.recorder.select("%s/session/%s/event" % (PREFIX, sid))
                   if m.payload]
            figures["summary_deliveries"] = len(site.recorder.select(
                "%s/session/%s/summary" % (PREFIX, sid)))
            events = session_events(site.recorder, sid)
            seqs = [e["seq"] for e in events]
            figures["session_events"] = len(seqs)
            figures["duplicate_deliveries"] = len(raw) - len(events)
            print("  %d session events (seq %d..%d), %d duplicate deliveries; bridge back "
                  "after %.2f s, clinic up to date after %.2f s" %
                  (len(seqs), seqs[0], seqs[-1], len(raw) - len(events),
                   figures["bridge_reconnect_s"], figures["bridge_restore_to_up_to_date_s"]))
            check_that(seqs == list(range(1, len(seqs) + 1)),
                       "session events missing or out of order: %r" % seqs)
            check_that(events[-1]["type"] in ("stopped", "completed"),
                       "the last event: %r" % events[-1])
            # every message of the session, once each (by msg_id), in seq order
            check_that(len({e["msg_id"] for e in events}) == len(events), "a msg_id twice")
            homes = [e for e in home_events(site.recorder) if e.get("session_id") == sid]
            types = [e["type"] for e in homes]
            check_that(types == (["started", "stopped"] if st["pressed"] else ["started"]),
                       "home events of the session: %r" % types)
            summaries = first_copies(site.recorder, "%s/session/%s/summary" % (PREFIX, sid))
            check_that(len(summaries) == 1 and summaries[0]["outcome"] == events[-1]["type"],
                       "summary: %r" % summaries)

        suite.check("a session started by the button runs through a bridge cut of %.0f s; "
                    "every event reaches the clinic, in order, once" % CUT_S,
                    button_session_through_a_cut)

        def survives_restart():
            rc, before = ctl_json(h, site.socket, "status")
            site.gw.send_signal(15)
            check_that(site.gw.wait_exit(20) == 0, "the gateway did not stop cleanly")
            site.gw.expect_exit = True
            check_that(not os.path.exists(site.socket), "the control socket was left behind")
            site.gw = h.start_gateway(site.gw.argv[2])
            site.gw.wait_line(r"prescription restored \(1 exercises, supervision remote\), "
                              r"2 recent local starts", 20)
            rc, status = ctl_json(h, site.socket, "status")
            check_that(rc == 0 and status["prescription"]["plan"] == st["rx"]["plan"] and
                       status["today"] == before["today"],
                       "status after restart: %r" % status)

        suite.check("the prescription and today's starts survive a restart", survives_restart)

        def all_valid():
            problems = validate_all(site.clinician) + validate_all(site.recorder)
            check_that(not problems, "%d invalid messages; first: %s" %
                       (len(problems), problems[:1]))

        suite.check("every message at the clinic is valid against its schema", all_valid)
        site.close()
    print("figures: %s" % figures)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
