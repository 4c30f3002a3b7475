#!/usr/bin/python3
"""A broker that refuses one topic loses nothing (issue 9 item 1, DESIGN §12).

mosquitto's ACL lets the gateway write every topic of its subtree except
session/+/summary. A session runs to its end: the broker answers the summary's
PUBLISH with PUBACK 0x87 (Not authorized). The gateway keeps the row, raises
the technical alarm broker_refused naming the topic and the reason (values.limit
= the reason code), and offers the row again with a backoff. Then the ACL is
lifted (SIGHUP): the summary arrives, once, with its original msg_id, the alarm
closes and the outbox empties. Before: the row was dropped for good.
"""

import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, check_that, short_plan, sim_cuffs,  # noqa: E402
                     start_session, wait_alarm, wait_alarm_closed, wait_session_end)

ALLOWED = ["status", "cuff/#", "alarm/#", "cmd/#", "reply/#", "session/+/event",
           "session/+/state"]


def acl_text(summary_allowed):
    lines = ["# anonymous clients (the test broker allows them)"]
    lines += ["topic readwrite %s/%s" % (PREFIX, t) for t in ALLOWED]
    lines.append("topic %s %s/session/+/summary" %
                 ("readwrite" if summary_allowed else "read", PREFIX))
    return "\n".join(lines) + "\n"


def main():
    suite = Suite("test_broker_refusal")
    with suite.harness() as h:
        acl = os.path.join(h.tmp, "acl")
        with open(acl, "w") as f:
            f.write(acl_text(False))
        # mosquitto drops root for user mosquitto, who cannot enter our 0700 tmp dir.
        h.start_broker(extra="acl_file %s\n%s" % (acl, "user root\n" if os.geteuid() == 0
                                                    else ""))
        sim = h.start_cuffsim(1)
        col = h.collector()
        h.start_gateway(h.write_gateway_config(sim_cuffs(sim)))
        col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online",
                     25, "status online")
        state = {}

        def refused_kept():
            sid = start_session(h, col, short_plan("cuff-01", reps=2, tempo=(1, 1)))
            wait_session_end(col, sid, 60)
            a = wait_alarm(col, None, "broker_refused", 15).payload
            summary_topic = "%s/session/%s/summary" % (PREFIX, sid)
            check_that(a["priority"] == "medium" and a["kind"] == "technical",
                       "broker_refused is %s %s" % (a["priority"], a["kind"]))
            check_that("Not authorized" in a["message"] and summary_topic in a["message"],
                       "message %r names neither the reason nor the topic" % a["message"])
            check_that(a["values"].get("limit") == 0x87, "values %s" % a["values"])
            check_that(not col.select(topic=summary_topic), "the summary got through")
            db = os.path.join(h.tmp, "data", "bfr-gateway.db")
            with sqlite3.connect(db) as con:
                n = con.execute("SELECT count(*) FROM outbox WHERE topic = ?",
                                (summary_topic,)).fetchone()[0]
            check_that(n == 1, "%d outbox rows for the summary (want it kept)" % n)
            print("  %s refused: %s; the row stays in the outbox" % (summary_topic,
                                                                     a["message"]))
            state.update(sid=sid, topic=summary_topic, alarm=a["alarm_id"])

        suite.check("a refused summary stays in the outbox; broker_refused names topic and "
                    "reason", refused_kept)

        def delivered_after_lift():
            with open(acl, "w") as f:
                f.write(acl_text(True))
            t0 = time.monotonic()
            h.broker.reload()
            msgs = col.wait_for(lambda c: c.select(topic=state["topic"]), 75,
                                "the summary after the ACL was lifted")
            dt = time.monotonic() - t0
            wait_alarm_closed(col, state["alarm"], 75)
            ids = {m.payload["msg_id"] for m in col.select(topic=state["topic"])
                   if m.payload}
            check_that(len(ids) == 1, "%d distinct summaries: %s" % (len(ids), ids))
            check_that(msgs[0].payload["session_id"] == state["sid"], "wrong summary")
            print("  delivered %.1f s after the ACL was lifted; broker_refused closed" % dt)

        suite.check("lifted: the summary arrives once, the alarm closes", delivered_after_lift)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
