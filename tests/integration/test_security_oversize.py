#!/usr/bin/python3
"""Issue 9 item 3: oversized payloads on the gateway's command topic.

The gateway announces an MQTT 5 Maximum Packet Size (69 632 bytes) when it
connects, so a broker without any size limit of its own (the harness's)
does not send it the 4 MiB commands a client publishes: the gateway's memory
does not grow (before, 3 x 200 MiB took it to 647 MB), its log shows no
oversize drop (it never saw them), and it still answers a legitimate command
at once. A command just over the 64 KiB command limit still arrives and is
refused with a reply that says so.
"""

import json
import os
import sys
import time
import uuid

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PREFIX, Suite, check_that, sim_cuffs  # noqa: E402
from test_security_common import rss_kib  # noqa: E402

BIG = 4 * 1024 * 1024
COUNT = 3
GROWTH_LIMIT_KIB = 2048   # one copy of one payload would be 4096


def main():
    suite = Suite("test_security_oversize")
    figures = {}
    with suite.harness() as h:
        broker = h.start_broker()
        sim = h.start_cuffsim(1)
        col = h.collector(topic=PREFIX + "/#")
        gw = h.start_gateway(h.write_gateway_config(sim_cuffs(sim)))
        col.wait_for(lambda c: (c.latest_payload("cuff/cuff-01/state") or {}).get("link") ==
                     "connected", 30, "cuff-01 connected")

        def big_commands_never_arrive():
            rss0, hwm0 = rss_kib(gw.pid)
            pub = mqtt.Client(client_id="big-%s" % uuid.uuid4().hex[:6], protocol=mqtt.MQTTv5)
            pub.connect("127.0.0.1", broker.port, keepalive=30, clean_start=True)
            pub.loop_start()
            try:
                for i in range(COUNT):
                    info = pub.publish(PREFIX + "/cmd/session/start", b"x" * BIG, qos=1)
                    info.wait_for_publish(30)
                    check_that(info.is_published(), "the broker did not take payload %d" % i)
            finally:
                pub.disconnect()
                pub.loop_stop()
            # Published before this command: had the broker passed them on, the
            # gateway would have read them before it.
            t0 = time.monotonic()
            r = h.send_command(col, "cuff/identify", {"cuff": "cuff-01"})
            figures["reply_after_big_ms"] = round((time.monotonic() - t0) * 1000)
            check_that(r.get("ok") is True, "identify after the big ones: %r" % r)
            rss1, hwm1 = rss_kib(gw.pid)
            figures.update(rss_before_kib=rss0, rss_after_kib=rss1, hwm_before_kib=hwm0,
                           hwm_after_kib=hwm1)
            print("  %d x %d MiB to cmd/: VmHWM %d -> %d KiB, VmRSS %d -> %d KiB; next reply "
                  "in %d ms" % (COUNT, BIG >> 20, hwm0, hwm1, rss0, rss1,
                                figures["reply_after_big_ms"]))
            check_that(hwm1 - hwm0 < GROWTH_LIMIT_KIB,
                       "peak memory grew by %d KiB" % (hwm1 - hwm0))
            check_that(not any("over the" in line and "limit" in line for line in gw.lines),
                       "the gateway received an oversized message")

        suite.check("3 x 4 MiB commands: never delivered, memory flat, next command answered",
                    big_commands_never_arrive)

        def just_over_the_command_limit():
            pad = "x" * (65536 + 1000)
            raw = json.dumps({"request_id": "big-1", "cuff": "cuff-01", "pad": pad}).encode()
            r = h.send_command(col, "cuff/identify", raw=raw)
            check_that(r.get("ok") is False and "at most 65536" in
                       (r.get("error") or {}).get("message", ""), "reply: %r" % r)
            check_that(gw.alive(), "the gateway died")

        suite.check("a 66 KiB command still arrives and is refused with a reply",
                    just_over_the_command_limit)
        col.take_errors()  # the big payloads were no JSON on purpose
    print("figures: %s" % figures)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
