#!/usr/bin/python3
"""bfr-gateway --export-sessions (docs/storage.md "Export").

Two sessions run at once on two cuffs: one completes, one is stopped by
command. After the gateway is stopped (exit 0), `bfr-gateway -c CONF
--export-sessions OUT.jsonl` writes exactly two JSON lines, oldest first, each
with the plan as sent, the outcome, the events in seq order equal to what was
published on MQTT, per-set figures and alarms; `--export-sessions -` writes the
same to stdout; a bad config path exits 2 with a message naming it."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, check_that, short_plan, sim_cuffs,  # noqa: E402
                     start_session, wait_phase, wait_session_end)

START_S = 30.0
SESSION_S = 60.0


def published_events(col, sid):
    """seq -> payload of the session's events as received (one per seq)."""
    out = {}
    for m in col.select("session-event", topic="%s/session/%s/event" % (PREFIX, sid)):
        if m.payload:
            out[m.payload["seq"]] = m.payload
    return out


def run_export(h, conf, out, timeout=60):
    return subprocess.run([h.binary("bfr-gateway"), "-c", conf, "--export-sessions", out],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def main():
    suite = Suite("test_export")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(2)
        col = h.collector()
        conf = h.write_gateway_config(sim_cuffs(sim))
        gw = h.start_gateway(conf)
        col.wait_for(lambda c: set(c.cuff_links()) >= {"cuff-01", "cuff-02"} and
                     all(v == "connected" for v in c.cuff_links().values()), START_S,
                     "both cuffs connected")
        plans = {}
        sessions = {}

        def run_sessions():
            plans["done"] = short_plan("cuff-01", reps=2, sets=2, rest_s=1)
            plans["stop"] = short_plan("cuff-02", reps=20, sets=1)
            sessions["done"] = start_session(h, col, plans["done"])
            sessions["stop"] = start_session(h, col, plans["stop"])
            wait_phase(col, sessions["stop"], "set", START_S)
            r = h.send_command(col, "session/stop", {"session_id": sessions["stop"]})
            check_that(r.get("ok") is True, "session/stop refused: %s" % r)
            e1 = wait_session_end(col, sessions["done"], SESSION_S)
            e2 = wait_session_end(col, sessions["stop"], SESSION_S)
            check_that(e1["type"] == "completed", "first session ended %s" % e1)
            check_that(e2["type"] == "stopped", "second session ended %s" % e2)
            for sid in sessions.values():
                col.wait_for(lambda c: c.select("session-summary",
                                                topic="%s/session/%s/summary" % (PREFIX, sid)),
                             15, "summary of %s" % sid)
            gw.expect_exit = True
            rc = gw.stop(timeout=20)
            check_that(rc == 0, "gateway exited with %s on SIGTERM" % rc)

        suite.check("a completed and a stopped session, gateway stopped cleanly", run_sessions)

        def export_file():
            check_that(len(sessions) == 2, "sessions did not run")
            out = os.path.join(h.tmp, "sessions.jsonl")
            r = run_export(h, conf, out)
            check_that(r.returncode == 0, "export exited %d: %s" % (r.returncode, r.stderr))
            with open(out, "rb") as f:
                text = f.read()
            lines = text.decode("utf-8").splitlines()
            check_that(len(lines) == 2, "%d lines exported, want 2:\n%s" % (len(lines), text[:500]))
            recs = [json.loads(line) for line in lines]
            by_id = {rec["session_id"]: rec for rec in recs}
            check_that(set(by_id) == set(sessions.values()), "exported %s" % sorted(by_id))
            check_that(recs[0]["started_ms"] <= recs[1]["started_ms"], "not oldest first")
            for key, outcome in (("done", "completed"), ("stop", "stopped")):
                sid = sessions[key]
                rec = by_id[sid]
                check_that(rec["outcome"] == outcome, "%s outcome %r" % (sid, rec["outcome"]))
                check_that(rec["plan"] == plans[key], "%s plan %r, sent %r"
                           % (sid, rec["plan"], plans[key]))
                check_that(rec["ended_ms"] >= rec["started_ms"], "%s times %s..%s"
                           % (sid, rec["started_ms"], rec["ended_ms"]))
                pub = published_events(col, sid)
                seqs = [e["seq"] for e in rec["events"]]
                check_that(seqs == list(range(1, len(seqs) + 1)), "%s seqs %s" % (sid, seqs))
                check_that(seqs == sorted(pub), "%s exported seqs %s, published %s"
                           % (sid, seqs, sorted(pub)))
                for e in rec["events"]:
                    p = pub[e["seq"]]
                    check_that(e["type"] == p["type"], "%s seq %d type %s vs published %s"
                               % (sid, e["seq"], e["type"], p["type"]))
                    check_that(e["payload"] == p, "%s seq %d payload differs:\n %s\n %s"
                               % (sid, e["seq"], e["payload"], p))
                check_that(isinstance(rec["alarms"], list), "%s alarms %r" % (sid, rec["alarms"]))
                check_that(isinstance(rec["figures"], list), "%s figures %r"
                           % (sid, rec["figures"]))
                check_that(rec["lop"] and rec["lop"][0]["cuff"] == plans[key]["exercises"][0]
                           ["cuffs"][0], "%s lop %r" % (sid, rec["lop"]))
            figs = by_id[sessions["done"]]["figures"]
            check_that(len(figs) == 2 and {f["set"] for f in figs} == {1, 2} and
                       all(f["cuff"] == "cuff-01" for f in figs),
                       "completed session: figures of 2 sets expected, got %s" % figs)
            for f in figs:
                fig = f["figures"]
                check_that(fig.get("mean_mmHg") and 100 < fig["mean_mmHg"] < 250,
                           "set %s mean %r" % (f["set"], fig.get("mean_mmHg")))
            print("  2 sessions exported: %d + %d events, %d figures" %
                  (len(by_id[sessions["done"]]["events"]), len(by_id[sessions["stop"]]["events"]),
                   len(figs)))
            state["text"] = text

        state = {}
        suite.check("--export-sessions FILE: two lines with plan, events as published, "
                    "figures, alarms", export_file)

        def export_stdout():
            check_that("text" in state, "no file export to compare with")
            r = run_export(h, conf, "-")
            check_that(r.returncode == 0, "export to stdout exited %d: %s"
                       % (r.returncode, r.stderr))
            check_that(r.stdout == state["text"], "stdout differs from the file:\n%r\n%r"
                       % (r.stdout[:300], state["text"][:300]))
            check_that(b"exported 2 sessions" in r.stderr, "stderr: %r" % r.stderr)

        suite.check("--export-sessions - writes the same lines to stdout", export_stdout)

        def bad_config():
            missing = os.path.join(h.tmp, "no-such.conf")
            r = run_export(h, missing, os.path.join(h.tmp, "x.jsonl"))
            check_that(r.returncode == 2, "exit %d for a missing config" % r.returncode)
            check_that(b"no-such.conf" in r.stderr, "message does not name the file: %r"
                       % r.stderr)
            check_that(not os.path.exists(os.path.join(h.tmp, "x.jsonl")),
                       "an output file was written for a bad config")
            print("  bad config: exit 2, %s" % r.stderr.decode().strip()[:120])

        suite.check("a bad config path: exit 2 with a message naming it", bad_config)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
