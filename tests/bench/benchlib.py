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

Every gateway a benchmark starts runs its event loop SCHED_FIFO at the
shipped example configuration's gateway.realtime_priority (10), and prints
what its loop thread got; BFR_BENCH_REALTIME=0 runs it at the normal policy
(an A/B in the same session), another value at that priority.

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


# gateway.realtime_priority of every gateway a benchmark starts: the shipped
# example configuration's 10 unless BFR_BENCH_REALTIME says otherwise (0: the
# normal policy, for an A/B in the same session). Benchmarks print
# loop_policy(pid), what the gateway's loop thread actually got.
try:
    REALTIME_PRIORITY = int(os.environ.get("BFR_BENCH_REALTIME", "10"))
except ValueError:
    sys.exit("BFR_BENCH_REALTIME=%r: give 0 (normal policy) or a priority 1..49"
             % os.environ["BFR_BENCH_REALTIME"])


def _realtime_config():
    if getattr(Harness.write_gateway_config, "_bench_wrapped", False):
        return
    orig = Harness.write_gateway_config

    def write_gateway_config(self, cuffs, name="gateway.conf", **kw):
        if REALTIME_PRIORITY and "gateway_extra" not in kw:
            kw["gateway_extra"] = "realtime_priority = %d;" % REALTIME_PRIORITY
        return orig(self, cuffs, name, **kw)
    write_gateway_config._bench_wrapped = True
    Harness.write_gateway_config = write_gateway_config
    orig_start = Harness.start_gateway

    def start_gateway(self, config, args=()):
        gw = orig_start(self, config, args)
        if REALTIME_PRIORITY:
            # main() applies it before anything else: a condition, not a wait.
            gw.wait_line(r"event loop: SCHED_FIFO|realtime_priority \d+ not applied", 10)
        print("gateway pid %d: loop thread %s" % (gw.pid, loop_policy(gw.pid)), flush=True)
        return gw
    Harness.start_gateway = start_gateway


_realtime_config()


def loop_policy(pid):
    """The gateway's loop thread (its main thread) policy: "SCHED_FIFO 10", "normal"."""
    policy, prio = harness.thread_sched(pid)
    return "SCHED_FIFO %d" % prio if policy == 1 else "normal policy (%d)" % policy


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


# --- issue 13: several cuffsim instances, the C tools, the machine ------------------

SOURCE_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))
SIM_MAX_CUFFS = 1000  # cuffsim --cuffs 1..1000 (docs/cuffsim.md)
PRODUCTION_CONF = os.path.join(SOURCE_DIR, "deploy", "mosquitto", "production.conf")
# The settings of the shipped clinic broker that bear on throughput; listeners,
# TLS and authentication stay the harness's (plain loopback, anonymous).
THROUGHPUT_KEYS = ("max_inflight_messages", "max_queued_messages", "set_tcp_nodelay",
                   "message_size_limit", "max_packet_size", "max_queued_bytes",
                   "max_inflight_bytes", "memory_limit")


def production_broker_lines(path=PRODUCTION_CONF):
    """The THROUGHPUT_KEYS lines of the shipped production broker config."""
    out = []
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words and words[0] in THROUGHPUT_KEYS:
                out.append(" ".join(words))
    return out


def raise_fd_limit(need):
    """Children inherit it: cuffsim holds 2 fds per cuff, the gateway 1+."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        sys.stderr.write("warning: RLIMIT_NOFILE hard limit %d < %d needed\n" % (hard, need))


def split_cuffs(n, per_instance=SIM_MAX_CUFFS, instances=None):
    """Cuffs per cuffsim instance: as few instances as per_instance allows (or
    `instances`), the cuffs spread evenly."""
    k = instances or max(1, -(-n // per_instance))
    if k > 26 or -(-n // k) > SIM_MAX_CUFFS:
        fail("%d cuffs cannot be split over %d cuffsim instances" % (n, k))
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def instance_letter(i):
    return chr(ord("a") + i)


def sim_start_ms(sim, samples=5):
    """cuffsim's start_ms on CLOCK_MONOTONIC (ms), from `stats` uptime_ms.

    cuffsim caches the loop's `now` when epoll returns with our request, so
    now >= our send time and start = now - uptime >= t_send - uptime (a lower
    bound, tight when cuffsim wakes at once); t_recv - uptime bounds it from
    above. The best of a few requests; +-1 ms (both clocks are truncated ms)."""
    lo, hi = -1e18, 1e18
    for _ in range(samples):
        t0 = time.monotonic() * 1000.0
        up = sim.stats()["uptime_ms"]
        t1 = time.monotonic() * 1000.0
        lo = max(lo, t0 - up)
        hi = min(hi, t1 - up)
    return lo if lo <= hi else hi


def sim_epoch_wall_ms(sim):
    """Wall-clock ms of cuffsim's sample t_ms 0 (its start)."""
    st = stats_with_clock(sim)
    return int(round(st["_wall"] * 1000.0 - st["uptime_ms"]))


