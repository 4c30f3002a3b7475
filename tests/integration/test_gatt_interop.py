#!/usr/bin/python3
"""GATT interoperability end to end (issue 9, items 8, 9 and 13): the gateway
against cuffsim cuffs that keep the ATT MTU at 23 and change their attribute
database while connected.

- MTU 23: the 44-byte manufacturer string needs a Read and two Read Blobs;
  the gateway reports it whole (docs/gatt-profile.md section 1).
- Service Changed: `cuffsim ctl ... service-changed 1 40` moves cuff 1's BFR
  handles by 40 and indicates it; the gateway confirms, discovers again on the
  same link, stays connected (no link state change, no reconnect, no
  supervision deflate), and then uses the new handles: telemetry goes on,
  keepalives reach the new Supervision handle, IDENTIFY the new Control Point
  (docs/gatt-profile.md section 9.3).
- `cuffsim ctl`, the control-socket client, as a program: command words,
  stdin lines, exit status 1 on a refused line and 2 without a cuffsim.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that, sim_cuffs, wait_until  # noqa: E402

MANUFACTURER = "BFR Gateway Project - cuffsim simulated cuff"


def main():
    suite = Suite("test_gatt_interop")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(2, args=["--mtu", "23", "--rate", "20"])
        col = h.collector()
        gw = h.start_gateway(h.write_gateway_config(sim_cuffs(sim)))
        ctl = [h.binary("cuffsim"), "ctl", "--dir", sim.dir]

        def run_ctl(args, stdin=None):
            return subprocess.run(ctl + args, input=stdin, capture_output=True, text=True,
                                  timeout=20)

        def long_strings():
            for i in (1, 2):
                m = gw.wait_line(r"cuff cuff-0%d: ready \((.*), serial (\S+), fw" % i, 20)
                check_that(m.group(1) == MANUFACTURER + " cuffsim-1",
                           "cuff-0%d: manufacturer and model %r, want %r" %
                           (i, m.group(1), MANUFACTURER + " cuffsim-1"))
                check_that(m.group(2).startswith("SIM-"), "serial %r" % m.group(2))

        suite.check("MTU 23: the 44-byte manufacturer string arrives whole (Read + Read Blob)",
                    long_strings)

        def service_changed():
            col.wait_for(lambda c: c.telemetry_cuffs() >= {"cuff-01", "cuff-02"}, 20,
                         "telemetry from both cuffs")
            col.wait_for(lambda c: c.cuff_links().get("cuff-01") == "connected", 10,
                         "cuff-01 connected")
            before = sim.stats()["cuffs"][0]
            n_lines = len(gw.lines)
            t = time.monotonic()
            r = run_ctl(["service-changed", "1", "40"])
            check_that(r.returncode == 0 and r.stdout == "ok service-changed 1\n",
                       "cuffsim ctl: status %d, stdout %r, stderr %r" %
                       (r.returncode, r.stdout, r.stderr))
            # Telemetry from the moved Pressure handle (a gateway still on the old
            # handles drops every sample), keepalives to the new Supervision one.
            col.wait_for(lambda c: "cuff-01" in c.telemetry_cuffs(since=t + 1.0), 10,
                         "cuff-01 telemetry more than 1 s after the move")
            gw.wait_line(r"cuff cuff-01: after Service Changed: handles moved", 10,
                         start=n_lines)
            wait_until(lambda: sim.stats()["cuffs"][0]["supervision_writes"] >=
                       before["supervision_writes"] + 3, 10,
                       "keepalives at cuff-01's new Supervision handle")
            s = sim.stats()["cuffs"][0]
            check_that(s["handle_shift"] == 40 and s["database_changes"] == 1,
                       "cuffsim did not change the database: %r" % s)
            check_that(s["connections"] == before["connections"],
                       "the gateway reconnected: %d connections, %d before" %
                       (s["connections"], before["connections"]))
            check_that(s["supervision_deflates"] == 0, "cuff-01 deflated by supervision")
            reply = h.send_command(col, "cuff/identify", {"cuff": "cuff-01"})
            check_that(reply.get("ok") is True, "identify after the move: %r" % reply)
            wait_until(lambda: sim.stats()["cuffs"][0]["cp_writes"]["identify"] ==
                       before["cp_writes"]["identify"] + 1, 5,
                       "cuffsim to count IDENTIFY at the new Control Point")
            # READY all along: no link state change logged, none published.
            state_line = re.compile(r"cuff cuff-01: (link lost|ready \(|(connecting|discovering|"
                                    r"backoff|disconnected)(:|$))")
            changes = [ln for ln in gw.lines[n_lines:] if state_line.search(ln)]
            check_that(not changes, "cuff-01 left READY: %r" % changes)
            links = {m.payload["link"] for m in col.select("cuff-state", since=t)
                     if m.payload and m.payload.get("cuff") == "cuff-01"}
            check_that(links <= {"connected"}, "cuff-01 published link %r" % links)
            other = sim.stats()["cuffs"][1]
            check_that(other["handle_shift"] == 0, "cuff 2 changed too: %r" % other)

        suite.check("Service Changed: confirmed, rediscovered on the same link, new handles "
                    "used, never left READY", service_changed)

        def ctl_program():
            r = run_ctl(["service-changed", "1", "2.5"])
            check_that(r.returncode == 1 and r.stdout ==
                       "error: service-changed: shift 2.5 is not a whole number\n",
                       "refused line: status %d, stdout %r" % (r.returncode, r.stdout))
            check_that(sim.stats()["cuffs"][0]["handle_shift"] == 40, "a refused line changed")
            r = run_ctl([], stdin="# two lines\nlimit 2 240\n\nbutton 2 short\n")
            check_that(r.returncode == 0 and r.stdout == "ok limit 2\nok button 2\n",
                       "stdin lines: status %d, stdout %r, stderr %r" %
                       (r.returncode, r.stdout, r.stderr))
            r = subprocess.run([h.binary("cuffsim"), "ctl", "--dir",
                                os.path.join(h.tmp, "nothing-here"), "stats"],
                               capture_output=True, text=True, timeout=20)
            check_that(r.returncode == 2 and "cannot connect to" in r.stderr and
                       "nothing-here/control.sock" in r.stderr,
                       "no cuffsim: status %d, stderr %r" % (r.returncode, r.stderr))

        suite.check("cuffsim ctl: words, stdin lines, refused line (1), no cuffsim (2)",
                    ctl_program)
    sys.exit(suite.finish())


if __name__ == "__main__":
    main()
