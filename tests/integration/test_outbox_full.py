#!/usr/bin/python3
"""A full outbox: the outbox_full alarm at 80 % and the policy at 100 % (issue 12).

The gateway runs with store.outbox_max_mib = 1. To reach its levels in seconds,
the database is given a backlog before the gateway starts: filler rows on
it-fill/N (what an earlier run could not deliver), which mosquitto's ACL
refuses until the test lifts it, so they stay in the outbox while the broker
is up to take commands. Then:

1. 80 %: the backlog is just under 80 %; two sessions run; the broker is
   stopped and the sessions' events (the producer) push the outbox past 80 %:
   the technical alarm outbox_full is raised (seen in the database while the
   broker is away). The broker comes back with the filler allowed: everything
   drains, in order (the filler at a subscriber of its own, the sessions'
   events without a gap), and the alarm closes.
2. 100 %: a backlog just under 1 MiB, and the ACL also refuses session events
   (they stay in the outbox: the broker is reachable for commands, yet the
   outbox grows). A session started below the bound runs on past it; a new
   session/start is refused with error code outbox_full, nothing of the
   running session is dropped (its events 1..N arrive once the ACL is lifted
   and the broker restarted), and once drained a start is accepted again.
"""

import json
import os
import sqlite3
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, check_that, short_plan, sim_cuffs,  # noqa: E402
                     start_session, wait_alarm, wait_alarm_closed, wait_phase, wait_session_end,
                     wait_until)

MAX_MIB = 1
MAX_BYTES = MAX_MIB << 20
FILL_ROW = 4096           # bytes of one filler row as the outbox counts them (topic + payload)
MARGIN_80 = 4000          # below 80 %: the outage's events cross it within seconds, and what
                          # is in flight for a moment with the broker up does not
MARGIN_100 = 2500         # below 100 %: the running session's first events cross it
START_S = 30.0
LOP_S = 40.0
DRAIN_S = 30.0


def acl_text(filler_allowed, events_allowed):
    """Anonymous clients: the gateway's subtree, each part listed so that one can
    be refused (readable only) while the rest goes through."""
    lines = ["# written by test_outbox_full.py"]
    for t in ("+", "cuff/#", "alarm/#", "cmd/#", "reply/#", "session/+/state",
              "session/+/summary"):
        lines.append("topic readwrite %s/%s" % (PREFIX, t))
    lines.append("topic %s %s/session/+/event" % ("readwrite" if events_allowed else "read",
                                                  PREFIX))
    lines.append("topic %s it-fill/#" % ("readwrite" if filler_allowed else "read"))
    return "\n".join(lines) + "\n"