def phase_offset_ms(a_ms, b_ms, period_ms):
    """(b - a) mod period, in (-period/2, period/2]."""
    d = (b_ms - a_ms) % period_ms
    return d - period_ms if d > period_ms / 2 else d


def start_sims(h, n, sim_args=(), per_instance=SIM_MAX_CUFFS, instances=None, rate=50,
               align=True, tolerance_ms=1.0, attempts=12):
    """cuffsim instances for n cuffs: instance i in <tmp>/sim-<letter>, cuffs 1..n_i.

    Without --stagger every cuff of one instance samples at the same instant;
    to keep that worst case across instances (align=True) each further
    instance is restarted until its tick phase is within tolerance_ms of the
    first one's, launching it at the moment its measured start-up delay
    predicts. Returns (sims, offsets_ms): offsets of each instance's tick
    phase from the first's (the ticks are whole ms apart)."""
    sizes = split_cuffs(n, per_instance, instances)
    raise_fd_limit(3 * n + 256)
    period = 1000.0 / rate
    args = ["--rate", str(rate)] + list(sim_args)
    sims, offsets = [], []
    for i, size in enumerate(sizes):
        d = os.path.join(h.tmp, "sim-%s" % instance_letter(i))
        if i == 0 or not align:
            sims.append(h.start_cuffsim(size, args, directory=d))
            offsets.append(phase_offset_ms(sim_start_ms(sims[0]), sim_start_ms(sims[-1]), period)
                           if i else 0.0)
            continue
        ref = sim_start_ms(sims[0])
        delay = None
        best = None
        for attempt in range(attempts):
            if delay is not None:
                # Launch so that launch + delay lands on the first instance's phase.
                now = time.monotonic() * 1000.0
                target = now + 5 + (ref - (now + 5 + delay)) % period
                pause = (target - time.monotonic() * 1000.0) / 1000.0
                if pause > 0:
                    time.sleep(pause)  # timing a launch, not waiting for a condition
            launched = time.monotonic() * 1000.0
            # A directory per attempt: a stopped instance unlinks its sockets.
            sim = h.start_cuffsim(size, args, directory=d if attempt == 0 else
                                  "%s.%d" % (d, attempt))
            start = sim_start_ms(sim)
            off = phase_offset_ms(ref, start, period)
            delay = start - launched if delay is None else (delay + start - launched) / 2
            if best is None or abs(off) < abs(best[1]):
                if best:
                    best[0].stop()
                best = (sim, off)
            else:
                sim.stop()
            if abs(off) <= tolerance_ms:
                break
        sims.append(best[0])
        offsets.append(best[1])
    return sims, offsets


def scale_cuffs(sims, limb="leg"):
    """Config entries: instance i's cuff j is <letter><j:04d> (a0001, b0001, ...)."""
    out = []
    for i, sim in enumerate(sims):
        for j in range(1, sim.cuffs + 1):
            out.append({"id": "%s%04d" % (instance_letter(i), j),
                        "address": "sim:" + sim.socket_path(j), "limb": limb})
    return out


def sims_stats(sims):
    return [stats_with_clock(s) for s in sims]


def sims_totals(stats_list):
    sent = dropped = connected = 0
    for st in stats_list:
        s, d, c = cuffsim_totals(st)
        sent, dropped, connected = sent + s, dropped + d, connected + c
    return sent, dropped, connected


def all_supervised(stats_list):
    return all(c["samples_sent"] > 0 and c["cp_writes"]["set_supervision"] > 0
               for st in stats_list for c in st["cuffs"])


def tool(name):
    path = os.path.join(harness.BUILD_DIR, name)
    if not os.access(path, os.X_OK):
        fail("%s is not built (cmake --build %s --target %s)" % (path, harness.BUILD_DIR, name))
    return path


