#!/usr/bin/python3
"""Security (issue 11): a home gateway on its own broker, bridged to the
clinic broker over TLS with the bridge's client certificate, all made by
deploy/make-site-credentials.sh from deploy/mosquitto/home.conf and
production.conf.

- the home gateway logs in to its own broker with its password; its status
  reaches the clinic through the bridge (which the clinic knows as
  ID.bridge, by certificate);
- a clinician at the clinic starts a session on the home gateway and gets
  the replies back through the bridge; the session runs;
- what the gateway publishes while the clinic broker is down reaches the
  clinic, in order, once the bridge is back;
- figure: the home gateway's memory with one cuff during a session (target
  <= 16 MiB RSS; checked when the build is not sanitized, since ASan's
  shadow memory inflates RSS).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PREFIX, Suite, check_that, sim_cuffs, wait_until  # noqa: E402
from test_security_common import (Client, SecureBroker, first_line, make_site,  # noqa: E402
                                  read, rss_kib, sanitized_build, tls_gateway_config)

HOME = harness.GATEWAY_ID   # the home gateway is the harness's gateway: PREFIX is its subtree
CONNECT_S = 30.0
SET_S = 60.0
RSS_TARGET_KIB = 16 * 1024


def plan(cuff, sets):
    return {"plan": {"exercises": [
        {"name": "home", "cuffs": [cuff], "pct_lop": 50, "mode": "continuous", "sets": sets,
         "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60}]}}


def session_events(client, sid):
    seen, out = set(), []
    for m in client.select("%s/session/%s/event" % (PREFIX, sid)):
        if m.payload and m.payload["msg_id"] not in seen:
            seen.add(m.payload["msg_id"])
            out.append(m.payload)
    return out


def main():
    suite = Suite("test_security_bridge")
    figures = {}
    with suite.harness() as h:
        out = os.path.join(h.tmp, "site")
        make_site(out, homes=(HOME,), clinicians=("dr-lee",))
        ca = os.path.join(out, "ca", "ca.crt")
        clinic = SecureBroker(h, os.path.join(out, "clinic-broker"), "clinic",
                              persistence=True).start()
        home = SecureBroker(h, os.path.join(out, "homes", HOME, "broker"), "home",
                            bridge_address="localhost:%d" % clinic.port(8883),
                            persistence=True).start()
        sim = h.start_cuffsim(1)
        etc = os.path.join(out, "homes", HOME, "gateway")
        block = read(os.path.join(etc, "mqtt.conf")).replace(
            "127.0.0.1:1883", "127.0.0.1:%d" % home.port(1883))
        gw = h.start_gateway(tls_gateway_config(h, "home-gw", sim_cuffs(sim), block, HOME, etc))
        pw = first_line(os.path.join(out, "users", "clinician", "dr-lee.pass"))
        clinician = Client("dr-lee", clinic.port(8884), "dr-lee", pw, ca=ca,
                           subscribe="bfr/v1/#")
        # Session events at the clinic, kept for it across a clinic broker restart.
        recorder = Client("recorder", clinic.port(8884), "dr-lee", pw, ca=ca,
                          subscribe=PREFIX + "/session/+/event", persistent=True)
        st = {}

        def status_through_bridge():
            clinic.proc.wait_line(r"New client connected .* as %s\.bridge .*u'%s\.bridge'" %
                                  (HOME, HOME), CONNECT_S)
            home.proc.wait_line(r"New client connected .* u'%s'" % HOME, CONNECT_S)
            clinician.wait_for(lambda c: (c.latest(PREFIX + "/status") or {}).get("state") ==
                               "online", CONNECT_S, "the home gateway's status at the clinic")
            clinician.wait_for(lambda c: (c.latest(PREFIX + "/cuff/cuff-01/state") or {})
                               .get("link") == "connected", CONNECT_S, "cuff-01 connected")

        suite.check("home gateway -> own broker (password) -> TLS bridge (certificate) -> clinic",
                    status_through_bridge)

        def session_from_clinic():
            r = clinician.command(PREFIX, "session/start", plan("cuff-01", [40, 40]))
            check_that(r.get("ok") is True, "session/start refused: %r" % r)
            st["sid"] = sid = r["session_id"]
            clinician.wait_for(lambda c: any(e["type"] == "rep" for e in session_events(c, sid)),
                               SET_S, "the session's first rep at the clinic")
            rss, hwm = rss_kib(gw.pid)
            figures["home_gateway_rss_kib"] = rss
            figures["home_gateway_hwm_kib"] = hwm
            figures["sanitized_build"] = sanitized_build()
            print("  home gateway with 1 cuff in a session: VmRSS %d KiB, VmHWM %d KiB%s" %
                  (rss, hwm, " (ASan build)" if sanitized_build() else ""))
            if not sanitized_build():
                check_that(hwm <= RSS_TARGET_KIB, "VmHWM %d KiB > 16 MiB" % hwm)

        suite.check("a clinician starts a home session through the bridge; replies come back",
                    session_from_clinic)

        def cut_and_restore():
            sid = st["sid"]
            cues = sim.stats()["cuffs"][0]["cp_writes"]["cue"]
            clinic.stop()
            home.proc.wait_line(r"Client %s\.bridge\.local closed its connection|Socket error"
                                r" on client %s\.bridge" % (HOME, HOME), 20)
            # The session goes on at home: two more rep cues mean at least two
            # rep events published to the home broker during the cut.
            wait_until(lambda: sim.stats()["cuffs"][0]["cp_writes"]["cue"] >= cues + 2, 20,
                       "two rep cues during the cut")
            check_that(gw.alive(), "the gateway died when the clinic went away")
            # The home broker restarts too (a power cut at home): what it had
            # queued for the bridge survives (persistence), and the gateway
            # re-sends what it had not had acknowledged (its outbox).
            home.stop()
            home.start()
            home.proc.wait_line(r"New client connected .* u'%s'" % HOME, CONNECT_S)
            wait_until(lambda: sim.stats()["cuffs"][0]["cp_writes"]["cue"] >= cues + 4, 20,
                       "two more rep cues after the home broker restart")
            connects = clinician.connects
            clinic.start()
            t0 = time.monotonic()
            clinic.proc.wait_line(r"New client connected .* as %s\.bridge " % HOME, 60)
            figures["bridge_reconnect_s"] = round(time.monotonic() - t0, 2)
            # Commands reach home once the bridge has subscribed again.
            clinic.proc.wait_line(r"%s\.bridge 0 %s/cmd/#" % (HOME, PREFIX), 10)
            clinician.wait_for(lambda c: c.connects > connects, 10,
                               "the clinician connected again")
            # A stop sent now is published after every event of the cut: when
            # its event is in, the clinic is up to date.
            r = clinician.command(PREFIX, "session/stop", {"session_id": sid}, timeout=60)
            check_that(r.get("ok") is True, "session/stop refused: %r" % r)
            recorder.wait_for(lambda c: any(e["type"] == "stopped"
                                            for e in session_events(c, sid)), 60,
                              "the stopped event at the clinic")
            figures["bridge_restore_to_up_to_date_s"] = round(time.monotonic() - t0, 2)
            raw = [m.payload for m in recorder.select("%s/session/%s/event" % (PREFIX, sid))
                   if m.payload]
            ids = [e["msg_id"] for e in raw]
            seqs = [e["seq"] for e in session_events(recorder, sid)]
            print("  %d events (seq %d..%d), %d duplicate deliveries; bridge back after %.2f s,"
                  " clinic up to date after %.2f s" %
                  (len(seqs), seqs[0], seqs[-1], len(ids) - len(set(ids)),
                   figures["bridge_reconnect_s"], figures["bridge_restore_to_up_to_date_s"]))
            check_that(seqs == list(range(1, len(seqs) + 1)),
                       "events missing or out of order: %r" % seqs)
            figures["duplicate_deliveries"] = len(ids) - len(set(ids))

        suite.check("clinic down, home broker restarted, clinic back: every event arrives, "
                    "in order",
                    cut_and_restore)
        clinician.close()
        recorder.close()
    print("figures: %s" % figures)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
