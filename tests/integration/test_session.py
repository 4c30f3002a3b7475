#!/usr/bin/python3
"""Whole sessions through mosquitto + cuffsim + bfr-gateway, one per mode, run
at the same time on different cuffs (each cuff needs 60 s of reperfusion after
a session, so every scenario gets its own cuffs):

- cuff-01 continuous: 2 sets of 3 reps, tempo [1,1], rest 4 s (held inflated)
- cuff-02 intermittent: same plan, deflated during the rest
- cuff-03 cycle: 2 cycles on 5 s / off 5 s, stepped pressure 90 % then 100 %
- cuff-04 + cuff-05 bilateral continuous: 2 sets of 2 reps, rest 2 s, lockstep
- cuff-06 pause / resume / stop: pause freezes the clock and deflates, resume
  within 60 s of the deflation is refused `reperfusion`, stop ends `stopped`
- cuff-07 intermittent, paused during its (deflated) rest: resume is accepted
  at once (an intermittent rest is no reperfusion case), the rest goes on with
  the time it had left, and the session completes

For each finished session: the exact phase sequence from the events, `seq`
contiguous from 1, rep events = sum of reps, retained state `completed`,
retained summary with plausible per-set figures against pct_lop x the LOP
that MEASURE_LOP found (checked against cuffsim's own), and cuffsim's
control-point counters (SET_TARGET, CUE, DEFLATE, MEASURE_LOP) as the plan
implies. Also: a second session/start on a cuff in a session is `cuff_busy`.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs  # noqa: E402

N_CUFFS = 7
CONNECT_S = 25.0
# A session here: LOP measurement (~10 s in cuffsim) + inflation (~8 s) + the
# plan + deflation; generous for ASan on 2 busy cores.
SESSION_S = 75.0
END_TYPES = ("completed", "stopped", "aborted")
PCT = 50


def exercise(name, cuffs, mode, **kw):
    ex = {"name": name, "cuffs": cuffs, "pct_lop": kw.pop("pct_lop", PCT), "mode": mode,
          "reperfusion_s": 60}
    ex.update(kw)
    return ex


PLANS = {
    "continuous": [exercise("continuous", ["cuff-01"], "continuous", sets=[3, 3],
                            tempo_s=[1, 1], rest_s=4)],
    "intermittent": [exercise("intermittent", ["cuff-02"], "intermittent", sets=[3, 3],
                              tempo_s=[1, 1], rest_s=4)],
    "cycle": [exercise("cycle", ["cuff-03"], "cycle", on_s=5, off_s=5, cycles=2)],
    "bilateral": [exercise("bilateral", ["cuff-04", "cuff-05"], "continuous", sets=[2, 2],
                           tempo_s=[1, 1], rest_s=2)],
    "pause": [exercise("pause", ["cuff-06"], "continuous", sets=[20], tempo_s=[1, 1],
                       rest_s=0)],
    "rest_pause": [exercise("rest pause", ["cuff-07"], "intermittent", sets=[2, 2],
                            tempo_s=[1, 1], rest_s=8)],
}


def expected_phases(ex):
    """Phase events of one exercise that ends the session (LOP not known yet)."""
    out = ["lop", "inflating"]
    if ex["mode"] == "cycle":
        n = ex["cycles"]
    else:
        n = len(ex["sets"])
    for i in range(n):
        if i > 0:
            if ex["mode"] == "cycle" or ex["rest_s"] > 0:
                out.append("rest")
            if ex["mode"] in ("intermittent", "cycle"):
                out.append("inflating")
        out.append("set")
    out.append("deflating")
    return out


def expected_counts(ex):
    """cuffsim control-point writes per cuff for one exercise run to completion."""
    if ex["mode"] == "cycle":
        n = ex["cycles"]
        cues = n + (n - 1) + 1                     # set-start, rest, done
        return {"set_target": n, "deflate": n, "cue": cues, "measure_lop": 1}
    n = len(ex["sets"])
    rests = n - 1 if ex["rest_s"] > 0 else 0
    cues = n + 2 * sum(ex["sets"]) + rests + 1     # set-start, rep-up/down, rest, done
    inflations = n if ex["mode"] == "intermittent" else 1
    deflates = (rests + 1) if ex["mode"] == "intermittent" else 1
    return {"set_target": inflations, "deflate": deflates, "cue": cues, "measure_lop": 1}


def step_pcts(cycles):
    start = max(50, 100 - 10 * (cycles - 1))
    return [min(100, start + 10 * i) for i in range(cycles)]


def session_events(col, sid):
    """The session's events, deduplicated on msg_id, in arrival order."""
    seen, out = set(), []
    for m in col.select("session-event", topic="%s/session/%s/event" % (PREFIX, sid)):
        if m.payload and m.payload["msg_id"] not in seen:
            seen.add(m.payload["msg_id"])
            out.append(m)
    return out


