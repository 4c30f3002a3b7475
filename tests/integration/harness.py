#!/usr/bin/python3
"""Integration-test harness: real mosquitto, cuffsim and bfr-gateway on loopback.

Every integration test (tests/integration/test_*.py, run by ctest with Debian's
/usr/bin/python3, paho-mqtt 1.6.1 and jsonschema 4.10) uses this:

    suite = Suite("test_example")
    with suite.harness() as h:
        broker = h.start_broker()
        sim = h.start_cuffsim(4)
        col = h.collector()                  # subscribes bfr/v1/#, validates everything
        gw = h.start_gateway(sim)
        suite.check("status online", lambda: col.wait_for(...))
    sys.exit(suite.finish())                 # prints "test_example: N passed, N failed"

Rules kept here so that tests need not repeat them:
- Nothing waits with a fixed sleep: every wait is a condition (variable) with a
  deadline, and a timeout fails with a message that names what was awaited.
- Every message under bfr/v1/ is validated against the schema its topic names
  (validate.py); one invalid payload fails the test, whichever check runs.
- Every process started is stopped at the end (SIGTERM, SIGKILL after a
  deadline); a gateway or cuffsim that exits non-zero on SIGTERM (a sanitizer
  report, say) fails the test; logs are printed when anything failed.

Environment: BFR_BUILD_DIR (default ./build, else <source>/build), BFR_SOURCE_DIR,
BFR_KEEP_TMP=1 keeps the temporary directory, BFR_MQTT_KEEPALIVE_S (the
keepalive written into the gateway's config, default 5).
"""

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from validate import SOURCE_DIR, UnknownTopic, Validator, kind_for_topic  # noqa: E402


def _default_build_dir():
    env = os.environ.get("BFR_BUILD_DIR")
    if env:
        return os.path.abspath(env)
    if os.path.exists(os.path.join("build", "CMakeCache.txt")):
        return os.path.abspath("build")
    return os.path.join(SOURCE_DIR, "build")


BUILD_DIR = _default_build_dir()
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
KEEPALIVE_S = int(os.environ.get("BFR_MQTT_KEEPALIVE_S", "5"))
SITE = "it-site"
GATEWAY_ID = "it-gw"
PREFIX = "bfr/v1/%s/%s" % (SITE, GATEWAY_ID)


class TestFailure(AssertionError):
    pass


def fail(msg):
    raise TestFailure(msg)


def check_that(cond, msg):
    if not cond:
        raise TestFailure(msg)


def free_port():
    """A loopback TCP port free right now (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what, poll=0.02):
    """For conditions nobody can signal (a port opening): poll with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() >= deadline:
            fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(poll)


def fill_disk(path):
    """Writes zeros to path until the filesystem is full (ENOSPC), the last
    partial pages included; returns the bytes written. For the disk-full
    tests and the soak campaign's disk fill."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                for size in (4096, 512):
                    try:
                        while True:
                            n += f.write(b"\0" * size)
                    except OSError:
                        pass
                return n


def thread_sched(pid, tid=None):
    """(policy, rt_priority) of a thread (default: the process's main thread)
    from /proc (proc(5): fields 41 and 40): 0 SCHED_OTHER, 1 SCHED_FIFO,
    3 SCHED_BATCH."""
    with open("/proc/%d/task/%d/stat" % (pid, tid or pid)) as f:
        text = f.read()
    rest = text[text.rindex(")") + 2:].split()  # rest[0] is field 3
    return int(rest[41 - 3]), int(rest[40 - 3])


# --- processes -----------------------------------------------------------------


class Proc:
    """A child process whose stdout+stderr go to a log file, line by line, so
    that a test can wait for a line (a condition, not a sleep)."""

    def __init__(self, name, argv, log_dir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(log_dir, "%s.log" % name)
        self.lines = []
        self.cond = threading.Condition()
        self.expect_exit = False  # set when a test kills it on purpose
        self.returncode = None
        self._log = open(self.log_path, "ab", buffering=0)
        self._log.write(("$ %s\n" % " ".join(argv)).encode())
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read, name="log-" + name, daemon=True)
        self._reader.start()

    def _log_line(self, raw):
        """Writes one output line to the log file (a subclass may stamp it)."""
        self._log.write(raw)

    def _read(self):
        for raw in iter(self.popen.stdout.readline, b""):
            self._log_line(raw)
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        self.popen.stdout.close()
        with self.cond:
            self.returncode = self.popen.wait()
            self.cond.notify_all()

    def alive(self):
        return self.popen.poll() is None

    def wait_line(self, regex, timeout, start=0):
        """First output line (from index start) matching regex; fails on timeout or exit."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if self.returncode is not None:
                    fail("%s exited (status %s) before printing /%s/" %
                         (self.name, self.returncode, regex))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("%s printed no line matching /%s/ within %.1f s" %
                         (self.name, regex, timeout))
                self.cond.wait(left)

    def wait_exit(self, timeout):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self):
        """SIGKILL on purpose (a crash simulation): not reported as a failure."""
        self.expect_exit = True
        self.send_signal(signal.SIGKILL)
        self.popen.wait()
        self._reader.join(5)

    def stop(self, timeout=10.0):
        """SIGTERM, SIGKILL after timeout. Returns the exit status (negative = signal)."""
        if self.alive():
            self.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.send_signal(signal.SIGTERM)
            if self.wait_exit(timeout) is None:
                sys.stderr.write("harness: %s ignored SIGTERM for %.0f s, SIGKILL\n" %
                                 (self.name, timeout))
                self.popen.kill()
                self.popen.wait()
                self.returncode = self.popen.returncode
                self._reader.join(5)
                return "killed after SIGTERM timeout"
        self._reader.join(5)
        return self.popen.returncode

    def log_tail(self, n=150):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def close(self):
        self._log.close()


