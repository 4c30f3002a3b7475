#!/usr/bin/python3
"""Transports and discovery end to end: the gateway finds every handle by UUID
(cuffsim lays its handles out shifted), and a BLE cuff on a kernel without
Bluetooth gets a clear error in its retained state while the simulated cuffs
carry on (DESIGN section 3, "Transports")."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs  # noqa: E402

BLE_ID = "ble-arm"


def main():
    suite = Suite("test_transports")
    with suite.harness() as h:
        h.start_broker()
        # 37 filler handles before the BFR service: nothing may be hard-coded.
        sim = h.start_cuffsim(2, args=["--handle-shift", "37"])
        col = h.collector()
        cuffs = sim_cuffs(sim) + [{"id": BLE_ID, "address": "C4:7F:51:00:12:9A",
                                   "limb": "arm"}]
        ids = {c["id"] for c in cuffs if c["id"] != BLE_ID}
        h.start_gateway(h.write_gateway_config(cuffs))

        def shifted_handles():
            col.wait_for(lambda c: c.telemetry_cuffs() >= ids, 20,
                         "telemetry from both shifted-handle cuffs")
            for i in sorted(ids):
                col.wait_for(lambda c, i=i: (c.latest_payload("cuff/%s/state" % i) or {})
                             .get("link") == "connected", 10, "%s connected" % i)
            for cs in sim.stats()["cuffs"]:
                check_that(cs["malformed_pdus"] == 0,
                           "cuff %s got %d malformed PDUs" % (cs["cuff"], cs["malformed_pdus"]))
                # Control point and supervision were found through the shift.
                check_that(cs["cp_writes"]["set_supervision"] >= 1 and
                           cs["supervision_writes"] >= 1,
                           "cuff %s: no supervision set-up/keepalive: %r" % (cs["cuff"], cs))

        suite.check("discovery by UUID with shifted handles", shifted_handles)

        def ble_error():
            def ble_state(c):
                return c.latest_payload("cuff/%s/state" % BLE_ID) or {}

            col.wait_for(lambda c: ble_state(c).get("link") == "error", 20,
                         "the BLE cuff's state to say link error")
            err = ble_state(col).get("link_error") or ""
            check_that("Bluetooth" in err or "AF_BLUETOOTH" in err,
                       "link_error does not explain the missing Bluetooth: %r" % err)
            status = col.latest_payload("status") or {}
            check_that(status.get("state") == "online", "gateway not online: %r" % status)
            before = len(col.select("telemetry"))
            col.wait_for(lambda c: len(c.select("telemetry")) >= before + 10, 10,
                         "telemetry of the sim cuffs to keep flowing")
            check_that(not col.select("telemetry", topic=PREFIX + "/cuff/%s/telemetry" % BLE_ID),
                       "telemetry for a cuff that never connected")

        suite.check("BLE cuff without kernel Bluetooth: clear error, others carry on", ble_error)
    sys.exit(suite.finish())


if __name__ == "__main__":
    main()
