#!/usr/bin/python3
"""Shared pieces of the benchmarks in tests/bench/ (not a benchmark itself).

The benchmarks reuse tests/integration/harness.py for the processes (real
mosquitto on a free loopback port, cuffsim, bfr-gateway in a temporary
directory, every process stopped at the end) but NOT its Collector: that one
validates every payload with jsonschema, which at 5000 telemetry messages/s
would measure Python rather than the gateway. Here:

- LeanSub: a paho client that keeps only what the benchmark needs
  (link state per cuff, status, replies, event seq numbers), parsing JSON only
  for low-rate topics;
- TelemetryTap: mosquitto_sub (C) writing "receipt-time topic payload" lines
  to a file, parsed after the measuring window, so the subscriber costs little
  CPU on the shared machine;
- ProcStat: CPU (utime+stime from /proc/PID/stat) and VmRSS/VmHWM of a process.

Run with Debian's /usr/bin/python3 (paho-mqtt 1.6.1). BFR_BUILD_DIR must point
at a Release build (tests/bench/run-all.sh configures one).
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

import harness  # noqa: E402
from harness import PREFIX, Harness, fail, sim_cuffs  # noqa: E402,F401

CLK_TCK = os.sysconf("SC_CLK_TCK")

BROKER_EXTRA = []  # extra mosquitto.conf lines for every broker a benchmark starts


def broker_extra(lines):
    """Appends lines (e.g. "max_inflight_messages 0") to the mosquitto.conf the
    harness writes, for every broker started (and restarted) from now on. The
    harness writes its config just before spawning mosquitto; this wraps
    Harness.spawn, so tests/integration/harness.py stays untouched."""
    BROKER_EXTRA[:] = list(lines)
    if getattr(Harness.spawn, "_bench_wrapped", False):
        return
    orig = Harness.spawn

    def spawn(self, name, argv, env=None):
        if name == "mosquitto" and BROKER_EXTRA and "-c" in argv:
            with open(argv[argv.index("-c") + 1], "a") as f:
                f.write("# added by tests/bench/benchlib.py\n")
                f.write("".join(ln + "\n" for ln in BROKER_EXTRA))
        return orig(self, name, argv, env)
    spawn._bench_wrapped = True
    Harness.spawn = spawn


def build_info():
    """Build type and flags of BFR_BUILD_DIR, from its CMakeCache.txt."""
    out = {}
    try:
        with open(os.path.join(harness.BUILD_DIR, "CMakeCache.txt")) as f:
            for line in f:
                for key in ("CMAKE_BUILD_TYPE", "BFR_SANITIZE", "CMAKE_C_COMPILER",
                            "CMAKE_C_FLAGS_RELEASE"):
                    if line.startswith(key + ":"):
                        out[key] = line.split("=", 1)[1].strip()
    except OSError:
        pass
    return out


def require_release():
    info = build_info()
    if info.get("CMAKE_BUILD_TYPE") != "Release" or info.get("BFR_SANITIZE", "OFF") == "ON":
        sys.stderr.write("warning: BFR_BUILD_DIR=%s is not a Release build without sanitizers "
                         "(%s); figures will not be comparable\n" % (harness.BUILD_DIR, info))
    return info


class ProcStat:
    """CPU seconds and memory of one process (all its threads)."""

    def __init__(self, pid):
        self.pid = pid

    def cpu_s(self):
        with open("/proc/%d/stat" % self.pid) as f:
            text = f.read()
        fields = text[text.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): utime is field 14, stime field 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def mem_kib(self):
        out = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
        return out.get("VmRSS", 0), out.get("VmHWM", 0)


class CpuWindow:
    """CPU % of several processes over a window: start(), then stop()."""

    def __init__(self, procs):
        self.procs = procs  # name -> pid

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {n: ProcStat(p).cpu_s() for n, p in self.procs.items()}

    def stop(self):
        dt = time.monotonic() - self.t0
        return {n: 100.0 * (ProcStat(p).cpu_s() - self.c0[n]) / dt
                for n, p in self.procs.items()}


def pct(values, p):
    """Nearest-rank percentile (an actual value, never interpolated)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


