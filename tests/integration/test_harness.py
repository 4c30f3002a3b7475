#!/usr/bin/python3
"""The harness itself, against a real mosquitto and no gateway: the collector
flags invalid and unknown payloads, retained fetching sees exactly what the
broker holds, command replies are matched by MQTT 5 correlation data and by the
MQTT 3.1.1 fallback topic, and docs/mqtt-api.md's examples validate."""

import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import PREFIX, Suite, check_that, fail  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
import validate  # noqa: E402

STATUS = {"v": 1, "ts": "2026-11-24T09:30:00.123Z", "msg_id": "it-gw-0001-1", "state": "online",
          "version": "0.1.0", "cuffs": 4, "outbox_depth": 0, "gateway": "it-gw",
          "site": "it-site"}


def publisher(port):
    c = mqtt.Client(client_id="fake-gateway", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    return c


def pub(c, suffix, payload, retain=False):
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    c.publish("%s/%s" % (PREFIX, suffix), raw, qos=1, retain=retain).wait_for_publish(5)


def main():
    suite = Suite("test_harness")

    def doc_examples():
        doc = os.path.join(validate.SOURCE_DIR, "docs", "mqtt-api.md")
        examples = validate.doc_examples(doc)
        kinds = {k for _, k, _ in examples}
        missing = set(validate.PUBLISHED_KINDS) - kinds
        check_that(not missing, "docs/mqtt-api.md has no example of %s" % sorted(missing))
        v = validate.Validator()
        for line, kind, text in examples:
            if not v.has_schema(kind):
                continue  # cmd-* and reply schemas belong to another module; absent is no error here
            errs = v.errors(kind, text)
            check_that(not errs, "docs/mqtt-api.md:%d %s example: %s" % (line, kind, errs))

    suite.check("every docs/mqtt-api.md example validates against its schema", doc_examples)

    def validator_rejects_garbage():
        v = validate.Validator()
        check_that(v.errors("status", json.dumps(STATUS)) == [], "good status rejected")
        for bad in (b"", b"\xff\xfe", b"not json", b"[]", b"null",
                    json.dumps(dict(STATUS, extra=1)).encode(),
                    json.dumps(dict(STATUS, v=2)).encode(),
                    json.dumps(dict(STATUS, ts="2026-11-24 09:30:00")).encode(),
                    json.dumps(dict(STATUS, state="maybe")).encode(),
                    json.dumps({k: x for k, x in STATUS.items() if k != "msg_id"}).encode()):
            check_that(v.errors("status", bad), "garbage accepted: %r" % bad)
        for topic, kind in (("bfr/v1/s/g/status", "status"), ("bfr/v1/s/g/cuff/c/state", "cuff-state"),
                            ("bfr/v1/s/g/alarm/a1", "alarm"), ("bfr/v1/s/g/cmd/session/start",
                                                                "cmd-session-start")):
            check_that(validate.kind_for_topic(topic) == kind, "%s not %s" % (topic, kind))
        for topic in ("bfr/v1/s/g/nope", "bfr/v2/s/g/status", "bfr/v1/s/g/cuff/c/state/x"):
            try:
                validate.kind_for_topic(topic)
            except validate.UnknownTopic:
                continue
            fail("unknown topic %s accepted" % topic)

    suite.check("validator rejects garbage payloads and unknown topics", validator_rejects_garbage)

    with suite.harness() as h:
        broker = h.start_broker()
        col = h.collector()
        fake = publisher(broker.port)

        def collects_and_flags():
            pub(fake, "status", STATUS, retain=True)
            col.wait_for(lambda c: c.latest_payload("status"), 5, "the status message")
            col.assert_valid()
            pub(fake, "status", dict(STATUS, msg_id="it-gw-0001-2", surprise=True))
            col.wait_for(lambda c: c.errors, 5, "the invalid payload to be flagged", allow_invalid=True)
            errs = col.take_errors()
            check_that("surprise" in errs[0], "unexpected error text: %s" % errs[0])
            pub(fake, "nonsense/topic", STATUS)
            col.wait_for(lambda c: c.errors, 5, "the unknown topic to be flagged", allow_invalid=True)
            col.take_errors()
            pub(fake, "cuff/cuff-01/state", b"")
            col.wait_for(lambda c: c.errors, 5, "an empty cuff-state to be flagged", allow_invalid=True)
            col.take_errors()
            pub(fake, "status", dict(STATUS, msg_id="it-gw-0001-1", cuffs=3))
            col.wait_for(lambda c: c.errors, 5, "a reused msg_id to be flagged", allow_invalid=True)
            col.take_errors()
            try:
                col.wait_for(lambda c: False, 0.2, "nothing")
            except harness.TestFailure as e:
                check_that("waiting for nothing" in str(e), "timeout message: %s" % e)
            else:
                fail("wait_for did not time out")

        suite.check("collector validates every message and flags bad ones", collects_and_flags)

        def retained():
            pub(fake, "alarm/a-1", {"bogus": 1}, retain=True)
            col.wait_for(lambda c: c.errors, 5, "the bad alarm", allow_invalid=True)
            col.take_errors()
            got = h.retained(PREFIX + "/#")
            check_that(set(got) == {PREFIX + "/status", PREFIX + "/alarm/a-1"},
                       "retained topics: %s" % sorted(got))
            check_that(json.loads(got[PREFIX + "/status"])["msg_id"] == "it-gw-0001-1",
                       "retained status is not the retained one")
            pub(fake, "alarm/a-1", b"", retain=True)  # removes it, and is valid for alarms
            got = h.retained(PREFIX + "/#")
            check_that(set(got) == {PREFIX + "/status"}, "after removal: %s" % sorted(got))
            col.assert_valid()

        suite.check("retained fetch sees what the broker holds; empty payload removes",
                    retained)

        def commands():
            # A stand-in responder: MQTT 5 -> response topic + correlation data,
            # otherwise the 3.1.1 fallback reply/<request_id>.
            responder = mqtt.Client(client_id="fake-responder", protocol=mqtt.MQTTv5)

            def on_message(c, u, m):
                req = json.loads(m.payload)
                reply = {"v": 1, "ts": "2026-11-24T09:30:00.123Z", "msg_id": "fake-1",
                         "request_id": req.get("request_id"), "ok": True}
                rt = getattr(m.properties, "ResponseTopic", None)
                if rt:
                    props = Properties(PacketTypes.PUBLISH)
                    props.CorrelationData = m.properties.CorrelationData
                    c.publish(rt, json.dumps(reply), qos=1, properties=props)
                else:
                    c.publish("%s/reply/%s" % (PREFIX, req["request_id"]), json.dumps(reply), qos=1)

            ready = threading.Event()
            responder.on_message = on_message
            responder.on_subscribe = lambda *a, **k: ready.set()
            responder.on_connect = lambda c, *a, **k: c.subscribe(PREFIX + "/cmd/#", qos=1)
            responder.connect("127.0.0.1", broker.port, keepalive=30)
            responder.loop_start()
            try:
                check_that(ready.wait(5), "responder did not subscribe")
                r = h.send_command(col, "cuff/identify", {"cuff": "cuff-01"})
                check_that(r.get("ok") is True, "v5 reply: %r" % r)
                r = h.send_command(col, "cuff/identify", {"cuff": "cuff-01"}, v5=False)
                check_that(r.get("ok") is True, "3.1.1 reply: %r" % r)
            finally:
                responder.disconnect()
                responder.loop_stop()

        suite.check("commands get replies by correlation data and by fallback topic", commands)
        fake.disconnect()
        fake.loop_stop()

        def cuffsim():
            try:
                h.binary("cuffsim")
            except harness.TestFailure:
                print("  cuffsim not built: skipped")
                return
            sim = h.start_cuffsim(2)
            st = sim.stats()
            check_that(len(st.get("cuffs", [])) == 2, "stats lists %r" % st.get("cuffs"))
            for bad in ("bogus", "leak 9 1", "leak 1 x", "", "x" * 300):
                r = sim.control(bad, allow_error=True)
                check_that(r.startswith("error:"), "%r accepted: %r" % (bad[:20], r))
            # Each cuff socket is an ATT server: Exchange MTU gets its response.
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(5)
                s.connect(sim.socket_path(1))
                s.send(bytes([0x02, 0x17, 0x00]))
                rsp = s.recv(600)
                check_that(rsp[:1] == b"\x03" and len(rsp) == 3, "MTU response %r" % rsp)
            sim.stop()
            h.start_cuffsim(2, directory=sim.dir)  # stale sockets must not matter

        suite.check("cuffsim: ready line, control socket, stats, garbage refused, ATT, restart",
                    cuffsim)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
