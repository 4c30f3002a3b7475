#!/usr/bin/python3
"""Every one of 100 cuffs over the ceiling in the same sample period (cuffsim
`spike all`), end to end: each cuff gets its DEFLATE; each raises its
over_pressure_ceiling alarm, and all 100 records reach the broker once, in
the order they were raised; each cuff's state lists its alarm. What follows
a burst goes out a batch per turn of the loop (alarm records
ALARMS_FLUSH_BATCH = 64, cuff states REPORTER_STATE_BATCH = 64: 100 needs
two of each), so this is the test that the batching loses and reorders
nothing; tests/unit/wiring/test_batches.c checks the batch size itself,
docs/benchmarks.md what it does for the last DEFLATE of a burst.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that, cuff_alarms_active, sim_cuffs, wait_until  # noqa: E402

CUFFS = 100


def main():
    suite = Suite("test_burst_many_cuffs")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(CUFFS)
        col = h.collector()
        # One telemetry message a second per cuff: the collector validates
        # every payload, and the burst is what is measured here.
        gw = h.start_gateway(h.write_gateway_config(sim_cuffs(sim), telemetry_hz=1))
        ids = ["cuff-%02d" % i for i in range(1, CUFFS + 1)]

        def all_connected():
            col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online",
                         30, "status online")
            col.wait_for(lambda c: all(c.cuff_links().get(i) == "connected" for i in ids), 60,
                         "all %d cuffs connected" % CUFFS)
            # Supervised and streaming: what makes a spike measurable.
            wait_until(lambda: all(c["samples_sent"] > 0 and
                                   c["cp_writes"]["set_supervision"] > 0
                                   for c in sim.stats()["cuffs"]), 30,
                       "every cuff supervised and streaming", poll=0.1)

        suite.check("100 cuffs connected and streaming", all_connected)

        def burst():
            sim.control("limit all 250")
            before = sim.stats()["latency"]["count"]
            since = col.select()[-1].t if col.select() else 0.0
            sim.control("spike all 280 60")
            st = wait_until(lambda: (lambda s: s if s["latency"]["count"] >= before + CUFFS
                                     else None)(sim.stats()), 20,
                            "a DEFLATE for each of the %d cuffs" % CUFFS, poll=0.1)
            lat = sorted(c["latency_us"][-1] for c in st["cuffs"])
            print("  over-limit sample -> DEFLATE: median %.2f ms, last %.2f ms (%d cuffs)" %
                  (lat[len(lat) // 2] / 1000.0, lat[-1] / 1000.0, len(lat)))

            # The raise itself: 60 ms later the spike is over and each alarm
            # is published again, still active (latched) with
            # condition_present false; whether those have arrived yet is
            # timing, so they are not counted here.
            def raised():
                return [m.payload for m in col.select("alarm", since)
                        if m.payload and m.payload["code"] == "over_pressure_ceiling"
                        and m.payload["state"] == "active" and m.payload["condition_present"]]
            col.wait_for(lambda c: len({p["cuff"] for p in raised()}) == CUFFS, 20,
                         "an over_pressure_ceiling record from each cuff")
            recs = raised()
            check_that(len(recs) == CUFFS, "%d records for %d cuffs" % (len(recs), CUFFS))
            seqs = [int(p["alarm_id"].rsplit("-", 1)[1]) for p in recs]
            check_that(seqs == sorted(seqs), "records out of raise order: %s" % seqs)
            alarm_of = {p["cuff"]: p["alarm_id"] for p in recs}
            col.wait_for(lambda c: all(alarm_of[i] in (cuff_alarms_active(c, i) or [])
                                       for i in ids), 20,
                         "every cuff's state lists its alarm")
            check_that(gw.alive(), "gateway exited")
            col.assert_valid()

        suite.check("spike all: 100 DEFLATEs, 100 records in raise order, 100 states",
                    burst)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