class LeanSub:
    """Low-rate topics only: status, cuff states, session events/state, replies."""

    def __init__(self, port, topics=None, name="bench"):
        self.cond = threading.Condition()
        self.links = {}         # cuff -> link
        self.connected_at = {}  # cuff -> monotonic time first seen connected
        self.status = None
        self.replies = {}       # reply topic -> payload
        self.events = {}        # session -> list of (t, seq, type)
        self.msg_count = {}     # kind -> count
        self.subscribed = 0
        self.topics = topics or [PREFIX + "/status", PREFIX + "/cuff/+/state",
                                 PREFIX + "/reply/#"]
        self.client = mqtt.Client(client_id="%s-%s" % (name, uuid.uuid4().hex[:8]),
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30, clean_start=True)
        self.client.loop_start()
        self.wait(lambda: self.subscribed >= len(self.topics), 10, "lean subscriber")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        for t in self.topics:
            client.subscribe(t, qos=1)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self.cond:
            self.subscribed += 1
            self.cond.notify_all()

    def _on_message(self, client, userdata, m):
        now = time.monotonic()
        topic = m.topic
        rest = topic[len(PREFIX) + 1:]
        with self.cond:
            if rest.endswith("/telemetry"):
                self.msg_count["telemetry"] = self.msg_count.get("telemetry", 0) + 1
                return
            try:
                p = json.loads(m.payload) if m.payload else None
            except ValueError:
                p = None
            if rest == "status":
                self.status = p
            elif rest.startswith("cuff/") and rest.endswith("/state") and p:
                self.links[p["cuff"]] = p["link"]
                if p["link"] == "connected":
                    self.connected_at.setdefault(p["cuff"], now)
            elif rest.startswith("reply/"):
                self.replies[topic] = p
            elif rest.startswith("session/") and rest.endswith("/event") and p:
                self.events.setdefault(p["session_id"], []).append((now, p["seq"], p["type"]))
            kind = rest.split("/")[0]
            self.msg_count[kind] = self.msg_count.get(kind, 0) + 1
            self.cond.notify_all()

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.1f s waiting for %s" % (timeout, what))
                self.cond.wait(min(left, 0.5))

    def n_connected(self):
        return sum(1 for v in self.links.values() if v == "connected")

    def command(self, verb, body, timeout=10.0):
        """MQTT 5 request/response; returns the reply payload."""
        rid = uuid.uuid4().hex
        body = dict(body, request_id=rid)
        reply_topic = "%s/reply/v5/%s" % (PREFIX, rid)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = rid.encode()
        self.client.publish("%s/cmd/%s" % (PREFIX, verb), json.dumps(body), qos=1,
                            properties=props)
        return self.wait(lambda: self.replies.get(reply_topic), timeout,
                         "reply to %s" % verb)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class TelemetryTap:
    """mosquitto_sub writing '%U topic payload' per telemetry message to a file."""

    def __init__(self, h, port, topic=PREFIX + "/cuff/+/telemetry", name="tap"):
        self.path = os.path.join(h.tmp, "%s.txt" % name)
        self.f = open(self.path, "wb")
        self.popen = subprocess.Popen(
            ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "0", "-t", topic,
             "-F", "%U %t %p", "-i", "%s-%s" % (name, uuid.uuid4().hex[:8])],
            stdout=self.f, stderr=subprocess.DEVNULL)
        # Subscribed once the first line lands (the gateway publishes at telemetry_hz).
        harness.wait_until(lambda: os.path.getsize(self.path) > 0, 15,
                           "the first telemetry message at mosquitto_sub")

    def stop(self):
        self.popen.terminate()
        self.popen.wait(10)
        self.f.close()

    def records(self):
        """Yields (wall_time_s, cuff, n_samples, newest_t_ms) per message."""
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    ts, topic, payload = line.split(b" ", 2)
                    p = json.loads(payload)
                except ValueError:
                    continue  # the last line may be cut by the SIGTERM
                s = p.get("samples") or []
                yield (float(ts), p.get("cuff"), len(s), s[-1][0] if s else None)


def cuffsim_totals(stats):
    sent = sum(c["samples_sent"] for c in stats["cuffs"])
    dropped = sum(c["samples_dropped"] for c in stats["cuffs"])
    connected = sum(1 for c in stats["cuffs"] if c["connected"])
    return sent, dropped, connected


def stats_with_clock(sim):
    """cuffsim stats plus the wall-clock time matching its uptime_ms (mid round trip)."""
    w0 = time.time()
    st = sim.stats()
    w1 = time.time()
    st["_wall"] = (w0 + w1) / 2
    st["_rtt_s"] = w1 - w0
    return st


def start_system(h, n, sim_args=(), telemetry_hz=10, extra="", limb="leg", wait_connected=True,
                 connect_timeout=120):
    """Broker, cuffsim with n cuffs, lean subscriber, gateway; waits until every cuff
    is connected (retained cuff-state link=connected). Returns a dict of handles."""
    broker = h.start_broker()
    sim = h.start_cuffsim(n, ["--rate", "50"] + list(sim_args))
    sub = LeanSub(broker.port)
    cfg = h.write_gateway_config(sim_cuffs(sim, limb), telemetry_hz=telemetry_hz, extra=extra)
    t0 = time.monotonic()
    gw = h.start_gateway(cfg)
    sub.wait(lambda: (sub.status or {}).get("state") == "online", 30, "status online")
    t_online = time.monotonic() - t0
    t_all = None
    if wait_connected:
        sub.wait(lambda: sub.n_connected() >= n, connect_timeout, "all %d cuffs connected" % n)
        t_all = time.monotonic() - t0
    return {"broker": broker, "sim": sim, "sub": sub, "gw": gw, "t_online": t_online,
            "t_all_connected": t_all, "t_start": t0}


def hr(title):
    print("\n== %s ==" % title, flush=True)


def table(headers, rows):
    widths = [max(len(str(x)) for x in [hd] + [r[i] for r in rows]) for i, hd in enumerate(headers)]
    line = "| " + " | ".join(str(hd).ljust(w) for hd, w in zip(headers, widths)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(x).rjust(w) for x, w in zip(r, widths)) + " |")
    sys.stdout.flush()
