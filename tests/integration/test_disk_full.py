#!/usr/bin/python3
"""The data_dir's filesystem fills up mid-session (DESIGN sections 1, 7; docs/storage.md
"Disk errors").

data_dir lives on a small tmpfs mounted for this test; while the cuff holds
pressure in a set, a filler file takes every free byte. Checked:
- the store reports the failure (gateway log) and the gateway neither crashes
  nor stops supervising: a pressure spike over the ceiling is still deflated
  at once (cuffsim stats: DEFLATE reason safety, sample-to-DEFLATE latency);
- a storage_error technical alarm is visible on MQTT while the disk is full;
- when space returns: writes recover, the storage_error alarm closes (a
  cleared record, then the empty retained payload), and everything recorded
  meanwhile is published: the over-pressure alarm, the session's events
  seq 1..N without gaps ending in aborted/over_pressure_ceiling, its summary;
  the database holds the same events.

Needs root to mount a tmpfs (CI runs as root). Without it the test says so
and skips (exit 0, nothing counted as passed)."""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, check_that, fill_disk, short_plan,  # noqa: E402
                     sim_cuff_stats, sim_cuffs, start_session, wait_phase, wait_sim)

TMPFS_SIZE = "8m"
START_S = 30.0
LOP_S = 30.0
SPIKE_MMHG = 130          # on ~150 mmHg held: ~280 > the 250 mmHg leg ceiling
DEFLATE_S = 1.0           # spike -> DEFLATE (safety) seen in cuffsim stats
VISIBLE_S = 10.0          # disk full -> storage_error on MQTT
RECOVER_S = 15.0          # space back -> writes recovered (writer backoff is at most 2 s)


