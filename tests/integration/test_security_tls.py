#!/usr/bin/python3
"""Security (issues 11 and 9 item 7): connections the clinic broker refuses,
and what the gateway's log says about each.

Every failure used to read "TCP/TLS connect failure (code -1)" or "CONNACK
return code (code 135)". Now each names its cause, the broker's log shows
the refusal too, and nothing changes on the broker (no status of the
refused gateway appears):
- a client certificate from another CA (the real gateway, and mosquitto_pub);
- a wrong password;
- a broker certificate not signed by the configured CA;
- a host name the broker's certificate is not issued for;
- no client certificate where the broker requires one;
- TLS to a plain listener.
A client certificate that expires within 30 days is logged as a warning at
start, an expired one as an error; neither stops the gateway.

Figures (printed, and in docs/benchmarks.md "Security / TLS"): the time
to a CONNACK over plain TCP, TLS with a password and TLS with a client
certificate, which is what every gateway reconnect costs besides its
backoff (Paho makes a full handshake each time).
"""

import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SITE, Suite, check_that  # noqa: E402
from test_security_common import (Client, SecureBroker, first_line, make_site,  # noqa: E402
                                  mosquitto_pub, tls_gateway_config)

GW2 = "it-gw2"
LOG_S = 20.0
SAMPLES = 30


def mqtt_block(uri, ca=None, cert=None, key=None, username="", password_file=""):
    tls = ""
    if ca or cert:
        tls = ' tls = { ca_file = "%s"; cert_file = "%s"; key_file = "%s"; };' % (
            ca or "", cert or "", key or "")
    return ('mqtt = { uri = "%s"; client_id = "%s"; username = "%s"; password_file = "%s";'
            ' keepalive_s = 5;%s };\n' % (uri, GW2, username, password_file, tls))


def connect_packet(client_id, user=None, password=None):
    """An MQTT 3.1.1 CONNECT (clean session, keepalive 30)."""
    def s(b):
        return struct.pack("!H", len(b)) + b
    flags = 0x02 | (0x80 if user else 0) | (0x40 if password else 0)
    body = s(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 30) + s(client_id.encode())
    if user:
        body += s(user.encode())
    if password:
        body += s(password.encode())
    n, rl = len(body), b""
    while True:
        n, d = n // 128, n % 128
        rl += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return b"\x10" + rl + body


def time_connect(port, ctx=None, user=None, password=None):
    """(handshake ms, CONNACK ms) for one fresh connection."""
    t0 = time.perf_counter()
    s = socket.create_connection(("localhost", port), timeout=5)
    try:
        if ctx:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        t1 = time.perf_counter()
        s.sendall(connect_packet("bench-%d" % port, user, password))
        ack = b""
        while len(ack) < 4:
            chunk = s.recv(4 - len(ack))
            check_that(chunk, "connection closed before CONNACK")
            ack += chunk
        t2 = time.perf_counter()
        check_that(ack[0] == 0x20 and ack[3] == 0, "CONNACK refused: %r" % ack)
    finally:
        s.close()
    return (t1 - t0) * 1000, (t2 - t0) * 1000


