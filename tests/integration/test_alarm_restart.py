#!/usr/bin/python3
"""Alarms across a gateway crash (SR-19, docs/safety.md "Across a restart"): an
unacknowledged HIGH alarm (here the e-stop's) survives `kill -9`, keeps its id,
stays retained and keeps blocking inflation until a clinician acknowledges it;
new alarm ids continue after the recorded ones."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs  # noqa: E402

PLAN = {"exercises": [{"name": "knee", "cuffs": ["cuff-01"], "pct_lop": 50, "sets": [2],
                       "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60,
                       "mode": "continuous"}]}


def main():
    suite = Suite("test_alarm_restart")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(2)
        col = h.collector()
        config = h.write_gateway_config(sim_cuffs(sim))
        gw = h.start_gateway(config)
        state = {}

        def online(since=0.0):
            col.wait_for(lambda c: any(m.payload.get("state") == "online" and m.t > since
                                       for m in c.select("status")), 20, "status online")
            col.wait_for(lambda c: any(m.payload.get("link") == "connected" and m.t > since
                                       for m in c.select(topic=PREFIX + "/cuff/cuff-01/state")),
                         20, "cuff-01 connected")

        def estop_then_crash():
            online()
            reply = h.send_command(col, "estop", {})
            check_that(reply["ok"], "estop refused: %r" % reply)
            msgs = col.wait_for(lambda c: [m for m in c.select("alarm") if m.payload and
                                           m.payload.get("code") == "estop"], 10,
                                "the estop alarm")
            state["id"] = msgs[0].payload["alarm_id"]
            gw.kill()
            # The Last Will marks the end of the first run; the restart's
            # "online" must come after it (a command sent earlier is lost).
            off = col.wait_for(lambda c: [m for m in c.select("status")
                                          if m.payload.get("state") == "offline"], 20,
                               "the Last Will (status offline)")
            state["offline_t"] = off[-1].t

        suite.check("e-stop raises a HIGH alarm, then the gateway is killed", estop_then_crash)

        def survives():
            h.start_gateway(config)
            online(state["offline_t"])
            got = h.retained(PREFIX + "/alarm/#")
            topic = "%s/alarm/%s" % (PREFIX, state["id"])
            check_that(topic in got and got[topic], "the e-stop alarm is not retained any more")
            rec = json.loads(got[topic])
            check_that(rec["state"] == "active" and rec["priority"] == "high",
                       "restored alarm is %r" % rec)
            reply = h.send_command(col, "session/start", {"plan": PLAN})
            check_that(not reply["ok"] and reply["error"]["code"] == "alarm_unacked",
                       "session/start after the restart: %r" % reply)
            st = sim.stats()["cuffs"][0]
            check_that(st["cp_writes"]["set_target"] == 0 and
                       st["cp_writes"]["measure_lop"] == 0,
                       "something was sent to the cuff: %r" % st["cp_writes"])

        suite.check("after kill -9 and restart it is still open and still blocks", survives)

        def ack_clears():
            reply = h.send_command(col, "alarm/ack", {"alarm_id": state["id"], "by": "Jürgen"})
            check_that(reply["ok"], "ack refused: %r" % reply)
            topic = "%s/alarm/%s" % (PREFIX, state["id"])
            col.wait_for(lambda c: any(m.raw == b"" for m in c.select(topic=topic)), 10,
                         "the empty retained payload removing the alarm")
            cleared = [m.payload for m in col.select(topic=topic)
                       if m.payload and m.payload.get("state") == "cleared"]
            check_that(cleared and cleared[-1]["acked_by"] == "Jürgen",
                       "no cleared record acknowledged by Jürgen: %r" % cleared)
            # A new alarm continues the numbering instead of reusing an id.
            reply = h.send_command(col, "estop", {"cuffs": ["cuff-02"]})
            check_that(reply["ok"], "second estop refused: %r" % reply)
            new = col.wait_for(lambda c: [m for m in c.select("alarm") if m.payload and
                                          m.payload.get("code") == "estop" and
                                          m.payload["alarm_id"] != state["id"]], 10,
                               "a second estop alarm")
            old_seq = int(state["id"].rsplit("-", 1)[1])
            new_seq = int(new[0].payload["alarm_id"].rsplit("-", 1)[1])
            check_that(new_seq > old_seq, "alarm id %d does not continue after %d" %
                       (new_seq, old_seq))

        suite.check("the acknowledgement clears it; new ids continue after it", ack_clears)
    sys.exit(suite.finish())


if __name__ == "__main__":
    main()
