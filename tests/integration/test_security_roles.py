#!/usr/bin/python3
"""Security (issue 11): roles enforced by the clinic broker made from the
shipped configuration and the credentials of deploy/make-site-credentials.sh.

- the gateway connects over TLS with its client certificate (CN = user name)
  and a session started by a clinician (TLS + password) runs;
- a gateway reads back its own retained alarm/+ (the shipped ACL used to deny
  it);
- a viewer's command is denied (PUBACK 0x87, "Denied PUBLISH" in the broker
  log) and changes nothing: no e-stop reaches the cuff, no reply, the
  gateway answers the next legitimate command;
- a gateway writing into another gateway's subtree, or sending a command, is
  denied, and no retained message appears there; so is a home bridge outside
  its own subtree;
- the broker's size limits: a publish over message_size_limit is refused
  with 0x95, one over max_packet_size loses its connection.
"""

import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PREFIX, SITE, Suite, check_that, sim_cuffs, wait_until  # noqa: E402
from test_security_common import (Client, SecureBroker, first_line, make_site,  # noqa: E402
                                  mosquitto_pub, read, tls_gateway_config)

GW, GW2, HOME = harness.GATEWAY_ID, "it-gw2", "it-home"
CONNECT_S = 30.0
SET_S = 60.0


def plan(cuff):
    return {"plan": {"exercises": [
        {"name": "hold", "cuffs": [cuff], "pct_lop": 50, "mode": "continuous", "sets": [40],
         "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60}]}}


def denied_in_log(broker, topic, start):
    """The broker's debug line for a publish its ACL refused."""
    return broker.proc.wait_line(r"Denied PUBLISH from .*'%s'" % topic.replace("+", r"\+"), 5,
                                 start)


def main():
    suite = Suite("test_security_roles")
    with suite.harness() as h:
        out = os.path.join(h.tmp, "site")
        make_site(out, gateways=(GW, GW2), homes=(HOME,), clinicians=("dr-lee",),
                  viewers=("wall-1",))
        ca = os.path.join(out, "ca", "ca.crt")
        gw_dir = os.path.join(out, "gateways", GW)
        gw2_dir = os.path.join(out, "gateways", GW2)
        bridge_dir = os.path.join(out, "homes", HOME, "broker", "bfr")
        broker = SecureBroker(h, os.path.join(out, "clinic-broker"), "clinic").start()
        people, devices = broker.port(8884), broker.port(8883)

        sim = h.start_cuffsim(1)
        cuffs = sim_cuffs(sim)
        block = read(os.path.join(gw_dir, "mqtt.conf")).replace(
            "localhost:8883", "localhost:%d" % devices)
        gateway = h.start_gateway(tls_gateway_config(h, "gw", cuffs, block, GW, gw_dir))
        clinician = Client("dr-lee", people, "dr-lee",
                           first_line(os.path.join(out, "users", "clinician", "dr-lee.pass")),
                           ca=ca, subscribe="bfr/v1/#")
        st = {}

        def tls_session():
            clinician.wait_for(lambda c: (c.latest(PREFIX + "/status") or {}).get("state") ==
                               "online", CONNECT_S, "the gateway's status online over TLS")
            broker.proc.wait_line(r"New client connected .* u'%s'" % GW, 1)
            clinician.wait_for(lambda c: (c.latest(PREFIX + "/cuff/cuff-01/state") or {})
                               .get("link") == "connected", CONNECT_S, "cuff-01 connected")
            r = clinician.command(PREFIX, "session/start", plan("cuff-01"))
            check_that(r.get("ok") is True, "session/start refused: %r" % r)
            sid = r["session_id"]
            topic = "%s/session/%s/event" % (PREFIX, sid)
            clinician.wait_for(lambda c: any((m.payload or {}).get("type") == "rep"
                                             for m in c.select(topic)),
                               SET_S, "the session's first rep")
            st["base"] = sim.stats()["cuffs"][0]
            r = clinician.command(PREFIX, "session/stop", {"session_id": sid})
            check_that(r.get("ok") is True, "session/stop refused: %r" % r)
            clinician.wait_for(lambda c: any((m.payload or {}).get("type") == "stopped"
                                             for m in c.select(topic)), 20, "stopped")

        suite.check("gateway over TLS with its client certificate: a clinician's session runs",
                    tls_session)

        def own_retained_alarm():
            # The shipped ACL gave a gateway no read on its own alarm/+, so a
            # restarted gateway never saw the alarms it had left open.
            topic = "bfr/v1/%s/%s/alarm/it-test-1" % (SITE, GW2)
            cert = dict(ca=ca, cert=os.path.join(gw2_dir, "client.crt"),
                        key=os.path.join(gw2_dir, "client.key"))
            rc, out_ = mosquitto_pub(devices, topic, '{"alarm_id":"it-test-1"}', retain=True,
                                     **cert)
            check_that(rc == 0 and "RC:135" not in out_, "write alarm: %s" % out_)
            gw2 = Client("gw2-reads", devices, ca=ca, cert=cert["cert"], key=cert["key"],
                         subscribe="bfr/v1/%s/%s/alarm/+" % (SITE, GW2))
            try:
                gw2.wait_for(lambda c: c.select(topic), 5, "the retained alarm read back")
            finally:
                gw2.close()
            mosquitto_pub(devices, topic, "", retain=True, **cert)

        suite.check("a gateway reads back its own retained alarm/+", own_retained_alarm)

        def viewer_denied():
            base = sim.stats()["cuffs"][0]
            start = broker.log_index()
            request_id = "viewer-%s" % uuid.uuid4().hex[:8]
            topic = PREFIX + "/cmd/estop"
            rc, out_ = mosquitto_pub(people, topic, '{"request_id":"%s"}' % request_id,
                                     user="wall-1", ca=ca,
                                     password=first_line(os.path.join(out, "users", "viewer",
                                                                      "wall-1.pass")))
            print("  viewer: " + [x for x in out_.splitlines() if "PUBACK" in x][0])
            check_that("RC:135" in out_, "the viewer's command was not refused: %s" % out_)
            print("  broker: " + denied_in_log(broker, topic, start).string)
            # The broker decided before its PUBACK: had it passed the command on,
            # the gateway would answer it before this later one.
            r = clinician.command(PREFIX, "cuff/identify", {"cuff": "cuff-01"})
            check_that(r.get("ok") is True, "identify: %r" % r)
            check_that(not any(request_id in m.raw.decode("utf-8", "replace")
                               for m in clinician.select()), "the gateway answered the viewer")
            now = sim.stats()["cuffs"][0]
            check_that(now["deflates"]["estop"] == base["deflates"]["estop"],
                       "an e-stop DEFLATE reached the cuff")
            check_that(gateway.alive(), "the gateway died")

        suite.check("a viewer's command is denied, logged, and changes nothing", viewer_denied)

        def cross_subtree_denied():
            cert = dict(ca=ca, cert=os.path.join(gw_dir, "client.crt"),
                        key=os.path.join(gw_dir, "client.key"))
            bridge = dict(ca=ca, cert=os.path.join(bridge_dir, "bridge.crt"),
                          key=os.path.join(bridge_dir, "bridge.key"))
            for who, creds, topic, retain in (
                    (GW, cert, "bfr/v1/%s/%s/status" % (SITE, GW2), True),
                    (GW, cert, "bfr/v1/%s/%s/cmd/estop" % (SITE, GW2), False),
                    (GW, cert, "%s/cmd/estop" % PREFIX, False),
                    (GW, cert, "%s/supervisor" % PREFIX, True),
                    (HOME + ".bridge", bridge, "%s/status" % PREFIX, True)):
                start = broker.log_index()
                rc, out_ = mosquitto_pub(devices, topic, '{"state":"online"}', retain=retain,
                                         **creds)
                check_that("RC:135" in out_, "%s writing %s was not refused: %s" %
                           (who, topic, out_))
                denied_in_log(broker, topic, start)
                print("  %s -> %s: denied (0x87)" % (who, topic))
            # Nothing retained appeared: subscribe, then a marker through the
            # same subscription proves the retained messages were all sent.
            marker = "bfr/v1/%s/%s/cmd/it-marker" % (SITE, GW2)
            probe = Client("probe", people, "dr-lee",
                           first_line(os.path.join(out, "users", "clinician", "dr-lee.pass")),
                           ca=ca, subscribe="bfr/v1/%s/%s/#" % (SITE, GW2))
            try:
                probe.publish(marker, b"{}")
                probe.wait_for(lambda c: c.select(marker), 5, "the marker")
                check_that(not probe.select("bfr/v1/%s/%s/status" % (SITE, GW2)),
                           "a retained status appeared in %s's subtree" % GW2)
            finally:
                probe.close()
            check_that((clinician.latest(PREFIX + "/status") or {}).get("state") == "online",
                       "the real gateway's status changed")

        suite.check("a gateway (or bridge) writing outside its own topics is denied",
                    cross_subtree_denied)

        def size_limits():
            pw = first_line(os.path.join(out, "users", "clinician", "dr-lee.pass"))
            big = os.path.join(h.tmp, "big.bin")
            with open(big, "wb") as f:
                f.write(b"x" * (300 * 1024))
            rc, out_ = mosquitto_pub(people, PREFIX + "/cmd/it-big", user="dr-lee", password=pw,
                                     ca=ca, file=big)
            check_that("RC:149" in out_, "300 KiB not refused with 0x95: %s" % out_)
            with open(big, "wb") as f:
                f.write(b"x" * (2 * 1024 * 1024))
            start = broker.log_index()
            rc, out_ = mosquitto_pub(people, PREFIX + "/cmd/it-huge", user="dr-lee", password=pw,
                                     ca=ca, file=big)
            check_that("received PUBACK" not in out_, "2 MiB accepted: %s" % out_)
            broker.proc.wait_line(r"disconnected|closed its connection|oversize", 5, start)
            check_that(gateway.alive(), "the gateway died")

        suite.check("size limits: 300 KiB refused (0x95), 2 MiB disconnected", size_limits)
        clinician.close()
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
