#!/usr/bin/python3
"""bench_command_flood: safety reaction latency while a client floods cmd/ (SR-28).

Run (from the repository root, Release build):

    BFR_BUILD_DIR=$PWD/build-release /usr/bin/python3 tests/bench/bench_command_flood.py \
        [--cuffs N] [--rate CMDS_PER_S] [--seconds S]

One system (mosquitto, cuffsim --cuffs N --rate 50, gateway). Half the cuffs
run sessions (continuous, inflated); the other half are spiked one at a time
(`spike CUFF 280 60`: over the 250 mmHg ceiling for 3 samples), and cuffsim
measures each over-limit sample -> DEFLATE latency (docs/cuffsim.md). Two
phases of the same length in the same run:
  quiet   no flood (the reference);
  flood   a separate process publishes invalid commands (`{not json`, QoS 0,
          Response Topic under reply/) at CMDS_PER_S from one client.
Reported per phase: latency p50 / p99 / max, the gateway's CPU, and after the
flood: the sessions' state (none may have ended, no telemetry_lost), and the
refusals the flooder received by code. Target (issue 8): at 5 000 invalid
commands/s the p99 stays under 2 ms and no session is disturbed.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

SPIKE_MMHG = 280
SPIKE_MS = 60
LIMIT = 250

FLOODER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
port, prefix, rate, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
codes = {}
def on_message(c, u, m):
    try:
        code = json.loads(m.payload)["error"]["code"]
    except Exception:
        code = "?"
    codes[code] = codes.get(code, 0) + 1
c = mqtt.Client(client_id="flooder", protocol=mqtt.MQTTv5)
c.on_message = on_message
c.connect("127.0.0.1", port, keepalive=60)
c.subscribe(prefix + "/reply/flood/#", qos=0)
c.loop_start()
props = Properties(PacketTypes.PUBLISH)
props.ResponseTopic = prefix + "/reply/flood/x"
t0 = time.monotonic()
n = 0
while True:
    now = time.monotonic()
    if now - t0 >= seconds:
        break
    due = int((now - t0) * rate)
    while n < due:
        c.publish(prefix + "/cmd/session/start", b"{not json", qos=0, properties=props)
        n += 1
    time.sleep(0.002)  # pacing the load generator
time.sleep(2.0)  # late replies
c.loop_stop()
print(json.dumps({"sent": n, "seconds": time.monotonic() - t0, "replies": codes}))
"""


def lat_count(sim):
    return sim.stats()["latency"]["count"]


def spikes(sim, cuffs, seconds, rate_hz=20.0):
    """Rotating spikes over `cuffs` for `seconds`; returns the latencies (us)."""
    before = lat_count(sim)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        due = t0 + i / rate_hz
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)  # pacing the load generator
        sim.control("spike %d %d %d" % (cuffs[i % len(cuffs)], SPIKE_MMHG, SPIKE_MS))
        i += 1
    deadline = time.monotonic() + 30
    while lat_count(sim) < before + i:
        if time.monotonic() > deadline:
            B.fail("%d measurements for %d spikes" % (lat_count(sim) - before, i))
        time.sleep(0.2)  # polling a counter nobody can signal, with a deadline
    per = -(-i // len(cuffs))
    if per > 32:
        B.fail("too many spikes per cuff for cuffsim's per-cuff history")
    st = sim.stats()
    vals = []
    for c in st["cuffs"]:
        if c["cuff"] in cuffs:
            vals.extend(c["latency_us"][-per:])
    return vals[-i:]


def start_sessions(h, sub, cuffs):
    """Long continuous sessions on cuffs (ids 1-based); returns their ids."""
    import paho.mqtt.client as mqtt
    ids = []
    cl = mqtt.Client(client_id="bench-clinician", protocol=mqtt.MQTTv5)
    cl.connect("127.0.0.1", h.broker.port, keepalive=60)
    cl.loop_start()
    for i in cuffs:
        plan = {"exercises": [{"name": "hold", "cuffs": ["cuff-%02d" % i], "pct_lop": 50,
                               "mode": "continuous", "sets": [100], "tempo_s": [1, 1],
                               "rest_s": 0, "reperfusion_s": 60}]}
        cl.publish(B.PREFIX + "/cmd/session/start",
                   json.dumps({"request_id": "bench-%d" % i, "plan": plan}), qos=1)
        ids.append("bench-%d" % i)
    cl.loop_stop()
    cl.disconnect()
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuffs", type=int, default=20)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    info = B.require_release()
    B.hr("bench_command_flood (build %s, %s)" % (B.harness.BUILD_DIR,
                                                 info.get("CMAKE_BUILD_TYPE")))
    print("machine: load average %s" % open("/proc/loadavg").read().split()[:3], flush=True)
    h = B.Harness("bench-flood")
    try:
        sysd = B.start_system(h, args.cuffs)
        sim, gw, sub = sysd["sim"], sysd["gw"], sysd["sub"]
        sim.control("limit all %d" % LIMIT)
        half = args.cuffs // 2
        session_cuffs = list(range(1, half + 1))
        spike_cuffs = list(range(half + 1, args.cuffs + 1))
        start_sessions(h, sub, session_cuffs)
        # inflated and holding (LOP search, then the ramp)
        deadline = time.monotonic() + 90
        while True:
            st = sim.stats()
            held = [c for c in st["cuffs"] if c["cuff"] in session_cuffs and
                    c["true_pressure"] > 60]
            if len(held) == len(session_cuffs):
                break
            if time.monotonic() > deadline:
                B.fail("only %d of %d session cuffs inflated" % (len(held), len(session_cuffs)))
            time.sleep(0.5)  # polling cuffsim, with a deadline
        cpu = B.CpuWindow({"gateway": gw.pid})
        cpu.start()
        quiet = spikes(sim, spike_cuffs, args.seconds)
        cpu_quiet = cpu.stop()
        flood = subprocess.Popen([sys.executable, "-c", FLOODER, str(h.broker.port), B.PREFIX,
                                  str(args.rate), str(args.seconds)],
                                 stdout=subprocess.PIPE)
        cpu.start()
        loud = spikes(sim, spike_cuffs, args.seconds)
        cpu_flood = cpu.stop()
        out, _ = flood.communicate(timeout=args.seconds + 60)
        fl = json.loads(out)
        st = sim.stats()
        deflated = [c["cuff"] for c in st["cuffs"] if c["cuff"] in session_cuffs and
                    c["true_pressure"] < 20]
        rows = []
        for name, v, c in (("quiet", quiet, cpu_quiet), ("flood", loud, cpu_flood)):
            rows.append([name, len(v), "%.3f" % (B.pct(v, 50) / 1000),
                         "%.3f" % (B.pct(v, 99) / 1000), "%.3f" % (max(v) / 1000),
                         "%.0f %%" % c["gateway"]])
        B.hr("safety latency with and without %.0f invalid commands/s (%d cuffs, %d in sessions)"
             % (args.rate, args.cuffs, half))
        B.table(["phase", "spikes", "p50 ms", "p99 ms", "max ms", "gateway CPU"], rows)
        print("flood: %d commands in %.1f s (%.0f/s); replies by code: %s" %
              (fl["sent"], fl["seconds"], fl["sent"] / fl["seconds"], fl["replies"]))
        print("sessions: %d of %d cuffs still inflated after the flood%s" %
              (half - len(deflated), half,
               "" if not deflated else " (DEFLATED: %s)" % deflated))
        print("machine: load average %s" % open("/proc/loadavg").read().split()[:3])
        return 0 if not deflated else 1
    finally:
        h.teardown()


if __name__ == "__main__":
    sys.exit(main())
