#!/usr/bin/python3
"""Issue 11: the systemd unit (deploy/bfr-gateway.service) and the gateway's
side of Type=notify.

- `systemd-analyze verify` accepts the unit (its ExecStart pointed at the
  build), and it carries the hardening the issue asks for, and the
  LimitRTPRIO= the example configuration's realtime_priority needs;
- the real gateway, given $NOTIFY_SOCKET (a datagram socket of this test, as
  systemd's would be) and $WATCHDOG_USEC, sends READY=1, then WATCHDOG=1 at
  half the interval while its event loop runs, stops pinging while the loop
  is stopped (SIGSTOP: what a hang looks like to systemd), and sends
  STOPPING=1 on SIGTERM before exiting 0;
- the database it creates is 0600 in a 0700 directory, even under umask 000.
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that, fail, sim_cuffs  # noqa: E402
from validate import SOURCE_DIR  # noqa: E402

UNIT = os.path.join(SOURCE_DIR, "deploy", "bfr-gateway.service")
WATCHDOG_USEC = 1000000   # pings expected every 500 ms


def recv(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except socket.timeout:
        return None


def main():
    suite = Suite("test_security_systemd")
    with suite.harness() as h:

        def unit_hardening():
            with open(UNIT) as f:
                text = f.read()
            settings = {}
            for line in text.splitlines():
                m = re.match(r"^(\w+)=(.*)$", line)
                if m:
                    settings.setdefault(m.group(1), []).append(m.group(2))
            want = {"Type": "notify", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                    "ProtectHome": "yes", "PrivateTmp": "yes", "StateDirectory": "bfr-gateway",
                    "StateDirectoryMode": "0700", "User": "bfr-gateway",
                    "CapabilityBoundingSet": "", "UMask": "0077"}
            for k, v in want.items():
                check_that(settings.get(k) == [v], "%s=%r, want %r" % (k, settings.get(k), v))
            check_that(settings.get("WatchdogSec"), "no WatchdogSec")
            # The example configuration's realtime_priority must be grantable
            # (gateway/src/realtime.h); RestrictRealtime=yes would refuse it.
            with open(os.path.join(SOURCE_DIR, "deploy", "gateway.conf.example")) as f:
                m = re.search(r"^\s*realtime_priority\s*=\s*(\d+);", f.read(), re.M)
            check_that(m, "gateway.conf.example sets no realtime_priority")
            limit = settings.get("LimitRTPRIO", ["0"])
            check_that(int(limit[0]) >= int(m.group(1)),
                       "LimitRTPRIO=%s below the example's realtime_priority %s"
                       % (limit[0], m.group(1)))
            check_that(settings.get("RestrictRealtime", ["no"]) == ["no"],
                       "RestrictRealtime=%r refuses the loop's SCHED_FIFO"
                       % settings.get("RestrictRealtime"))
            check_that(sorted(settings["RestrictAddressFamilies"][0].split()) ==
                       ["AF_BLUETOOTH", "AF_INET", "AF_INET6", "AF_UNIX"],
                       "RestrictAddressFamilies=%r" % settings["RestrictAddressFamilies"])
            tool = shutil.which("systemd-analyze")
            if not tool:
                print("  systemd-analyze not installed: verify skipped")
                return
            copy = os.path.join(h.tmp, "bfr-gateway.service")
            with open(copy, "w") as f:
                f.write(text.replace("/usr/local/bin/bfr-gateway", h.binary("bfr-gateway")))
            r = subprocess.run([tool, "verify", copy], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            out = r.stdout.decode()
            check_that(r.returncode == 0 and not out.strip(), "systemd-analyze verify: %s" % out)
            r = subprocess.run([tool, "security", "--offline=true", copy],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", r.stdout.decode())
            if m:
                print("  systemd-analyze security: exposure %s %s" % (m.group(1), m.group(2)))

        suite.check("unit: systemd-analyze verify, hardening settings", unit_hardening)

        h.start_broker()
        sim = h.start_cuffsim(1)
        col = h.collector()
        data_dir = os.path.join(h.tmp, "state", "bfr-gateway")   # made by the gateway
        conf = h.write_gateway_config(sim_cuffs(sim), data_dir=data_dir)
        os.rmdir(data_dir)
        notify_path = os.path.join(h.tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC=str(WATCHDOG_USEC))
        # The most permissive umask: the gateway's own modes must hold.
        old_umask = os.umask(0)
        try:
            gw = h.spawn("gateway", [h.binary("bfr-gateway"), "-c", conf], env=env)
        finally:
            os.umask(old_umask)
        st = {}

        def ready_then_pings():
            first = recv(sock, 20)
            check_that(first == "READY=1", "first notification %r" % first)
            gw.wait_line(r"systemd watchdog: pinging every 500 ms", 5)
            t0 = time.monotonic()
            pings = 0
            while pings < 4:
                msg = recv(sock, 2)
                check_that(msg is not None, "no WATCHDOG=1 within 2 s (after %d)" % pings)
                check_that(msg == "WATCHDOG=1", "unexpected %r" % msg)
                pings += 1
            period = (time.monotonic() - t0) / 4
            print("  READY=1, then WATCHDOG=1 every %.0f ms" % (period * 1000))
            check_that(0.3 < period < 0.8, "ping period %.2f s" % period)
            col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online",
                         30, "status online")

        suite.check("READY=1, then WATCHDOG=1 at half of WatchdogSec", ready_then_pings)

        def hung_loop_stops_pinging():
            gw.send_signal(signal.SIGSTOP)
            try:
                while recv(sock, 0.05) is not None:   # what was sent before the stop
                    pass
                check_that(recv(sock, 1.5) is None, "pings while the process was stopped")
            finally:
                gw.send_signal(signal.SIGCONT)
            check_that(recv(sock, 2) == "WATCHDOG=1", "no ping after SIGCONT")

        suite.check("a stopped event loop sends no pings (systemd would restart it)",
                    hung_loop_stops_pinging)

        def private_database():
            mode = stat.S_IMODE(os.stat(data_dir).st_mode)
            check_that(mode == 0o700, "data_dir is %o" % mode)
            for name in os.listdir(data_dir):
                mode = stat.S_IMODE(os.stat(os.path.join(data_dir, name)).st_mode)
                check_that(mode == 0o600, "%s is %o" % (name, mode))
            print("  %s: 0700; %s: 0600" % (data_dir, ", ".join(sorted(os.listdir(data_dir)))))

        suite.check("the database is 0600 in a 0700 directory (under umask 000)", private_database)

        def stopping():
            gw.expect_exit = True
            gw.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while True:
                msg = recv(sock, max(0.1, deadline - time.monotonic()))
                if msg is None:
                    fail("no STOPPING=1 after SIGTERM")
                if msg == "STOPPING=1":
                    break
                check_that(msg == "WATCHDOG=1", "unexpected %r" % msg)
            rc = gw.stop()
            check_that(rc == 0, "exit status %s" % rc)

        suite.check("SIGTERM: STOPPING=1, exit 0", stopping)
        sock.close()
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
