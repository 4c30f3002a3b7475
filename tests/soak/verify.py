"""The campaign's final judgement: the gateway's database (SQLite, opened
read-only) against what the recorder received.

Each check_* returns (failures, figures): failures is a list of readable
lines (empty = pass), figures a dict for the report. Nothing here waits or
talks to a process.
"""

import json
import re
import sqlite3

SANITIZER_RX = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|"
                          r"SUMMARY: \w+Sanitizer|WARNING: \w+Sanitizer")
TERMINAL = ("completed", "stopped", "aborted")
SHOW = 15   # failures listed per check; the rest are counted


def db_connect(path):
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)


def open_sessions(path):
    """{session id: [cuff ids]} of the sessions the database has not ended."""
    db = db_connect(path)
    try:
        out = {}
        for sid, plan in db.execute("SELECT id, plan FROM sessions WHERE ended_ms IS NULL"):
            cuffs = []
            for ex in json.loads(plan).get("exercises", []):
                cuffs += [c for c in ex.get("cuffs", []) if c not in cuffs]
            out[sid] = cuffs
        return out
    finally:
        db.close()


def _rows(path, table):
    db = db_connect(path)
    try:
        return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        db.close()


def outbox_depth(path):
    return _rows(path, "outbox")


def event_total(path):
    return _rows(path, "session_events")


class Db:
    def __init__(self, path):
        db = db_connect(path)
        try:
            self.integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            self.sessions = {}
            for sid, outcome, started, ended in db.execute(
                    "SELECT id, outcome, started_ms, ended_ms FROM sessions"):
                self.sessions[sid] = {"outcome": outcome, "started_ms": started,
                                      "ended_ms": ended}
            self.events = {}   # sid -> {seq: (type, msg_id, ts_ms, reason)}
            for sid, seq, typ, payload, ts in db.execute(
                    "SELECT session_id, seq, type, payload, ts_ms FROM session_events"):
                p = json.loads(payload)
                self.events.setdefault(sid, {})[seq] = (typ, p.get("msg_id"), ts,
                                                        p.get("reason"))
            self.alarms = {}
            for row in db.execute("SELECT alarm_id, cuff, code, priority, state, "
                                  "condition_present, raised_ms, cleared_ms FROM alarms"):
                self.alarms[row[0]] = dict(zip(("alarm_id", "cuff", "code", "priority", "state",
                                                "condition_present", "raised_ms",
                                                "cleared_ms"), row))
            self.history = {}
            for aid, state in db.execute("SELECT alarm_id, state FROM alarm_history ORDER BY id"):
                self.history.setdefault(aid, []).append(state)
            self.outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        finally:
            db.close()

    def n_events(self):
        return sum(len(v) for v in self.events.values())


def _more(lines):
    if len(lines) > SHOW:
        return lines[:SHOW] + ["... and %d more" % (len(lines) - SHOW)]
    return lines


def check_database(db):
    bad = []
    if db.integrity != "ok":
        bad.append("PRAGMA integrity_check: %s" % db.integrity)
    for sid, s in sorted(db.sessions.items()):
        evs = db.events.get(sid, {})
        seqs = sorted(evs)
        if seqs != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, (seqs[-1] if seqs else 0) + 1)) - set(seqs))
            bad.append("session %s: stored seqs have gaps (missing %s)" % (sid, missing[:10]))
        if s["ended_ms"] is None:
            bad.append("session %s never ended" % sid)
            continue
        if not seqs or evs[seqs[-1]][0] not in TERMINAL:
            bad.append("session %s (outcome %s): last stored event is %s" %
                       (sid, s["outcome"], evs[seqs[-1]][0] if seqs else "none"))
        elif evs[seqs[-1]][0] != s["outcome"]:
            bad.append("session %s: outcome %s but last event %s" %
                       (sid, s["outcome"], evs[seqs[-1]][0]))
        terminal = [q for q in seqs if evs[q][0] in TERMINAL]
        if len(terminal) > 1:
            bad.append("session %s: %d terminal events (seqs %s)" % (sid, len(terminal), terminal))
    if db.outbox:
        bad.append("%d rows still in the outbox at the end" % db.outbox)
    outcomes = {}
    for s in db.sessions.values():
        outcomes[s["outcome"]] = outcomes.get(s["outcome"], 0) + 1
    reasons = {}
    for sid, evs in db.events.items():
        if evs:
            last = evs[max(evs)]
            if last[0] == "aborted":
                reasons[last[3]] = reasons.get(last[3], 0) + 1
    return _more(bad), {"sessions": len(db.sessions), "events": db.n_events(),
                        "outcomes": outcomes, "aborted_reasons": dict(sorted(reasons.items())),
                        "alarms": len(db.alarms)}


