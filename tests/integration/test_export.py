#!/usr/bin/python3
"""bfr-gateway --export-sessions [--since TIME] (docs/storage.md "Export").

cuff-01's LOP is measured with cmd/lop/measure first; then two sessions run at
once: one on cuff-01 completes on that LOP (no measurement of its own), one on
cuff-02 measures its LOP and is stopped by command. After the gateway is
stopped (exit 0), `bfr-gateway -c CONF --export-sessions OUT.jsonl` writes
exactly two JSON lines, oldest first, each valid against
schemas/session-export.schema.json (its events and state against their MQTT
schemas), carrying the gateway and site, RFC 3339 times (started_at equal to
the summary's), the plan as sent, the outcome, the events in seq order equal
to what was published on MQTT, per-set figures, alarms, and the LOP each cuff's
targets were based on: cuff-01's from before the session ("before", the value
lop/measure published), cuff-02's measured in it ("session", the value of its
lop_measured event). `--export-sessions -` writes the same to stdout;
`--since` keeps the sessions started at or after the time (exact to the
millisecond, any offset); a bad --since exits 2 naming it, writing nothing; a
bad config path exits 2 with a message naming it."""

import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (GATEWAY_ID, PREFIX, SITE, Suite, check_that,  # noqa: E402
                     session_events, short_plan, sim_cuffs, start_session, wait_phase,
                     wait_session_end)
from validate import Validator  # noqa: E402

START_S = 30.0
SESSION_S = 60.0
LOP_S = 40.0
KIND = "session-export"


def published_events(col, sid):
    """seq -> payload of the session's events as received (one per seq)."""
    out = {}
    for m in col.select("session-event", topic="%s/session/%s/event" % (PREFIX, sid)):
        if m.payload:
            out[m.payload["seq"]] = m.payload
    return out


