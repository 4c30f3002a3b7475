#!/usr/bin/python3
"""Home sessions (issue 11): what test_home_sessions.py and test_home_live.py
share, and, run as a test, cmd/prescription/set's parser against its schema.

As a test: a gateway without a home group answers a prescription/set that
its parser accepts with bad_state ("not a home gateway"), anything else
with the parser's error; every payload of a generated set (each field of a
good command replaced by wrong types, edge values and malformed times,
removed, or joined by an unknown field) must be accepted by the parser
exactly when schemas/cmd-prescription-set.schema.json accepts it, except
where a JSON Schema cannot follow (docs/mqtt-api.md): dates that do not
exist, seconds 60, offsets of 24 h or more, years before 1970, valid_until
not after valid_from. Those the parser must refuse.

Imported: HomeSite (a clinic broker and a home broker bridged over TLS,
from deploy/make-site-credentials.sh, cuffsim and a home gateway with its
control socket), ctl() (bfr-gateway ctl as a program, as any user),
validate_all(),
deduped event helpers, rx_body().
"""

import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import validate  # noqa: E402
from harness import PREFIX, Suite, check_that, sim_cuffs  # noqa: E402
from test_security_common import (Client, SecureBroker, first_line, make_site,  # noqa: E402
                                  read, tls_gateway_config)

HOME = harness.GATEWAY_ID   # the home gateway is the harness's gateway: PREFIX is its subtree
CONNECT_S = 30.0
NOBODY = 65534


# --- the API's new topics ---------------------------------------------------------

VALIDATOR = validate.Validator()


def validate_all(client, prefix=PREFIX):
    """Every non-empty message a security Client received under prefix, against the
    schema of its topic: the list of problems."""
    problems = []
    for m in client.select():
        if not m.topic.startswith(prefix + "/") or m.topic.endswith("/bridge"):
            continue
        kind = validate.kind_for_topic(m.topic)
        if kind.startswith("cmd-") or not m.raw:
            continue
        errs = VALIDATOR.errors(kind, m.raw)
        if errs:
            problems.append("%s: %s (%s)" % (m.topic, errs[0], m.raw[:200]))
    return problems


# --- payloads -----------------------------------------------------------------------

def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def plan(cuff="cuff-01", sets=(20,), tempo=(1, 1), rest_s=0, mode="continuous", pct_lop=50):
    return {"exercises": [{"name": "home knee", "cuffs": [cuff], "pct_lop": pct_lop,
                           "mode": mode, "sets": list(sets), "tempo_s": list(tempo),
                           "rest_s": rest_s, "reperfusion_s": 60}]}


def rx_body(valid_from, valid_until, supervision="remote", max_per_day=3, min_hours=0,
            the_plan=None, patient="p-0042"):
    return {"plan": the_plan or plan(), "patient": patient, "valid_from": iso(valid_from),
            "valid_until": iso(valid_until), "max_per_day": max_per_day,
            "min_hours_between": min_hours, "supervision": supervision}


def first_copies(client, topic):
    """Payloads on topic, first delivery of each msg_id, in arrival order."""
    seen, out = set(), []
    for m in client.select(topic):
        if m.payload and m.payload.get("msg_id") not in seen:
            seen.add(m.payload["msg_id"])
            out.append(m.payload)
    return out


def home_events(client, since=0.0):
    seen, out = set(), []
    for m in client.select(PREFIX + "/home/event"):
        if m.t >= since and m.payload and m.payload["msg_id"] not in seen:
            seen.add(m.payload["msg_id"])
            out.append(m.payload)
    return out


def wait_home_event(client, pred, timeout, what, since=0.0):
    def find(c):
        for e in home_events(c, since):
            if pred(e):
                return e
        return None
    return client.wait_for(find, timeout, what)


def session_events(client, sid):
    return first_copies(client, "%s/session/%s/event" % (PREFIX, sid))


# --- the console -------------------------------------------------------------------

def ctl(h, socket_path, *args, user=None):
    """bfr-gateway ctl -s socket_path args... (as user, a uid): (exit status, output)."""
    argv = [h.binary("bfr-gateway"), "ctl", "-s", socket_path] + list(args)
    kw = {}
    if user is not None:
        kw = {"user": user, "group": user, "extra_groups": []}
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, **kw)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def ctl_json(h, socket_path, verb):
    rc, out = ctl(h, socket_path, "--json", verb)
    try:
        return rc, json.loads(out)
    except ValueError:
        harness.fail("ctl --json %s: not JSON (%d): %s" % (verb, rc, out))


# --- the home's internet link ---------------------------------------------------------