STALE_BEFORE_S = 2.0   # Paho may send a stale publish just before the loop logs it
STALE_AFTER_S = 30.0   # the overtaken seq is the oldest row of the resend that follows


def stale_explained(reorder, stale_times):
    """True when a reorder is the one known cause (docs/reliability.md,
    finding 3): after a reconnect Paho sends the publishes it still held for
    the lost connection before the outbox's resend. The gateway logs that
    reconnect (STALE_LINE); both first arrivals must fall in its window."""
    _sid, _seq, _top, wall_seq, wall_top = reorder
    return any(t - STALE_BEFORE_S <= wall_top <= wall_seq <= t + STALE_AFTER_S
               for t in stale_times)


def check_events(db, rec, broker_kills_wall, stale_times=()):
    """Every stored event delivered, same msg_id, in order; nothing delivered
    that is not stored. broker_kills_wall: wall-clock s of each broker SIGKILL,
    used only to say where a lost event stood relative to the nearest one.
    stale_times: wall s of the gateway's reconnects with stale publishes; a
    reorder inside one's window is counted (figures), any other one fails."""
    bad = []
    lost = []
    copies = 0
    dup_events = 0
    delays = []
    with rec.cond:
        for sid, evs in sorted(db.events.items()):
            got = rec.events.get(sid, {})
            for seq, (typ, mid, ts, _reason) in sorted(evs.items()):
                g = got.get(seq)
                if g is None:
                    lost.append((sid, seq, typ, ts))
                    continue
                if g.msg_id != mid:
                    bad.append("session %s seq %d: delivered msg_id %s, stored %s" %
                               (sid, seq, g.msg_id, mid))
                copies += g.copies
                if g.copies > 1:
                    dup_events += 1
                if ts:
                    delays.append(g.wall_first - ts / 1000.0)
            for seq in sorted(set(got) - set(evs)):
                bad.append("session %s seq %d (%s) delivered but not in the database" %
                           (sid, seq, got[seq].type))
        for sid in sorted(set(rec.events) - set(db.events)):
            bad.append("session %s: %d events delivered, none stored" %
                       (sid, len(rec.events[sid])))
        order = [p for p in rec.problems if "arrived as" in p]
        explained = 0
        for r in rec.reorders:
            if stale_explained(r, stale_times):
                explained += 1
            else:
                order.append("session %s: seq %d arrived first after seq %d (out of order, "
                             "%.3f s later, no stale-publish reconnect around it)" %
                             (r[0], r[1], r[2], r[3] - r[4]))
    for sid, seq, typ, ts in lost[:SHOW]:
        near = ""
        if broker_kills_wall and ts:
            t = ts / 1000.0
            before = [k for k in broker_kills_wall if k >= t]
            if before:
                near = ", %.2f s before a broker SIGKILL" % (min(before) - t)
        bad.append("LOST session %s seq %d (%s, stored at %s%s)" % (sid, seq, typ, ts, near))
    if len(lost) > SHOW:
        bad.append("... %d events lost in all" % len(lost))
    bad = _more(bad) + _more(order)
    delays.sort()
    fig = {"stored": db.n_events(), "delivered_unique": db.n_events() - len(lost),
           "lost": len(lost), "copies_received": copies,
           "events_with_duplicates": dup_events, "duplicate_copies": copies - (db.n_events() -
                                                                               len(lost)),
           "reordered_after_stale_reconnect": explained,
           "stale_publish_reconnects": len(stale_times),
           "delivery_delay_s": {"p50": _pct(delays, 50), "p99": _pct(delays, 99),
                                "max": round(delays[-1], 3) if delays else None}}
    return bad, fig


