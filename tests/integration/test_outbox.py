#!/usr/bin/python3
"""Store-and-forward through broker faults, mid-session (DESIGN section 7).

1. The broker is stopped (SIGTERM) while a session runs and comes back on the
   same port after the session has produced events without it: every session
   event arrives, seq contiguous from 1, a repeated seq only as the very same
   message (same msg_id and bytes), the retained status is online again.
2. The network goes silent without a close (the broker is SIGSTOPped: its TCP
   connections stay open): the gateway notices by keepalive, the Last Will
   (status offline) is published once the broker runs again, the gateway
   reconnects by itself (status online) and drains what the session produced
   meanwhile.
3. At the end every event is also in the gateway's database (read-only look)
   and the published events equal the stored ones.

The broker lets only RECEIVE_MAX QoS 1 messages be in flight (its Receive
Maximum, mosquitto's max_inflight_messages): the gateway names it, and the
drains above go through the outbox's window of 3 (publisher_send_window;
test_outbox_window.py shows that the window is what makes a backlog drain).

The collector keeps a persistent MQTT session on a persistent broker, so what
the gateway publishes before the collector is back is queued for it, not lost
to the test."""

import os
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PREFIX, Suite, check_that, short_plan, sim_cuff_stats,  # noqa: E402
                     sim_cuffs, start_session, wait_phase, wait_session_end, wait_sim)

KEEPALIVE_S = 2      # the smallest the config accepts: fast SIGSTOP detection
START_S = 30.0
LOP_S = 30.0         # start to the first set (LOP measurement ~10 s, inflation ~2 s)
OUTAGE_CUES = 6      # cues sent to the cuff while the broker is away (3 reps at tempo 1+1)
DRAIN_S = 20.0       # broker back -> everything from the outage received
RECEIVE_MAX = 3      # the broker's max_inflight_messages: the outbox's window


def event_msgs(col, sid):
    return [m for m in col.select("session-event", topic="%s/session/%s/event" % (PREFIX, sid))
            if m.payload]


def seq_report(col, sid):
    """(seqs received as a set, {seq: [Msg, ...]})"""
    by_seq = {}
    for m in event_msgs(col, sid):
        by_seq.setdefault(m.payload["seq"], []).append(m)
    return set(by_seq), by_seq


def contiguous_to(col, sid, n):
    seqs, _ = seq_report(col, sid)
    return seqs >= set(range(1, n + 1))


def status_states(col, since):
    return [(m.t, m.payload["state"]) for m in col.select("status", since) if m.payload]


