"""The campaign's clinician: keeps every free cuff busy with short sessions and
answers alarms, over the documented MQTT API only (docs/mqtt-api.md,
docs/sessions.md).

- Its view of the cuffs is the retained `cuff/{cuff}/state` (link, session,
  battery); a cuff is free when connected, in no session, with no
  unacknowledged high alarm, no start of ours pending and its reperfusion
  time over (61 s after its last session ended; the gateway refuses earlier
  starts with `reperfusion`, which is counted and retried later).
- It starts sessions with `cmd/session/start` (plans drawn from a seeded
  generator: continuous, intermittent and cycle modes, some bilateral, some
  with two exercises) and acknowledges every active alarm with
  `cmd/alarm/ack` after a short human delay, again every 10 s while it stays
  active (an ack lost with a broker is sent again), so cuffs become usable.
- A cuff whose battery falls below 15 % gets a fresh one (cuffsim `battery N
  100`), unless the fault schedule is holding it low on purpose.
- Nothing is sent while the gateway's retained `status` says offline (its
  Last Will), as a clinician app would not. The first session of each cuff
  comes at a random moment within `stagger_s`.
- Replies arrive on an MQTT 5 Response Topic; a command with no reply after
  20 s counts as unanswered (a broker died with it) and is not resent: the
  cuff states show what happened.
"""

import json
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPERFUSION_S = 61.0
REPLY_TIMEOUT_S = 20.0
REACK_S = 10.0
BATTERY_CHANGE_PCT = 15


class CuffView:
    __slots__ = ("link", "session_id", "battery", "cooldown_until", "pending_until")

    def __init__(self):
        self.link = None
        self.session_id = None
        self.battery = None
        self.cooldown_until = 0.0
        self.pending_until = 0.0