def mount_tmpfs():
    """A fresh tmpfs; returns its path, or (None, why) when this machine refuses."""
    mnt = tempfile.mkdtemp(prefix="bfr-diskfull-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % TMPFS_SIZE,
                        "tmpfs", mnt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        os.rmdir(mnt)
        return None, r.stdout.decode("utf-8", "replace").strip() or "mount failed"
    return mnt, None


def event_msgs(col, sid):
    return [m for m in col.select("session-event", topic="%s/session/%s/event" % (PREFIX, sid))
            if m.payload]


def storage_alarms(col, since=0.0):
    return [m for m in col.select("alarm", since) if m.payload and
            m.payload.get("code") == "storage_error"]


def main():
    if os.geteuid() != 0:
        print("SKIP test_disk_full: needs root to mount a tmpfs for data_dir (euid %d)"
              % os.geteuid())
        print("test_disk_full: 0 passed, 0 failed")
        return 0
    mnt, why = mount_tmpfs()
    if mnt is None:
        print("SKIP test_disk_full: cannot mount a tmpfs here: %s" % why)
        print("test_disk_full: 0 passed, 0 failed")
        return 0
    suite = Suite("test_disk_full")
    filler = os.path.join(mnt, "filler")
    data_dir = os.path.join(mnt, "data")
    try:
        with suite.harness() as h:
            h.start_broker()
            sim = h.start_cuffsim(1)
            col = h.collector()
            conf = h.write_gateway_config(sim_cuffs(sim), data_dir=data_dir)
            gw = h.start_gateway(conf)
            col.wait_for(lambda c: c.cuff_links().get("cuff-01") == "connected", START_S,
                         "cuff-01 connected")
            sid = start_session(h, col, short_plan("cuff-01", reps=15, sets=1))
            wait_phase(col, sid, "set", LOP_S)
            st = {}

            def disk_fills():
                line0 = len(gw.lines)
                t0 = time.monotonic()
                n = fill_disk(filler)
                st["t_full"] = t0
                m = gw.wait_line(r"store: disk error", 10, start=line0)
                print("  filled %d KiB; the store reported '%s' after %.2f s"
                      % (n // 1024, m.string.split("error: ", 1)[-1][-60:],
                         time.monotonic() - t0))
                check_that(gw.alive(), "gateway died on a full disk")

            suite.check("disk fills mid-session: the store reports it, the gateway lives on",
                        disk_fills)

            def safety_still():
                s0 = sim_cuff_stats(sim, 1)
                check_that(s0["pressure"] > 100, "cuff not holding pressure: %s" % s0["pressure"])
                t0 = time.monotonic()
                sim.control("spike 1 %d 800" % SPIKE_MMHG)
                s1 = wait_sim(sim, 1, lambda s: s["deflates"]["safety"] > s0["deflates"]["safety"],
                              DEFLATE_S, "a safety DEFLATE after the spike", poll=0.01)
                dt = time.monotonic() - t0
                lat = s1["latency_us"][-1] if s1["latency_us"] else None
                wait_sim(sim, 1, lambda s: s["pressure"] < 20, 15, "deflated below 20 mmHg")
                print("  spike +%d mmHg on a full disk: safety DEFLATE within %.3f s "
                      "(over-limit sample -> DEFLATE %s us)" % (SPIKE_MMHG, dt, lat))
                check_that(gw.alive(), "gateway died")

            suite.check("safety unaffected by the full disk: over-ceiling spike deflated at once",
                        safety_still)

            def alarm_visible():
                t0 = st.get("t_full", 0.0)
                col.wait_for(lambda c: storage_alarms(c, t0), VISIBLE_S,
                             "a storage_error alarm on MQTT while the disk is full")

            suite.check("storage_error technical alarm visible on MQTT while the disk is full",
                        alarm_visible)

            def space_returns():
                line0 = len(gw.lines)
                t0 = time.monotonic()
                os.unlink(filler)
                gw.wait_line(r"store: disk writes recovered", RECOVER_S, start=line0)
                print("  space back -> writes recovered after %.2f s" % (time.monotonic() - t0))
                msgs = col.wait_for(lambda c: storage_alarms(c), 10,
                                    "the storage_error alarm record")
                a = msgs[0].payload
                check_that(a["kind"] == "technical" and a["cuff"] is None,
                           "storage_error alarm: %s" % a)
                col.wait_for(lambda c: any(m.raw == b"" for m in c.select(
                    "alarm", topic="%s/alarm/%s" % (PREFIX, a["alarm_id"]))) and
                    any(m.payload and m.payload["state"] == "cleared"
                        for m in storage_alarms(c)), 15,
                    "storage_error cleared and removed (empty retained payload)")
                # Everything recorded while the disk was full now reaches MQTT.
                end = col.wait_for(lambda c: [m.payload for m in event_msgs(c, sid)
                                              if m.payload["type"] in
                                              ("completed", "stopped", "aborted")], 15,
                                   "the session's end event")[0]
                check_that(end["type"] == "aborted" and
                           end.get("reason") == "over_pressure_ceiling",
                           "session ended %s" % end)
                seqs = {m.payload["seq"] for m in event_msgs(col, sid)}
                check_that(seqs == set(range(1, end["seq"] + 1)),
                           "event seqs %s, end at %d" % (sorted(seqs), end["seq"]))
                check_that([m for m in col.select("alarm") if m.payload and
                            m.payload["code"] == "over_pressure_ceiling"],
                           "no over_pressure_ceiling alarm published")
                col.wait_for(lambda c: c.select("session-summary",
                                                topic="%s/session/%s/summary" % (PREFIX, sid)),
                             10, "the session summary")
                db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir,
                                                                        "bfr-gateway.db"),
                                     uri=True, timeout=5)
                try:
                    stored = [r[0] for r in db.execute(
                        "SELECT seq FROM session_events WHERE session_id = ? ORDER BY seq",
                        (sid,))]
                finally:
                    db.close()
                check_that(stored == list(range(1, end["seq"] + 1)),
                           "stored seqs %s" % stored)
                print("  after recovery: %d events 1..%d published and stored, session "
                      "aborted/over_pressure_ceiling, storage_error closed" %
                      (len(seqs), end["seq"]))
                check_that(gw.alive(), "gateway died")
                col.assert_valid()

            suite.check("space returns: writes recover, storage_error clears, everything "
                        "recorded meanwhile is published and stored", space_returns)
    finally:
        if os.path.exists(filler):
            os.unlink(filler)
        subprocess.call(["umount", "-l", mnt])
        os.rmdir(mnt)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