def main():
    suite = Suite("test_outbox")
    with suite.harness() as h:
        broker = h.start_broker(persistence=True,
                                extra="max_inflight_messages %d\n" % RECEIVE_MAX)
        sim = h.start_cuffsim(1)
        col = h.collector(persistent=True, reconnect_max_s=0.5)
        cuffs = sim_cuffs(sim)
        conf = h.write_gateway_config(cuffs, keepalive_s=KEEPALIVE_S)
        data_dir = os.path.join(h.tmp, "data")
        gw = h.start_gateway(conf)
        suite.check("the broker's Receive Maximum named, the outbox's window set to it",
                    lambda: gw.wait_line(r"outbox: the broker allows %d QoS 1 messages in "
                                         r"flight .* at most %d unacknowledged"
                                         % (RECEIVE_MAX, RECEIVE_MAX), START_S))
        col.wait_for(lambda c: c.cuff_links().get("cuff-01") == "connected", START_S,
                     "cuff-01 connected")
        sid = start_session(h, col, short_plan("cuff-01", reps=5, sets=3, rest_s=2))
        wait_phase(col, sid, "set", LOP_S)

        def broker_restart():
            cues0 = sim_cuff_stats(sim, 1)["cp_writes"]["cue"]
            t_down = time.monotonic()
            broker.stop()
            seqs, _ = seq_report(col, sid)
            before = max(seqs)  # nothing can arrive from here until the restart
            # The session goes on without the broker: wait until it has cued reps.
            wait_sim(sim, 1, lambda s: s["cp_writes"]["cue"] >= cues0 + OUTAGE_CUES, 15,
                     "%d cues sent while the broker is down" % OUTAGE_CUES)
            down_s = time.monotonic() - t_down
            check_that(gw.alive(), "gateway died without its broker")
            broker.start(port=broker.port, persistence=True, extra=broker.extra)
            t_up = time.monotonic()
            col.wait_for(lambda c: any(s == "online" and t >= t_up
                                       for t, s in status_states(c, t_up)),
                         DRAIN_S, "status online after the broker restart")
            # Events the session produced during the outage: at least the reps cued.
            want = before + 2
            col.wait_for(lambda c: contiguous_to(c, sid, want), DRAIN_S,
                         "events 1..%d (the outage's) after the restart" % want)
            drained = time.monotonic() - t_up
            seqs, by_seq = seq_report(col, sid)
            late = [s for s in seqs if s > before and by_seq[s][0].t >= t_up]
            check_that(len(late) >= 2, "events of the outage not delivered after it: late %s, "
                       "before %d, arrivals %s" % (sorted(late), before,
                                                   [(s, round(by_seq[s][0].t - t_up, 2))
                                                    for s in sorted(seqs)]))
            print("  broker down %.1f s; %d events of the outage delivered within %.2f s of "
                  "its restart" % (down_s, len(late), drained))
            st = h.retained(PREFIX + "/status")
            check_that(b'"online"' in st.get(PREFIX + "/status", b""),
                       "retained status is not online: %r" % st)

        suite.check("broker stopped mid-session and restarted: outage events delivered, "
                    "in order, status online", broker_restart)

        def broker_silent():
            seqs, _ = seq_report(col, sid)
            before = max(seqs)
            line0 = len(gw.lines)
            t_stop = time.monotonic()
            broker.proc.send_signal(signal.SIGSTOP)
            try:
                gw.wait_line(r"mqtt: connection lost", KEEPALIVE_S * 3 + 5, start=line0)
                detect_s = time.monotonic() - t_stop
                print("  SIGSTOP -> gateway noticed the silent broker after %.1f s "
                      "(keepalive %d s)" % (detect_s, KEEPALIVE_S))
                check_that(detect_s <= KEEPALIVE_S * 2 + 3,
                           "detection took %.1f s, keepalive is %d s" % (detect_s, KEEPALIVE_S))
            finally:
                broker.proc.send_signal(signal.SIGCONT)
            t_cont = time.monotonic()
            col.wait_for(lambda c: [s for _, s in status_states(c, t_stop)][:1] == ["offline"]
                         and "online" in [s for _, s in status_states(c, t_stop)][1:],
                         DRAIN_S, "status offline (Last Will) then online after SIGCONT")
            back_s = time.monotonic() - t_cont
            want = before + 1
            col.wait_for(lambda c: contiguous_to(c, sid, want), DRAIN_S,
                         "events 1..%d after SIGCONT" % want)
            print("  SIGCONT -> offline (Last Will) and online again within %.2f s" % back_s)

        suite.check("broker SIGSTOPped (silent TCP): keepalive detects it, Last Will, "
                    "reconnect, drain", broker_silent)

        def complete():
            end = wait_session_end(col, sid, 60)
            check_that(end["type"] == "completed", "session ended %r" % end)
            n = end["seq"]
            col.wait_for(lambda c: contiguous_to(c, sid, n), 10, "events 1..%d" % n)
            seqs, by_seq = seq_report(col, sid)
            check_that(seqs == set(range(1, n + 1)), "seq beyond the end: %s"
                       % sorted(seqs - set(range(1, n + 1))))
            dups = 0
            for s, msgs in by_seq.items():
                ids = {m.payload["msg_id"] for m in msgs}
                raws = {m.raw for m in msgs}
                check_that(len(ids) == 1 and len(raws) == 1,
                           "seq %d received as different messages: %s" % (s, msgs))
                dups += len(msgs) - 1
            # The summary is published after the end, retained.
            col.wait_for(lambda c: c.select("session-summary",
                                            topic="%s/session/%s/summary" % (PREFIX, sid)),
                         15, "the session summary")
            print("  %d events, seq 1..%d contiguous; %d duplicate deliveries (same msg_id)"
                  % (n, n, dups))
            return n

        n_events = suite.check("session completed: seq 1..N without gaps, duplicates only "
                               "as the same message", complete)

        def stored():
            check_that(n_events, "no event count from the previous check")
            db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "bfr-gateway.db"),
                                 uri=True, timeout=5)
            try:
                rows = db.execute("SELECT seq, type FROM session_events WHERE session_id = ? "
                                  "ORDER BY seq", (sid,)).fetchall()
            finally:
                db.close()
            check_that([r[0] for r in rows] == list(range(1, n_events + 1)),
                       "stored seqs %s, published 1..%d" % ([r[0] for r in rows], n_events))
            _, by_seq = seq_report(col, sid)
            for seq, typ in rows:
                check_that(by_seq[seq][0].payload["type"] == typ,
                           "seq %d stored as %s, published as %s" %
                           (seq, typ, by_seq[seq][0].payload["type"]))
            col.assert_valid()

        suite.check("the database holds the same events 1..N", stored)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
