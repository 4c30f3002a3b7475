#!/usr/bin/python3
"""The outbox's send window follows the broker's Receive Maximum
(publisher_send_window, docs/operations.md "Messages in flight").

The broker lets a client have RECEIVE_MAX QoS 1 messages in flight
(mosquitto's max_inflight_messages). The gateway supervises no cuff, so it
publishes nothing but its outbox and its status: nothing else wakes Paho.
The database is given a backlog of ROWS rows before the gateway starts
(test_outbox_full's filler rows on it-fill/N).

Paho 1.3 keeps a QoS 1 message over the Receive Maximum at the head of its
queue and sends it only at the next publish or after a 1 s wait (a PUBACK
does not wake it). An outbox that handed Paho more than the broker allows
therefore drained a few rows a second here (ROWS would take about a minute);
through a window of RECEIVE_MAX it drains in well under a second. Checked:
every row arrives, in order, within DRAIN_S of the gateway's start; the
gateway names the broker's limit once, and not again after a reconnect.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that  # noqa: E402
from test_outbox_full import FILL_ROW, FillerSubscriber, prefill  # noqa: E402

RECEIVE_MAX = 3
ROWS = 300
START_S = 30.0
DRAIN_S = 20.0  # the window drains ROWS in < 1 s; past the broker's limit, about 60 s
WARNING = r"outbox: the broker allows %d QoS 1 messages in flight" % RECEIVE_MAX


def main():
    suite = Suite("test_outbox_window")
    with suite.harness() as h:
        broker = h.start_broker(extra="max_inflight_messages %d\n" % RECEIVE_MAX)
        data_dir = os.path.join(h.tmp, "data")
        conf = h.write_gateway_config([], data_dir=data_dir)
        db = os.path.join(data_dir, "bfr-gateway.db")

        # A first run makes the database; its outbox is then given the backlog.
        gw = h.spawn("gateway-init", [h.binary("bfr-gateway"), "-c", conf])
        gw.wait_line(r"mqtt: connected to", START_S)
        gw.expect_exit = True
        check_that(gw.stop() == 0, "first run: exit status on SIGTERM")
        seqs = prefill(db, ROWS * FILL_ROW, 1)
        check_that(len(seqs) == ROWS, "%d filler rows, wanted %d" % (len(seqs), ROWS))
        sub = FillerSubscriber(broker.port)

        gw = h.start_gateway(conf)

        def drains():
            t0 = time.monotonic()
            gw.wait_line(r"mqtt: connected to", START_S)
            sub.wait_all(seqs, DRAIN_S, "backlog through a window of %d" % RECEIVE_MAX)
            print("  %d rows of %d bytes delivered in order %.2f s after the gateway's start"
                  % (ROWS, FILL_ROW, time.monotonic() - t0))

        suite.check("a backlog of %d rows drains, in order, within %.0f s through a window "
                    "of %d" % (ROWS, DRAIN_S, RECEIVE_MAX), drains)

        def named_once():
            gw.wait_line(WARNING + r" .* at most %d unacknowledged" % RECEIVE_MAX, 5)
            broker.restart()
            gw.wait_line(r"mqtt: connected to", START_S,
                         start=[i for i, ln in enumerate(gw.lines) if "connected to" in ln][0] + 1)
            n = sum(1 for ln in gw.lines if "outbox: the broker allows" in ln)
            check_that(n == 1, "the broker's limit named %d times over two connections" % n)

        suite.check("the limit named once, not again at a reconnect", named_once)
        sub.close()
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
