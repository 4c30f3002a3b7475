#!/usr/bin/python3
"""bench_smoke: a short run of each benchmark tool, so that none of them rots.

ctest runs it (label bench-smoke) with one argument, the tool:

    bench_pub              bench_pub's telemetry (paced) and outbox modes, each
                           counted by bench_sub: nothing lost, latencies measured
    bench_sub              bench_sub's own logic against messages made here:
                           families, link states and --expect-cuffs, sample gaps
                           and reordering, bad JSON, a missing ts, sample age
    bench_scale            bench_scale.py with 4 cuffs on 2 cuffsim instances
    bench_safety_latency   bench_safety_latency.py with 4 cuffs on 2 instances
    bench_recv             bench_recv, every mode on 20 sockets, and its
                           refusal of a bad argument

No figure is judged here (they depend on the machine and on the sanitizers
of the test build); what is checked is that the tools run and count right.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"


def smoke_bench_pub(suite):
    with suite.harness() as h:
        broker = h.start_broker(extra="".join(ln + "\n" for ln in B.production_broker_lines()))
        epoch = int(time.time() * 1000) - 5000
        sub = B.BenchSub(h, broker.port, ["bfr/v1/bench/pub/#"], epochs={"p": epoch})
        try:
            def telemetry():
                sub.phase("telemetry")
                r = B.run_bench_pub(broker.port, ["--topics", 50, "--rate", 10,
                                                  "--duration", 1, "--epoch-ms", epoch])
                B.harness.check_that(abs(r["sent"] - 500) <= 5 and r["refused"] == 0
                                     and r["failed"] == 0 and r["completed"] == r["sent"],
                                     "bench_pub telemetry: %r" % r)
                sub.settle(r["completed"], quiet_s=2)
                f = B.family(sub.phase("outbox"), "cuff/+/telemetry")
                B.harness.check_that(f.get("msgs") == r["completed"],
                                     "bench_sub got %s of %d" % (f.get("msgs"), r["completed"]))
                B.harness.check_that(f["samples"] == 5 * r["completed"], "samples %r" % f)
                B.harness.check_that(f["lat_ms"]["n"] == f["msgs"] and
                                     f["age_ms"]["n"] == f["msgs"], "latencies %r" % f)
                # bench_pub's newest sample is its composition time: age ~ latency.
                B.harness.check_that(0 <= f["age_ms"]["p50"] < 1000, "age %r" % f["age_ms"])
            suite.check("bench_pub telemetry: 50 topics x 10 Hz x 1 s, all counted", telemetry)

            def outbox():
                r = B.run_bench_pub(broker.port, ["--mode", "outbox", "--count", 2000,
                                                  "--duration", 0, "--topics", 10])
                B.harness.check_that(r["completed"] == 2000 and r["window"] == 256 and
                                     r["qos"] == 1 and r["achieved_msgs_s"] > 0,
                                     "bench_pub outbox: %r" % r)
                sub.settle(2000, quiet_s=2)
                f = B.family(sub.quit(), "session/+/event")
                B.harness.check_that(f.get("msgs") == 2000, "bench_sub events %r" % f)
            suite.check("bench_pub outbox: 2000 QoS 1 messages, 256 in flight", outbox)
        finally:
            sub.kill()


def publish_all(port, msgs):
    """Publishes (topic, payload) in order at QoS 1 from one client."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(client_id="smoke-pub", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        for topic, payload in msgs:
            c.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def smoke_bench_sub(suite):
    with suite.harness() as h:
        broker = h.start_broker()
        now = int(time.time() * 1000)
        epoch = now - 10000
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now / 1000)) + ".%03dZ" % (now % 1000)
        sub = B.BenchSub(h, broker.port, [B.PREFIX + "/#"], epochs={"x": epoch},
                         expect_cuffs=2, sample_period_ms=20)
        P = B.PREFIX

        def state(cuff, link):
            return (P + "/cuff/%s/state" % cuff,
                    json.dumps({"v": 1, "ts": ts, "cuff": cuff, "link": link}))

        def tele(cuff, first, n=5):
            return (P + "/cuff/%s/telemetry" % cuff,
                    json.dumps({"v": 1, "ts": ts, "cuff": cuff,
                                "samples": [[first + 20 * i, 1.0, 0.0, 0.0] for i in range(n)]}))
        try:
            def links():
                publish_all(broker.port, [state("x1", "connected"), state("x2", "connecting")])
                B.harness.check_that(sub.settle(2, quiet_s=2) == 2, "two states")
                with sub.cond:
                    B.harness.check_that(not any(ln and ln.startswith("connected ")
                                                 for ln in sub.lines),
                                         "connected reported with 1 of 2 cuffs")
                publish_all(broker.port, [state("x2", "connected")])
                ms = sub.connected_wall_ms(10)
                B.harness.check_that(abs(ms - time.time() * 1000) < 10000, "time %d" % ms)
            suite.check("bench_sub: 'connected 2' once both cuffs are connected", links)

            def telemetry():
                sub.phase("telemetry")
                publish_all(broker.port, [
                    tele("x1", 100), tele("x1", 200),  # contiguous
                    tele("x1", 340),                   # 300 and 320 missing
                    tele("x1", 400, 2),                # overlaps 420: out of order
                    (P + "/cuff/x1/telemetry", "not json"),
                    (P + "/alarm/A1", json.dumps({"v": 1, "cuff": "x1"})),  # no ts
                    (P + "/reply/v5/abc", json.dumps({"v": 1, "ts": ts})),
                    (P + "/status", json.dumps({"v": 1, "ts": ts})),
                ])
                sub.settle(8, quiet_s=2)
                ph = sub.phase("end")
                f = ph["families"]
                B.harness.check_that(sorted(f) == ["alarm/+", "cuff/+/telemetry", "reply/#",
                                                   "status"], "families %s" % sorted(f))
                t = f["cuff/+/telemetry"]
                B.harness.check_that(t["msgs"] == 5 and t["bad_json"] == 1 and
                                     t["samples"] == 17, "telemetry %r" % t)
                B.harness.check_that(ph["samples_missing"] == 2 and
                                     ph["samples_out_of_order"] == 1, "gaps %r" % ph)
                B.harness.check_that(f["alarm/+"]["no_ts"] == 1, "alarm %r" % f["alarm/+"])
                # Newest samples 180, 280, 420, 420 ms after the epoch, 10 s ago.
                age = t["age_ms"]
                B.harness.check_that(age["n"] == 4 and 9000 < age["p50"] < 20000,
                                     "age %r" % age)
                B.harness.check_that(ph["cuffs"]["with_telemetry"] == 1 and
                                     ph["cuffs"]["connected"] == 2, "cuffs %r" % ph["cuffs"])
            suite.check("bench_sub: families, sample gaps, bad JSON, no ts, sample age",
                        telemetry)
        finally:
            sub.kill()


