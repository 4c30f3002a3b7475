#!/usr/bin/python3
"""Security (issue 11): what deploy/make-site-credentials.sh makes, and the
parts the other test_security_*.py share.

Run as a test it checks the script's output: every file 0600 in 0700
directories, certificates signed by the site CA with the right names and
purposes, one ACL block per account with its role's topics, hashed
passwords, additive re-runs that keep the CA and existing certificates, bad
arguments refused, and `bfr-gateway --check` accepting the gateway files it
writes and refusing a key that belongs to another certificate.

Imported by the other security tests: make_site(), SecureBroker (mosquitto
started from the configuration the script wrote, with the install paths
pointed at the output directory and the ports at free loopback ports),
Client (MQTT 5 over TLS or with a password), mosquitto_pub(),
tls_gateway_config().
"""

import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SITE, Suite, check_that, fail, free_port, wait_until  # noqa: E402
from validate import SOURCE_DIR  # noqa: E402

SCRIPT = os.path.join(SOURCE_DIR, "deploy", "make-site-credentials.sh")
INSTALL_DIR = "/etc/mosquitto/bfr/"     # where production.conf and home.conf expect the files
GATEWAY_ETC = "/etc/bfr-gateway/"       # where the gateways' mqtt.conf expects its files


# --- the script --------------------------------------------------------------------

def make_site(out, site=SITE, hosts=("localhost",), gateways=(), homes=(), clinicians=(),
              viewers=(), extra=(), expect_ok=True):
    """Runs make-site-credentials.sh; returns the CompletedProcess."""
    argv = [SCRIPT, "--site", site, "--out", out]
    for flag, names in (("--broker-host", hosts), ("--gateway", gateways), ("--home", homes),
                        ("--clinician", clinicians), ("--viewer", viewers)):
        for n in names:
            argv += [flag, n]
    argv += list(extra)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    text = r.stdout.decode("utf-8", "replace")
    if expect_ok and r.returncode != 0:
        fail("make-site-credentials.sh failed (%d):\n%s" % (r.returncode, text))
    r.text = text
    return r


def read(path):
    with open(path) as f:
        return f.read()


def first_line(path):
    return read(path).splitlines()[0]


# --- brokers -----------------------------------------------------------------------

class SecureBroker:
    """mosquitto with a configuration written by the script (its conf.d/bfr.conf
    and bfr/ directory under broker_dir): the install path /etc/mosquitto/bfr/ is
    pointed at broker_dir/bfr/, every listener at a free port on 127.0.0.1, a
    bridge's address at bridge_address. The main configuration around it is
    Debian's (persistence, logging), with every log type so ACL denials (logged
    at debug level) are visible."""

    def __init__(self, h, broker_dir, name, bridge_address=None, persistence=False):
        self.h, self.dir, self.name = h, broker_dir, name
        self.bridge_address = bridge_address
        self.persistence = persistence
        self.ports = {}
        self.proc = None
        self.conf_dir = os.path.join(h.tmp, "%s-conf.d" % name)
        self.main_conf = os.path.join(h.tmp, "%s-main.conf" % name)

    def _rewrite(self, text):
        text = text.replace(INSTALL_DIR, os.path.join(self.dir, "bfr") + "/")

        def listener(m):
            official = int(m.group(1))
            if official not in self.ports:
                self.ports[official] = free_port()
            return "listener %d 127.0.0.1" % self.ports[official]
        text = re.sub(r"(?m)^listener (\d+)(?: \S+)?$", listener, text)
        if self.bridge_address:
            text = re.sub(r"(?m)^address \S+$", "address %s" % self.bridge_address, text)
        return text

    def start(self):
        os.makedirs(self.conf_dir, exist_ok=True)
        with open(os.path.join(self.dir, "conf.d", "bfr.conf")) as f:
            text = self._rewrite(f.read())
        with open(os.path.join(self.conf_dir, "bfr.conf"), "w") as f:
            f.write(text)
        main = ["# like Debian's /etc/mosquitto/mosquitto.conf, written by %s" %
                os.path.basename(__file__),
                # As root mosquitto reads its files as user mosquitto, which
                # cannot enter the test's 0700 directories.
                "user root", "log_dest stderr", "log_type all"]
        if self.persistence:
            db = os.path.join(self.h.tmp, "%s-db" % self.name) + "/"
            os.makedirs(db, exist_ok=True)
            main += ["persistence true", "persistence_location %s" % db]
        else:
            main += ["persistence false"]
        main += ["include_dir %s" % self.conf_dir]
        with open(self.main_conf, "w") as f:
            f.write("\n".join(main) + "\n")
        self.proc = self.h.spawn(self.name, [harness.MOSQUITTO, "-c", self.main_conf])
        self.proc.wait_line(r"mosquitto version \S+ running", 10)
        for port in self.ports.values():
            wait_until(lambda: _accepts(port), 5, "%s to accept on port %d" % (self.name, port))
        return self

    def port(self, official):
        return self.ports[official]

    def stop(self):
        if self.proc:
            self.proc.expect_exit = True
            self.proc.stop()

    def log_index(self):
        with self.proc.cond:
            return len(self.proc.lines)