def main():
    suite = Suite("test_security_tls")
    figures = {}
    with suite.harness() as h:
        out = os.path.join(h.tmp, "site")
        rogue = os.path.join(h.tmp, "rogue")
        make_site(out, gateways=(GW2,), clinicians=("dr-lee",))
        make_site(rogue, gateways=(GW2,))   # same names, another CA
        ca = os.path.join(out, "ca", "ca.crt")
        own = os.path.join(out, "gateways", GW2)
        other = os.path.join(rogue, "gateways", GW2)
        broker = SecureBroker(h, os.path.join(out, "clinic-broker"), "clinic").start()
        loopback, devices, people = broker.port(1883), broker.port(8883), broker.port(8884)
        pw = first_line(os.path.join(out, "users", "clinician", "dr-lee.pass"))
        wrong_pass = os.path.join(h.tmp, "wrong.pass")
        with open(wrong_pass, "w") as f:
            f.write("not-the-password\n")
        os.chmod(wrong_pass, 0o600)

        def refused(name, block, gateway_says, broker_says=None):
            start = broker.log_index()
            gw = h.start_gateway(tls_gateway_config(h, name, [], block, GW2, own))
            line = gw.wait_line(r"mqtt: connect to .* failed: .*", LOG_S).string
            print("  gateway: " + line)
            check_that(gateway_says in line, "expected %r" % gateway_says)
            check_that("TCP/TLS connect failure" not in line and "code 135" not in line,
                       "the old unclear text")
            if broker_says:
                print("  broker:  " + broker.proc.wait_line(broker_says, 5, start).string)
            gw.expect_exit = True
            rc = gw.stop()
            check_that(rc == 0, "gateway exit status %s" % rc)
            # Nothing of the refused gateway reached the broker.
            marker = "bfr/v1/%s/%s/cmd/it-marker" % (SITE, GW2)
            probe = Client("probe", people, "dr-lee", pw, ca=ca,
                           subscribe="bfr/v1/%s/%s/#" % (SITE, GW2))
            try:
                probe.publish(marker, b"{}")
                probe.wait_for(lambda c: c.select(marker), 5, "the marker")
                check_that([m.topic for m in probe.select()] == [marker],
                           "the refused gateway published: %r" %
                           [m.topic for m in probe.select()])
            finally:
                probe.close()

        suite.check("client certificate of another CA: refused, named", lambda: refused(
            "rogue-cert",
            mqtt_block("mqtts://localhost:%d" % devices, ca,
                       os.path.join(other, "client.crt"), os.path.join(other, "client.key")),
            "the broker refused our client certificate",
            r"OpenSSL Error.*certificate verify failed"))

        def rogue_cli():
            rc, text = mosquitto_pub(devices, "bfr/v1/%s/%s/status" % (SITE, GW2), "{}", ca=ca,
                                     cert=os.path.join(other, "client.crt"),
                                     key=os.path.join(other, "client.key"))
            check_that(rc != 0 and "PUBACK" not in text, "mosquitto_pub got in: %s" % text)

        suite.check("client certificate of another CA: mosquitto_pub refused too", rogue_cli)

        suite.check("wrong password: the CONNACK's reason, not a code", lambda: refused(
            "wrong-password",
            mqtt_block("mqtt://127.0.0.1:%d" % loopback, username=GW2, password_file=wrong_pass),
            "the broker refused the connection: Not authorized (CONNACK reason 0x87)",
            r"Client <unknown> disconnected, not authorised"))

        suite.check("broker certificate not signed by ca_file: named", lambda: refused(
            "wrong-ca",
            mqtt_block("mqtts://localhost:%d" % devices, os.path.join(rogue, "ca", "ca.crt"),
                       os.path.join(own, "client.crt"), os.path.join(own, "client.key")),
            "the broker's certificate is not signed by a CA in"))

        suite.check("host name mismatch: named", lambda: refused(
            "wrong-host",
            mqtt_block("mqtts://127.0.0.1:%d" % devices, ca,
                       os.path.join(own, "client.crt"), os.path.join(own, "client.key")),
            'host name mismatch: the broker\'s certificate is not issued for "127.0.0.1"'))

        suite.check("no client certificate where one is required: named", lambda: refused(
            "no-cert", mqtt_block("mqtts://localhost:%d" % devices, ca),
            "the broker requires a client certificate"))

        suite.check("TLS to a plain listener: named", lambda: refused(
            "not-tls", mqtt_block("mqtts://localhost:%d" % loopback, ca),
            "the broker closed the connection during the TLS handshake (a plain mqtt:// "
            "listener?)"))

        def expiry_logged():
            short = os.path.join(h.tmp, "short")
            make_site(short, gateways=("it-gw3",), extra=("--days", "10"))
            etc = os.path.join(short, "gateways", "it-gw3")
            # An expired certificate of the same CA, made the way the script does.
            key, csr, crt = (os.path.join(etc, n) for n in ("old.key", "old.csr", "old.crt"))
            for argv in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-out", key],
                         ["req", "-new", "-key", key, "-subj", "/CN=it-gw3", "-out", csr],
                         ["x509", "-req", "-in", csr, "-CA", os.path.join(short, "ca", "ca.crt"),
                          "-CAkey", os.path.join(short, "ca", "ca.key"), "-CAcreateserial",
                          "-days", "-1", "-out", crt]):
                r = subprocess.run(["openssl"] + argv, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=30)
                check_that(r.returncode == 0, "openssl %s: %s" % (argv[0], r.stdout.decode()))
            nowhere = "mqtts://localhost:%d" % harness.free_port()
            for name, cert, key_, want in (
                    ("expires-soon", "client.crt", "client.key",
                     r"warning: mqtt: the client certificate \".*client\.crt\" expires on "
                     r"\S+ \S+ UTC, in (9|10) days: renew it"),
                    ("expired", "old.crt", "old.key",
                     r"error: mqtt: the client certificate \".*old\.crt\" expired on .*: the "
                     r"broker will refuse the connection; renew it")):
                block = mqtt_block(nowhere, os.path.join(etc, "ca.crt"), os.path.join(etc, cert),
                                   os.path.join(etc, key_))
                gw = h.start_gateway(tls_gateway_config(h, name, [], block, "it-gw3", etc))
                print("  " + gw.wait_line(want, LOG_S).string)
                # Not a reason to stop supervising cuffs: it runs on.
                gw.wait_line(r"supervising 0 cuffs", LOG_S)
                check_that(gw.alive(), "the gateway stopped on %s" % name)
                gw.expect_exit = True
                check_that(gw.stop() == 0, "exit status")

        suite.check("certificate expiry: warning from 30 days before, error once expired",
                    expiry_logged)

        def handshake_figures():
            plain = None
            tls = ssl.create_default_context(cafile=ca)
            cert = ssl.create_default_context(cafile=ca)
            cert.load_cert_chain(os.path.join(own, "client.crt"), os.path.join(own, "client.key"))
            gw2_pw = first_line(os.path.join(own, "mqtt.pass"))
            for key, port, ctx, user, password in (
                    ("plain_tcp_password", loopback, plain, GW2, gw2_pw),
                    ("tls_password", people, tls, "dr-lee", pw),
                    ("tls_client_certificate", devices, cert, None, None)):
                time_connect(port, ctx, user, password)  # warm-up
                hs, total = zip(*(time_connect(port, ctx, user, password)
                                  for _ in range(SAMPLES)))
                figures[key] = {"handshake_ms_median": round(statistics.median(hs), 2),
                                "connack_ms_median": round(statistics.median(total), 2),
                                "connack_ms_max": round(max(total), 2)}
            for k, v in figures.items():
                print("  %-24s %s" % (k, v))

        suite.check("figures: connect cost, plain vs TLS (password, client certificate)",
                    handshake_figures)
    print("figures: %s" % figures)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
