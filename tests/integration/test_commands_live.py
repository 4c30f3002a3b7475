#!/usr/bin/python3
"""Commands are live, run once, and cannot crowd out safety (issue 8 items
1 and 2, issue 9 item 2; docs/safety.md SR-27, SR-28). Each check failed on
the gateway before its fix.

- A retained session/start and a retained estop, left on the broker, do
  nothing when the gateway (re)connects: no session, no DEFLATE, no alarm.
- A command delivered again with the same request_id is answered with its
  first reply (same session_id, same msg_id) and not run again, also after a
  gateway restart.
- A Response Topic with a wildcard or outside reply/ is refused (the reply
  goes to reply/{request_id}); the gateway is not cut off by the broker and
  publishes nothing there.
- A flood of 4 000 invalid commands from one client: a spike on a cuff in a
  session is still deflated within milliseconds, its session is not
  disturbed, an e-stop sent in the middle of the flood is executed at once,
  and the flood gets rate_limited / overloaded refusals.
"""

import json
import os
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, TestFailure, check_that, short_plan, sim_cuffs,  # noqa: E402
                     start_session, wait_phase, wait_session_end, wait_alarm, wait_sim,
                     sim_cuff_stats, session_events)

CUFFS = 3
START_S = 25.0
FLOOD = 4000


def online(col, since=0.0):
    col.wait_for(lambda c: any(m.payload and m.payload.get("state") == "online"
                               for m in c.select("status", since)), START_S, "status online")


def gateway(h):
    return [p for p in h.procs if p.name.startswith("gateway")][-1]


def restart_gateway(h, col, conf):
    g = gateway(h)
    g.expect_exit = True
    check_that(g.stop() == 0, "the gateway did not stop cleanly")
    t0 = time.monotonic()
    h.start_gateway(conf)
    online(col, t0)