def _accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- clients -------------------------------------------------------------------------

class Msg:
    __slots__ = ("topic", "raw", "payload", "retain", "props", "t")


class _PahoClient(mqtt.Client):
    """paho-mqtt 1.6.1 lets ssl.SSLEOFError (a TLS broker gone in the middle
    of a write) escape _packet_write, which kills its network thread: the
    client never reconnects (test_security_bridge failed so once in CI, a
    clinician writing a PUBACK as the clinic broker stopped). paho 2.0 treats
    it as a lost connection; so does this."""

    def _sock_send(self, buf):
        try:
            return super()._sock_send(buf)
        except ssl.SSLEOFError as e:
            raise ConnectionResetError(str(e))


class Client:
    """An MQTT 5 client (paho) with a password and/or TLS (ca, client cert); it
    reconnects within a second and subscribes again.

    persistent=True: an MQTT 3.1.1 session (clean session off) that outlives a
    broker restart (with a broker that persists), so QoS 1 messages that
    arrive while it reconnects are kept for it. MQTT 3.1.1 because mosquitto
    2.0.11 does not restore MQTT 5 sessions (with a Session Expiry Interval)
    after a restart."""

    def __init__(self, name, port, username=None, password=None, ca=None, cert=None, key=None,
                 host="localhost", subscribe=None, persistent=False):
        self.name = name
        self.cond = threading.Condition()
        self.messages = []
        self.connect_rc = None
        self.subscribed = subscribe is None
        if persistent:
            self.client = _PahoClient(client_id="%s-%s" % (name, uuid.uuid4().hex[:6]),
                                      protocol=mqtt.MQTTv311, clean_session=False)
        else:
            self.client = _PahoClient(client_id="%s-%s" % (name, uuid.uuid4().hex[:6]),
                                      protocol=mqtt.MQTTv5)
        self.persistent = persistent
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        self._topic = subscribe
        self.connects = 0

        def on_connect(c, u, flags, rc, properties=None):
            with self.cond:
                self.connect_rc = rc
                if rc == 0:
                    self.connects += 1
                if rc == 0 and self._topic and (self.connects == 1 or not self.persistent):
                    c.subscribe(self._topic, qos=1)
                self.cond.notify_all()

        def on_subscribe(c, u, mid, granted, properties=None):
            with self.cond:
                self.subscribed = True
                self.cond.notify_all()

        def on_message(c, u, m):
            msg = Msg()
            msg.topic, msg.raw, msg.retain = m.topic, bytes(m.payload), bool(m.retain)
            msg.props, msg.t = getattr(m, "properties", None), time.monotonic()
            try:
                msg.payload = json.loads(msg.raw.decode("utf-8")) if msg.raw else None
            except ValueError:
                msg.payload = None
            with self.cond:
                self.messages.append(msg)
                self.cond.notify_all()

        self.client.on_connect, self.client.on_subscribe = on_connect, on_subscribe
        self.client.on_message = on_message
        self.client.reconnect_delay_set(0.25, 1)
        if persistent:
            self.client.connect(host, port, keepalive=30)
        else:
            self.client.connect(host, port, keepalive=30, clean_start=True)
        self.client.loop_start()
        self.wait_for(lambda c: c.connect_rc is not None, 10, "%s to connect" % name)
        if self.connect_rc != 0:
            self.close()
            fail("%s could not connect: %s" % (name, self.connect_rc))
        self.wait_for(lambda c: c.subscribed, 10, "%s to subscribe" % name)

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred(self)
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.1f s waiting for %s" % (timeout, what))
                self.cond.wait(left)

    def select(self, topic=None, since=0.0):
        with self.cond:
            return [m for m in self.messages
                    if (topic is None or m.topic == topic) and m.t >= since]

    def latest(self, topic):
        msgs = self.select(topic)
        return msgs[-1].payload if msgs else None

    def publish(self, topic, payload, qos=1, retain=False, props=None, timeout=10):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        info.wait_for_publish(timeout)
        check_that(info.is_published(), "%s: no PUBACK for %s" % (self.name, topic))

    def command(self, prefix, verb, body, timeout=20.0):
        """cmd/<verb> with an MQTT 5 Response Topic under <prefix>/reply/; the reply."""
        request_id = uuid.uuid4().hex
        body = dict(body, request_id=request_id)
        reply_topic = "%s/reply/v5/%s" % (prefix, request_id)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = request_id.encode()
        since = time.monotonic()
        self.publish("%s/cmd/%s" % (prefix, verb), json.dumps(body).encode(), props=props)
        msgs = self.wait_for(lambda c: c.select(reply_topic, since), timeout,
                             "a reply to %s" % verb)
        return msgs[0].payload

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def mosquitto_pub(port, topic, message=None, user=None, password=None, ca=None, cert=None,
                  key=None, host="localhost", retain=False, file=None, insecure=False):
    """mosquitto_pub -d, MQTT 5, QoS 1: (exit status, output). The output shows the
    PUBACK's reason code ("received PUBACK (Mid: 1, RC:135)")."""
    argv = ["mosquitto_pub", "-d", "-V", "5", "-q", "1", "-h", host, "-p", str(port),
            "-t", topic]
    argv += ["-f", file] if file else ["-m", message]
    if user:
        argv += ["-u", user, "-P", password]
    if ca:
        argv += ["--cafile", ca]
    if cert:
        argv += ["--cert", cert, "--key", key]
    if retain:
        argv.append("-r")
    if insecure:
        argv.append("--insecure")
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def tls_gateway_config(h, name, cuffs, mqtt_block, gateway_id, etc_dir):
    """A gateway configuration (harness.gateway_config) whose mqtt group is
    mqtt_block, e.g. a mqtt.conf the script wrote, with its /etc/bfr-gateway/
    paths pointed at etc_dir."""
    data_dir = os.path.join(h.tmp, "data-%s" % name)
    os.makedirs(data_dir, exist_ok=True)
    text = harness.gateway_config(data_dir, "mqtt://127.0.0.1:1", cuffs, gateway_id=gateway_id)
    block = mqtt_block.replace(GATEWAY_ETC, etc_dir.rstrip("/") + "/")
    text, n = re.subn(r"(?s)mqtt = \{.*?\}; \};\n", lambda m: block.rstrip("\n") + "\n", text,
                      count=1)
    check_that(n == 1, "harness.gateway_config has no mqtt group to replace")
    path = os.path.join(h.tmp, "%s.conf" % name)
    with open(path, "w") as f:
        f.write(text)
    return path