class LinkProxy:
    """A TCP forwarder between a home broker's bridge and the clinic broker's port:
    the home's internet link. cut() drops every connection and stops listening, so
    the bridge's attempts are refused (as when the clinic is unreachable; mosquitto
    2.0.11 handles a refused connect well, while a TLS handshake cut short leaves
    its bridge in a state it cannot shut down from); restore() listens again on the
    same port. TLS passes through untouched."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.lock = threading.Lock()
        self.pairs = []
        self.lsock = None
        self.thread = None
        self.port = 0
        self.restore()

    def _listen(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        return s

    def _accept(self, lsock):
        while True:
            try:
                a, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # closed by cut()
            a.settimeout(None)
            try:
                b = socket.create_connection(self.target, timeout=5)
            except OSError:
                a.close()
                continue
            b.settimeout(None)
            with self.lock:
                self.pairs.append((a, b))
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            lsock, self.lsock = self.lsock, None
            pairs, self.pairs = self.pairs, []
        if lsock:
            lsock.close()
            self.thread.join(2)
        for a, b in pairs:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                x.close()

    def restore(self):
        with self.lock:
            if self.lsock:
                return
            self.lsock = self._listen()
            self.thread = threading.Thread(target=self._accept, args=(self.lsock,),
                                           name="link-proxy", daemon=True)
            self.thread.start()

    def close(self):
        self.cut()


# --- a home site --------------------------------------------------------------------

class HomeSite:
    """deploy/make-site-credentials.sh's clinic broker and home broker (bridged over
    TLS, through a LinkProxy: site.link.cut() is the home's internet going down),
    cuffsim with one cuff, the home gateway on its broker with a home group
    (control socket in a directory anyone may enter: who may use it is the
    gateway's decision), a clinician (dr-lee) subscribed to bfr/v1/# at the clinic,
    and a recorder: a persistent clinic session that gets what arrives while it
    reconnects (a clinic broker restart)."""

    def __init__(self, h, grace_s=10, extra_home=""):
        self.h = h
        out = os.path.join(h.tmp, "site")
        make_site(out, homes=(HOME,), clinicians=("dr-lee",))
        self.ca = os.path.join(out, "ca", "ca.crt")
        self.clinic = SecureBroker(h, os.path.join(out, "clinic-broker"), "clinic",
                                   persistence=True).start()
        self.link = LinkProxy(self.clinic.port(8883))
        self.home = SecureBroker(h, os.path.join(out, "homes", HOME, "broker"), "home",
                                 bridge_address="localhost:%d" % self.link.port,
                                 persistence=True).start()
        self.sim = h.start_cuffsim(1)
        etc = os.path.join(out, "homes", HOME, "gateway")
        block = read(os.path.join(etc, "mqtt.conf")).replace(
            "127.0.0.1:1883", "127.0.0.1:%d" % self.home.port(1883))
        conf = tls_gateway_config(h, "home-gw", sim_cuffs(self.sim), block, HOME, etc)
        self.ctl_dir = tempfile.mkdtemp(prefix="bfr-home-ctl-")
        os.chmod(self.ctl_dir, 0o755)
        self.socket = os.path.join(self.ctl_dir, "ctl.sock")
        with open(conf, "a") as f:
            f.write('home = { control_socket = "%s"; supervisor_grace_s = %d; %s };\n' %
                    (self.socket, grace_s, extra_home))
        self.gw = h.start_gateway(conf)
        self.password = first_line(os.path.join(out, "users", "clinician", "dr-lee.pass"))
        self.clinician = Client("dr-lee", self.clinic.port(8884), "dr-lee", self.password,
                                ca=self.ca, subscribe="bfr/v1/#")
        self.recorder = Client("recorder", self.clinic.port(8884), "dr-lee", self.password,
                               ca=self.ca, subscribe=PREFIX + "/#", persistent=True)

    def wait_ready(self):
        self.clinician.wait_for(lambda c: (c.latest(PREFIX + "/status") or {}).get("state") ==
                                "online", CONNECT_S, "the home gateway's status at the clinic")
        self.clinician.wait_for(lambda c: (c.latest(PREFIX + "/cuff/cuff-01/state") or {})
                                .get("link") == "connected", CONNECT_S, "cuff-01 connected")
        self.gw.wait_line(r"mqtt: connected", CONNECT_S)

    def command(self, verb, body, timeout=20.0):
        return self.clinician.command(PREFIX, verb, body, timeout)

    def close(self):
        for c in (self.clinician, self.recorder):
            try:
                c.close()
            except Exception as e:  # teardown goes on whatever one client did
                sys.stderr.write("closing a client: %s\n" % e)
        self.link.close()
        shutil.rmtree(self.ctl_dir, ignore_errors=True)


# --- this file as a test: parser against schema ------------------------------------------

TIME_RX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                     r"(Z|([+-])(\d{2}):(\d{2}))$", re.ASCII)


def epoch_ms(s):
    """What the parser makes of a time the schema's pattern admits, or None where the
    parser must refuse it (the documented differences)."""
    m = TIME_RX.match(s)
    y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
    if y < 1970 or ss > 59 or (m.group(10) and (int(m.group(10)) > 23 or int(m.group(11)) > 59)):
        return None
    try:
        dt = datetime.datetime(y, mo, d, hh, mi, ss, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    ms = int(dt.timestamp()) * 1000 + int((m.group(7) or "0").ljust(3, "0")[:3])
    if m.group(8) != "Z":
        ms -= (1 if m.group(9) == "+" else -1) * (int(m.group(10)) * 60 + int(m.group(11))) * 60000
    return ms if ms >= 0 else None


def parser_must_accept(payload):
    """Schema-valid payloads the parser accepts: all but the documented differences."""
    f, u = epoch_ms(payload["valid_from"]), epoch_ms(payload["valid_until"])
    return f is not None and u is not None and u > f


TIMES = ["2026-11-24T08:00:00Z", "2026-11-24T08:00:00.1+01:00",
         "2026-11-24T08:00:00.123456789-05:30", "2028-02-29T12:00:00Z", "2026-11-24",
         "2026-11-24T08:00:00", "2026-11-24t08:00:00z", "2026-11-24T08:00Z",
         "2026-11-24T08:00:00.Z", "2026-11-24T08:00:00.1234567890Z", "2026-11-24T08:00:00+0100",
         " 2026-11-24T08:00:00Z", "2026-11-24T08:00:00Z ", "\u0662026-11-24T08:00:00Z",
         "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2100-02-29T00:00:00Z",
         "2026-11-24T24:00:00Z", "2026-11-24T23:59:60Z", "1969-12-31T23:59:59Z",
         "1970-01-01T00:30:00+01:00", "2026-11-24T08:00:00+24:00", "2026-11-24T08:00:00-01:60",
         "2027-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", 1795507200000, None, [], {}, True,
         ""]
INTS = [0, 1, 2, 10, 11, 48, 49, -1, 2.0, 2.5, "2", None, True, [], 1e3]
VALUES = {
    "valid_from": TIMES,
    "valid_until": TIMES,
    "max_per_day": INTS,
    "min_hours_between": INTS,
    "supervision": ["none", "remote", "live", "LIVE", "video", "", 1, None, []],
    "patient": ["p-1", "", "a b", "a/b", "x" * 64, "x" * 65, "\u00e9" * 64, 5, None],
    "plan": [plan(), plan(mode="intermittent", rest_s=30), {"exercises": []}, {}, [], None,
             plan(pct_lop=120),
             {"exercises": [{"name": "c", "cuffs": ["cuff-01"], "pct_lop": 40, "mode": "cycle",
                             "on_s": 30, "off_s": 10, "cycles": 3, "reperfusion_s": 60}]},
             {"exercises": [{"name": "c", "cuffs": ["cuff-01"], "pct_lop": 40, "mode": "cycle",
                             "on_s": 30, "off_s": 10, "cycles": 3, "reperfusion_s": 60,
                             "sets": [3]}]}],
}
GOOD = {"plan": plan(), "patient": "p-1", "valid_from": "2026-11-24T08:00:00Z",
        "valid_until": "2027-01-01T00:00:00Z", "max_per_day": 2, "min_hours_between": 4,
        "supervision": "remote"}


def generated():
    yield dict(GOOD)
    for field, values in VALUES.items():
        for v in values:
            p = dict(GOOD)
            p[field] = v
            yield p
        p = dict(GOOD)
        del p[field]
        yield p
    yield dict(GOOD, colour="red")


def main():
    suite = Suite("test_home_common")
    with suite.harness() as h:
        h.start_broker()
        sim = h.start_cuffsim(1)
        col = h.collector()
        h.start_gateway(h.write_gateway_config(sim_cuffs(sim)))
        col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online", 30,
                     "status online")
        counts = {"payloads": 0, "accepted": 0, "documented": 0}

        def differential():
            disagree = []
            for p in generated():
                counts["payloads"] += 1
                body = dict(p, request_id="d%d" % counts["payloads"])
                schema_ok = not VALIDATOR.errors("cmd-prescription-set", body)
                want = schema_ok and parser_must_accept(body)
                counts["documented"] += schema_ok and not want
                r = h.send_command(col, "prescription/set", body)
                code = (r.get("error") or {}).get("code")
                got = code == "bad_state"
                counts["accepted"] += got
                if got != want:
                    disagree.append("%s: schema %s, gateway %s (%s)" %
                                    (json.dumps(p)[:160], schema_ok, code,
                                     (r.get("error") or {}).get("message")))
            print("  %(payloads)d payloads: %(accepted)d accepted by the parser, "
                  "%(documented)d schema-valid ones refused as documented" % counts)
            check_that(not disagree, "%d disagreements; first: %s" % (len(disagree),
                                                                      "; ".join(disagree[:3])))
            check_that(counts["accepted"] > 30 and counts["documented"] > 10,
                       "the generated set exercises too little: %r" % counts)

        suite.check("prescription/set: parser and schema agree on %s" % "every generated payload",
                    differential)

        def clear_shape():
            r = h.send_command(col, "prescription/clear", {})
            check_that((r.get("error") or {}).get("code") == "bad_state", "clear: %r" % r)
            r = h.send_command(col, "prescription/clear", {"plan": plan()})
            check_that((r.get("error") or {}).get("code") == "unknown_field", "clear: %r" % r)
            check_that(VALIDATOR.errors("cmd-prescription-clear", {"request_id": "x",
                                                                   "plan": {}}),
                       "the clear schema takes a plan")

        suite.check("prescription/clear: only the envelope; not a home gateway: bad_state",
                    clear_shape)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
