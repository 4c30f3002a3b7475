#!/usr/bin/python3
"""Cuff links come and go: when cuffsim stops (SIGTERM) every cuff's state
leaves 'connected' while the gateway stays online; when cuffsim starts again on
the same directory the gateway reconnects by itself and telemetry resumes."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that, sim_cuffs  # noqa: E402

CUFFS = 4
START_S = 20.0
LINK_DOWN_S = 5.0   # link loss noticed (socket closed by the peer)
RECONNECT_S = 45.0  # jittered exponential backoff, capped


def main():
    suite = Suite("test_reconnect")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(CUFFS)
        col = h.collector()
        cuffs = sim_cuffs(sim)
        ids = {c["id"] for c in cuffs}
        gw = h.start_gateway(h.write_gateway_config(cuffs))
        col.wait_for(lambda c: c.telemetry_cuffs() >= ids, START_S + 15,
                     "telemetry from every cuff before the test")

        def sim_gone():
            t0 = time.monotonic()
            sim.stop()
            col.wait_for(lambda c: set(c.cuff_links(t0)) >= ids and
                         all(v in ("disconnected", "connecting", "error")
                             for v in c.cuff_links(t0).values()),
                         LINK_DOWN_S, "every cuff link to leave 'connected'")
            print("  links down after %.2f s: %s" % (time.monotonic() - t0, col.cuff_links(t0)))
            check_that(gw.alive(), "gateway exited when its cuffs went away")
            check_that((col.latest_payload("status") or {}).get("state") == "online",
                       "gateway status is not online while cuffs are gone")

        suite.check("cuffsim stopped: every cuff link leaves connected, gateway online", sim_gone)

        def sim_back():
            t0 = time.monotonic()
            h.start_cuffsim(CUFFS, directory=sim.dir)
            links = col.wait_for(lambda c: (lambda l: l if set(l) >= ids and
                                            all(v == "connected" for v in l.values())
                                            else None)(c.cuff_links(t0)),
                                 RECONNECT_S, "every cuff connected again")
            print("  reconnected after %.2f s: %s" % (time.monotonic() - t0, sorted(links)))
            t1 = time.monotonic()
            col.wait_for(lambda c: c.telemetry_cuffs(t1) >= ids, 10,
                         "telemetry from every cuff after the reconnect")
            col.assert_valid()

        suite.check("cuffsim restarted on the same dir: reconnect by itself, telemetry resumes",
                    sim_back)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
