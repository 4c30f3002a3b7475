#!/usr/bin/python3
"""20+ broker restarts on the same port in one gateway run (DESIGN section 6:
"On every (re)connect the gateway re-publishes its retained state").

After each restart the broker holds no retained messages (no persistence), so
a retained status "online" and a retained cuff-state per cuff, received after
that restart, can only come from the gateway re-publishing them. The
gateway's resident memory (VmRSS) is sampled after restart 5 and after the
last: it must not keep growing with reconnects (a modest allowance for
allocator and sanitizer noise). At the end the gateway gets SIGTERM and must
exit 0: under ASan/LSan a leak (of ours or Paho's reconnect path, paho.mqtt.c
#1689) makes it exit non-zero."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs  # noqa: E402

CUFFS = 2
RESTARTS = 20
START_S = 30.0
RECONNECT_S = 20.0       # broker back -> retained state again (gateway backoff from 1 s, jittered)
RSS_ALLOWANCE_KIB = 8192  # growth allowed between restart 5 and restart 20


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def main():
    suite = Suite("test_broker_restarts")
    with suite.harness() as h:
        broker = h.start_broker()
        sim = h.start_cuffsim(CUFFS)
        col = h.collector(reconnect_max_s=0.5)
        cuffs = sim_cuffs(sim)
        ids = {c["id"] for c in cuffs}
        gw = h.start_gateway(h.write_gateway_config(cuffs))
        col.wait_for(lambda c: set(c.cuff_links()) >= ids and
                     all(v == "connected" for v in c.cuff_links().values()), START_S,
                     "every cuff connected")
        rss = {}

        def restarts():
            times = []
            for i in range(1, RESTARTS + 1):
                broker.restart()
                t0 = time.monotonic()

                def republished(c):
                    st = [m for m in c.select("status", t0) if m.payload]
                    online = any(m.payload["state"] == "online" for m in st)
                    cs = {m.payload["cuff"] for m in c.select("cuff-state", t0) if m.payload}
                    return online and cs >= ids

                col.wait_for(republished, RECONNECT_S,
                             "status online and every cuff-state after broker restart %d" % i)
                times.append(time.monotonic() - t0)
                check_that(gw.alive(), "gateway died at restart %d" % i)
                if i in (5, RESTARTS):
                    rss[i] = vm_rss_kib(gw.pid)
            # What the broker holds now came from the gateway after the last restart.
            got = h.retained(PREFIX + "/#")
            st = json.loads(got.get(PREFIX + "/status", b"{}") or b"{}")
            check_that(st.get("state") == "online", "retained status after the last restart: %r"
                       % st)
            for cid in sorted(ids):
                topic = "%s/cuff/%s/state" % (PREFIX, cid)
                check_that(topic in got, "no retained %s after the last restart" % topic)
                check_that(json.loads(got[topic])["link"] == "connected",
                           "%s: %s" % (topic, got[topic]))
            times.sort()
            print("  %d restarts: state re-published after median %.2f s, max %.2f s"
                  % (RESTARTS, times[len(times) // 2], times[-1]))

        suite.check("%d broker restarts on the same port: status online and cuff state "
                    "re-published after each" % RESTARTS, restarts)

        def memory():
            check_that(5 in rss and RESTARTS in rss, "no RSS samples: %s" % rss)
            growth = rss[RESTARTS] - rss[5]
            print("  VmRSS after restart 5: %d KiB, after restart %d: %d KiB (%+d KiB)"
                  % (rss[5], RESTARTS, rss[RESTARTS], growth))
            check_that(growth <= RSS_ALLOWANCE_KIB,
                       "VmRSS grew by %d KiB over %d restarts (allowed %d)"
                       % (growth, RESTARTS - 5, RSS_ALLOWANCE_KIB))

        suite.check("no memory growth across restarts (VmRSS)", memory)

        def clean_exit():
            gw.expect_exit = True  # judged here, not again at teardown
            rc = gw.stop(timeout=20)
            check_that(rc == 0, "gateway exited with %s on SIGTERM (a LeakSanitizer report?):\n%s"
                       % (rc, gw.log_tail(60)))
            col.assert_valid()

        suite.check("SIGTERM after the restarts: exit 0 (no leak under LeakSanitizer)",
                    clean_exit)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
