#!/usr/bin/python3
"""gateway.realtime_priority: the event loop's thread as SCHED_FIFO
(gateway/src/realtime.h, docs/architecture.md "Threads and priorities").

- With the privilege (root here, or an RLIMIT_RTPRIO the test can give): the
  loop's thread (the main thread) is SCHED_FIFO at the configured priority,
  the publishing threads (Paho's send and receive threads and the client's
  sender, mqtt_publish) SCHED_BATCH: the loop takes none of their locks on
  its hot path and the two it shares inherit priority; every other thread
  (the store's) the normal policy (SCHED_RESET_ON_FORK),
  the gateway goes online, publishes telemetry and answers an over-limit
  sample with a DEFLATE (cuffsim's own latency measurement).
- Without it (CAP_SYS_NICE dropped, RLIMIT_RTPRIO 0): one warning that names
  the setting and the remedy, every thread at the normal policy (the
  publishing threads SCHED_BATCH, as always), and the
  gateway supervises exactly as well (online, telemetry, DEFLATE).
"""

import os
import resource
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that, fail, sim_cuffs, thread_sched, wait_until  # noqa: E402

PRIORITY = 5
SCHED_OTHER, SCHED_FIFO, SCHED_BATCH = 0, 1, 3
PUBLISHING = ("MQTTAsync_send", "MQTTAsync_rcv", "mqtt_publish")


def threads(pid):
    """{tid: (name, policy, rt_priority)} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            out[int(tid)] = (name,) + thread_sched(pid, int(tid))
        except FileNotFoundError:
            continue  # the thread ended meanwhile
    return out


def supervises(h, gw, col, sim, label):
    """Connected to the broker (Paho's threads placed), telemetry from the
    cuff since this gateway started, and a DEFLATE for an over-limit sample.
    (The collector saw the previous gateway's retained status: this one's
    own log line and its own telemetry tell that it is up.)"""
    since = time.monotonic()
    gw.wait_line(r"mqtt: connected to", 30)
    col.wait_for(lambda c: c.telemetry_cuffs(since), 30, "%s: telemetry" % label)
    sim.control("limit all 250")
    before = sim.stats()["latency"]["count"]
    sim.control("spike 1 280 60")
    wait_until(lambda: sim.stats()["latency"]["count"] > before, 10,
               "%s: a DEFLATE for the over-limit sample" % label, poll=0.05)
    lat = sim.stats()["cuffs"][0]["latency_us"][-1]
    print("  %s: over-limit sample -> DEFLATE %.2f ms" % (label, lat / 1000.0))


def main():
    suite = Suite("test_realtime")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(1)
        col = h.collector()
        conf = h.write_gateway_config(sim_cuffs(sim),
                                      gateway_extra="realtime_priority = %d;" % PRIORITY)
        root = os.geteuid() == 0
        rtprio_hard = resource.getrlimit(resource.RLIMIT_RTPRIO)[1]
        privileged = root or rtprio_hard == resource.RLIM_INFINITY or rtprio_hard >= PRIORITY

        def with_privilege():
            if not privileged:
                print("  skipped: not root and RLIMIT_RTPRIO %d < %d" % (rtprio_hard, PRIORITY))
                return
            argv = [h.binary("bfr-gateway"), "-c", conf]
            if not root:
                argv = ["prlimit", "--rtprio=%d" % PRIORITY, "--"] + argv
            gw = h.spawn("gateway-rt", argv)
            gw.wait_line(r"event loop: SCHED_FIFO, priority %d" % PRIORITY, 10)
            supervises(h, gw, col, sim, "SCHED_FIFO")
            ts = threads(gw.pid)
            main_name, main_policy, main_prio = ts[gw.pid]
            check_that(main_policy == SCHED_FIFO and main_prio == PRIORITY,
                       "loop thread policy %d priority %d" % (main_policy, main_prio))
            others = {t: v for t, v in ts.items() if t != gw.pid}
            names = sorted(v[0] for v in others.values())
            check_that(all(p in names for p in PUBLISHING),
                       "not every publishing thread %s among %s" % (PUBLISHING, names))
            for tid, (name, policy, prio) in others.items():
                if name in PUBLISHING:
                    # Never real-time: they would take the CPU from the
                    # broker and the cuffs' simulator, and the loop waits
                    # for none of them (mqtt_client.c).
                    check_that(policy == SCHED_BATCH and prio == 0,
                               "publishing thread %d (%s) policy %d priority %d"
                               % (tid, name, policy, prio))
                else:
                    check_that(policy == SCHED_OTHER and prio == 0,
                               "thread %d (%s) policy %d priority %d"
                               % (tid, name, policy, prio))
            print("  loop thread SCHED_FIFO %d; %s" % (main_prio, ", ".join(
                "%s %s" % (n, {0: "OTHER", 1: "FIFO %d" % pr, 3: "BATCH"}.get(p, p))
                for n, p, pr in sorted(others.values()))))
            gw.expect_exit = True
            check_that(gw.stop() == 0, "exit status on SIGTERM")

        suite.check("with the privilege: the loop SCHED_FIFO, the publishing threads "
                    "SCHED_BATCH, the rest normal; supervises",
                    with_privilege)

        def without_privilege():
            argv = ["prlimit", "--rtprio=0:0", "--", h.binary("bfr-gateway"), "-c", conf]
            if root:
                if not shutil.which("setpriv"):
                    fail("setpriv (util-linux) is needed to drop CAP_SYS_NICE")
                argv = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice",
                        "--"] + argv
            gw = h.spawn("gateway-normal", argv)
            m = gw.wait_line(r"gateway\.realtime_priority %d not applied \(([^)]*)\).*"
                             r"LimitRTPRIO=%d" % (PRIORITY, PRIORITY), 10)
            check_that(m.group(1) == "Operation not permitted", "reason %r" % m.group(1))
            supervises(h, gw, col, sim, "normal policy")
            for tid, (name, policy, prio) in threads(gw.pid).items():
                want = SCHED_BATCH if name in PUBLISHING else SCHED_OTHER
                check_that(policy == want, "thread %d (%s) policy %d" % (tid, name, policy))
            gw.expect_exit = True
            check_that(gw.stop() == 0, "exit status on SIGTERM")

        suite.check("without it: a warning naming the setting and the remedy, supervision "
                    "unchanged", without_privilege)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
