"""The campaign's subscribers: every session event, session summary and alarm
record the gateway publishes, kept so that nothing is lost on this side.

Why a Recorder cannot be the one that loses a message:
- MQTT 5 persistent session: clean start on the first connect only, session
  expiry one day, so the broker queues QoS 1 messages for it while it is away
  (mosquitto is configured with no queue limit, tests/soak/campaign.py);
- QoS 1 subscriptions; paho-mqtt 1.6 calls on_message *before* it sends the
  PUBACK, and on_message appends the message to a JSON-lines file (flushed)
  first, so an acknowledged message is always on record; a message not
  acknowledged is redelivered by the broker;
- the subscriptions are made again only when the broker reports that it lost
  the session (CONNACK session-present 0, counted in `sessions_lost`: then the
  broker, not the subscriber, may have dropped what arrived meanwhile);
- two Recorders with different client ids run side by side (the recorder and
  the witness); the campaign compares them: a message one has and the other
  lacks would be a subscriber-side loss.

Consistency kept while recording (each violation is listed in `problems`):
every payload valid against its schema (tests/integration/validate.py); a
repeated (session, seq) carries the same msg_id and bytes; a repeated msg_id
carries the same bytes; per session, each seq arrives for the first time
after every lower seq that arrives at all (in order; gaps are judged at the
end against the database).
"""

import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from validate import UnknownTopic, kind_for_topic  # noqa: E402

SESSION_EXPIRY_S = 86400


class Event:
    __slots__ = ("msg_id", "raw_hash", "copies", "t_first", "wall_first", "type", "reason")

    def __init__(self, msg_id, raw_hash, t, wall, typ, reason):
        self.msg_id, self.raw_hash, self.copies = msg_id, raw_hash, 1
        self.t_first, self.wall_first, self.type, self.reason = t, wall, typ, reason