class BenchSub:
    """tests/bench/bench_sub (C): phases on stdin, one JSON line per phase on stdout."""

    def __init__(self, h, port, filters, epochs=None, expect_cuffs=0, sample_period_ms=0,
                 prefix_levels=4, name="bench_sub", extra=()):
        argv = [tool("bench_sub"), "--uri", "mqtt://127.0.0.1:%d" % port,
                "--prefix-levels", str(prefix_levels)]
        for f in filters:
            argv += ["-t", f]
        for prefix, ms in (epochs or {}).items():
            argv += ["--epoch", "%s=%d" % (prefix, ms)]
        if expect_cuffs:
            argv += ["--expect-cuffs", str(expect_cuffs)]
        if sample_period_ms:
            argv += ["--sample-period-ms", str(int(sample_period_ms))]
        argv += list(extra)
        self.cond = threading.Condition()
        self.lines = []
        self.log = open(os.path.join(h.tmp, "%s.err" % name), "wb")
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self.log)
        self.pid = self.popen.pid
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_line(lambda ln: ln == "ready", 15, "bench_sub ready")

    def _read(self):
        for raw in iter(self.popen.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode().rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def wait_line(self, pred, timeout, what, start=0):
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    ln = self.lines[i]
                    if ln is None:
                        fail("bench_sub ended before %s" % what)
                    if pred(ln):
                        return i, ln
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s" % (timeout, what))
                self.cond.wait(left)

    def connected_wall_ms(self, timeout):
        """Wall ms at which --expect-cuffs cuffs were first all connected."""
        _, ln = self.wait_line(lambda ln: ln.startswith("connected "), timeout,
                               "every cuff connected (bench_sub)")
        return int(ln.split()[2])

    def phase(self, name):
        """Ends the running phase (returned, parsed) and starts `name`."""
        with self.cond:
            start = len(self.lines)
        self.popen.stdin.write(("phase %s\n" % name).encode())
        self.popen.stdin.flush()
        _, ln = self.wait_line(lambda ln: ln.startswith("phase "), 30, "a phase report", start)
        return json.loads(ln[6:])

    def count(self):
        """Messages received in the running phase so far."""
        with self.cond:
            start = len(self.lines)
        self.popen.stdin.write(b"count\n")
        self.popen.stdin.flush()
        _, ln = self.wait_line(lambda ln: ln.startswith("count "), 30, "a count", start)
        return int(ln.split()[1])

    def settle(self, expected, quiet_s=1.0, timeout=60.0):
        """Waits until the phase has `expected` messages, or none arrived for
        quiet_s (the rest is lost), at most timeout. Returns the count."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while True:
            c = self.count()
            now = time.monotonic()
            if c >= expected or now - last_change >= quiet_s or now >= deadline:
                return c
            if c != last:
                last, last_change = c, now
            time.sleep(0.1)  # polling a counter of another process, with a deadline

    def quit(self):
        """Ends the last phase (returned) and the process."""
        with self.cond:
            start = len(self.lines)
        try:
            self.popen.stdin.write(b"quit\n")
            self.popen.stdin.close()
            _, ln = self.wait_line(lambda ln: ln.startswith("phase "), 30, "the last phase",
                                   start)
        finally:
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
            self.log.close()
        if self.popen.returncode != 0:
            with open(self.log.name, "rb") as f:
                err = f.read().decode(errors="replace")[-2000:]
            fail("bench_sub exited with status %d: %s" % (self.popen.returncode, err))
        return json.loads(ln[6:])

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        if not self.log.closed:
            self.log.close()


def run_bench_pub(port, args, timeout=600):
    """Runs tests/bench/bench_pub to the end; returns its JSON summary."""
    argv = [tool("bench_pub"), "--uri", "mqtt://127.0.0.1:%d" % port] + [str(a) for a in args]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        fail("bench_pub %s: status %d: %s" % (" ".join(argv[3:]), p.returncode,
                                               p.stderr.decode()[-500:]))
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def merge_hists(hists):
    """Merges bench_sub histograms ({"hist": [[ms, n], ...], "max": ..}); returns
    {"n", "p50", "p99", "max"} (nearest rank, 1 ms bins)."""
    bins = {}
    mx = None
    for h in hists:
        if not h:
            continue
        for v, c in h["hist"]:
            bins[v] = bins.get(v, 0) + c
        mx = h["max"] if mx is None else max(mx, h["max"])
    n = sum(bins.values())
    if not n:
        return {"n": 0, "p50": None, "p99": None, "max": None}

    def q(p):
        rank = max(1, int(-(-p * n // 100)))
        seen = 0
        for v in sorted(bins):
            seen += bins[v]
            if seen >= rank:
                return v if v < 10000 else mx
        return mx
    return {"n": n, "p50": q(50), "p99": q(99), "max": mx}


def family(phase, name):
    return (phase.get("families") or {}).get(name) or {}


# --- the machine -----------------------------------------------------------------

def proc_cpu_ticks():
    """pid -> (comm, utime+stime ticks) of every process right now."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        out[int(pid)] = (comm, int(fields[11]) + int(fields[12]))
    return out


def top_processes(before, after, seconds, n=8, exclude=()):
    """The n processes that used the most CPU between two proc_cpu_ticks()."""
    rows = []
    for pid, (comm, t1) in after.items():
        t0 = before[pid][1] if pid in before else 0  # started meanwhile: all of it
        used = 100.0 * (t1 - t0) / CLK_TCK / seconds
        if used >= 0.5 and pid not in exclude:
            rows.append((used, pid, comm))
    rows.sort(reverse=True)
    return rows[:n]


def machine_cpu():
    """(busy, steal, total) jiffies of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    idle = v[3] + v[4]
    total = sum(v[:8])
    return (total - idle, v[7], total)


class Snapshot:
    """The machine's and some processes' CPU at one instant (for per-phase figures)."""

    def __init__(self, procs):
        self.t = time.monotonic()
        self.machine = machine_cpu()
        self.procs = {}
        for name, pid in procs.items():
            try:
                self.procs[name] = ProcStat(pid).cpu_s()
            except OSError:
                self.procs[name] = 0.0

    def since(self, before):
        """CPU % (100 = one core) between two snapshots: machine busy, steal, ours
        (the processes named), others (busy - ours), and per process."""
        dt = self.t - before.t
        busy = self.machine[0] - before.machine[0]
        total = self.machine[2] - before.machine[2]
        ncpu = os.cpu_count() or 1
        # /proc/stat counts every CPU: scale to "% of one core" like the rest.
        scale = 100.0 * ncpu / total if total else 0.0
        per = {n: 100.0 * (self.procs[n] - before.procs.get(n, 0.0)) / dt for n in self.procs}
        ours = sum(per.values())
        return {"busy": busy * scale, "steal": (self.machine[1] - before.machine[1]) * scale,
                "ours": ours, "others": busy * scale - ours, "procs": per, "span_s": dt}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def thread_cpu(pid):
    """tid -> (thread name, CPU seconds) of every thread of pid."""
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/stat" % (base, tid)) as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def thread_cpu_pct(before, after, seconds):
    """[(name, tid, %)] of the threads between two thread_cpu() readings."""
    rows = []
    for tid, (name, s1) in after.items():
        s0 = before.get(tid, (name, 0.0))[1]
        rows.append((name, tid, 100.0 * (s1 - s0) / seconds))
    rows.sort(key=lambda r: -r[2])
    return rows


class Ctl:
    """A kept-open connection to one cuffsim's control socket (a line per command,
    a line per reply): cheaper than a connection per command at 100 spikes/s,
    and several can be written at one instant (send_all)."""

    def __init__(self, sim, timeout=30.0):
        import socket
        self.sim = sim
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(sim.control_path)
        self.buf = b""

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def reply(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                fail("cuffsim closed its control socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode("utf-8", "replace")
        if text.startswith("error:"):
            fail("cuffsim refused a command: %s" % text)
        return text

    def command(self, line):
        self.send(line)
        return self.reply()

    def stats(self):
        text = self.command("stats")
        return json.loads(text[3:] if text.startswith("ok ") else text)

    def close(self):
        self.sock.close()


def send_all(ctls, line, at_mono_s=None):
    """Writes line to every connection back to back (at time at_mono_s if given),
    then reads the replies. Returns the spread of the writes in ms."""
    if at_mono_s is not None:
        pause = at_mono_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # timing a command, not waiting for a condition
    t0 = time.monotonic()
    for c in ctls:
        c.send(line)
    spread = (time.monotonic() - t0) * 1000.0
    for c in ctls:
        c.reply()
    return spread
