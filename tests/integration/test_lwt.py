#!/usr/bin/python3
"""The gateway's Last Will: a hung gateway (SIGSTOP) is reported offline by the
broker within 1.5 x keepalive, and comes back online by itself after SIGCONT;
a killed gateway (SIGKILL) leaves a retained, valid status offline; a restart
on the same data directory is online again and re-publishes cuff state."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import KEEPALIVE_S, PREFIX, Suite, check_that, sim_cuffs  # noqa: E402

CUFFS = 2
START_S = 20.0
MARGIN_S = 5.0


def status_is(state, since=0.0):
    def pred(c):
        return any(m.payload and m.payload.get("state") == state
                   for m in c.select("status", since))
    return pred


def main():
    suite = Suite("test_lwt")
    with suite.harness() as h:
        broker = h.start_broker()
        sim = h.start_cuffsim(CUFFS)
        col = h.collector()
        cuffs = sim_cuffs(sim)
        config = h.write_gateway_config(cuffs)
        gw = h.start_gateway(config)
        col.wait_for(status_is("online"), START_S, "status online")

        def hang():
            t0 = time.monotonic()
            gw.send_signal(signal.SIGSTOP)
            try:
                limit = KEEPALIVE_S * 1.5 + MARGIN_S
                col.wait_for(status_is("offline", t0), limit,
                             "status offline from the Last Will of a hung gateway")
                print("  hung -> offline after %.1f s (keepalive %.0f s)" %
                      (time.monotonic() - t0, KEEPALIVE_S))
            finally:
                gw.send_signal(signal.SIGCONT)
            t1 = time.monotonic()
            col.wait_for(status_is("online", t1), START_S + 30,
                         "status online again after SIGCONT (automatic reconnect)")
            print("  resumed -> online after %.1f s" % (time.monotonic() - t1))

        suite.check("hung gateway: offline within keepalive x 1.5, online after resuming", hang)

        def killed():
            check_that(gw.alive(), "gateway died")
            t0 = time.monotonic()
            gw.kill()
            col.wait_for(status_is("offline", t0), KEEPALIVE_S * 1.5 + MARGIN_S,
                         "status offline from the Last Will of a killed gateway")
            print("  SIGKILL -> offline after %.2f s" % (time.monotonic() - t0))
            got = h.retained(PREFIX + "/status")
            check_that(PREFIX + "/status" in got, "no retained status after the Last Will")
            st = json.loads(got[PREFIX + "/status"])
            check_that(st["state"] == "offline", "retained status is %r" % st["state"])
            errs = h.validator.errors("status", got[PREFIX + "/status"])
            check_that(not errs, "retained Last Will invalid: %s" % errs)

        suite.check("SIGKILL: retained status offline via the Last Will", killed)

        def restarted():
            t0 = time.monotonic()
            h.start_gateway(config)
            col.wait_for(status_is("online", t0), START_S, "status online after a restart")
            ids = {c["id"] for c in cuffs}
            col.wait_for(lambda c: set(c.cuff_links(t0)) >= ids, START_S,
                         "cuff state re-published for every cuff")
            got = h.retained(PREFIX + "/status")
            check_that(json.loads(got[PREFIX + "/status"])["state"] == "online",
                       "retained status not online after restart")
            col.assert_valid()

        suite.check("restart on the same data_dir: online again, cuff state re-published",
                    restarted)
        check_that(broker.proc.alive(), "broker died")
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
