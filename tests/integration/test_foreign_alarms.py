#!/usr/bin/python3
"""Foreign writes to the gateway's own retained alarm topics (issue 9 item 4).

On a broker whose ACL lets anyone write there, a client publishes retained
payloads to bfr/v1/{site}/{gateway}/alarm/{id}: records that look like the
gateway's (its id prefix, a forged msg_id with its gateway id, a seq from
before this run), a record for an id of another gateway, junk, and a forged
"cleared" record over the gateway's own open e-stop alarm. They are there
before the gateway starts (retained deliveries at subscribe), are published
again while it runs (live deliveries, several times), and are still there
when it restarts after kill -9.

Checked: the gateway publishes nothing on those topics (no record, no empty
payload), its own open alarm is not closed by the forgery, the database's
alarm tables and outbox gain no row for them; and what must still work does:
an alarm of its own left open in the database by the kill (battery_low,
LOW) is closed exactly once at the restart, the unacknowledged e-stop is
restored (not closed)."""

import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (GATEWAY_ID, PREFIX, Suite, check_that, sim_cuffs,  # noqa: E402
                     wait_alarm)

CONNECT_S = 25.0
ROUNDS = 3
JUNK = b'{"state": "active", "hello": "world"}'


def forged(alarm_id, state="active", code="over_pressure_ceiling", cuff="cuff-01",
           msg_id=None, n=0):
    """A schema-valid alarm record the gateway never wrote."""
    return json.dumps({
        "v": 1, "ts": "2026-01-01T00:00:%02d.000Z" % n,
        "msg_id": msg_id or "%s-forged-%d" % (alarm_id, n),
        "alarm_id": alarm_id, "cuff": cuff, "session_id": None, "code": code,
        "priority": "high", "kind": "physiological", "state": state,
        "condition_present": state != "cleared", "raised_at": "2026-01-01T00:00:00.000Z",
        "acked_at": None, "acked_by": None,
        "cleared_at": "2026-01-01T00:00:01.000Z" if state == "cleared" else None,
        "message": "forged by a client", "values": {}}).encode()


def foreign_payloads(n):
    """topic suffix (the alarm id) -> payload, for round n."""
    return {
        # Looks like one of ours from an earlier run (seq below any seed), msg_id
        # with our gateway id and a made-up boot.
        "%s-5" % GATEWAY_ID: forged("%s-5" % GATEWAY_ID,
                                     msg_id="%s-0123456789abcdef-%d" % (GATEWAY_ID, n + 1), n=n),
        "%s-1" % GATEWAY_ID: forged("%s-1" % GATEWAY_ID, state="acknowledged", n=n),
        # A seq far above anything this run will reach.
        "%s-99999999999999" % GATEWAY_ID: forged("%s-99999999999999" % GATEWAY_ID, n=n),
        "intruder-1": forged("intruder-1", code="estop", cuff=None, n=n),
        "junk": JUNK,
    }