def run_export(h, conf, out, *args, timeout=60):
    return subprocess.run([h.binary("bfr-gateway"), "-c", conf, "--export-sessions", out] +
                          list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def parse_ts(text):
    """An RFC 3339 stamp of the export ("...T09:30:00.123Z") as an aware datetime."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def main():
    suite = Suite("test_export")
    validator = Validator()
    state = {}
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

        def measure_before():
            r = h.send_command(col, "lop/measure", {"cuff": "cuff-01"})
            check_that(r.get("ok") is True, "lop/measure refused: %s" % r)
            lop = col.wait_for(lambda c: (c.latest_payload("cuff/cuff-01/state") or {})
                               .get("lop_mmHg"), LOP_S, "lop_mmHg in cuff-01's state")
            # The measurement is over once the cuff is free for a session again.
            col.wait_for(lambda c: (c.latest_payload("cuff/cuff-01/state") or {})
                         .get("pressure_mmHg") is not None and
                         c.latest_payload("cuff/cuff-01/state")["pressure_mmHg"] < 20,
                         LOP_S, "cuff-01 deflated after the LOP measurement")
            state["lop_before"] = lop
            print("  cuff-01 LOP %.1f mmHg measured before any session" % lop)

        suite.check("lop/measure on cuff-01 before any session", measure_before)

        def run_sessions():
            check_that("lop_before" in state, "no LOP measured before")
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
            # The premise: cuff-01's session used the LOP measured before it.
            types = [e["type"] for e in session_events(col, sessions["done"])]
            check_that("lop_measured" not in types, "the cuff-01 session measured a LOP of "
                       "its own: %s" % types)
            for sid in sessions.values():
                col.wait_for(lambda c: c.select("session-summary",
                                                topic="%s/session/%s/summary" % (PREFIX, sid)),
                             15, "summary of %s" % sid)
            gw.expect_exit = True
            rc = gw.stop(timeout=20)
            check_that(rc == 0, "gateway exited with %s on SIGTERM" % rc)

        suite.check("a completed session on the earlier LOP and a stopped one that measured "
                    "its own, gateway stopped cleanly", run_sessions)

        def check_lop(key, rec):
            sid = sessions[key]
            lops = rec["lop"]
            check_that(len(lops) == 1, "%s lop %r: one entry expected" % (sid, lops))
            lop = lops[0]
            cuff = plans[key]["exercises"][0]["cuffs"][0]
            check_that(lop["cuff"] == cuff, "%s lop of %r, want %s" % (sid, lop["cuff"], cuff))
            if key == "done":
                check_that(lop["source"] == "before", "%s lop %r: source 'before' expected"
                           % (sid, lop))
                check_that(abs(lop["lop_mmHg"] - state["lop_before"]) < 0.05,
                           "%s lop %r, lop/measure published %r" % (sid, lop,
                                                                    state["lop_before"]))
                check_that(parse_ts(lop["measured_at"]) <= parse_ts(rec["started_at"]),
                           "%s LOP measured at %s, after the start %s"
                           % (sid, lop["measured_at"], rec["started_at"]))
            else:
                measured = [e for e in rec["events"] if e["type"] == "lop_measured"]
                check_that(len(measured) == 1, "%s lop_measured events %r" % (sid, measured))
                check_that(lop["source"] == "session", "%s lop %r: source 'session' expected"
                           % (sid, lop))
                check_that(abs(lop["lop_mmHg"] - measured[0]["payload"]["lop_mmHg"]) < 0.05,
                           "%s lop %r, event said %r" % (sid, lop, measured[0]["payload"]))
                check_that(parse_ts(rec["started_at"]) <= parse_ts(lop["measured_at"]) <=
                           parse_ts(rec["ended_at"]), "%s LOP measured at %s, outside %s..%s"
                           % (sid, lop["measured_at"], rec["started_at"], rec["ended_at"]))

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
            for rec in recs:
                errs = validator.errors(KIND, rec)
                check_that(not errs, "%s does not match %s:\n  %s"
                           % (rec.get("session_id"), KIND, "\n  ".join(errs[:10])))
                for e in rec["events"]:
                    errs = validator.errors("session-event", e["payload"])
                    check_that(not errs, "event %d: %s" % (e["seq"], errs))
                if rec["state"] is not None:
                    errs = validator.errors("session-state", rec["state"])
                    check_that(not errs, "state: %s" % errs)
            by_id = {rec["session_id"]: rec for rec in recs}
            check_that(set(by_id) == set(sessions.values()), "exported %s" % sorted(by_id))
            check_that(recs[0]["started_at"] <= recs[1]["started_at"], "not oldest first")
            for key, outcome in (("done", "completed"), ("stop", "stopped")):
                sid = sessions[key]
                rec = by_id[sid]
                check_that(rec["gateway"] == GATEWAY_ID and rec["site"] == SITE,
                           "%s gateway/site %r/%r" % (sid, rec["gateway"], rec["site"]))
                check_that(rec["outcome"] == outcome, "%s outcome %r" % (sid, rec["outcome"]))
                check_that(rec["plan"] == plans[key], "%s plan %r, sent %r"
                           % (sid, rec["plan"], plans[key]))
                summary = col.select("session-summary",
                                     topic="%s/session/%s/summary" % (PREFIX, sid))[-1].payload
                check_that(rec["started_at"] == summary["started_at"],
                           "%s started_at %s, the summary said %s"
                           % (sid, rec["started_at"], summary["started_at"]))
                gap = abs((parse_ts(rec["ended_at"]) - parse_ts(summary["ended_at"]))
                          .total_seconds())
                check_that(gap < 1.0 and rec["ended_at"] >= rec["started_at"],
                           "%s ended_at %s, the summary said %s"
                           % (sid, rec["ended_at"], summary["ended_at"]))
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
                    lag = (parse_ts(e["ts"]) - parse_ts(p["ts"])).total_seconds()
                    check_that(0 <= lag < 1.0, "%s seq %d recorded at %s, published ts %s"
                               % (sid, e["seq"], e["ts"], p["ts"]))
                check_lop(key, rec)
            figs = by_id[sessions["done"]]["figures"]
            check_that(len(figs) == 2 and {f["set"] for f in figs} == {1, 2} and
                       all(f["cuff"] == "cuff-01" and f["exercise"] == 0 for f in figs),
                       "completed session: figures of 2 sets of exercise 0 expected, got %s" % figs)
            for f in figs:
                fig = f["figures"]
                check_that(fig.get("mean_mmHg") and 100 < fig["mean_mmHg"] < 250,
                           "set %s mean %r" % (f["set"], fig.get("mean_mmHg")))
            print("  2 sessions exported and valid: %d + %d events, %d figures, LOP %s / %s" %
                  (len(by_id[sessions["done"]]["events"]), len(by_id[sessions["stop"]]["events"]),
                   len(figs), by_id[sessions["done"]]["lop"][0]["source"],
                   by_id[sessions["stop"]]["lop"][0]["source"]))
            state["text"] = text
            state["recs"] = recs

        suite.check("--export-sessions FILE: two lines valid against session-export, with "
                    "gateway, site, RFC 3339 times, events as published, figures, and the LOP "
                    "from before / from the session", export_file)

        def schema_bites():
            # The schema must refuse what the old format wrote, or it checks nothing.
            check_that("recs" in state, "no export to mutate")
            rec = state["recs"][0]
            bad = [
                ("epoch-ms start", dict(rec, started_at=1795512600123)),
                ("no gateway", {k: v for k, v in rec.items() if k != "gateway"}),
                ("old started_ms", dict(rec, started_ms=1795512600123)),
                ("lop source bogus", dict(rec, lop=[dict(rec["lop"][0], source="bogus")])),
                ("'none' with a value", dict(rec, lop=[dict(rec["lop"][0], source="none")])),
                ("time without ms", dict(rec, ended_at=rec["ended_at"][:19] + "Z")),
            ]
            for what, mutated in bad:
                check_that(validator.errors(KIND, mutated), "the schema accepts %s" % what)

        suite.check("the schema refuses epoch-ms times, a missing gateway, unknown LOP "
                    "sources", schema_bites)

        def export_stdout():
            check_that("text" in state, "no file export to compare with")
            r = run_export(h, conf, "-")
            check_that(r.returncode == 0, "export to stdout exited %d: %s"
                       % (r.returncode, r.stderr))
            check_that(r.stdout == state["text"], "stdout differs from the file:\n%r\n%r"
                       % (r.stdout[:300], state["text"][:300]))
            check_that(b"exported 2 sessions" in r.stderr, "stderr: %r" % r.stderr)

        suite.check("--export-sessions - writes the same lines to stdout", export_stdout)

        def since():
            check_that("recs" in state, "no file export to compare with")
            lines = state["text"].splitlines(keepends=True)
            first, second = (parse_ts(rec["started_at"]) for rec in state["recs"])
            ms = datetime.timedelta(milliseconds=1)
            plus1 = datetime.timezone(datetime.timedelta(hours=1))
            # (the --since argument, the lines expected)
            cases = [
                (state["recs"][0]["started_at"], lines),
                ((first - ms).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z", lines),
                (first.astimezone(plus1).isoformat(timespec="milliseconds"), lines),
                (state["recs"][1]["started_at"].lower(),
                 [ln for ln, rec in zip(lines, state["recs"]) if parse_ts(rec["started_at"]) >=
                  second]),
                ((second + ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", []),
                ("2100-01-01T00:00:00Z", []),
            ]
            for arg, want in cases:
                r = run_export(h, conf, "-", "--since", arg)
                check_that(r.returncode == 0, "--since %s exited %d: %s"
                           % (arg, r.returncode, r.stderr))
                check_that(r.stdout == b"".join(want), "--since %s: %d lines, want %d"
                           % (arg, len(r.stdout.splitlines()), len(want)))
                check_that(("exported %d sessions started at or after %s" % (len(want), arg))
                           .encode() in r.stderr, "--since %s stderr: %r" % (arg, r.stderr))
                for line in r.stdout.splitlines():
                    check_that(not validator.errors(KIND, line), "--since %s: invalid line" % arg)
            print("  --since: %d cases, from %d to 0 lines" % (len(cases), len(lines)))

        suite.check("--since TIME: sessions started at or after it, exact to the ms, any "
                    "offset", since)

        def bad_since():
            out = os.path.join(h.tmp, "bad-since.jsonl")
            for arg, why in (("yesterday", "expected YYYY-MM-DDTHH:MM:SS"),
                             ("2026-11-24T09:30:00", "no time zone"),
                             ("2026-02-30T00:00:00Z", "day 30 does not exist in 2026-02"),
                             ("", "expected YYYY-MM-DDTHH:MM:SS")):
                r = run_export(h, conf, out, "--since", arg)
                check_that(r.returncode == 2, "--since %r exited %d" % (arg, r.returncode))
                check_that(('--since "%s": %s' % (arg, why)).encode() in r.stderr,
                           "--since %r: message %r" % (arg, r.stderr))
                check_that(not os.path.exists(out), "--since %r created the output" % arg)
            r = subprocess.run([h.binary("bfr-gateway"), "-c", conf, "--since",
                                "2026-11-24T00:00:00Z"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            check_that(r.returncode == 2 and b"--export-sessions" in r.stderr,
                       "--since alone: exit %d %r" % (r.returncode, r.stderr))
            print("  bad --since: exit 2, %s" % r.stderr.decode().strip()[:100])

        suite.check("a bad --since, or --since without --export-sessions: exit 2 naming it, "
                    "no output file", bad_since)

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