class Clinician:
    def __init__(self, port, prefix, cuff_ids, rng, profile, change_battery, stagger_s):
        self.prefix = prefix
        self.rng = rng
        self.profile = profile
        self.change_battery = change_battery   # fn(cuff_id) -> bool (done)
        self.lock = threading.Lock()
        self.cuffs = {c: CuffView() for c in cuff_ids}
        # First sessions spread over stagger_s, so that sessions (and their
        # reperfusion pauses) do not all fall at the same moments.
        t0 = time.monotonic()
        for c in cuff_ids:
            self.cuffs[c].cooldown_until = t0 + rng.uniform(0, stagger_s)
        self.alarms = {}     # alarm id -> dict(state, priority, cuff, seen, delay, acked_at)
        self.pending = {}    # request id -> (verb, sent_at, cuffs)
        self.running = {}    # session id -> cuffs (from replies and cuff states)
        self.starting = True
        self.n = {"starts_sent": 0, "starts_ok": 0, "acks_sent": 0, "acks_ok": 0,
                  "stops_sent": 0, "unanswered": 0, "battery_changes": 0}
        self.refusals = {}   # verb:code -> count
        self.connected = False
        self.gateway_online = False
        self.client = mqtt.Client(client_id="soak-clinician-%s" % uuid.uuid4().hex[:6],
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=True)
        self.client.loop_start()

    # --- paho thread ------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.lock:
            self.connected = rc == 0
        if rc == 0:
            client.subscribe([("%s/status" % self.prefix, 1),
                              ("%s/cuff/+/state" % self.prefix, 1),
                              ("%s/alarm/+" % self.prefix, 1),
                              ("%s/reply/soak/#" % self.prefix, 1)])

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.lock:
            self.connected = False

    def _on_message(self, client, userdata, msg):
        now = time.monotonic()
        topic = msg.topic
        raw = bytes(msg.payload)
        try:
            p = json.loads(raw) if raw else None
        except ValueError:
            return  # the recorders judge payloads
        with self.lock:
            if topic.endswith("/status") and isinstance(p, dict):
                self.gateway_online = p.get("state") == "online"
            elif "/cuff/" in topic and topic.endswith("/state") and isinstance(p, dict):
                self._cuff_state(p, now)
            elif "/alarm/" in topic:
                self._alarm(topic.rsplit("/", 1)[1], p, now)
            elif "/reply/soak/" in topic and isinstance(p, dict):
                self._reply(p, now)

    def _cuff_state(self, p, now):
        v = self.cuffs.get(p.get("cuff"))
        if v is None:
            return
        sid = p.get("session_id")
        if v.session_id and not sid:
            v.cooldown_until = max(v.cooldown_until, now + REPERFUSION_S)
            self.running.pop(v.session_id, None)
        if sid:
            v.pending_until = 0.0
            self.running.setdefault(sid, set()).add(p.get("cuff"))
        v.session_id = sid
        v.link = p.get("link")
        v.battery = p.get("battery_pct")

    def _alarm(self, aid, p, now):
        if not isinstance(p, dict) or p.get("state") == "cleared":
            self.alarms.pop(aid, None)
            return
        a = self.alarms.get(aid)
        if a is None:
            a = self.alarms[aid] = {"seen": now, "delay": self.rng.uniform(0.5, 3.0),
                                    "acked_at": None}
        a["state"] = p.get("state")
        a["priority"] = p.get("priority")
        a["cuff"] = p.get("cuff")

    def _reply(self, p, now):
        rid = p.get("request_id")
        req = self.pending.pop(rid, None)
        if req is None:
            return
        verb, _sent, cuffs = req
        if p.get("ok"):
            if verb == "session/start":
                self.n["starts_ok"] += 1
                if p.get("session_id"):
                    self.running.setdefault(p["session_id"], set()).update(cuffs)
            elif verb == "alarm/ack":
                self.n["acks_ok"] += 1
            return
        code = (p.get("error") or {}).get("code", "?")
        key = "%s:%s" % (verb, code)
        self.refusals[key] = self.refusals.get(key, 0) + 1
        if verb == "session/start":
            back = 5.0 if code in ("reperfusion", "alarm_unacked", "cuff_busy",
                                   "not_connected", "bad_state") else 15.0
            for c in cuffs:
                v = self.cuffs[c]
                v.pending_until = 0.0
                v.cooldown_until = max(v.cooldown_until, now + back)
        elif verb == "alarm/ack" and code == "not_found":
            self.alarms.pop(cuffs[0], None)

    # --- main thread ----------------------------------------------------------

    def _send(self, verb, body, cuffs, now):
        rid = "soak-%s" % uuid.uuid4().hex[:12]
        body = dict(body, request_id=rid)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "%s/reply/soak/%s" % (self.prefix, rid)
        props.CorrelationData = rid.encode()
        self.pending[rid] = (verb, now, cuffs)
        self.client.publish("%s/cmd/%s" % (self.prefix, verb), json.dumps(body).encode(),
                            qos=1, properties=props)

    def _unacked_high(self, cuff):
        return any(a.get("state") == "active" and a.get("priority") == "high" and
                   a.get("cuff") in (cuff, None) for a in self.alarms.values())

    def step(self):
        """One turn: expire replies, acknowledge alarms, start sessions."""
        now = time.monotonic()
        with self.lock:
            for rid, (verb, sent, cuffs) in list(self.pending.items()):
                if now - sent > REPLY_TIMEOUT_S:
                    del self.pending[rid]
                    self.n["unanswered"] += 1
                    for c in cuffs:
                        if c in self.cuffs:
                            self.cuffs[c].pending_until = 0.0
            # A clinician app sees the gateway offline (its Last Will) and
            # waits; commands sent meanwhile would reach nobody.
            if not self.connected or not self.gateway_online:
                return
            for aid, a in self.alarms.items():
                if a.get("state") != "active" or now - a["seen"] < a["delay"]:
                    continue
                if a["acked_at"] is not None and now - a["acked_at"] < REACK_S:
                    continue
                a["acked_at"] = now
                self.n["acks_sent"] += 1
                self._send("alarm/ack", {"alarm_id": aid, "by": "soak-clinician"}, [aid], now)
            if self.starting:
                self._start_sessions(now)

    def _start_sessions(self, now):
        free = []
        for cid in sorted(self.cuffs):
            v = self.cuffs[cid]
            if (v.link != "connected" or v.session_id or now < v.cooldown_until or
                    now < v.pending_until or self._unacked_high(cid)):
                continue
            if v.battery is not None and v.battery < BATTERY_CHANGE_PCT:
                if self.change_battery(cid):
                    self.n["battery_changes"] += 1
                    v.battery = None
                continue
            free.append(cid)
        self.rng.shuffle(free)
        while free:
            if len(free) >= 2 and self.rng.random() < self.profile["bilateral_p"]:
                cuffs = [free.pop(), free.pop()]
            else:
                cuffs = [free.pop()]
            for c in cuffs:
                self.cuffs[c].pending_until = now + REPLY_TIMEOUT_S
            self.n["starts_sent"] += 1
            self._send("session/start", {"plan": make_plan(self.rng, cuffs, self.profile),
                                         "patient": "soak-%s" % cuffs[0]}, cuffs, now)

    def stop_all(self):
        """session/stop for every session still running; returns how many."""
        now = time.monotonic()
        with self.lock:
            sids = set(self.running) | {v.session_id for v in self.cuffs.values() if v.session_id}
            for sid in sorted(sids):
                self.n["stops_sent"] += 1
                self._send("session/stop", {"session_id": sid}, [], now)
            return len(sids)

    def busy_cuffs(self):
        with self.lock:
            return sorted(c for c, v in self.cuffs.items() if v.session_id)

    def links(self):
        with self.lock:
            return {c: v.link for c, v in self.cuffs.items()}

    def active_alarms(self):
        with self.lock:
            return {aid: dict(a) for aid, a in self.alarms.items()}

    def stats(self):
        with self.lock:
            return dict(self.n, refusals=dict(sorted(self.refusals.items())))

    def close(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def make_plan(rng, cuffs, profile):
    """One plan; mostly one exercise. profile: reps (lo, hi), sets (lo, hi), ..."""
    exercises = []
    n_ex = 2 if rng.random() < profile["two_exercise_p"] else 1
    for i in range(n_ex):
        mode = rng.choices(["continuous", "intermittent", "cycle"], [6, 3, 1])[0]
        ex = {"name": "soak-%d" % (i + 1), "cuffs": list(cuffs),
              "pct_lop": rng.choice([40, 50, 60, 70, 80]), "mode": mode, "reperfusion_s": 60}
        if mode == "cycle":
            ex.update(on_s=rng.randint(*profile["on_s"]), off_s=rng.randint(5, 8),
                      cycles=rng.randint(1, 3))
        else:
            ex.update(sets=[rng.randint(*profile["reps"])
                            for _ in range(rng.randint(*profile["sets"]))],
                      tempo_s=[1, 1], rest_s=rng.choice(profile["rest_s"]))
        exercises.append(ex)
    return {"exercises": exercises}