def _pct(v, p):
    if not v:
        return None
    return round(v[min(len(v) - 1, int(len(v) * p / 100))], 3)


def check_summaries(db, rec):
    bad = []
    n = 0
    with rec.cond:
        for sid, s in sorted(db.sessions.items()):
            got = rec.summaries.get(sid)
            if not got:
                bad.append("session %s (%s): no summary delivered" % (sid, s["outcome"]))
                continue
            n += 1
            evs = db.events.get(sid, {})
            reason = evs[max(evs)][3] if evs else None
            for mid, outcome, rsn in got:
                if outcome != s["outcome"] or (outcome == "aborted" and rsn != reason):
                    bad.append("session %s: summary %s says %s/%s, database %s/%s" %
                               (sid, mid, outcome, rsn, s["outcome"], reason))
            if len(got) > 1:
                bad.append("session %s: %d different summaries (msg_ids %s)" %
                           (sid, len(got), [g[0] for g in got]))
        for sid in sorted(set(rec.summaries) - set(db.sessions)):
            bad.append("summary of session %s delivered, session not in the database" % sid)
    return _more(bad), {"summaries_delivered": n}


def check_alarms(db, rec, allowed):
    """allowed: alarm id -> why it may be open at the end."""
    bad = []
    open_at_end = []
    documented = []
    by_code = {}
    with rec.cond:
        for aid, a in sorted(db.alarms.items()):
            by_code[a["code"]] = by_code.get(a["code"], 0) + 1
            recs = [r for r in rec.alarms.get(aid, []) if r is not None]
            if not recs:
                bad.append("alarm %s (%s %s, %s): never delivered" %
                           (aid, a["priority"], a["code"], a["state"]))
                continue
            delivered = {r.get("state") for r in recs}
            missing = [s for s in set(db.history.get(aid, [])) if s not in delivered]
            if missing:
                bad.append("alarm %s (%s): recorded states %s, delivered %s" %
                           (aid, a["code"], db.history.get(aid), sorted(delivered)))
            if a["state"] != "cleared" and aid in allowed:
                documented.append("%s: %s" % (aid, allowed[aid]))
            elif a["state"] != "cleared":
                open_at_end.append("alarm %s (%s %s on %s) still %s, condition %s" %
                                   (aid, a["priority"], a["code"], a["cuff"], a["state"],
                                    bool(a["condition_present"])))
            elif not rec.alarm_closed(aid):
                bad.append("alarm %s (%s): cleared in the database, close not delivered "
                           "(records %s)" % (aid, a["code"], [r.get("state") if r else "empty"
                                                           for r in rec.alarms.get(aid, [])]))
        for aid in sorted(set(rec.alarms) - set(db.alarms)):
            bad.append("alarm %s delivered, not in the database" % aid)
    return _more(bad) + _more(open_at_end), {"alarms": len(db.alarms),
                                             "by_code": dict(sorted(by_code.items())),
                                             "open_at_end": len(open_at_end),
                                             "open_documented": documented}