def run_script(suite, argv, check):
    def go():
        p = subprocess.run([PY] + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=100)
        text = p.stdout.decode(errors="replace")
        if p.returncode != 0:
            B.fail("status %d:\n%s" % (p.returncode, text[-3000:]))
        check(text)
    suite.check(" ".join(os.path.basename(a) for a in argv[:2]) + " ...", go)


def smoke_bench_scale(suite):
    out = tempfile.mktemp(prefix="bench-scale-", suffix=".json")

    def check(text):
        with open(out) as f:
            r = json.load(f)[0]
        os.unlink(out)
        gw, ref = r["gw"], r["ref"]
        B.harness.check_that(gw["instances"] == [2, 2], "instances %r" % gw["instances"])
        B.harness.check_that(gw["cuffs_with_telemetry"] == 4 and gw["ingested_s"] > 0 and
                             gw["tel_msgs_s"] > 0 and gw["t_supervised_s"] > 0,
                             "gateway figures %r" % gw)
        B.harness.check_that(ref["paced"]["lost"] == 0 and
                             ref["outbox"]["pub"]["completed"] == 500, "reference %r" % ref)
        B.harness.check_that("| cuffs |" in text, "no summary table")
    run_script(suite, [os.path.join(HERE, "bench_scale.py"), "4", "--per-instance", "2",
                       "--window", "1.5", "--warmup", "0.5", "--ref-window", "1",
                       "--outbox-count", "500", "--json", out], check)


def smoke_bench_safety_latency(suite):
    def check(text):
        rows = [ln for ln in text.splitlines() if ln.startswith("|     4 |")]
        B.harness.check_that(len(rows) == 4, "rows:\n%s" % text[-2000:])
        B.harness.check_that("cuffsim instances [2, 2]" in text, text[-2000:])
    run_script(suite, [os.path.join(HERE, "bench_safety_latency.py"), "4", "--per-instance",
                       "2", "--measurements", "8", "--burst-rounds", "1",
                       "--burst-target-ms", "1000", "--round-gap-ms", "1000"], check)


def smoke_bench_recv(suite):
    tool = os.path.join(os.environ["BFR_BUILD_DIR"], "bench_recv")

    def modes():
        argv = [tool, "--sockets", "20", "--rounds", "3"]
        for m in ["recv", "recvmmsg", "et-drain", "recv"]:
            argv += ["--mode", m]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        text = p.stdout.decode(errors="replace")
        B.harness.check_that(p.returncode == 0, "status %d:\n%s" % (p.returncode, text))
        runs = [ln.split() for ln in text.splitlines() if "median" not in ln]
        B.harness.check_that([r[0] for r in runs] == ["recv", "recvmmsg", "et-drain", "recv"],
                             "runs:\n%s" % text)
        # One PDU per socket, all written before the clock starts: one poll
        # finds every socket ready, the next finds nothing, in every mode.
        B.harness.check_that(all(float(r[1]) > 0 and int(r[2]) == 2 * 3 for r in runs), text)
        medians = [ln.split()[0] for ln in text.splitlines() if " median " in ln]
        B.harness.check_that(medians == ["recv", "recvmmsg", "et-drain"], "medians:\n%s" % text)
    suite.check("bench_recv: every mode takes every PDU", modes)

    def refusal():
        p = subprocess.run([tool, "--mode", "select"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        err = p.stderr.decode(errors="replace")
        B.harness.check_that(p.returncode == 2 and "--mode" in err and "select" in err,
                             "status %d, stderr %r" % (p.returncode, err))
    suite.check("bench_recv refuses an unknown mode, naming it", refusal)


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    fn = {"bench_pub": smoke_bench_pub, "bench_sub": smoke_bench_sub,
          "bench_scale": smoke_bench_scale,
          "bench_safety_latency": smoke_bench_safety_latency,
          "bench_recv": smoke_bench_recv}.get(which)
    if not fn:
        sys.stderr.write("usage: bench_smoke.py bench_pub|bench_sub|bench_scale|"
                         "bench_safety_latency|bench_recv\n")
        return 2
    suite = B.harness.Suite("bench_smoke " + which)
    fn(suite)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