def client(h, name):
    c = mqtt.Client(client_id="%s-%s" % (name, uuid.uuid4().hex[:6]), protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", h.broker.port, keepalive=30)
    c.loop_start()
    return c


def main():
    suite = Suite("test_commands_live")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(CUFFS)
        col = h.collector()
        conf = h.write_gateway_config(sim_cuffs(sim))
        h.start_gateway(conf)
        online(col)

        def retained_ignored():
            def writes(i):
                w = sim_cuff_stats(sim, i)["cp_writes"]
                return {k: w[k] for k in ("set_target", "measure_lop", "deflate")}
            # Left on the broker while the gateway is away (a live publish is a
            # command: the gateway would rightly run it).
            g = gateway(h)
            g.expect_exit = True
            check_that(g.stop() == 0, "the gateway did not stop cleanly")
            before = writes(1)
            pub = client(h, "retainer")
            start = {"request_id": "retained-start", "plan": short_plan("cuff-01", reps=3)}
            pub.publish(PREFIX + "/cmd/session/start", json.dumps(start), qos=1,
                        retain=True).wait_for_publish(5)
            pub.publish(PREFIX + "/cmd/estop", json.dumps({"request_id": "retained-estop"}),
                        qos=1, retain=True).wait_for_publish(5)
            t0 = time.monotonic()
            h.start_gateway(conf)
            online(col, t0)
            # the gateway is up and subscribed: a live command gets its reply ...
            r = h.send_command(col, "cuff/identify", {"cuff": "cuff-02"})
            check_that(r.get("ok") is True, "identify refused: %s" % r)
            # ... and the retained ones did nothing, and got no reply.
            after = writes(1)
            check_that(after == before, "the retained start reached the cuff: %s -> %s"
                       % (before, after))
            check_that(not [m for m in col.select("alarm", t0) if m.payload and
                            m.payload.get("code") == "estop"], "the retained estop ran")
            check_that(not col.select(topic=PREFIX + "/reply/retained-start"),
                       "the retained start got a reply")
            started = [m for m in col.select("session-state", t0) if m.payload]
            check_that(not started, "a session started: %s" % started[:1])
            # Clean up: an empty retained payload removes them.
            for verb in ("session/start", "estop"):
                pub.publish(PREFIX + "/cmd/" + verb, b"", qos=1, retain=True).wait_for_publish(5)
            pub.disconnect()
            print("  retained session/start and estop on the broker: nothing ran at reconnect")

        suite.check("SR-27 a retained command runs nothing when the gateway connects",
                    retained_ignored)

        def run_once():
            body = {"request_id": "once-1", "plan": short_plan("cuff-03", reps=30)}
            r1 = h.send_command(col, "session/start", body)
            check_that(r1.get("ok") is True, "start refused: %s" % r1)
            wait_phase(col, r1["session_id"], "lop", 10)
            r2 = h.send_command(col, "session/start", body)
            check_that(r2 == r1, "a re-delivery got another reply: %s vs %s" % (r2, r1))
            n = sim_cuff_stats(sim, 3)["cp_writes"]["measure_lop"]
            check_that(n == 1, "%d MEASURE_LOP: the start ran twice" % n)
            restart_gateway(h, col, conf)
            r3 = h.send_command(col, "session/start", body)
            check_that(r3 == r1, "after a restart: %s vs %s" % (r3, r1))
            r4 = h.send_command(col, "session/stop", {"request_id": "once-1",
                                                      "session_id": r1["session_id"]})
            check_that(r4.get("ok") is False and r4["error"]["code"] == "bad_request",
                       "a request_id reused for another verb: %s" % r4)
            print("  the same request_id three times (once after a restart): one session, "
                  "the first reply each time (%s)" % r1["msg_id"])

        suite.check("SR-27 a command delivered again is answered, not run again, also after "
                    "a restart", run_once)

        def response_topic_checked():
            pub = client(h, "badrt")
            got = []
            pub.on_message = lambda c, u, m: got.append(m.topic)
            pub.subscribe(PREFIX + "/#", qos=1)
            t0 = time.monotonic()
            for rid, rt in (("rt-wild", PREFIX + "/reply/+/x"), ("rt-status", PREFIX + "/status"),
                            ("rt-other", "bfr/v1/other-site/other-gw/cmd/estop")):
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = rt
                props.CorrelationData = rid.encode()
                pub.publish(PREFIX + "/cmd/cuff/identify",
                            json.dumps({"request_id": rid, "cuff": "cuff-02"}), qos=1,
                            properties=props).wait_for_publish(5)
                m = col.wait_for(lambda c: c.select(topic=PREFIX + "/reply/" + rid, since=t0),
                                 10, "a refusal on reply/%s" % rid)[0]
                check_that(m.payload["ok"] is False and m.payload["error"]["code"] ==
                           "bad_request", "%s: %s" % (rid, m.payload))
            status = [m for m in col.select("status", t0) if m.payload]
            check_that(all(m.payload.get("state") == "online" for m in status),
                       "the gateway went offline: %s" % status)
            check_that(not [t for t in got if t.startswith("bfr/v1/other-site")],
                       "the gateway published into another gateway's topics")
            pub.disconnect()
            print("  3 bad Response Topics refused on reply/<id>; the gateway stayed online")

        suite.check("a Response Topic outside reply/ or with wildcards is refused, the gateway "
                    "stays connected", response_topic_checked)

        def flood():
            sid = start_session(h, col, short_plan("cuff-02", reps=30, tempo=(1, 1),
                                                   pct_lop=60))
            wait_phase(col, sid, "set", 40)
            flooder = client(h, "flood")
            replies = []
            flooder.on_message = lambda c, u, m: replies.append(m.payload)
            flooder.subscribe(PREFIX + "/reply/flood/#", qos=0)
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = PREFIX + "/reply/flood/x"
            t0 = time.monotonic()

            def blast():
                for i in range(FLOOD):
                    flooder.publish(PREFIX + "/cmd/session/start", b"{not json %d" % i, qos=0,
                                    properties=props)
            th = threading.Thread(target=blast)
            th.start()
            # an e-stop of cuff-01 (idle) while the flood goes on
            r = h.send_command(col, "estop", {"cuffs": ["cuff-01"]}, timeout=5)
            t_estop = time.monotonic() - t0
            check_that(r.get("ok") is True, "estop during the flood: %s" % r)
            check_that(t_estop < 3.0, "the e-stop waited %.2f s behind the flood" % t_estop)
            th.join()
            # Everything before it has been handled once a later command is
            # answered. While the backlog drains (slower on a loaded machine)
            # the answer may be `overloaded`, or none at all when more than
            # 2 048 wait (docs/mqtt-api.md: dropped unanswered): send again,
            # as the API says. (A single 30 s wait for one that had been
            # dropped failed once in CI.)
            deadline = time.monotonic() + 30
            while True:
                try:
                    r = h.send_command(col, "cuff/identify", {"cuff": "cuff-03"}, timeout=5)
                except TestFailure:
                    if time.monotonic() > deadline:
                        raise
                    continue  # dropped unanswered: send again
                if (r.get("ok") is not False or r["error"]["code"] != "overloaded" or
                        time.monotonic() > deadline):
                    break
                time.sleep(0.2)  # the client's back-off before sending again
            check_that(r.get("ok") is True, "identify after the flood: %s" % r)
            col.wait_for(lambda c: len(replies) >= 100, 20, "refusals of the flood")
            codes = {}
            for p in replies:
                code = json.loads(p)["error"]["code"]
                codes[code] = codes.get(code, 0) + 1
            check_that(codes.get("rate_limited", 0) + codes.get("overloaded", 0) > 0,
                       "no rate_limited/overloaded refusal: %s" % codes)
            # the session on cuff-02 went on, undisturbed
            evs = session_events(col, sid)
            check_that(not any(e["type"] in ("aborted", "stopped") for e in evs),
                       "the session was disturbed: %s" % evs[-1])
            check_that(not [m for m in col.select("alarm", t0) if m.payload and
                            m.payload.get("code") == "telemetry_lost"],
                       "telemetry_lost during the flood")
            # a spike on it is deflated at once
            sim.control("spike 2 150 300")
            wait_session_end(col, sid, 5)
            s = wait_sim(sim, 2, lambda s: s["deflates"]["safety"] >= 1, 5, "DEFLATE(safety)")
            lat = s["latency_us"]
            print("  %d invalid commands: %s; e-stop answered after %.2f s; spike -> DEFLATE "
                  "p50 %s us" % (FLOOD, codes, t_estop, lat))
            flooder.disconnect()

        suite.check("SR-28 a command flood: safety and the session undisturbed, e-stop at once",
                    flood)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