class FillerSubscriber:
    """A persistent MQTT 5 session on it-fill/#: the filler as it arrives."""

    def __init__(self, port):
        self.cond = threading.Condition()
        self.seqs = []
        self.client = mqtt.Client(client_id="fill-%s" % uuid.uuid4().hex[:8],
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe("it-fill/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.25, 0.5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=30,
                            clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        with self.cond:
            self.seqs.append(json.loads(message.payload.decode())["fill"])
            self.cond.notify_all()

    def wait_all(self, want, timeout, what):
        """want: the filler seqs, in order; duplicates (re-sends) are allowed."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while set(want) - set(self.seqs):
                left = deadline - time.monotonic()
                check_that(left > 0, "%s: %d of %d filler rows arrived" %
                           (what, len(set(want) & set(self.seqs)), len(want)))
                self.cond.wait(left)
            wanted, first, seen = set(want), [], set()
            for s in self.seqs:
                if s in wanted and s not in seen:
                    first.append(s)
                    seen.add(s)
            check_that(first == list(want), "%s: filler out of order: %s" % (what, first[:20]))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def prefill(db_path, nbytes, first_seq):
    """Outbox rows on it-fill/<seq> worth exactly nbytes; returns their seqs."""
    seqs, total, seq = [], 0, first_seq
    con = sqlite3.connect(db_path, timeout=10)
    try:
        with con:
            while total < nbytes:
                topic = "it-fill/%06d" % seq
                size = min(FILL_ROW, nbytes - total)
                if nbytes - total - size < 64:
                    size = nbytes - total  # no tiny last row
                empty = json.dumps({"fill": seq, "pad": ""}).encode()
                pad = size - len(topic) - len(empty)
                check_that(pad >= 0, "filler row of %d bytes is too small" % size)
                payload = json.dumps({"fill": seq, "pad": "x" * pad}).encode()
                con.execute("INSERT INTO outbox (topic, payload, qos, retain, droppable, "
                            "msg_id, created_ms, bytes) VALUES (?, ?, 1, 0, 0, NULL, ?, ?)",
                            (topic, payload, int(time.time() * 1000), size))
                total += len(topic) + len(payload)
                seqs.append(seq)
                seq += 1
    finally:
        con.close()
    check_that(total == nbytes, "prefilled %d bytes, wanted %d" % (total, nbytes))
    return seqs


def db_query(db_path, sql, args=()):
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def outbox_bytes(db_path):
    """What the outbox counts against its bound, for the committed rows."""
    return db_query(db_path, "SELECT ifnull(sum(length(CAST(topic AS BLOB)) + length(payload) "
                    "+ ifnull(length(CAST(msg_id AS BLOB)), 0)), 0) FROM outbox")[0][0]


def outbox_full_state(db_path):
    rows = db_query(db_path, "SELECT state, condition_present FROM alarms WHERE code = "
                    "'outbox_full' ORDER BY raised_ms DESC, rowid DESC LIMIT 1")
    return rows[0] if rows else None


def event_seqs(col, sid):
    return {m.payload["seq"] for m in col.select("session-event",
                                                   topic="%s/session/%s/event" % (PREFIX, sid))
            if m.payload}


def stored_seqs(db_path, sid):
    return [r[0] for r in db_query(db_path, "SELECT seq FROM session_events WHERE "
                                   "session_id = ? ORDER BY seq", (sid,))]


def main():
    suite = Suite("test_outbox_full")
    with suite.harness() as h:
        acl = os.path.join(h.tmp, "acl")

        def broker_conf(filler_allowed, events_allowed):
            with open(acl, "w") as f:
                f.write(acl_text(filler_allowed, events_allowed))
            # (persistence already makes a root broker keep its user: our tmp is 0700)
            return "acl_file %s\n" % acl

        broker = h.start_broker(persistence=True, extra=broker_conf(False, True))
        # Four cuffs: each session needs one that had its reperfusion time.
        sim = h.start_cuffsim(4)
        col = h.collector(persistent=True, reconnect_max_s=0.5)
        filler = FillerSubscriber(broker.port)
        conf = h.write_gateway_config(sim_cuffs(sim),
                                      extra="store = { outbox_max_mib = %d; };\n" % MAX_MIB)
        db = os.path.join(h.tmp, "data", "bfr-gateway.db")
        state = {}

        def start_gateway():
            t0 = time.monotonic()
            gw = h.start_gateway(conf)
            col.wait_for(lambda c: any(m.payload and m.payload.get("state") == "online"
                                       for m in c.select("status", t0)), START_S,
                         "status online")
            col.wait_for(lambda c: all(c.cuff_links(t0).get("cuff-%02d" % k) == "connected"
                                       for k in range(1, 5)), START_S,
                         "every cuff connected")
            return gw

        def stop_gateway(gw):
            rc = gw.stop()
            check_that(rc == 0, "gateway exit status %s on SIGTERM" % rc)
            gw.expect_exit = True  # stopped on purpose, status checked

        def alarm_at_80():
            # The database exists once a gateway has run on it.
            stop_gateway(start_gateway())
            fill = prefill(db, int(MAX_BYTES * 0.8) - MARGIN_80, 1)
            gw = start_gateway()
            sids = [start_session(h, col, short_plan(c, reps=60)) for c in ("cuff-01",
                                                                             "cuff-02")]
            for sid in sids:
                wait_phase(col, sid, "set", LOP_S)
            check_that(outbox_full_state(db) is None,
                       "outbox_full raised before the outage (%d bytes)" % outbox_bytes(db))
            t_down = time.monotonic()
            broker.stop()
            wait_until(lambda: (outbox_full_state(db) or ("",))[0] == "active", 60,
                       "outbox_full raised while the broker is away")
            raised_s = time.monotonic() - t_down
            level = outbox_bytes(db)
            check_that(level >= MAX_BYTES * 0.8,
                       "outbox_full raised at %d bytes (%.1f %%)" % (level, 100.0 * level /
                                                                   MAX_BYTES))
            print("  broker stopped: outbox_full raised after %.1f s of outage, at %.1f %% "
                  "of %d MiB" % (raised_s, 100.0 * level / MAX_BYTES, MAX_MIB))
            before = {sid: max(event_seqs(col, sid)) for sid in sids}
            broker.start(port=broker.port, persistence=True, extra=broker_conf(True, True))
            t_up = time.monotonic()
            a = wait_alarm(col, None, "outbox_full", DRAIN_S).payload
            check_that(a["kind"] == "technical" and a["priority"] == "medium",
                       "outbox_full is %s %s" % (a["priority"], a["kind"]))
            filler.wait_all(fill, DRAIN_S, "the backlog after the outage")
            wait_alarm_closed(col, a["alarm_id"], DRAIN_S)
            wait_until(lambda: db_query(db, "SELECT count(*) FROM outbox")[0][0] == 0, DRAIN_S,
                       "the outbox drained")
            for sid in sids:
                stored = stored_seqs(db, sid)
                col.wait_for(lambda c: event_seqs(c, sid) >= set(stored), DRAIN_S,
                             "events 1..%d of %s" % (stored[-1], sid))
                check_that(stored[-1] > before[sid], "no event of %s during the outage" % sid)
            print("  broker back: %d filler rows in order, the sessions' events without a gap, "
                  "outbox_full closed, outbox empty %.1f s later" %
                  (len(fill), time.monotonic() - t_up))
            state.update(gw=gw, next_fill=fill[-1] + 1)

        suite.check("80 %: the broker away, the sessions' events raise outbox_full; after "
                    "the drain, in order, it closes", alarm_at_80)

        def policy_at_100():
            check_that(state.get("gw"), "no gateway from the previous check")
            stop_gateway(state["gw"])
            broker.stop()
            fill = prefill(db, MAX_BYTES - MARGIN_100, state["next_fill"])
            broker.start(port=broker.port, persistence=True, extra=broker_conf(False, False))
            t0 = time.monotonic()
            start_gateway()
            wait_until(lambda: (outbox_full_state(db) or ("",))[0] == "active", 10,
                       "outbox_full raised at once (the backlog is over 80 %)")
            running = start_session(h, col, short_plan("cuff-03", reps=60))
            # Its events are refused by the broker and stay: the outbox passes 100 %.
            wait_until(lambda: outbox_bytes(db) >= MAX_BYTES, 60,
                       "the running session's events to take the outbox past 100 %")
            n_then = len(stored_seqs(db, running))
            r = h.send_command(col, "session/start", {"plan": short_plan("cuff-04", reps=3)})
            check_that(r.get("ok") is False and r["error"]["code"] == "outbox_full",
                       "session/start at %.1f %%: %s" % (100.0 * outbox_bytes(db) / MAX_BYTES, r))
            print("  at %.1f %%: session/start refused: %s" %
                  (100.0 * outbox_bytes(db) / MAX_BYTES, r["error"]["message"]))
            # The running session goes on: its events are still recorded and queued.
            wait_until(lambda: len(stored_seqs(db, running)) >= n_then + 2, 30,
                       "the running session's next events")
            # Lift the refusals: the broker restarts (the gateway reconnects and
            # offers everything again at once, oldest first).
            broker.stop()
            broker.start(port=broker.port, persistence=True, extra=broker_conf(True, True))
            filler.wait_all(fill, DRAIN_S, "the backlog at 100 %")
            stored = stored_seqs(db, running)
            col.wait_for(lambda c: event_seqs(c, running) >= set(stored), DRAIN_S,
                         "events 1..%d of the running session" % stored[-1])
            check_that(stored == list(range(1, len(stored) + 1)), "stored seqs %s" % stored)
            a = wait_alarm(col, None, "outbox_full", DRAIN_S, since=t0).payload
            wait_alarm_closed(col, a["alarm_id"], DRAIN_S)
            sid = start_session(h, col, short_plan("cuff-04", reps=3))
            print("  after the drain: %d events of the running session delivered, "
                  "outbox_full closed, a new session accepted" % len(stored))
            for s in (running, sid):
                h.send_command(col, "session/stop", {"session_id": s})
                wait_session_end(col, s, 30)
            col.assert_valid()

        suite.check("100 %: running session goes on, session/start refused with "
                    "outbox_full; nothing dropped; accepted again after the drain",
                    policy_at_100)
        filler.close()
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