# --- mosquitto -----------------------------------------------------------------


class Broker:
    def __init__(self, h):
        self.h = h
        self.port = None
        self.proc = None
        self.conf = os.path.join(h.tmp, "mosquitto.conf")

    def start(self, port=None, attempts=3, persistence=False, extra="", websockets=None):
        """Starts on port (or a free one); returns when it accepts TCP connections.

        extra: more configuration lines (e.g. an acl_file), written last.

        websockets={"http_dir": DIR, "conf": "lines"} adds a second listener,
        MQTT over websockets that also serves DIR over HTTP (the dashboard), on
        a free port kept in self.ws_port; with per_listener_settings, "conf"
        (say allow_anonymous false, password_file, acl_file) applies to that
        listener only. Anonymous by default.

        persistence=True keeps sessions, subscriptions, queued QoS 1 messages and
        retained messages in <tmp>/mosquitto-db/ across a restart (saved on
        SIGTERM), so a persistent Collector misses nothing published while it was
        disconnected."""
        self.persistence = persistence
        self.extra = extra
        if persistence:
            db_dir = os.path.join(self.h.tmp, "mosquitto-db") + "/"
            os.makedirs(db_dir, exist_ok=True)
            persist = "persistence true\npersistence_location %s\n" % db_dir
            if os.geteuid() == 0:
                # mosquitto drops root for user mosquitto, who cannot enter our
                # 0700 temporary directory to save its database on exit.
                persist += "user root\n"
        else:
            persist = "persistence false\n"
        self.websockets = websockets
        ws_fixed = getattr(self, "ws_port", None) if port else None
        for attempt in range(attempts):
            self.port = port or free_port()
            ws = ""
            if websockets:
                self.ws_port = ws_fixed or free_port()
                conf = websockets.get("conf", "")
                if os.geteuid() == 0 and not persistence:  # persistence has it already
                    # As root mosquitto becomes user mosquitto, who may not read
                    # http_dir or a password file in our 0700 directory.
                    conf += "user root\n"
                ws = ("listener %d 127.0.0.1\n"
                      "protocol websockets\n"
                      "socket_domain ipv4\n"  # mosquitto 2.0.11: websockets need it
                      "http_dir %s\n"
                      "%s%s" % (self.ws_port, websockets["http_dir"],
                                "" if "allow_anonymous" in conf else "allow_anonymous true\n",
                                conf))
            with open(self.conf, "w") as f:
                f.write("# written by tests/integration/harness.py\n"
                        "%s"
                        "listener %d 127.0.0.1\n"
                        "allow_anonymous true\n"
                        "%s"
                        "%s"
                        "log_dest stderr\n"
                        "log_type error\nlog_type warning\nlog_type notice\n"
                        "log_type information\n"
                        "connection_messages true\n%s" %
                        ("per_listener_settings true\n" if websockets else "",
                         self.port, ws, persist, extra))
            self.proc = self.h.spawn("mosquitto", [MOSQUITTO, "-c", self.conf])
            try:
                self.proc.wait_line(r"mosquitto version \S+ running", 10)
                wait_until(self._accepts, 5, "mosquitto to accept on port %d" % self.port)
                if websockets:
                    wait_until(lambda: self._accepts(self.ws_port), 5,
                               "mosquitto to accept websockets on port %d" % self.ws_port)
                return self.port
            except TestFailure:
                text = self.proc.log_tail(20)
                self.proc.stop()
                if "Address already in use" in text and port is None and attempt + 1 < attempts:
                    continue  # lost the race for the free port: pick another
                raise
        fail("mosquitto did not start")

    def _accepts(self, port=None):
        try:
            with socket.create_connection(("127.0.0.1", port or self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.expect_exit = True
            self.proc.stop()

    def restart(self):
        """Stops (SIGTERM) and starts again on the same port with the same settings."""
        self.stop()
        return self.start(port=self.port, persistence=getattr(self, "persistence", False),
                          extra=getattr(self, "extra", ""),
                          websockets=getattr(self, "websockets", None))

    def reload(self):
        """SIGHUP: mosquitto reads its ACL and password files again."""
        self.proc.send_signal(signal.SIGHUP)

    @property
    def uri(self):
        return "mqtt://127.0.0.1:%d" % self.port


# --- cuffsim -------------------------------------------------------------------


class CuffSim:
    def __init__(self, h, directory, cuffs, args):
        self.h = h
        self.dir = directory
        self.cuffs = cuffs
        self.args = list(args)
        self.proc = None

    def start(self, timeout=15):
        os.makedirs(self.dir, exist_ok=True)
        argv = [self.h.binary("cuffsim"), "--dir", self.dir, "--cuffs", str(self.cuffs)]
        self.proc = self.h.spawn("cuffsim", argv + self.args)
        self.proc.wait_line(r"^cuffsim: ready", timeout)
        return self

    def socket_path(self, i):
        """Path of cuff i (1-based)."""
        return os.path.join(self.dir, "cuff-%02d.sock" % i)

    @property
    def control_path(self):
        return os.path.join(self.dir, "control.sock")

    def control(self, line, timeout=5.0, allow_error=False):
        """Sends one control line, returns the reply line; an 'error: ...' reply fails
        unless allow_error."""
        s = None
        # The control socket is line-oriented; accept either socket type.
        for stype in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
            s = socket.socket(socket.AF_UNIX, stype)
            s.settimeout(timeout)
            try:
                s.connect(self.control_path)
                break
            except OSError as e:
                s.close()
                s = None
                if e.errno != 91:  # EPROTOTYPE: the other socket type
                    fail("cannot connect to %s: %s" % (self.control_path, e))
        if s is None:
            fail("cannot connect to %s: no socket type fits" % self.control_path)
        try:
            s.sendall(line.rstrip("\n").encode() + b"\n")
            buf = b""
            deadline = time.monotonic() + timeout
            while b"\n" not in buf:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    fail("cuffsim gave no reply to %r within %.1f s" % (line, timeout))
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        reply = buf.split(b"\n", 1)[0].decode("utf-8", "replace")
        if not reply:
            fail("cuffsim closed the control socket without replying to %r" % line)
        if reply.startswith("error:") and not allow_error:
            fail("cuffsim refused %r: %s" % (line, reply))
        return reply

    def stats(self):
        reply = self.control("stats")
        text = reply[3:] if reply.startswith("ok ") else reply
        try:
            return json.loads(text)
        except ValueError as e:
            fail("cuffsim stats is not JSON (%s): %r" % (e, reply[:200]))

    def stop(self):
        """SIGTERM; the exit status must be 0."""
        self.proc.expect_exit = True
        rc = self.proc.stop()
        check_that(rc == 0, "cuffsim exited with %s on SIGTERM" % rc)


# --- the gateway -----------------------------------------------------------------


def _q(s):
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def gateway_config(data_dir, mqtt_uri, cuffs, gateway_id=GATEWAY_ID, site=SITE,
                   telemetry_hz=10, keepalive_s=KEEPALIVE_S, extra="", mqtt_extra="",
                   gateway_extra=""):
    """libconfig text (DESIGN section 8). cuffs: list of dicts with id, address, limb
    and optionally limits = {max_pressure_mmHg, max_pct_lop}."""
    items = []
    for c in cuffs:
        fields = ["id = %s;" % _q(c["id"]), "address = %s;" % _q(c["address"]),
                  "limb = %s;" % _q(c.get("limb", "leg"))]
        if c.get("limits"):
            lim = " ".join("%s = %s;" % (k, v) for k, v in c["limits"].items())
            fields.append("limits = { %s };" % lim)
        if c.get("label"):
            fields.append("label = %s;" % _q(c["label"]))
        items.append("  { %s }" % " ".join(fields))
    return ("# written by tests/integration/harness.py\n"
            "gateway = { id = %s; site = %s; data_dir = %s; %s };\n"
            "mqtt = { uri = %s; client_id = %s; username = \"\"; password_file = \"\";\n"
            "         telemetry_hz = %d; keepalive_s = %d; %s\n"
            "         tls = { ca_file = \"\"; cert_file = \"\"; key_file = \"\"; }; };\n"
            "ble = { security = \"medium\"; };\n"
            "limits = { leg = { max_pressure_mmHg = 250; max_pct_lop = 80; };\n"
            "           arm = { max_pressure_mmHg = 200; max_pct_lop = 60; }; };\n"
            "cuffs = (\n%s\n);\n%s"
            % (_q(gateway_id), _q(site), _q(data_dir), gateway_extra, _q(mqtt_uri), _q(gateway_id),
               telemetry_hz, keepalive_s, mqtt_extra, ",\n".join(items), extra))


def sim_cuffs(sim, limb="leg"):
    """Config entries for every cuff of a CuffSim: ids cuff-01 ... matching the sockets."""
    return [{"id": "cuff-%02d" % i, "address": "sim:" + sim.socket_path(i), "limb": limb}
            for i in range(1, sim.cuffs + 1)]


# --- MQTT ------------------------------------------------------------------------


class Msg:
    __slots__ = ("topic", "kind", "raw", "payload", "retain", "qos", "t", "props")

    def __init__(self, topic, kind, raw, payload, retain, qos, t, props):
        self.topic, self.kind, self.raw, self.payload = topic, kind, raw, payload
        self.retain, self.qos, self.t, self.props = retain, qos, t, props

    def __repr__(self):
        return "<%s%s %s>" % (self.topic, " (retained)" if self.retain else "",
                              self.raw[:200].decode("utf-8", "replace"))


# Topic level that must equal a payload field (the payload belongs to its topic).
_TOPIC_FIELD = (
    (re.compile(r"/cuff/([^/]+)/(state|telemetry)$"), "cuff"),
    (re.compile(r"/session/([^/]+)/(state|event|summary)$"), "session_id"),
    (re.compile(r"/alarm/([^/]+)$"), "alarm_id"),
)


class Collector:
    """MQTT 5 client subscribed to bfr/v1/#: keeps every message, validates each
    against its topic's schema, and lets tests wait on conditions over them."""

    def __init__(self, h, port, topic="bfr/v1/#", name="collector", persistent=False,
                 reconnect_max_s=None):
        """persistent=True: an MQTT 5 session that outlives a disconnect (clean start
        on the first connect only, session expiry 1 h), so that with a persistent
        broker (Broker.start(persistence=True)) QoS 1 messages published while the
        collector was away are queued for it. reconnect_max_s caps paho's
        reconnect backoff (default 1 s doubling to 120 s)."""
        self.h = h
        self.port = port
        self.cond = threading.Condition(threading.RLock())
        self.messages = []
        self.latest = {}      # topic -> last Msg
        self.errors = []      # invalid payloads etc.: any entry fails the test
        self._msg_ids = {}    # msg_id -> raw payload (a redelivery must be identical)
        self._warned = set()
        self.connected = False
        self.subscribed = False
        self.client = mqtt.Client(client_id="%s-%s" % (name, uuid.uuid4().hex[:8]),
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.topic = topic  # before loop_start: _on_connect reads it on paho's thread
        if reconnect_max_s is not None:
            self.client.reconnect_delay_set(min(0.25, reconnect_max_s), reconnect_max_s)
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self.client.connect("127.0.0.1", port, keepalive=30,
                                clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props)
        else:
            self.client.connect("127.0.0.1", port, keepalive=30, clean_start=True)
        self.client.loop_start()
        self.wait_for(lambda c: c.subscribed, 10, "the collector to connect and subscribe")

    # paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self.cond:
            self.connected = rc == 0
            if rc != 0:
                self.errors.append("collector could not connect: %s" % rc)
            else:
                client.subscribe(self.topic, qos=1)
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self.cond:
            self.connected = False
            self.subscribed = False
            self.cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self.subscribed = True
            self.cond.notify_all()

    def _on_message(self, client, userdata, message):
        now = time.monotonic()
        topic = message.topic
        raw = bytes(message.payload)
        payload = None
        problems = []
        try:
            kind = kind_for_topic(topic)
        except UnknownTopic as e:
            kind = None
            problems.append(str(e))
        if kind and raw == b"":
            # Only a closed alarm is removed with an empty payload; a client may
            # clear a retained command it left (commands are not ours to judge).
            if kind != "alarm" and not kind.startswith("cmd-"):
                problems.append("empty payload on a %s topic" % kind)
        elif kind:
            try:
                payload = json.loads(raw.decode("utf-8"))
            except ValueError as e:
                payload = None
                if not kind.startswith("cmd-"):
                    problems.append("not UTF-8 JSON: %s" % e)
            # Commands come from clients (tests send garbage on purpose): not ours to judge.
            if payload is not None and not kind.startswith("cmd-"):
                if self.h.validator.has_schema(kind):
                    problems += self.h.validator.errors(kind, payload)
                elif kind not in self._warned:
                    self._warned.add(kind)
                    sys.stderr.write("harness: no schema for %s yet, not validated\n" % kind)
                problems += self._consistency(topic, kind, payload, raw)
        msg = Msg(topic, kind, raw, payload, bool(message.retain), message.qos, now,
                  getattr(message, "properties", None))
        with self.cond:
            self.messages.append(msg)
            self.latest[topic] = msg
            for p in problems:
                self.errors.append("%s: %s (payload %s)" %
                                   (topic, p, raw[:300].decode("utf-8", "replace")))
            self.cond.notify_all()

    def _consistency(self, topic, kind, payload, raw):
        out = []
        if not isinstance(payload, dict):
            return out
        for rx, field in _TOPIC_FIELD:
            m = rx.search(topic)
            if m and field in payload and payload[field] != m.group(1):
                out.append("%s %r does not match its topic" % (field, payload[field]))
        mid = payload.get("msg_id")
        if isinstance(mid, str) and kind != "reply":
            with self.cond:
                prev = self._msg_ids.get(mid)
                if prev is not None and prev != raw:
                    out.append("msg_id %s reused for a different payload" % mid)
                self._msg_ids[mid] = raw
        return out

    # for tests
    def wait_for(self, pred, timeout, what, allow_invalid=False):
        """Waits until pred(self) is true (returns its value) or fails after timeout.
        Fails at once when an invalid payload has arrived (unless allow_invalid)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if not allow_invalid:
                    self.assert_valid()
                r = pred(self)
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.1f s waiting for %s" % (timeout, what))
                self.cond.wait(left)

    def assert_valid(self):
        with self.cond:
            if self.errors:
                fail("%d invalid message(s); first: %s" % (len(self.errors), self.errors[0]))

    def take_errors(self):
        """Returns and forgets the errors so far (for tests that send garbage on purpose)."""
        with self.cond:
            out, self.errors = self.errors, []
            return out

    def select(self, kind=None, since=0.0, topic=None):
        with self.cond:
            return [m for m in self.messages
                    if (kind is None or m.kind == kind) and m.t >= since
                    and (topic is None or m.topic == topic)]

    def latest_payload(self, suffix):
        with self.cond:
            m = self.latest.get("%s/%s" % (PREFIX, suffix))
            return m.payload if m else None

    def telemetry_cuffs(self, since=0.0):
        return {m.payload["cuff"] for m in self.select("telemetry", since) if m.payload}

    def cuff_links(self, since=0.0):
        """cuff -> link of its latest cuff-state received at or after since."""
        out = {}
        for m in self.select("cuff-state", since):
            if m.payload:
                out[m.payload["cuff"]] = m.payload["link"]
        return out

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def fetch_retained(port, topic_filter, timeout=5.0):
    """What the broker holds retained under topic_filter right now: topic -> raw payload.

    Retained messages are queued to a subscriber when its SUBSCRIBE is handled;
    subscribing afterwards to a private marker topic and publishing a marker
    there makes the marker's arrival mean all of them have been delivered."""
    cond = threading.Condition()
    got = {}
    state = {"done": False, "err": None}
    marker = "bfr-test/marker/%s" % uuid.uuid4().hex
    client = mqtt.Client(client_id="retained-%s" % uuid.uuid4().hex[:8], protocol=mqtt.MQTTv5)

    def on_connect(c, u, flags, rc, properties=None):
        if rc != 0:
            with cond:
                state["err"] = "connect failed: %s" % rc
                cond.notify_all()
            return
        c.subscribe(topic_filter, qos=1)
        c.subscribe(marker, qos=1)

    def on_subscribe(c, u, mid, granted, properties=None):
        with cond:
            state["subs"] = state.get("subs", 0) + 1
            if state["subs"] == 2:
                c.publish(marker, b"x", qos=1)

    def on_message(c, u, m):
        with cond:
            if m.topic == marker:
                state["done"] = True
            elif m.retain:
                if m.payload:
                    got[m.topic] = bytes(m.payload)
            cond.notify_all()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        with cond:
            while not state["done"] and not state["err"]:
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out fetching retained messages of %s" % topic_filter)
                cond.wait(left)
            if state["err"]:
                fail("fetching retained %s: %s" % (topic_filter, state["err"]))
            return dict(got)
    finally:
        client.disconnect()
        client.loop_stop()


# --- the harness -----------------------------------------------------------------


class Harness:
    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="bfr-%s-" % name)
        self.procs = []
        self.collectors = []
        self.validator = Validator()
        self.broker = None
        self.problems = []  # found at teardown (bad exit status)
        self._n = {}

    def __enter__(self):
        return self

    def binary(self, name):
        path = os.path.join(BUILD_DIR, name)
        if not os.access(path, os.X_OK):
            fail("%s is not built (BFR_BUILD_DIR=%s)" % (path, BUILD_DIR))
        return path

    def spawn(self, name, argv, env=None):
        n = self._n.get(name, 0) + 1
        self._n[name] = n
        proc = Proc(name if n == 1 else "%s.%d" % (name, n), argv, self.tmp, env)
        self.procs.append(proc)
        return proc

    def start_broker(self, persistence=False, extra="", websockets=None):
        self.broker = Broker(self)
        self.broker.start(persistence=persistence, extra=extra, websockets=websockets)
        return self.broker

    def start_cuffsim(self, cuffs, args=(), directory=None):
        directory = directory or os.path.join(self.tmp, "sim")
        return CuffSim(self, directory, cuffs, args).start()

    def collector(self, **kw):
        c = Collector(self, self.broker.port, **kw)
        self.collectors.append(c)
        return c

    def write_gateway_config(self, cuffs, name="gateway.conf", **kw):
        data_dir = kw.pop("data_dir", os.path.join(self.tmp, "data"))
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(gateway_config(data_dir, self.broker.uri, cuffs, **kw))
        return path

    def start_gateway(self, config, args=()):
        """Starts bfr-gateway -c config; readiness is for the test to await (status online)."""
        return self.spawn("gateway", [self.binary("bfr-gateway"), "-c", config] + list(args))

    def retained(self, topic_filter, timeout=5.0):
        return fetch_retained(self.broker.port, topic_filter, timeout)

    def send_command(self, col, verb, payload=None, raw=None, timeout=10.0, v5=True):
        """Publishes cmd/<verb> and returns the reply as a dict.

        MQTT 5: Response Topic <prefix>/reply/v5/<request_id> + Correlation Data,
        and the reply must carry the same Correlation Data. v5=False: an MQTT 3.1.1
        client, reply expected on <prefix>/reply/<request_id>."""
        request_id = uuid.uuid4().hex
        if raw is None:
            body = dict(payload or {})
            body.setdefault("request_id", request_id)
            request_id = body["request_id"]
            raw = json.dumps(body).encode()
        topic = "%s/cmd/%s" % (PREFIX, verb)
        since = time.monotonic()
        if v5:
            reply_topic = "%s/reply/v5/%s" % (PREFIX, request_id)
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = reply_topic
            props.CorrelationData = request_id.encode()
            col.client.publish(topic, raw, qos=1, properties=props)
        else:
            reply_topic = "%s/reply/%s" % (PREFIX, request_id)
            pub = mqtt.Client(client_id="cmd311-%s" % request_id[:8], protocol=mqtt.MQTTv311)
            pub.connect("127.0.0.1", self.broker.port, keepalive=30)
            pub.loop_start()
            pub.publish(topic, raw, qos=1).wait_for_publish(timeout)
            pub.disconnect()
            pub.loop_stop()
        msgs = col.wait_for(lambda c: c.select(topic=reply_topic, since=since), timeout,
                            "a reply to %s on %s" % (verb, reply_topic))
        m = msgs[0]
        check_that(isinstance(m.payload, dict), "reply is not a JSON object: %r" % m)
        if v5:
            corr = getattr(m.props, "CorrelationData", None) if m.props else None
            check_that(corr == request_id.encode(),
                       "reply lacks the request's Correlation Data (got %r)" % corr)
        return m.payload

    def __exit__(self, exc_type, exc, tb):
        self.teardown(failed=exc_type is not None)
        return False

    def teardown(self, failed=False):
        for c in self.collectors:
            try:
                c.close()
            except Exception as e:  # teardown goes on whatever one client did
                sys.stderr.write("harness: closing collector: %s\n" % e)
        self.collectors = []
        # Gateway first (it must outlive neither), then cuffsim, the broker last.
        order = sorted(self.procs, key=lambda p: (0 if p.name.startswith("gateway") else
                                                  1 if p.name.startswith("cuffsim") else 2))
        for p in order:
            was_alive = p.alive()
            rc = p.stop()
            if not p.expect_exit and (not was_alive or rc != 0) and \
                    not p.name.startswith("mosquitto"):
                self.problems.append("%s %s (status %s)" %
                                     (p.name, "exited on SIGTERM" if was_alive else
                                      "had exited by itself", rc))
            p.close()
        if failed or self.problems:
            for p in self.procs:
                sys.stderr.write("\n----- %s log (%s), last lines -----\n%s\n" %
                                 (p.name, p.log_path, p.log_tail()))
            sys.stderr.write("harness: kept %s\n" % self.tmp)
        elif os.environ.get("BFR_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.procs = []


class Suite:
    """Named checks with PASS/FAIL lines and the closing 'N passed, N failed' line."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.h = None
        self.t0 = time.monotonic()

    def harness(self):
        self.h = Harness(self.name)
        return _SuiteHarness(self, self.h)

    def check(self, title, fn):
        t = time.monotonic()
        try:
            result = fn()
        except TestFailure as e:
            self.failed += 1
            print("FAIL %s: %s (%.1f s)" % (title, e, time.monotonic() - t), flush=True)
            return None
        except Exception:
            self.failed += 1
            print("FAIL %s: unexpected error (%.1f s)\n%s" %
                  (title, time.monotonic() - t, traceback.format_exc()), flush=True)
            return None
        self.passed += 1
        print("PASS %s (%.1f s)" % (title, time.monotonic() - t), flush=True)
        return result

    def finish(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


class _SuiteHarness:
    """Context manager: a setup failure or a bad exit at teardown counts as a failed check."""

    def __init__(self, suite, h):
        self.suite, self.h = suite, h

    def __enter__(self):
        return self.h

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.suite.failed += 1
            if issubclass(exc_type, TestFailure):
                print("FAIL setup: %s" % exc, flush=True)
            else:
                print("FAIL setup: unexpected error\n%s" %
                      "".join(traceback.format_exception(exc_type, exc, tb)), flush=True)
        failed_before = self.suite.failed > 0
        self.h.teardown(failed=failed_before)
        for p in self.h.problems:
            self.suite.failed += 1
            print("FAIL teardown: %s" % p, flush=True)
        if self.h.problems and not failed_before:
            pass  # logs were printed by teardown already
        return True  # the failure is counted; finish() reports it


# --- sessions and alarms (helpers for the fault tests) ---------------------------


def short_plan(cuff, reps=20, tempo=(1, 1), pct_lop=80, mode="continuous", rest_s=0, sets=1):
    """A one-exercise plan on one cuff: sets x reps at tempo, continuous by default."""
    return {"exercises": [{"name": "it-%s" % cuff, "cuffs": [cuff], "pct_lop": pct_lop,
                           "mode": mode, "sets": [reps] * sets, "tempo_s": list(tempo),
                           "rest_s": rest_s, "reperfusion_s": 60}]}


def start_session(h, col, plan):
    """cmd/session/start that must be accepted; returns the session id."""
    r = h.send_command(col, "session/start", {"plan": plan})
    check_that(r.get("ok") is True, "session/start refused: %s" % r.get("error"))
    check_that(isinstance(r.get("session_id"), str), "accepted start without session_id")
    return r["session_id"]


def session_events(col, session_id):
    """Payloads of session/{id}/event received so far, in arrival order."""
    topic = "%s/session/%s/event" % (PREFIX, session_id)
    return [m.payload for m in col.select("session-event", topic=topic) if m.payload]


def wait_session_event(col, session_id, pred, timeout, what):
    """The first event of the session for which pred(event) holds."""
    def find(c):
        for e in session_events(c, session_id):
            if pred(e):
                return e
        return None
    return col.wait_for(find, timeout, "%s (session %s)" % (what, session_id))


def wait_phase(col, session_id, phase, timeout):
    return wait_session_event(col, session_id, lambda e: e.get("type") == "phase" and
                              e.get("phase") == phase, timeout, "phase %s" % phase)


def wait_session_end(col, session_id, timeout):
    """The session's completed/stopped/aborted event."""
    return wait_session_event(col, session_id, lambda e: e.get("type") in
                              ("completed", "stopped", "aborted"), timeout, "the session's end")


def alarm_records(col, cuff=None, code=None, since=0.0):
    """Non-empty alarm records received, optionally of one cuff and/or code."""
    return [m for m in col.select("alarm", since) if m.payload and
            (cuff is None or m.payload.get("cuff") == cuff) and
            (code is None or m.payload.get("code") == code)]


def wait_alarm(col, cuff, code, timeout, since=0.0):
    """The first record of alarm `code` on `cuff` (a Msg: .payload, .retain, .t)."""
    msgs = col.wait_for(lambda c: alarm_records(c, cuff, code, since), timeout,
                        "alarm %s on %s" % (code, cuff))
    return msgs[0]


def alarm_closed(col, alarm_id):
    """True once the final 'cleared' record and then the empty payload arrived."""
    topic = "%s/alarm/%s" % (PREFIX, alarm_id)
    msgs = col.select("alarm", topic=topic)
    seen_cleared = False
    for m in msgs:
        if m.payload and m.payload.get("state") == "cleared":
            seen_cleared = True
        elif m.raw == b"" and seen_cleared:
            return True
    return False


def wait_alarm_closed(col, alarm_id, timeout):
    col.wait_for(lambda c: alarm_closed(c, alarm_id), timeout,
                 "alarm %s to close (a cleared record, then an empty payload)" % alarm_id)


def ack_alarm(h, col, alarm_id, by="integration-test"):
    r = h.send_command(col, "alarm/ack", {"alarm_id": alarm_id, "by": by})
    check_that(r.get("ok") is True, "alarm/ack %s refused: %s" % (alarm_id, r.get("error")))
    return r


def cuff_alarms_active(col, cuff):
    """alarms_active of the cuff's latest cuff-state (None if none received)."""
    p = col.latest_payload("cuff/%s/state" % cuff)
    return None if p is None else p.get("alarms_active")


def sim_cuff_stats(sim, index):
    """cuffsim's stats of cuff index (1-based)."""
    for c in sim.stats()["cuffs"]:
        if c["cuff"] == index:
            return c
    fail("cuffsim stats have no cuff %d" % index)


def wait_sim(sim, index, pred, timeout, what, poll=0.05):
    """Polls cuffsim's stats of one cuff until pred(stats) holds (cuffsim cannot signal)."""
    return wait_until(lambda: (lambda s: s if pred(s) else None)(sim_cuff_stats(sim, index)),
                      timeout, "cuffsim cuff %d: %s" % (index, what), poll)