def rss_kib(pid):
    """(VmRSS, VmHWM) of a process in KiB."""
    vals = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = int(v.split()[0])
    return vals["VmRSS"], vals["VmHWM"]


def sanitized_build():
    """True when BUILD_DIR was configured with BFR_SANITIZE=ON (ASan inflates RSS)."""
    try:
        return "BFR_SANITIZE:BOOL=ON" in read(os.path.join(harness.BUILD_DIR, "CMakeCache.txt"))
    except OSError:
        return True


# --- this file as a test -----------------------------------------------------------

def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def cert_text(path):
    rc, out = openssl("x509", "-in", path, "-noout", "-text")
    check_that(rc == 0, "%s is not a certificate: %s" % (path, out))
    return out


def acl_blocks(path):
    """user -> list of 'read|write|readwrite topic' lines."""
    out, user = {}, None
    for line in read(path).splitlines():
        if line.startswith("user "):
            user = line.split()[1]
            out[user] = []
        elif line.startswith("topic ") and user:
            out[user].append(line[len("topic "):])
    return out


def main():
    suite = Suite("test_security_common")
    with suite.harness() as h:
        out = os.path.join(h.tmp, "site")
        gw, gw2, home = harness.GATEWAY_ID, "it-gw2", "it-home"
        st = {}

        def refused_arguments():
            for args, why in (([], "--site is required"),
                              (["--site", SITE, "--out", out], "--broker-host is required"),
                              (["--site", "a b", "--out", out, "--broker-host", "x"], "--site"),
                              (["--site", SITE, "--out", out, "--broker-host", "x",
                                "--gateway", "gw#1"], "gw#1"),
                              (["--site", SITE, "--out", out, "--broker-host", "x",
                                "--gateway", "same", "--viewer", "same"], "both a gateway"),
                              (["--site", SITE, "--out", out, "--broker-host", "x",
                                "--days", "soon"], "--days")):
                r = subprocess.run([SCRIPT] + args, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=30)
                text = r.stdout.decode()
                check_that(r.returncode != 0 and why in text,
                           "%r: status %d, %r" % (args, r.returncode, text))
            check_that(not os.path.exists(out), "a refused run created %s" % out)

        suite.check("bad arguments are refused with a reason, nothing written", refused_arguments)

        def makes_everything():
            r = make_site(out, hosts=("localhost", "127.0.0.2"), gateways=(gw, gw2),
                          homes=(home,), clinicians=("dr-lee",), viewers=("wall-1",))
            print("  " + r.text.strip().replace("\n", "\n  "))
            for root, dirs, files in os.walk(out):
                for d in dirs:
                    mode = stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode)
                    check_that(mode == 0o700, "%s/%s is %o" % (root, d, mode))
                for f in files:
                    mode = stat.S_IMODE(os.stat(os.path.join(root, f)).st_mode)
                    check_that(mode == 0o600, "%s/%s is %o" % (root, f, mode))
            check_that(stat.S_IMODE(os.stat(out).st_mode) == 0o700, "out is not 0700")
            st["ca"] = read(os.path.join(out, "ca", "ca.crt"))

        suite.check("the site's files, all 0600 in 0700 directories", makes_everything)

        def certificates():
            ca = os.path.join(out, "ca", "ca.crt")
            for path, cn, purpose in (
                    ("clinic-broker/bfr/server.crt", "localhost", "TLS Web Server Authentication"),
                    ("gateways/%s/client.crt" % gw, gw, "TLS Web Client Authentication"),
                    ("gateways/%s/client.crt" % gw2, gw2, "TLS Web Client Authentication"),
                    ("homes/%s/broker/bfr/bridge.crt" % home, home + ".bridge",
                     "TLS Web Client Authentication")):
                full = os.path.join(out, path)
                rc, text = openssl("verify", "-CAfile", ca, full)
                check_that(rc == 0, "%s does not verify against the CA: %s" % (path, text))
                text = cert_text(full)
                check_that(re.search(r"Subject: CN ?= ?%s\n" % re.escape(cn), text),
                           "%s: CN is not %s" % (path, cn))
                check_that(purpose in text, "%s: not for %s" % (path, purpose))
                check_that("CA:FALSE" in text, "%s may sign certificates" % path)
            text = cert_text(os.path.join(out, "clinic-broker/bfr/server.crt"))
            check_that("DNS:localhost" in text and "IP Address:127.0.0.2" in text,
                       "server subjectAltName lacks the broker hosts")
            check_that("CA:TRUE" in cert_text(ca), "the CA is not a CA")
            # Every copy of the CA is the same certificate.
            for path in ("clinic-broker/bfr/ca.crt", "gateways/%s/ca.crt" % gw,
                         "homes/%s/broker/bfr/ca.crt" % home):
                check_that(read(os.path.join(out, path)) == st["ca"], "%s differs" % path)

        suite.check("certificates: signed by the site CA, CN = account, purpose, SAN",
                    certificates)

        def roles_in_acl():
            acl = acl_blocks(os.path.join(out, "clinic-broker", "bfr", "acl"))
            t = "bfr/v1/%s/%s" % (SITE, gw)
            want_gw = ["write %s/status" % t, "write %s/sessions" % t,
                       "readwrite %s/prescription" % t, "write %s/cuff/#" % t,
                       "write %s/session/#" % t, "readwrite %s/alarm/+" % t,
                       "write %s/reply/#" % t, "write %s/home/event" % t, "read %s/cmd/#" % t,
                       "read %s/supervisor" % t, "read %s/bridge" % t]
            check_that(acl.get(gw) == want_gw, "gateway block: %r" % acl.get(gw))
            check_that(not any("cmd" in line and "write" in line for line in acl[gw]),
                       "a gateway may write commands")
            # A home's bridge: the gateway's rights, but it writes its own state on
            # bridge (its notification and Last Will, home.conf) instead of reading it.
            want_bridge = [line.replace("/%s/" % gw, "/%s/" % home) for line in want_gw]
            want_bridge[-1] = "write bfr/v1/%s/%s/bridge" % (SITE, home)
            check_that(acl.get(home + ".bridge") == want_bridge,
                       "bridge block: %r" % acl.get(home + ".bridge"))
            check_that(acl.get("dr-lee") == ["read bfr/v1/#", "write bfr/v1/+/+/cmd/#",
                                             "write bfr/v1/+/+/supervisor"],
                       "clinician block: %r" % acl.get("dr-lee"))
            check_that(acl.get("wall-1") == ["read bfr/v1/#"], "viewer: %r" % acl.get("wall-1"))
            check_that(set(acl) == {gw, gw2, home + ".bridge", "dr-lee", "wall-1"},
                       "accounts in the ACL: %r" % sorted(acl))
            home_acl = acl_blocks(os.path.join(out, "homes", home, "broker", "bfr", "acl"))
            check_that(set(home_acl) == {home}, "home ACL accounts: %r" % sorted(home_acl))

        suite.check("ACL: one block per account with its role's topics", roles_in_acl)

        def passwords():
            lines = read(os.path.join(out, "clinic-broker", "bfr", "passwd")).splitlines()
            users = {line.split(":")[0]: line.split(":", 1)[1] for line in lines}
            check_that(set(users) == {gw, gw2, "dr-lee", "wall-1"}, "users: %r" % sorted(users))
            check_that(all(v.startswith("$7$") for v in users.values()), "not hashed")
            for name, path in ((gw, "gateways/%s/mqtt.pass" % gw),
                               ("dr-lee", "users/clinician/dr-lee.pass")):
                pw = first_line(os.path.join(out, path))
                check_that(re.fullmatch(r"[0-9a-f]{32}", pw), "%s: weak password" % path)
                check_that(pw not in users[name], "plain password in passwd")
            home_users = read(os.path.join(out, "homes", home, "broker", "bfr",
                                           "passwd")).split(":")[0]
            check_that(home_users == home, "home broker users: %r" % home_users)

        suite.check("passwords: random, hashed by mosquitto_passwd", passwords)

        def additive():
            before = {p: read(os.path.join(out, p)) for p in
                      ("ca/ca.key", "gateways/%s/client.crt" % gw, "gateways/%s/mqtt.pass" % gw)}
            make_site(out, hosts=("localhost", "127.0.0.2"), viewers=("wall-2",))
            for p, text in before.items():
                check_that(read(os.path.join(out, p)) == text, "%s changed on a re-run" % p)
            acl = acl_blocks(os.path.join(out, "clinic-broker", "bfr", "acl"))
            check_that({gw, gw2, "wall-1", "wall-2"} <= set(acl), "ACL lost accounts: %r" %
                       sorted(acl))
            r = make_site(out, hosts=("localhost",), clinicians=("wall-2",), expect_ok=False)
            check_that(r.returncode != 0 and '"wall-2" is both a' in r.text,
                       "an existing viewer became a clinician: %s" % r.text)

        suite.check("re-run: new accounts added, CA/keys/passwords kept, roles stay", additive)

        def gateway_check():
            cuffs = [{"id": "cuff-01", "address": "sim:/nonexistent/cuff.sock", "limb": "leg"}]
            etc = os.path.join(out, "gateways", gw)
            conf = tls_gateway_config(h, "check", cuffs, read(os.path.join(etc, "mqtt.conf")), gw,
                                      etc)
            r = subprocess.run([h.binary("bfr-gateway"), "-c", conf, "--check"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            check_that(r.returncode == 0, "--check: %s" % r.stdout.decode())
            # Another gateway's key with this certificate: refused, naming the setting.
            wrong = os.path.join(h.tmp, "wrong-etc")
            shutil.copytree(etc, wrong)
            shutil.copy(os.path.join(out, "gateways", gw2, "client.key"),
                        os.path.join(wrong, "client.key"))
            conf = tls_gateway_config(h, "check-wrong", cuffs,
                                      read(os.path.join(etc, "mqtt.conf")), gw, wrong)
            r = subprocess.run([h.binary("bfr-gateway"), "-c", conf, "--check"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            text = r.stdout.decode()
            print("  " + text.strip())
            check_that(r.returncode == 2 and "mqtt.tls.key_file" in text and
                       "does not match the certificate" in text, "mismatch: %s" % text)

        suite.check("bfr-gateway --check takes the gateway files, refuses a foreign key",
                    gateway_check)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
