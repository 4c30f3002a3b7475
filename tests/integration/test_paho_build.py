#!/usr/bin/python3
"""The start-up names a Paho build that keeps its debugging heap tracking,
at a site large enough for it to matter (gateway.c LARGE_SITE_CUFFS,
mqtt_client_paho_tracks_heap(), docs/operations.md "Large sites").

Paho exports Heap_get_info only when it is built without
PAHO_HIGH_PERFORMANCE, as Debian 12 builds it. The test looks in the library
the running gateway has mapped (/proc/PID/maps), not in its own guess of it,
so it expects the warning with Debian's Paho and no warning with a build
without heap tracking (LD_LIBRARY_PATH, as docs/operations.md describes).

- 500 cuffs configured: the warning iff that library tracks its heap; the
  gateway supervises all 500 either way.
- 499 cuffs: no warning, whatever the library.
"""

import ctypes
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that, fail, sim_cuffs  # noqa: E402

LARGE = 500          # gateway.c LARGE_SITE_CUFFS
START_S = 60.0       # 500 simulated cuffs under the sanitizers
WARNING = r"mqtt: the Paho library loaded here keeps its debugging heap tracking"


def loaded_paho(pid):
    """Path of the libpaho-mqtt3as the process has mapped."""
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            path = line.split()[-1]
            if "libpaho-mqtt3as" in os.path.basename(path):
                return path
    fail("pid %d has no libpaho-mqtt3as mapped" % pid)


def tracks_heap(path):
    return hasattr(ctypes.CDLL(path), "Heap_get_info")


def main():
    suite = Suite("test_paho_build")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(LARGE)
        cuffs = sim_cuffs(sim)
        check_that(len(cuffs) == LARGE, "cuffsim serves %d cuffs" % len(cuffs))

        def run(n, name):
            conf = h.write_gateway_config(cuffs[:n], name="%s.conf" % name,
                                          data_dir=os.path.join(h.tmp, name))
            gw = h.spawn(name, [h.binary("bfr-gateway"), "-c", conf])
            gw.wait_line(r"supervising %d cuffs" % n, START_S)
            gw.wait_line(r"mqtt: connected to", START_S)
            lib = loaded_paho(gw.pid)
            warned = any(WARNING in line for line in gw.lines)
            gw.expect_exit = True
            check_that(gw.stop() == 0, "exit status on SIGTERM")
            return lib, warned

        def large():
            lib, warned = run(LARGE, "gateway-large")
            want = tracks_heap(lib)
            check_that(warned == want, "%d cuffs, %s (heap tracking %s): warning %s"
                       % (LARGE, lib, "on" if want else "off", "logged" if warned else "absent"))
            print("  %s: heap tracking %s, warning %s" % (
                lib, "on" if want else "off", "logged" if warned else "absent"))

        suite.check("%d cuffs: the warning iff the loaded Paho tracks its heap" % LARGE, large)

        def small():
            lib, warned = run(LARGE - 1, "gateway-small")
            check_that(not warned, "%d cuffs: warning logged (%s)" % (LARGE - 1, lib))

        suite.check("%d cuffs: no warning" % (LARGE - 1), small)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