def wait_event(col, sid, pred, timeout, what):
    def find(c):
        for m in session_events(c, sid):
            if pred(m.payload):
                return m
        return None
    return col.wait_for(find, timeout, "%s in session %s" % (what, sid))


def next_phase(evs, m):
    """The first phase (or end) event after event m, by seq."""
    later = [x for x in evs if x.payload["seq"] > m.payload["seq"] and
             (x.payload["type"] == "phase" or x.payload["type"] in END_TYPES)]
    check_that(later, "no phase event after seq %d" % m.payload["seq"])
    return min(later, key=lambda x: x.payload["seq"])


def cuff_index(cuff):
    return int(cuff.split("-")[1])


def samples_between(col, cuff, t0, t1):
    """Telemetry samples of cuff received between monotonic times t0 and t1."""
    out = []
    for m in col.select("telemetry", since=t0, topic="%s/cuff/%s/telemetry" % (PREFIX, cuff)):
        if m.t <= t1:
            out.extend(m.payload["samples"])
    return out


def main():
    suite = Suite("test_session")
    figures = {}
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(N_CUFFS)
        col = h.collector()
        cuffs = sim_cuffs(sim)
        ids = {c["id"] for c in cuffs}
        h.start_gateway(h.write_gateway_config(cuffs))
        col.wait_for(lambda c: set(c.cuff_links()) >= ids and
                     all(v == "connected" for v in c.cuff_links().values()),
                     CONNECT_S, "every cuff connected")
        base = {c["cuff"]: c for c in sim.stats()["cuffs"]}
        sids, started_at = {}, {}

        def start_all():
            for name, plan in PLANS.items():
                t = time.monotonic()
                r = h.send_command(col, "session/start", {"plan": {"exercises": plan}})
                check_that(r["ok"] is True and r.get("session_id"),
                           "%s: session/start refused: %r" % (name, r))
                sids[name] = r["session_id"]
                started_at[name] = t
            check_that(len(set(sids.values())) == len(sids), "session ids repeat: %r" % sids)

        suite.check("session/start accepted for every mode (6 sessions, 7 cuffs)", start_all)
        if len(sids) != len(PLANS):
            return suite.finish()

        def busy():
            before = sim.stats()["cuffs"]
            for plan_cuffs in (["cuff-01"], ["cuff-05"]):
                since = time.monotonic()
                r = h.send_command(col, "session/start", {"plan": {"exercises": [
                    exercise("again", plan_cuffs, "continuous", sets=[1], tempo_s=[1, 1],
                             rest_s=0)]}})
                check_that(r["ok"] is False and r["error"]["code"] == "cuff_busy",
                           "start on %s (in a session): %r" % (plan_cuffs, r))
                check_that("session_id" not in r, "a refusal carries a session_id: %r" % r)
                new = {m.topic.split("/")[5] for m in col.select(since=since)
                       if (m.kind or "").startswith("session-")} - set(sids.values())
                check_that(not new, "a refused start published session topics for %s" % new)
            after = sim.stats()["cuffs"]
            for b, a in zip(before, after):
                check_that(a["cp_writes"]["set_target"] == b["cp_writes"]["set_target"] and
                           a["cp_writes"]["measure_lop"] == b["cp_writes"]["measure_lop"],
                           "cuff %d got SET_TARGET/MEASURE_LOP from a refused start" % a["cuff"])

        suite.check("second session/start on a cuff in a session is refused cuff_busy", busy)

        def pause_resume_stop():
            sid = sids["pause"]
            wait_event(col, sid, lambda p: p["type"] == "rep" and p.get("rep") == 2,
                       SESSION_S, "rep 2 of set 1")
            deflates0 = sim.control("status 6")
            deflates0 = json.loads(deflates0[3:])["deflates"]["normal"]
            t_pause = time.monotonic()
            r = h.send_command(col, "session/pause", {"session_id": sid})
            check_that(r["ok"] is True, "pause refused: %r" % r)
            wait_event(col, sid, lambda p: p["type"] == "paused", 5, "the paused event")
            state_topic = "%s/session/%s/state" % (PREFIX, sid)

            def paused_states(c):
                return [m for m in c.select("session-state", since=t_pause, topic=state_topic)
                        if m.payload["phase"] == "paused"]
            first = col.wait_for(paused_states, 5, "a session state with phase paused")[0]
            check_that(first.payload["seconds_left"] is not None,
                       "paused state has no seconds_left: %r" % first.payload)
            # The cuff deflates: telemetry below 20 mmHg, and cuffsim counted the DEFLATE.
            col.wait_for(lambda c: any(s[1] is not None and s[1] < 20 for s in
                                       samples_between(c, "cuff-06", t_pause, 1e18)),
                         10, "cuff-06 pressure below 20 mmHg after pause")
            figures["pause_to_below_20_s"] = time.monotonic() - t_pause
            st = json.loads(sim.control("status 6")[3:])
            check_that(st["deflates"]["normal"] == deflates0 + 1,
                       "cuffsim counted %d normal DEFLATEs, expected %d" %
                       (st["deflates"]["normal"], deflates0 + 1))
            # The clock is frozen: seconds_left is the same more than a second later
            # (a running clock, rounded up, would have dropped by at least 1).
            later = col.wait_for(lambda c: [m for m in paused_states(c)
                                            if m.t - first.t >= 1.2], 6,
                                 "a paused state published 1.2 s after the first")[0]
            retained = json.loads(h.retained(state_topic)[state_topic])
            for p in (later.payload, retained):
                check_that(p["phase"] == "paused" and
                           p["seconds_left"] == first.payload["seconds_left"],
                           "seconds_left moved while paused: %r then %r (%.1f s later)" %
                           (first.payload["seconds_left"], p["seconds_left"],
                            later.t - first.t))
            check_that(col.latest_payload("cuff/cuff-06/state")["session_id"] == sid,
                       "cuff-06 left its session while paused")
            # Resume within 60 s of the deflation: the safety engine refuses it.
            r = h.send_command(col, "session/resume", {"session_id": sid})
            check_that(r["ok"] is False and r["error"]["code"] == "reperfusion",
                       "resume 60 s after deflation must be refused reperfusion: %r" % r)
            sets0 = json.loads(sim.control("status 6")[3:])["cp_writes"]["set_target"]
            check_that(sets0 == 1, "cuff-06 got %d SET_TARGETs (the refused resume sent one?)"
                       % sets0)
            # Stop while paused.
            r = h.send_command(col, "session/stop", {"session_id": sid})
            check_that(r["ok"] is True, "stop refused: %r" % r)
            end = wait_event(col, sid, lambda p: p["type"] in END_TYPES, 10, "the end event")
            check_that(end.payload["type"] == "stopped",
                       "session ended %r" % end.payload)
            summary_topic = "%s/session/%s/summary" % (PREFIX, sid)
            col.wait_for(lambda c: c.latest_payload("session/%s/summary" % sid), 10,
                         "the summary")
            sm = json.loads(h.retained(summary_topic)[summary_topic])
            check_that(sm["outcome"] == "stopped", "summary outcome %r" % sm["outcome"])
            sets = [s for e in sm["exercises"] for s in e["sets"]]
            check_that(len(sets) == 1 and sets[0]["set"] == 1 and sets[0]["cuff"] == "cuff-06",
                       "summary of the stopped session: %r" % sm["exercises"])
            check_that(sets[0]["mean_mmHg"] is not None and sets[0]["mean_mmHg"] > 20,
                       "the set cut short has no pressure figures: %r" % sets[0])
            st = json.loads(h.retained(state_topic)[state_topic])
            check_that(st["phase"] == "stopped", "retained state %r" % st["phase"])
            types = [m.payload["type"] for m in session_events(col, sid)]
            check_that(types.count("paused") == 1 and "resumed" not in types,
                       "events around pause: %r" % types)
            seqs = [m.payload["seq"] for m in session_events(col, sid)]
            check_that(sorted(seqs) == list(range(1, len(seqs) + 1)),
                       "seq not contiguous from 1: %r" % seqs)

        suite.check("pause deflates and freezes seconds_left; resume < 60 s after deflation "
                    "refused reperfusion; stop while paused ends stopped with a summary",
                    pause_resume_stop)

        def rest_pause():
            sid = sids["rest_pause"]
            rest = wait_event(col, sid, lambda p: p["type"] == "phase" and p["phase"] == "rest",
                              SESSION_S, "the rest phase")
            state_topic = "%s/session/%s/state" % (PREFIX, sid)
            # Deflated in the rest first (below 20 mmHg), then pause.
            col.wait_for(lambda c: any(s[1] is not None and s[1] < 20 for s in
                                       samples_between(c, "cuff-07", rest.t, 1e18)),
                         6, "cuff-07 below 20 mmHg in its rest")
            t = time.monotonic()
            r = h.send_command(col, "session/pause", {"session_id": sid})
            check_that(r["ok"] is True, "pause in the rest: %r" % r)
            paused = col.wait_for(lambda c: next((m for m in c.select(
                "session-state", since=t, topic=state_topic) if m.payload["phase"] == "paused"),
                None), 5, "state paused")
            left = paused.payload["seconds_left"]
            check_that(left is not None and 0 < left <= 8, "seconds_left %r at pause" % left)
            t = time.monotonic()
            r = h.send_command(col, "session/resume", {"session_id": sid})
            check_that(r["ok"] is True, "resume from an intermittent rest refused: %r" % r)
            back = col.wait_for(lambda c: next((m for m in c.select(
                "session-state", since=t, topic=state_topic) if m.payload["phase"] == "rest"),
                None), 5, "state rest again")
            check_that(abs(back.payload["seconds_left"] - left) <= 1,
                       "seconds_left %r after resume, %r at pause" %
                       (back.payload["seconds_left"], left))
            end = wait_event(col, sid, lambda p: p["type"] in END_TYPES, SESSION_S, "the end")
            check_that(end.payload["type"] == "completed", "ended %r" % end.payload)
            ordered = sorted((m.payload for m in session_events(col, sid)),
                             key=lambda p: p["seq"])
            seqs = [p["seq"] for p in ordered]
            check_that(seqs == list(range(1, len(seqs) + 1)), "seq %r" % seqs)
            seq = [p["phase"] if p["type"] == "phase" else p["type"] for p in ordered
                   if p["type"] not in ("rep", "lop_measured")]
            want = ["started", "lop", "inflating", "set", "rest", "paused", "resumed", "rest",
                    "inflating", "set", "deflating", "completed"]
            check_that(seq == want, "events %r, expected %r" % (seq, want))
            st = json.loads(sim.control("status 7")[3:])
            check_that(st["cp_writes"]["set_target"] == 2 and st["deflates"]["normal"] == 2,
                       "cuff-07: %d SET_TARGET, %d DEFLATE (expected 2, 2)" %
                       (st["cp_writes"]["set_target"], st["deflates"]["normal"]))

        suite.check("pause in an intermittent rest: resume accepted at once, the rest keeps "
                    "its time left, the session completes", rest_pause)

        def check_session(name):
            plan = PLANS[name]
            ex = plan[0]
            sid = sids[name]
            end = wait_event(col, sid, lambda p: p["type"] in END_TYPES, SESSION_S,
                             "the end of the %s session" % name)
            figures["%s_session_s" % name] = end.t - started_at[name]
            evs = session_events(col, sid)
            pl = [m.payload for m in evs]
            check_that(end.payload["type"] == "completed",
                       "%s ended %r; events %r" % (name, end.payload, pl[-5:]))
            seqs = [p["seq"] for p in pl]
            check_that(sorted(seqs) == list(range(1, len(seqs) + 1)),
                       "seq not contiguous from 1: %r" % sorted(seqs))
            ordered = [p for p in sorted(pl, key=lambda p: p["seq"])]
            check_that(ordered[0]["type"] == "started" and ordered[-1]["type"] == "completed",
                       "first/last events %r / %r" % (ordered[0]["type"], ordered[-1]["type"]))
            phases = [p["phase"] for p in ordered if p["type"] == "phase"]
            check_that(phases == expected_phases(ex),
                       "phase sequence %r, expected %r" % (phases, expected_phases(ex)))
            # Rep events: one per rep of the plan (bilateral: shared, not per cuff).
            reps = [(p["set"], p["rep"]) for p in ordered if p["type"] == "rep"]
            want = [] if ex["mode"] == "cycle" else \
                [(s + 1, r + 1) for s, n in enumerate(ex["sets"]) for r in range(n)]
            check_that(reps == want, "rep events %r, expected %r" % (reps, want))
            others = {p["type"] for p in ordered} - {"started", "lop_measured", "phase", "rep",
                                                     "completed"}
            check_that(not others, "unexpected event types %s: %r" % (others, ordered))
            # LOP: one lop_measured per cuff, agreeing with cuffsim.
            lops = {p["cuff"]: p["lop_mmHg"] for p in ordered if p["type"] == "lop_measured"}
            check_that(set(lops) == set(ex["cuffs"]), "lop_measured for %s" % sorted(lops))
            stats = {c["cuff"]: c for c in sim.stats()["cuffs"]}
            for cuff, lop in lops.items():
                st = stats[cuff_index(cuff)]
                # SFLOAT: 0.1 mmHg resolution below 204.8, 1 mmHg above.
                check_that(st["last_lop"] is not None and abs(st["last_lop"] - lop) <= 0.5,
                           "%s: lop_measured %.1f, cuffsim's last_lop %r" %
                           (cuff, lop, st["last_lop"]))
                check_that(abs(st["lop"] - lop) <= 5.0,
                           "%s: measured LOP %.1f is %.1f mmHg from the model's %.1f" %
                           (cuff, lop, lop - st["lop"], st["lop"]))
                figures.setdefault("lop_error_mmHg", []).append(round(lop - st["lop"], 1))
            # Retained state and summary.
            state_topic = "%s/session/%s/state" % (PREFIX, sid)
            summary_topic = "%s/session/%s/summary" % (PREFIX, sid)
            col.wait_for(lambda c: c.latest_payload("session/%s/summary" % sid), 10,
                         "the summary")
            ret = h.retained("%s/session/%s/+" % (PREFIX, sid))
            check_that(state_topic in ret and summary_topic in ret,
                       "retained: %s" % sorted(ret))
            st = json.loads(ret[state_topic])
            check_that(st["phase"] == "completed", "retained state phase %r" % st["phase"])
            check_that(st["cuffs"] == ex["cuffs"], "state cuffs %r" % st["cuffs"])
            sm = json.loads(ret[summary_topic])
            check_that(sm["outcome"] == "completed" and sm["reason"] is None,
                       "summary outcome %r reason %r" % (sm["outcome"], sm["reason"]))
            check_that(sm["alarms"] == [], "alarms during a clean session: %r" % sm["alarms"])
            check_that(len(sm["exercises"]) == 1 and sm["exercises"][0]["name"] == ex["name"],
                       "summary exercises %r" % sm["exercises"])
            n_sets = ex["cycles"] if ex["mode"] == "cycle" else len(ex["sets"])
            pcts = step_pcts(n_sets) if ex["mode"] == "cycle" else [100] * n_sets
            got = {(s["set"], s["cuff"]): s for s in sm["exercises"][0]["sets"]}
            want_keys = {(i + 1, c) for i in range(n_sets) for c in ex["cuffs"]}
            check_that(set(got) == want_keys, "summary sets %s, expected %s" %
                       (sorted(got), sorted(want_keys)))
            for (set_no, cuff), s in sorted(got.items()):
                target = ex["pct_lop"] * lops[cuff] / 100.0 * pcts[set_no - 1] / 100.0
                check_that(s["mean_mmHg"] is not None and
                           abs(s["mean_mmHg"] - target) <= 0.15 * target,
                           "%s set %d: mean %r not within 15 %% of the target %.1f" %
                           (cuff, set_no, s["mean_mmHg"], target))
                check_that(s["pct_within_10"] > 50, "%s set %d: pct_within_10 %r" %
                           (cuff, set_no, s["pct_within_10"]))
                check_that(s["min_mmHg"] <= s["mean_mmHg"] <= s["max_mmHg"],
                           "%s set %d: min/mean/max %r" % (cuff, set_no, s))
                check_that(abs(s["peak_pct_lop"] - s["max_mmHg"] / lops[cuff] * 100) <= 1.0,
                           "%s set %d: peak_pct_lop %r vs max %r / LOP %r" %
                           (cuff, set_no, s["peak_pct_lop"], s["max_mmHg"], lops[cuff]))
                length = ex["on_s"] if ex["mode"] == "cycle" else \
                    ex["sets"][set_no - 1] * sum(ex["tempo_s"])
                check_that(abs(s["time_under_pressure_s"] - length) <= 0.5,
                           "%s set %d: time under pressure %r s, the set lasts %d s" %
                           (cuff, set_no, s["time_under_pressure_s"], length))
                figures.setdefault("pct_within_10", []).append(s["pct_within_10"])
                figures.setdefault("mean_err_pct", []).append(
                    round((s["mean_mmHg"] - target) / target * 100, 1))
            check_that(sm["inflation_s_total"] > 0, "inflation_s_total %r" %
                       sm["inflation_s_total"])
            # Control-point writes counted by cuffsim.
            want_cp = expected_counts(ex)
            for cuff in ex["cuffs"]:
                now = stats[cuff_index(cuff)]
                b = base[cuff_index(cuff)]
                got_cp = {k: now["cp_writes"][k] - b["cp_writes"][k] for k in want_cp}
                check_that(got_cp == want_cp, "%s control-point writes %r, expected %r" %
                           (cuff, got_cp, want_cp))
                check_that(now["deflates"]["normal"] - b["deflates"]["normal"] ==
                           want_cp["deflate"] and now["deflates"]["safety"] == 0 and
                           now["deflates"]["estop"] == 0,
                           "%s deflate reasons %r" % (cuff, now["deflates"]))
                check_that(now["cp_writes"]["identify"] == b["cp_writes"]["identify"],
                           "%s was sent IDENTIFY" % cuff)
            return ordered, lops, evs

        def continuous():
            ordered, lops, evs = check_session("continuous")
            # Held inflated through the rest.
            rest = next(m for m in evs if m.payload.get("phase") == "rest")
            nxt = next_phase(evs, rest)
            target = PCT * lops["cuff-01"] / 100
            ps = [s[1] for s in samples_between(col, "cuff-01", rest.t + 0.3, nxt.t - 0.3)
                  if s[1] is not None]
            check_that(len(ps) >= 20, "only %d telemetry samples during the rest" % len(ps))
            check_that(min(ps) > 0.8 * target, "continuous: pressure fell to %.1f during the "
                       "rest (target %.1f)" % (min(ps), target))

        suite.check("continuous: phases, seq, reps, LOP, state, summary figures, CP writes; "
                    "held inflated in the rest", continuous)

        def intermittent():
            ordered, lops, evs = check_session("intermittent")
            rest = next(m for m in evs if m.payload.get("phase") == "rest")
            nxt = next_phase(evs, rest)
            ps = [s[1] for s in samples_between(col, "cuff-02", rest.t, nxt.t)
                  if s[1] is not None]
            check_that(ps and min(ps) < 20, "intermittent: pressure during the rest never "
                       "went below 20 mmHg (min %r)" % (min(ps) if ps else None))
            targets = {s[2] for s in samples_between(col, "cuff-02", rest.t + 0.5, nxt.t)}
            check_that(targets == {0.0} or targets <= {0.0, None},
                       "target during the intermittent rest: %r" % targets)

        suite.check("intermittent: phases, seq, reps, summary, 2 SET_TARGETs and 2 DEFLATEs; "
                    "pressure < 20 mmHg in the rest", intermittent)

        def cycle():
            ordered, lops, evs = check_session("cycle")
            target = PCT * lops["cuff-03"] / 100
            sets = [m for m in evs if m.payload.get("phase") == "set"]
            seen = []
            for m in sets:
                nxt = next_phase(evs, m)
                ts = {s[2] for s in samples_between(col, "cuff-03", m.t + 0.3, nxt.t - 0.3)}
                check_that(len(ts) == 1, "several targets within one cycle: %r" % ts)
                seen.append(ts.pop())
            want = [target * p / 100 for p in step_pcts(2)]
            check_that(len(seen) == 2 and all(abs(a - b) <= 0.2 for a, b in zip(seen, want)),
                       "cycle targets %r, expected %r (stepped 90 %%, 100 %%)" % (seen, want))

        suite.check("cycle: phases, seq, summary, stepped targets 90 % then 100 % of "
                    "pct_lop x LOP", cycle)

        def bilateral():
            ordered, lops, evs = check_session("bilateral")
            # Lockstep: each phase event is once for both cuffs, and in every set both
            # cuffs are inflated for its whole length.
            for m in evs:
                if m.payload.get("phase") != "set":
                    continue
                nxt = next_phase(evs, m)
                for cuff in ("cuff-04", "cuff-05"):
                    target = PCT * lops[cuff] / 100
                    ps = [s[1] for s in samples_between(col, cuff, m.t + 0.2, nxt.t - 0.2)
                          if s[1] is not None]
                    check_that(len(ps) >= 20 and min(ps) > 0.8 * target,
                               "%s not inflated through set %s (min %r, target %.1f)" %
                               (cuff, m.payload.get("set"), min(ps) if ps else None, target))

        suite.check("bilateral: one shared phase/rep sequence, both cuffs inflated in every "
                    "set, summary for both, equal CP writes", bilateral)

        def all_valid():
            col.assert_valid()
            kinds = {m.kind for m in col.select()}
            check_that({"session-event", "session-state", "session-summary", "reply"} <= kinds,
                       "kinds seen: %s" % sorted(k for k in kinds if k))

        suite.check("every payload valid against its schema", all_valid)
        print("  figures: %s" % json.dumps(figures, sort_keys=True))
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