def check_gateway_kills(db, rec, kills):
    """kills: every death of a gateway, SIGKILLs and crashes (campaign.py
    record_death): open sessions, inflated ones, deflation times."""
    bad = []
    n_open = n_inflated = 0
    worst = 0.0
    for k in kills:
        for cuff, dt in sorted(k["deflated_after_s"].items()):
            if dt is None:
                bad.append("gateway death %d (%s): cuff %s (%.0f mmHg) not below 20 mmHg "
                           "%.0f s later" % (k["n"], k["cause"], cuff, k["inflated_cuffs"][cuff],
                                             k["deadline_s"]))
            else:
                worst = max(worst, dt)
        for sid in sorted(k["open_sessions"]):
            n_open += 1
            inflated = sid in k["inflated_sessions"]
            n_inflated += inflated
            s = db.sessions.get(sid)
            evs = db.events.get(sid, {})
            last = evs[max(evs)] if evs else None
            if not s or s["outcome"] != "aborted" or not last or last[3] != "gateway_restart":
                bad.append("gateway death %d: session %s%s ended %s/%s, expected "
                           "aborted/gateway_restart" % (k["n"], sid, " (inflated)" if inflated
                                                        else "", s and s["outcome"],
                                                        last and last[3]))
                continue
            with rec.cond:
                got = rec.events.get(sid, {}).get(max(evs))
                sums = rec.summaries.get(sid, [])
            if got is None or got.reason != "gateway_restart":
                bad.append("gateway death %d: session %s: aborted event not delivered" %
                           (k["n"], sid))
            if not any(o == "aborted" and r == "gateway_restart" for _m, o, r in sums):
                bad.append("gateway death %d: session %s: aborted summary not delivered" %
                           (k["n"], sid))
    return _more(bad), {"deaths": len(kills), "causes": [k["cause"] for k in kills],
                        "sessions_open_at_kills": n_open,
                        "sessions_inflated_at_kills": n_inflated,
                        "cuffs_inflated_at_kills": sum(len(k["inflated_cuffs"]) for k in kills),
                        "slowest_deflation_s": round(worst, 2)}


def check_witness(rec, wit):
    """Messages one subscriber recorded and the other did not."""
    with rec.cond, wit.cond:
        only_rec = set(rec.ids) - set(wit.ids)
        only_wit = set(wit.ids) - set(rec.ids)
        empties_rec = sum(rec.empties.values())
        empties_wit = sum(wit.empties.values())
    bad = []
    if only_wit:
        bad.append("the recorder lacks %d message(s) the witness got, e.g. %s" %
                   (len(only_wit), sorted(only_wit)[:5]))
    if only_rec:
        bad.append("the witness lacks %d message(s) the recorder got, e.g. %s" %
                   (len(only_rec), sorted(only_rec)[:5]))
    return bad, {"recorder_ids": len(rec.ids), "witness_ids": len(wit.ids),
                 "only_recorder": len(only_rec), "only_witness": len(only_wit),
                 "empty_alarm_payloads": [empties_rec, empties_wit]}


def scan_sanitizers(paths):
    hits = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                for i, raw in enumerate(f, 1):
                    line = raw.decode("utf-8", "replace")
                    if SANITIZER_RX.search(line):
                        hits.append("%s:%d: %s" % (path, i, line.strip()[:200]))
        except OSError as e:
            hits.append("%s: cannot read: %s" % (path, e))
    return _more(hits), {"logs_scanned": len(paths), "reports": len(hits)}


def rss_figures(instances):
    """instances: [(name, [(t_s, kib)])]. Per instance start/end/peak; the
    longest one judged: the peak of its last quarter against the peak of its
    second quarter (after the warm-up)."""
    out = []
    for name, samples in instances:
        if not samples:
            continue
        life = samples[-1][0]
        out.append({"instance": name, "life_s": round(life, 1), "start_kib": samples[0][1],
                    "end_kib": samples[-1][1], "peak_kib": max(k for _t, k in samples),
                    "samples": len(samples)})
    longest = max(out, key=lambda r: r["life_s"]) if out else None
    judged = None
    if longest:
        samples = dict(instances)[longest["instance"]]
        life = longest["life_s"]
        q2 = [k for t, k in samples if life / 4 <= t < life / 2]
        q4 = [k for t, k in samples if t >= 3 * life / 4]
        if q2 and q4:
            judged = {"instance": longest["instance"], "life_s": life,
                      "second_quarter_peak_kib": max(q2), "last_quarter_peak_kib": max(q4),
                      "growth_pct": round(100.0 * (max(q4) - max(q2)) / max(q2), 1)}
    return out, judged