def db_rows(data_dir, sql, args=()):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "bfr-gateway.db"),
                         uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def main():
    suite = Suite("test_foreign_alarms")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(1)
        col = h.collector()
        config = h.write_gateway_config(sim_cuffs(sim))
        data_dir = os.path.join(h.tmp, "data")
        sent = {}   # topic -> set of raw payloads the test published there
        st = {}

        def publish_foreign(payloads):
            since = col.select()[-1].t if col.select() else 0.0
            for suffix, raw in payloads.items():
                topic = "%s/alarm/%s" % (PREFIX, suffix)
                sent.setdefault(topic, set()).add(raw)
                col.client.publish(topic, raw, qos=1, retain=True).wait_for_publish(5)
            # The collector has them (and has rejected the junk) before going on.
            for suffix, raw in payloads.items():
                topic = "%s/alarm/%s" % (PREFIX, suffix)
                col.wait_for(lambda c: any(m.raw == raw for m in c.select(topic=topic,
                                                                         since=since)),
                             10, "the collector to receive %s" % topic, allow_invalid=True)
            settle_errors()

        def not_ours(m):
            return m.raw in sent.get(m.topic, ())

        def gateway_wrote_on_foreign_topics():
            """Messages the test did not publish: on the foreign topics any, on the
            gateway's own e-stop topic a closing one (it is open, unacknowledged)."""
            own = "%s/alarm/%s" % (PREFIX, st["estop"]) if "estop" in st else None
            return [m for m in col.select() if m.topic in sent and not not_ours(m) and
                    (m.topic != own or not m.payload or m.payload.get("state") == "cleared")]

        def settle_errors():
            # The junk payload the test published fails the schema; only it may.
            bad = [e for e in col.take_errors() if "(payload %s)" % JUNK.decode() not in e]
            check_that(not bad, "invalid messages: %s" % bad[:3])

        def online(since=0.0):
            col.wait_for(lambda c: any(m.payload.get("state") == "online" and m.t > since
                                       for m in c.select("status")), 20, "status online")
            col.wait_for(lambda c: any(m.payload and m.payload.get("link") == "connected" and
                                       m.t > since for m in
                                       c.select(topic=PREFIX + "/cuff/cuff-01/state")),
                         CONNECT_S, "cuff-01 connected")

        def marker_estop():
            """An e-stop of the gateway's own, published through the outbox after
            whatever the foreign messages before it made the gateway queue: once
            its record is here, anything queued before it has been published. The
            e-stop alarm is gateway-wide and latches: a second e-stop updates the
            same alarm (condition present, then gone), one record each."""
            since = col.select()[-1].t
            reply = h.send_command(col, "estop", {})
            check_that(reply["ok"], "estop refused: %r" % reply)
            msgs = col.wait_for(lambda c: [m for m in c.select("alarm", since) if m.payload and
                                           m.payload.get("code") == "estop" and
                                           not not_ours(m) and
                                           m.payload["condition_present"] is False],
                                10, "the e-stop alarm record")
            st.setdefault("estop", msgs[0].payload["alarm_id"])
            check_that(msgs[0].payload["alarm_id"] == st["estop"],
                       "a second estop alarm: %r" % msgs[0].payload)

        def before_start():
            publish_foreign(foreign_payloads(0))
            settle_errors()
            st["gw"] = h.start_gateway(config)
            online()
            # The gateway subscribed to alarm/+ before it published "online": the
            # retained foreign records reached it before this command.
            marker_estop()
            settle_errors()
            wrote = gateway_wrote_on_foreign_topics()
            check_that(not wrote, "the gateway published on foreign alarm topics: %s" % wrote)
            got = h.retained(PREFIX + "/alarm/#")
            for topic, raws in sent.items():
                check_that(got.get(topic) in raws, "retained %s changed: %r" %
                           (topic, got.get(topic)))

        suite.check("retained foreign alarms before the start: nothing published for them",
                    before_start)

        def while_running():
            own = st["estop"]
            for n in range(1, ROUNDS + 1):
                payloads = foreign_payloads(n)
                # A forged "cleared" over the gateway's own open e-stop alarm.
                payloads[own] = forged(own, state="cleared", code="estop", cuff=None, n=n)
                publish_foreign(payloads)
                marker_estop()
                settle_errors()
            wrote = gateway_wrote_on_foreign_topics()
            check_that(not wrote, "the gateway published on foreign alarm topics: %s" % wrote)
            # The forgery closed nothing: starts are still refused for the e-stop.
            reply = h.send_command(col, "session/start", {"plan": {"exercises": [
                {"name": "x", "cuffs": ["cuff-01"], "pct_lop": 50, "sets": [2],
                 "tempo_s": [1, 1], "rest_s": 0, "reperfusion_s": 60,
                 "mode": "continuous"}]}})
            check_that(not reply["ok"] and reply["error"]["code"] == "alarm_unacked",
                       "session/start with the e-stop unacknowledged: %r" % reply)

        suite.check("foreign alarms published %d times while running: nothing published, "
                    "the own alarm they forge stays open" % ROUNDS, while_running)

        def database_clean():
            known = {r[0] for r in db_rows(data_dir, "SELECT alarm_id FROM alarms")}
            hist = {r[0] for r in db_rows(data_dir, "SELECT alarm_id FROM alarm_history")}
            outbox = [r[0] for r in db_rows(data_dir, "SELECT topic FROM outbox")]
            foreign_ids = {t.rsplit("/", 1)[1] for t in sent} - {st["estop"]}
            check_that(not known & foreign_ids, "alarm rows for foreign ids: %s"
                       % sorted(known & foreign_ids))
            check_that(not hist & foreign_ids, "alarm history for foreign ids: %s"
                       % sorted(hist & foreign_ids))
            bad = [t for t in outbox if t in sent and t.rsplit("/", 1)[1] in foreign_ids]
            check_that(not bad, "outbox rows for foreign topics: %s" % bad)

        suite.check("the database holds no alarm or outbox row for them", database_clean)

        def restart_closes_own_once():
            # An own alarm left open by a kill: battery_low (LOW, not latching).
            since = col.select()[-1].t
            sim.control("battery 1 15")
            low = wait_alarm(col, "cuff-01", "battery_low", 20, since).payload["alarm_id"]
            st["low"] = low
            st["gw"].kill()
            off = col.wait_for(lambda c: [m for m in c.select("status")
                                          if m.payload.get("state") == "offline"
                                          and m.t > since], 20, "the Last Will")
            publish_foreign(foreign_payloads(ROUNDS + 1))
            settle_errors()
            st["gw"] = h.start_gateway(config)
            online(off[-1].t)
            marker_estop()
            settle_errors()
            topic = "%s/alarm/%s" % (PREFIX, low)
            closed = col.wait_for(
                lambda c: [m for m in c.select(topic=topic, since=off[-1].t)
                           if m.payload and m.payload.get("state") == "cleared"], 10,
                "%s closed at the restart" % low)
            col.wait_for(lambda c: any(m.raw == b"" for m in
                                       c.select(topic=topic, since=closed[0].t)),
                         10, "the empty payload removing %s" % low)
            # Once: the retained echo of the old record at subscribe changes nothing.
            marker_estop()
            closed = [m for m in col.select(topic=topic, since=off[-1].t)
                      if m.payload and m.payload.get("state") == "cleared"]
            check_that(len(closed) == 1, "%s closed %d times" % (low, len(closed)))
            wrote = gateway_wrote_on_foreign_topics()
            check_that(not wrote, "the gateway published on foreign alarm topics: %s" % wrote)
            database_clean()

        suite.check("after kill -9: its own open alarm closed once, the foreign ones left "
                    "alone", restart_closes_own_once)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