class Recorder:
    def __init__(self, name, port, prefix, path, validator):
        self.name = name
        self.prefix = prefix
        self.validator = validator
        self.cond = threading.Condition()
        self.events = {}      # session id -> {seq: Event}
        self.max_seq = {}     # session id -> highest seq arrived so far
        self.summaries = {}   # session id -> [(msg_id, outcome, reason, copies)]
        self.alarms = {}      # alarm id -> [payload dict | None (empty payload)], arrival order
        self.ids = {}         # msg_id -> hash of the bytes (every kind recorded)
        self.empties = {}     # alarm topic -> empty payloads received
        self.problems = []
        # (session, seq, higher seq that came first, wall s of each first arrival)
        self.reorders = []
        self.seq_wall = {}    # session id -> wall s when its highest seq so far arrived
        self.messages = 0
        self.duplicates = 0   # copies of a msg_id already recorded
        self.retained = 0
        self.dup_flag = 0
        self.connects = 0
        self.disconnects = 0
        self.sessions_lost = 0
        self.connected = False
        self.subscribed = False
        self._file = open(path, "a", buffering=1 << 16)
        self.client = mqtt.Client(client_id=name, protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect("127.0.0.1", port, keepalive=10,
                            clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props)
        self.client.loop_start()

    def topics(self):
        opts = SubscribeOptions(qos=1)
        return [("%s/session/+/event" % self.prefix, opts),
                ("%s/session/+/summary" % self.prefix, opts),
                ("%s/alarm/+" % self.prefix, opts)]

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cond:
            self.connected = rc == 0
            if rc != 0:
                self.cond.notify_all()
                return
            self.connects += 1
            present = bool(flags.get("session present"))
            if not present:
                if self.connects > 1:
                    self.sessions_lost += 1
                self.subscribed = False
                client.subscribe(self.topics())
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.cond:
            if self.connected:
                self.disconnects += 1
            self.connected = False
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self.subscribed = True
            self.cond.notify_all()

    def wait_subscribed(self, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.connected and self.subscribed):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("%s: not subscribed within %.0f s" % (self.name, timeout))
                self.cond.wait(left)

    # paho's network thread; returns before paho sends the PUBACK
    def _on_message(self, client, userdata, message):
        t = time.monotonic()
        wall = time.time()
        raw = bytes(message.payload)
        # On record first: from here on the broker may forget it.
        self._file.write(json.dumps({"t": round(wall, 3), "topic": message.topic,
                                     "retain": bool(message.retain), "dup": bool(message.dup),
                                     "payload": raw.decode("utf-8", "replace")}) + "\n")
        self._file.flush()
        with self.cond:
            self.messages += 1
            if message.retain:
                self.retained += 1
            if message.dup:
                self.dup_flag += 1
            try:
                self._index(message.topic, raw, t, wall)
            except Exception as e:  # a bug here must show, not kill paho's thread
                self.problems.append("%s: cannot index %s: %r" % (self.name, message.topic, e))
            self.cond.notify_all()

    def _index(self, topic, raw, t, wall):
        try:
            kind = kind_for_topic(topic)
        except UnknownTopic as e:
            self.problems.append("%s: %s" % (topic, e))
            return
        if raw == b"":
            if kind == "alarm":
                self.empties[topic] = self.empties.get(topic, 0) + 1
                self.alarms.setdefault(topic.rsplit("/", 1)[1], []).append(None)
            else:
                self.problems.append("%s: empty payload" % topic)
            return
        try:
            p = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            self.problems.append("%s: not JSON: %s" % (topic, e))
            return
        errs = self.validator.errors(kind, p)
        if errs:
            self.problems.append("%s: schema: %s (payload %s)" %
                                 (topic, errs[0], raw[:200].decode("utf-8", "replace")))
        mid = p.get("msg_id")
        h = hash(raw)
        if mid in self.ids:
            if self.ids[mid] != h:
                self.problems.append("%s: msg_id %s reused for a different payload" % (topic, mid))
            self.duplicates += 1
            if kind == "session-event":
                ev = self.events.get(p.get("session_id"), {}).get(p.get("seq"))
                if ev is not None:
                    ev.copies += 1
            return
        self.ids[mid] = h
        if kind == "session-event":
            sid, seq = p.get("session_id"), p.get("seq")
            evs = self.events.setdefault(sid, {})
            old = evs.get(seq)
            if old is not None:
                # A new msg_id for a seq already delivered: never allowed.
                self.problems.append("session %s seq %s arrived as %s and as %s" %
                                     (sid, seq, old.msg_id, mid))
                old.copies += 1
                return
            top = self.max_seq.get(sid, 0)
            if seq < top:
                self.problems.append("session %s: seq %d arrived first after seq %d (out of order)"
                                     % (sid, seq, top))
                self.reorders.append((sid, seq, top, wall, self.seq_wall[sid]))
            else:
                self.max_seq[sid] = seq
                self.seq_wall[sid] = wall
            evs[seq] = Event(mid, h, t, wall, p.get("type"), p.get("reason"))
        elif kind == "session-summary":
            self.summaries.setdefault(p.get("session_id"), []).append(
                (mid, p.get("outcome"), p.get("reason")))
        elif kind == "alarm":
            self.alarms.setdefault(p.get("alarm_id"), []).append(p)

    # --- for the campaign -------------------------------------------------------

    def event_count(self):
        with self.cond:
            return sum(len(v) for v in self.events.values())

    def alarm_closed(self, alarm_id):
        """A 'cleared' record and, after it, an empty payload."""
        with self.cond:
            seen_cleared = False
            for rec in self.alarms.get(alarm_id, []):
                if rec is None:
                    if seen_cleared:
                        return True
                elif rec.get("state") == "cleared":
                    seen_cleared = True
            return False

    def open_alarms(self):
        """alarm id -> latest record, for alarms not closed yet."""
        with self.cond:
            ids = list(self.alarms)
        out = {}
        for aid in ids:
            if not self.alarm_closed(aid):
                with self.cond:
                    recs = [r for r in self.alarms[aid] if r is not None]
                if recs:
                    out[aid] = recs[-1]
        return out

    def stats(self):
        with self.cond:
            return {"messages": self.messages, "events": sum(len(v) for v in self.events.values()),
                    "duplicates": self.duplicates, "retained_copies": self.retained,
                    "dup_flag": self.dup_flag, "connects": self.connects,
                    "disconnects": self.disconnects, "sessions_lost": self.sessions_lost,
                    "summaries": sum(len(v) for v in self.summaries.values()),
                    "alarm_ids": len(self.alarms), "problems": len(self.problems)}

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            self._file.close()
