#!/usr/bin/python3
"""Fault campaign (issue 12): real cuffsim, bfr-gateway and mosquitto under a
seeded schedule of faults; at the end the gateway's database and what the
subscribers received must agree: nothing lost.

    tests/soak/campaign.py --short --seed 1                 # CI: ~2 min
    nice -n 10 tests/soak/campaign.py --minutes 50 --seed 7  # the full campaign

Run it as root with /usr/bin/python3 (network namespaces, a tmpfs). Exit
status 0 = every check passed, 1 = a check failed, 77 = skipped because this
machine does not permit `ip netns`, 2 = bad usage. docs/reliability.md
("Fault campaign") describes what runs, what is checked and the figures.

What runs (see netns.py for the namespaces):
- mosquitto with persistence (autosave every second, no queue limits) in the
  broker's namespace, SIGKILLed and restarted on the schedule;
- bfr-gateway (the build in BFR_BUILD_DIR or --build-dir; the ASan build by
  default) in its own namespace, reaching the broker across a veth that the
  schedule cuts; SIGKILLed and restarted; its data_dir on a small tmpfs that
  the schedule fills once;
- cuffsim with --cuffs cuffs and a clinician (clinician.py) that keeps them
  in sessions and acknowledges alarms; the schedule injects cuffsim faults
  and link drops;
- two persistent QoS 1 subscribers (recorder.py): the recorder and a witness.

Every child runs under `setpriv --pdeathsig KILL`, and the namespaces and the
tmpfs are removed in a `finally`, on SIGTERM/SIGINT too; namespaces a killed
run left behind are deleted by the next run (their pid is gone).
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import Broker, CuffSim, Proc, TestFailure, gateway_config  # noqa: E402
from validate import SOURCE_DIR, Validator  # noqa: E402

import netns  # noqa: E402
import schedule  # noqa: E402
import verify  # noqa: E402
from clinician import Clinician  # noqa: E402
from recorder import Recorder  # noqa: E402

SKIP = 77
PORT = 1883
PREFIX = harness.PREFIX
DEFLATED_MMHG = 20.0
DEFLATE_DEADLINE_S = 15.0     # supervision 3 s + dump < 3 s + the stats poll, with room
RSS_JUDGED_S = 300.0          # a gateway instance this long-lived has its RSS judged
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:strict_string_checks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "suppressions=%s:print_suppressions=0" %
                    os.path.join(SOURCE_DIR, "tests", "lsan.supp"),
}

FULL = {"minutes": 50.0, "cuffs": 140, "broker_kill": 24, "net_cut": 6, "gateway_kill": 6,
        "disk_fill": 1, "min_events": 100000, "tmpfs": "512m", "quiesce_s": 300.0,
        "stagger_s": 90.0, "disk_max_s": 600.0,
        "profile": {"reps": (10, 50), "sets": (1, 3), "rest_s": [0, 5, 10], "on_s": (5, 20),
                    "bilateral_p": 0.2, "two_exercise_p": 0.1}}
SHORT = {"minutes": 1.6, "cuffs": 20, "broker_kill": 3, "net_cut": 1, "gateway_kill": 1,
         "disk_fill": 1, "min_events": 300, "tmpfs": "64m", "quiesce_s": 15.0,
         "stagger_s": 30.0, "disk_max_s": 45.0,
         "profile": {"reps": (6, 15), "sets": (1, 2), "rest_s": [0, 3], "on_s": (5, 8),
                     "bilateral_p": 0.2, "two_exercise_p": 0.0}}


class Stop(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# The gateway's line after a reconnect when Paho still held publishes of the
# lost connection (gateway/src/mqtt_client.c count_stale): they go out first.
STALE_LINE = b"go out first on this one"
STALE_TIMES = []   # wall s of each such line, every gateway instance


class StampedProc(Proc):
    """harness.Proc whose log file lines carry the wall-clock time they were
    read (the gateway's own lines have none), to line them up with the
    campaign's fault log."""

    def _log_line(self, raw):
        t = time.time()
        if STALE_LINE in raw:
            STALE_TIMES.append(t)
        self._log.write(("%s.%03d " % (time.strftime("%H:%M:%S", time.localtime(t)),
                                       int(t % 1 * 1000))).encode() + raw)


class Children:
    """What harness.Broker and harness.CuffSim need of a Harness (tmp,
    binary, spawn); every child is tied to this process (PR_SET_PDEATHSIG)."""

    def __init__(self, tmp, build_dir):
        self.tmp = tmp
        self.build_dir = build_dir
        self.procs = []
        self._n = {}

    def binary(self, name):
        path = os.path.join(self.build_dir, name)
        if not os.access(path, os.X_OK):
            raise TestFailure("%s is not built (--build-dir %s)" % (path, self.build_dir))
        return path

    def spawn(self, name, argv, env=None, prefix=()):
        n = self._n.get(name, 0) + 1
        self._n[name] = n
        proc = StampedProc(name if n == 1 else "%s.%d" % (name, n),
                           ["setpriv", "--pdeathsig", "KILL", "--"] + list(prefix) + list(argv),
                           self.tmp, env)
        self.procs.append(proc)
        return proc


class Campaign:
    def __init__(self, args):
        self.args = args
        self.mode = SHORT if args.short else FULL
        self.minutes = args.minutes if args.minutes is not None else self.mode["minutes"]
        self.n_cuffs = args.cuffs or self.mode["cuffs"]
        self.counts = {k: getattr(args, k) if getattr(args, k) is not None else self.mode[k]
                       for k in ("broker_kill", "net_cut", "gateway_kill", "disk_fill")}
        self.min_events = args.min_events if args.min_events is not None else \
            self.mode["min_events"]
        self.build_dir = os.path.abspath(args.build_dir or harness.BUILD_DIR)
        self.tmp = None
        self.net = None
        self.mnt = None
        self.mounted = False
        self.children = None
        self.broker = None
        self.sim = None
        self.gw = None
        self.gw_instances = []     # (name, start monotonic, [(t, kib)])
        self.gw_conf = None
        self.data_dir = None
        self.recorder = self.witness = self.clinician = None
        self.executed = {}
        self.kills = []            # gateway deaths: see record_death()
        self.broker_kills_wall = []
        self.watches = []          # deflation watches after gateway deaths
        self.disk_results = []
        self.battery_held = set()
        self.valve_faults = set()
        self.sched_last = {}
        self.sched = {k: {"windows": 0, "max_wait_ms_per_s": 0.0, "windows_over_250ms_per_s": 0}
                      for k in ("gateway", "cuffsim")}
        self.not_executed = []
        self.findings = []         # product failures seen while running
        self.unexpected = []       # processes that died without being told to
        # cuffsim and the gateway inherit these (ctest sets its own).
        for k, v in SANITIZER_ENV.items():
            os.environ.setdefault(k, v)
        self.env = dict(os.environ)

    # --- setup / teardown --------------------------------------------------------

    def setup(self):
        # The pid in the name lets a later run unmount a killed run's tmpfs.
        self.tmp = tempfile.mkdtemp(prefix="bfr-soak-%d-" % os.getpid())
        log("campaign: seed %d, %.1f min, %d cuffs, faults %s, build %s, tmp %s" %
            (self.args.seed, self.minutes, self.n_cuffs, self.counts, self.build_dir, self.tmp))
        self.net = netns.Net()
        self.net.create()
        self.net.enter_broker_ns()
        self.mnt = os.path.join(self.tmp, "datafs")
        os.makedirs(self.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" %
                            self.mode["tmpfs"], "tmpfs", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise TestFailure("cannot mount a tmpfs for data_dir: %s" %
                              r.stdout.decode("utf-8", "replace").strip())
        self.mounted = True
        self.data_dir = os.path.join(self.mnt, "data")
        self.children = Children(self.tmp, self.build_dir)
        self.broker = Broker(self.children)
        self.broker_extra = ("listener %d %s\n"
                             "autosave_interval 1\nautosave_on_changes false\n"
                             "max_queued_messages 0\nmax_queued_bytes 0\n"
                             "max_inflight_messages 0\n" % (PORT, netns.BR_ADDR))
        self.start_broker()
        self.recorder = Recorder("soak-recorder", PORT, PREFIX,
                                 os.path.join(self.tmp, "recorder.jsonl"), Validator())
        self.witness = Recorder("soak-witness", PORT, PREFIX,
                                os.path.join(self.tmp, "witness.jsonl"), Validator())
        self.recorder.wait_subscribed(10)
        self.witness.wait_subscribed(10)
        self.sim = CuffSim(self.children, os.path.join(self.tmp, "sim"), self.n_cuffs,
                           ["--seed", str(self.args.seed), "--rate", str(self.args.rate),
                            "--stagger"])
        self.sim.start()
        cuffs = harness.sim_cuffs(self.sim)
        self.cuff_index = {c["id"]: i + 1 for i, c in enumerate(cuffs)}
        self.gw_conf = os.path.join(self.tmp, "gateway.conf")
        with open(self.gw_conf, "w") as f:
            f.write(gateway_config(self.data_dir, "mqtt://%s:%d" % (netns.BR_ADDR, PORT), cuffs,
                                   telemetry_hz=2, keepalive_s=2))
        self.start_gateway()
        self.clinician = Clinician(PORT, PREFIX, sorted(self.cuff_index),
                                   random.Random(self.args.seed * 7919 + 1), self.mode["profile"],
                                   self.change_battery, self.mode["stagger_s"])
        deadline = time.monotonic() + 60
        while True:
            links = self.clinician.links()
            up = sum(1 for v in links.values() if v == "connected")
            if up == self.n_cuffs:
                break
            if time.monotonic() > deadline:
                raise TestFailure("only %d of %d cuffs connected after 60 s" % (up, self.n_cuffs))
            self.check_children()
            time.sleep(0.2)
        log("setup: broker, recorder, witness, %d cuffs, gateway up" % self.n_cuffs)

    def teardown(self):
        problems = []
        for c in (self.clinician, self.recorder, self.witness):
            if c is not None:
                try:
                    c.close()
                except Exception as e:  # teardown goes on
                    problems.append("closing a client: %s" % e)
        if self.children:
            order = sorted(self.children.procs, key=lambda p: (
                0 if p.name.startswith("gateway") else 1 if p.name.startswith("cuffsim") else 2))
            for p in order:
                if p.alive():
                    p.expect_exit = True
                    p.stop(timeout=30)
                p.close()
        if self.mounted:
            r = subprocess.run(["umount", self.mnt], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", self.mnt])
                problems.append("umount %s: %s" % (self.mnt, r.stdout.decode().strip()))
            self.mounted = False
        if self.net:
            problems += self.net.destroy()
        for p in problems:
            log("teardown: %s" % p)
        return problems

    # --- processes -----------------------------------------------------------------

    def start_broker(self):
        self.broker.start(port=PORT, persistence=True, extra=self.broker_extra)

    def start_gateway(self):
        self.gw = self.children.spawn("gateway", [self.children.binary("bfr-gateway"), "-c",
                                                  self.gw_conf],
                                      env=self.env, prefix=self.net.gateway_prefix())
        self.gw_instances.append((self.gw.name, time.monotonic(), []))

    def change_battery(self, cuff):
        i = self.cuff_index[cuff]
        if i in self.battery_held:
            return False
        self.sim.control("battery %d 100" % i)
        return True

    def check_children(self):
        """Processes that died on their own: findings; the gateway and the
        broker are restarted, cuffsim is fatal."""
        if self.gw and not self.gw.alive() and not self.gw.expect_exit:
            self.gw.wait_exit(5)
            rc = self.gw.popen.returncode
            self.unexpected.append("%s exited by itself with status %s; log %s" %
                                   (self.gw.name, rc, self.gw.log_path))
            log("FINDING: %s exited by itself (status %s); log tail:\n%s" %
                (self.gw.name, rc, self.gw.log_tail(40)))
            self.gw.expect_exit = True
            self.record_death("%s exited by itself (status %s)" % (self.gw.name, rc),
                              time.monotonic(), None)
            self.start_gateway()
        bp = self.broker.proc
        if bp and not bp.alive() and not bp.expect_exit:
            self.unexpected.append("%s exited by itself (status %s)" %
                                   (bp.name, bp.popen.returncode))
            bp.expect_exit = True
            self.start_broker()
        if self.sim.proc and not self.sim.proc.alive() and not self.sim.proc.expect_exit:
            self.unexpected.append("%s exited by itself (status %s); log %s" %
                                   (self.sim.proc.name, self.sim.proc.popen.returncode,
                                    self.sim.proc.log_path))
            raise Stop("cuffsim died: %s" % self.sim.proc.log_tail(30))

    def sample_procs(self):
        """Gateway RSS, and how long the gateway's loop thread and cuffsim waited
        for a CPU (/proc/PID/schedstat run delay): on this shared 2-core
        machine a starved process explains a burst of telemetry_lost alarms."""
        now = time.monotonic()
        if self.gw and self.gw.alive():
            try:
                with open("/proc/%d/status" % self.gw.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            name, t0, samples = self.gw_instances[-1]
                            samples.append((now - t0, int(line.split()[1])))
                            break
            except (OSError, ValueError):
                pass
        for key, proc in (("gateway", self.gw), ("cuffsim", self.sim.proc if self.sim else None)):
            if not proc or not proc.alive():
                continue
            try:
                with open("/proc/%d/schedstat" % proc.pid) as f:
                    wait_ns = int(f.read().split()[1])
            except (OSError, ValueError, IndexError):
                continue
            last = self.sched_last.get(key)
            self.sched_last[key] = (proc.pid, now, wait_ns)
            if last and last[0] == proc.pid:
                share = (wait_ns - last[2]) / 1e6 / max(1e-3, now - last[1])
                w = self.sched[key]
                w["windows"] += 1
                w["max_wait_ms_per_s"] = max(w["max_wait_ms_per_s"], round(share, 1))
                if share > 250.0:
                    w["windows_over_250ms_per_s"] += 1

    # --- the faults ------------------------------------------------------------------

    def count(self, key):
        self.executed[key] = self.executed.get(key, 0) + 1
        return self.executed[key]

    def major_blocked(self, it):
        """Why a major fault must wait (None: it may start now)."""
        if it.kind == "gateway_kill":
            if self.watches:
                return "the previous kill's deflation watch"
            if self.valve_faults:
                return "cuffs with a broken valve on purpose (%s)" % sorted(self.valve_faults)
        return None

    def start_major(self, it):
        """Starts a major fault; returns the dict that poll_major() ends it with."""
        now = time.monotonic()
        n = self.count(it.kind)
        m = {"kind": it.kind, "t": now, "end": now + it.params["down_s"]}
        if it.kind == "broker_kill":
            self.broker_kills_wall.append(time.time())
            self.broker.proc.kill()
            log("fault: broker SIGKILLed (%d), restart in %.1f s" % (n, it.params["down_s"]))
        elif it.kind == "net_cut":
            self.net.cut(it.params["side"])
            log("fault: network cut (%d) at the %s end for %.1f s (%s)" %
                (n, it.params["side"], it.params["down_s"], self.net.link_state()))
        elif it.kind == "gateway_kill":
            self.kill_gateway(it.params["down_s"])
        elif it.kind == "disk_fill":
            m["line0"] = len(self.gw.lines)
            m["gw"] = self.gw
            m["sizes"] = self.db_sizes()
            m["bytes"] = harness.fill_disk(os.path.join(self.mnt, "filler"))
            m["noticed"] = None
            log("fault: disk filled (%d KiB; database files %s KiB); freed %.0f s after the "
                "gateway reports it (at most %.0f s)" % (m["bytes"] // 1024, m["sizes"],
                                                          it.params["down_s"],
                                                          self.mode["disk_max_s"]))
        return m

    def poll_major(self, m):
        """Ends the major fault m when due; True once ended."""
        now = time.monotonic()
        k = m["kind"]
        if k == "disk_fill":
            start = m["line0"] if m["gw"] is self.gw else 0
            if m["noticed"] is None and any("store: disk error" in ln
                                            for ln in self.gw.lines[start:]):
                m["noticed"] = now - m["t"]
                m["end"] = max(m["end"], now + 5.0)
                log("fault: the gateway reported the full disk after %.1f s" % m["noticed"])
            if m["noticed"] is None and now - m["t"] < self.mode["disk_max_s"]:
                return False
        if now < m["end"]:
            return False
        if k == "broker_kill":
            self.start_broker()
        elif k == "net_cut":
            self.net.restore()
            log("fault: network restored (%s)" % self.net.link_state())
        elif k == "gateway_kill":
            self.start_gateway()
            log("fault: gateway restarted as %s" % self.gw.name)
        elif k == "disk_fill":
            if "freed" not in m:
                os.unlink(os.path.join(self.mnt, "filler"))
                m["freed"] = now
                self.disk_results.append({"bytes": m["bytes"], "db_kib": m["sizes"],
                                          "held_s": round(now - m["t"], 1),
                                          "noticed_after_s": None if m["noticed"] is None
                                          else round(m["noticed"], 1),
                                          "recovered_after_free_s": None})
                log("fault: disk freed after %.1f s" % (now - m["t"]))
                return False
            # The fault ends 2 s after the gateway wrote again (its storage_error
            # closes then): a broker SIGKILL a few ms after that close lost the
            # close, which mosquitto had acknowledged but neither delivered nor
            # saved (it saves every autosave_interval; docs/reliability.md,
            # "Known limits"). Faults are one at a time; this one lasts until then.
            if "recovered" not in m:
                start = m["line0"] if m["gw"] is self.gw else 0
                if any("store: disk writes recovered" in ln for ln in self.gw.lines[start:]):
                    self.disk_results[-1]["recovered_after_free_s"] = round(now - m["freed"], 1)
                elif now - m["freed"] < 60.0:
                    return False
                m["recovered"] = now
            if now - m["recovered"] < 2.0:
                return False
        return True

    def execute_minor(self, it):
        k = it.kind
        self.count(it.params["fault"] if k == "cuff_fault" else k)
        cuff = it.params["cuff"]
        fault = it.params.get("fault")
        if fault == "battery":
            (self.battery_held.add if k == "cuff_fault" else self.battery_held.discard)(cuff)
        if fault in schedule.NEAR_GATEWAY_KILL:
            (self.valve_faults.add if k == "cuff_fault" else self.valve_faults.discard)(cuff)
        reply = self.sim.control(it.params["line"], allow_error=True)
        if not reply.startswith("ok"):
            self.findings.append("cuffsim refused %r: %s" % (it.params["line"], reply))

    def db_sizes(self):
        out = {}
        for name in ("bfr-gateway.db", "bfr-gateway.db-wal"):
            try:
                out[name.split(".", 1)[1]] = os.path.getsize(os.path.join(self.data_dir,
                                                                          name)) // 1024
            except OSError:
                pass
        return out

    def kill_gateway(self, down_s):
        pre = {c["cuff"]: c["true_pressure"] for c in self.sim.stats()["cuffs"]}
        t_kill = time.monotonic()
        self.gw.kill()
        k = self.record_death("SIGKILL %d" % self.executed["gateway_kill"], t_kill, pre)
        log("fault: gateway SIGKILLed (%d), restart in %.1f s: %d sessions open, %d cuffs "
            "inflated, %d of those sessions inflated" %
            (self.executed["gateway_kill"], down_s, len(k["open_sessions"]),
             len(k["inflated_cuffs"]), len(k["inflated_sessions"])))

    def record_death(self, cause, t_death, pre):
        """What the dead gateway left: open sessions (database), inflated cuffs
        (cuffsim, before and after), and a watch that they deflate by themselves.
        pre: cuffsim true pressures just before a kill (None after a crash)."""
        post = {c["cuff"]: c["true_pressure"] for c in self.sim.stats()["cuffs"]}
        opened = verify.open_sessions(os.path.join(self.data_dir, "bfr-gateway.db"))
        inflated = {}
        for cuff, i in self.cuff_index.items():
            p = max((pre or {}).get(i, 0.0), post.get(i, 0.0))
            if p >= DEFLATED_MMHG:
                inflated[cuff] = round(p, 1)
        infl_sessions = sorted(sid for sid, cuffs in opened.items()
                               if any(c in inflated for c in cuffs))
        k = {"n": len(self.kills) + 1, "cause": cause, "t": t_death,
             "open_sessions": sorted(opened), "inflated_sessions": infl_sessions,
             "inflated_cuffs": inflated, "deflated_after_s": {c: None for c in inflated},
             "deadline_s": DEFLATE_DEADLINE_S, "instance": self.gw.name}
        self.kills.append(k)
        self.watches.append(k)
        return k

    def poll_watch(self):
        """Cuffs inflated when a gateway died: each must go below 20 mmHg by itself."""
        if not self.watches:
            return
        now = time.monotonic()
        stats = {c["cuff"]: c["true_pressure"] for c in self.sim.stats()["cuffs"]}
        for k in list(self.watches):
            for cuff, dt in k["deflated_after_s"].items():
                if dt is None and stats.get(self.cuff_index[cuff], 0.0) < DEFLATED_MMHG:
                    k["deflated_after_s"][cuff] = round(now - k["t"], 2)
            if all(v is not None for v in k["deflated_after_s"].values()):
                log("gateway death %d: every inflated cuff below %.0f mmHg within %.2f s" %
                    (k["n"], DEFLATED_MMHG, max(k["deflated_after_s"].values() or [0.0])))
                self.watches.remove(k)
            elif now - k["t"] > DEFLATE_DEADLINE_S:
                left = {c: stats.get(self.cuff_index[c])
                        for c, v in k["deflated_after_s"].items() if v is None}
                log("FINDING: gateway death %d: still inflated after %.0f s: %s" %
                    (k["n"], DEFLATE_DEADLINE_S, left))
                self.watches.remove(k)

    # --- the run ----------------------------------------------------------------------

    def run(self):
        duration = self.minutes * 60.0
        items = schedule.build(self.args.seed, duration, self.n_cuffs, self.counts,
                               self.args.short)
        log("schedule: %s" % json.dumps(schedule.summary(items)))
        with open(os.path.join(self.tmp, "schedule.txt"), "w") as f:
            f.write("\n".join(repr(it) for it in items) + "\n")
        majors = [it for it in items if it.kind in schedule.MAJORS]
        minors = [it for it in items if it.kind not in schedule.MAJORS]
        t0 = time.monotonic()
        self.t0 = t0
        idx = 0
        active = None
        waiting_since = None
        next_rss = next_progress = 0.0
        rss_period = 2.0
        progress_period = 20.0 if self.args.short else 60.0
        # Majors delayed by one another may run past the planned end, within bounds.
        hard_end = duration * 1.5 + 120.0
        while True:
            now = time.monotonic() - t0
            if now >= duration and ((not majors and not active) or now >= hard_end):
                break
            while idx < len(minors) and minors[idx].t <= now:
                if minors[idx].t < duration or minors[idx].kind == "cuff_clear":
                    self.execute_minor(minors[idx])
                idx += 1
            if active and self.poll_major(active):
                active = None
            if not active and majors and majors[0].t <= now:
                why = self.major_blocked(majors[0])
                if why is None:
                    active = self.start_major(majors.pop(0))
                    waiting_since = None
                elif waiting_since is None:
                    waiting_since = now
                    log("schedule: %s waits for %s" % (majors[0].kind, why))
            self.clinician.step()
            self.poll_watch()
            self.check_children()
            if now >= next_rss:
                self.sample_procs()
                next_rss = now + rss_period
            if now >= next_progress:
                self.progress(now)
                next_progress = now + progress_period
            time.sleep(0.2)
        while active and not self.poll_major(active):
            time.sleep(0.2)
        for it in minors[idx:]:   # faults still set are cleared
            if it.kind == "cuff_clear":
                self.execute_minor(it)
        while self.watches:
            self.poll_watch()
            time.sleep(0.2)
        self.not_executed = [it.kind for it in majors]
        self.progress(time.monotonic() - t0)

    def progress(self, now):
        st = self.recorder.stats()
        rss = self.gw_instances[-1][2][-1][1] // 1024 if self.gw_instances[-1][2] else 0
        c = self.clinician.stats()
        log("t=%5.0f s: %d events, %d summaries, %d alarms recorded; %d sessions started, "
            "%d busy cuffs; gateway %s RSS %d MiB, database %s KiB; faults %s" %
            (now, st["events"], st["summaries"], st["alarm_ids"], c["starts_ok"],
             len(self.clinician.busy_cuffs()), self.gw.name, rss, self.db_sizes(),
             json.dumps({k: v for k, v in sorted(self.executed.items())
                         if k in ("broker_kill", "net_cut", "gateway_kill", "disk_fill",
                                  "cuff_drop")})))

    def wait(self, what, pred, timeout, step=True):
        deadline = time.monotonic() + timeout
        while True:
            r = pred()
            if r:
                return r
            if time.monotonic() > deadline:
                return None
            if step:
                self.clinician.step()
            self.check_children()
            self.sample_procs()
            time.sleep(0.25)

    def documented_open(self):
        """Alarms that may stay open at the end, with why: a supervision_deflated
        alarm whose cuff still carries the deflated-by-supervision bit (it
        goes with the cuff's next SET_TARGET, docs/safety.md SR-14 and
        docs/cuffsim.md) has its condition present: acknowledged, not closed."""
        stats = {c["cuff"]: c for c in self.sim.stats()["cuffs"]}
        out = {}
        for aid, rec in self.recorder.open_alarms().items():
            i = self.cuff_index.get(rec.get("cuff"))
            if (rec.get("code") == "supervision_deflated" and
                    rec.get("state") == "acknowledged" and i and
                    "supervision" in stats[i]["faults"]):
                out[aid] = "%s: supervision_deflated acknowledged, the cuff still reports " \
                           "its supervision deflation (no SET_TARGET since)" % rec["cuff"]
        return out

    def quiesce(self):
        """No more faults or starts; let sessions end, alarms close, the outbox drain."""
        log("quiesce: clearing cuff faults, no new sessions")
        self.clinician.starting = False
        self.battery_held.clear()
        self.sim.control("clear all")
        self.sim.control("battery all 100")
        db = os.path.join(self.data_dir, "bfr-gateway.db")
        if not self.wait("sessions to end", lambda: not self.clinician.busy_cuffs(),
                         self.mode["quiesce_s"]):
            n = self.clinician.stop_all()
            log("quiesce: stopping %d sessions still running" % n)
            if not self.wait("stopped sessions", lambda: not self.clinician.busy_cuffs(), 60):
                self.findings.append("sessions still running 60 s after session/stop: %s" %
                                     self.clinician.busy_cuffs())
        if not self.wait("alarms to close", lambda: set(self.recorder.open_alarms()) <=
                         set(self.documented_open()), 90):
            log("quiesce: alarms still open: %s" %
                {k: (v.get("code"), v.get("state")) for k, v in
                 self.recorder.open_alarms().items()})
        self.allowed_open = self.documented_open()
        if self.allowed_open:
            log("quiesce: open for a documented reason: %s" % self.allowed_open)

        def drained():
            if verify.outbox_depth(db) != 0:
                return False
            return self.recorder.event_count() >= verify.event_total(db)
        if not self.wait("outbox drained, events delivered", drained, 90):
            log("quiesce: outbox depth %d, %d of %d events recorded" %
                (verify.outbox_depth(db), self.recorder.event_count(), verify.event_total(db)))
        self.final_rc = None
        self.gw.expect_exit = True
        self.final_rc = self.gw.stop(timeout=60)
        log("quiesce: gateway stopped with status %s" % self.final_rc)
        self.sim.proc.expect_exit = True
        self.sim_rc = self.sim.proc.stop(timeout=30)
        # The broker's retained alarms: every alarm is closed, so none may remain.
        self.retained_alarms = harness.fetch_retained(PORT, "%s/alarm/+" % PREFIX, 10)

    # --- judgement ------------------------------------------------------------------

    def judge(self):
        db = verify.Db(os.path.join(self.data_dir, "bfr-gateway.db"))
        checks = []
        report = {"seed": self.args.seed, "minutes": self.minutes, "cuffs": self.n_cuffs,
                  "build_dir": self.build_dir, "faults_requested": self.counts,
                  "faults_executed": dict(sorted(self.executed.items()))}

        def add(title, result):
            bad, fig = result
            checks.append((title, bad))
            report[title] = fig

        add("database: sessions ended, seqs contiguous, outbox empty", verify.check_database(db))
        add("events: every stored event delivered, in order, duplicates with the same msg_id",
            verify.check_events(db, self.recorder, self.broker_kills_wall, STALE_TIMES))
        add("summaries: one per session, delivered, matching the database",
            verify.check_summaries(db, self.recorder))
        add("alarms: every alarm delivered and closed",
            verify.check_alarms(db, self.recorder, self.allowed_open))
        retained = ["retained alarm %s: %s" % (t, v[:160]) for t, v in
                    sorted(self.retained_alarms.items())
                    if t.rsplit("/", 1)[1] not in self.allowed_open]
        add("broker: no retained alarm left once every alarm is closed",
            (verify._more(retained), {"retained_alarms": len(retained)}))
        add("gateway deaths (kills and crashes): inflated cuffs deflated, open sessions "
            "aborted/gateway_restart",
            verify.check_gateway_kills(db, self.recorder, self.kills))
        add("subscribers: the recorder and the witness agree (no subscriber-side loss)",
            verify.check_witness(self.recorder, self.witness))
        rec_problems = [p for p in self.recorder.problems
                        if "out of order" not in p and "arrived as" not in p]
        add("recorder: every payload valid, no msg_id reused",
            (verify._more(rec_problems), self.recorder.stats()))
        report["witness"] = self.witness.stats()
        logs = [p.log_path for p in self.children.procs
                if p.name.startswith("gateway") or p.name.startswith("cuffsim")]
        add("sanitizers: no ASan/UBSan/LSan report in any gateway or cuffsim log",
            verify.scan_sanitizers(logs))
        died = list(self.unexpected)
        if self.final_rc != 0:
            died.append("%s: status %s on the final SIGTERM (LeakSanitizer runs at exit)" %
                        (self.gw.name, self.final_rc))
        if self.sim_rc != 0:
            died.append("cuffsim: status %s on SIGTERM" % self.sim_rc)
        add("processes: none died by itself; clean exits at the end", (died, {
            "gateway_instances": len(self.gw_instances)}))
        add("campaign: findings while running (deflation, cuffsim)", (self.findings, {}))
        disk_bad = []
        for d in self.disk_results:
            if d["noticed_after_s"] is None:
                disk_bad.append("the gateway did not report the full disk within %.0f s (%d KiB "
                                "filled, database files %s KiB)" %
                                (d["held_s"], d["bytes"] // 1024, d["db_kib"]))
            elif d["recovered_after_free_s"] is None:
                disk_bad.append("the gateway did not report recovered writes within 60 s of "
                                "the disk being freed")
        codes = verify.check_alarms(db, self.recorder, self.allowed_open)[1]["by_code"]
        if self.disk_results and not codes.get("storage_error"):
            disk_bad.append("no storage_error alarm was raised")
        add("disk fill: noticed, storage_error raised (and closed, see alarms)",
            (disk_bad, {"fills": self.disk_results, "storage_error_alarms":
                        codes.get("storage_error", 0)}))
        short = ["%s never started (the run ended first)" % k for k in self.not_executed]
        for k, n in self.counts.items():
            if self.executed.get(k, 0) < n:
                short.append("%s: %d executed, %d requested" % (k, self.executed.get(k, 0), n))
        if db.n_events() < self.min_events:
            short.append("%d events, target %d" % (db.n_events(), self.min_events))
        add("volume: every scheduled fault executed, event target reached",
            (short, {"events": db.n_events()}))
        instances = [(name, samples) for name, _t0, samples in self.gw_instances]
        per, judged = verify.rss_figures(instances)
        rss_bad = []
        if judged and judged["life_s"] >= RSS_JUDGED_S and judged["growth_pct"] > 10.0:
            rss_bad.append("RSS of %s grew %.1f %% from the second to the last quarter of its "
                           "%.0f s" % (judged["instance"], judged["growth_pct"],
                                       judged["life_s"]))
        add("memory: gateway RSS flat over its longest life (judged from 5 min)",
            (rss_bad, {"instances": per, "longest": judged}))
        report["clinician"] = self.clinician.stats()
        report["scheduling"] = self.sched
        return checks, report


def clean_stale_mounts():
    """Unmounts the data tmpfs of campaigns whose process is gone."""
    gone = []
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for mnt in mounts:
        m = re.match(r"^%s/bfr-soak-(\d+)-[^/]+/datafs$" % re.escape(tempfile.gettempdir()), mnt)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            if subprocess.run(["umount", "-l", mnt]).returncode == 0:
                gone.append(mnt)
    return gone


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--short", action="store_true", help="the CI version (a few minutes)")
    ap.add_argument("--cuffs", type=int)
    ap.add_argument("--rate", type=int, default=20, help="cuffsim samples/s per cuff")
    ap.add_argument("--build-dir", help="where bfr-gateway and cuffsim are (default "
                    "BFR_BUILD_DIR or ./build)")
    ap.add_argument("--broker-kills", dest="broker_kill", type=int)
    ap.add_argument("--net-cuts", dest="net_cut", type=int)
    ap.add_argument("--gateway-kills", dest="gateway_kill", type=int)
    ap.add_argument("--disk-fills", dest="disk_fill", type=int)
    ap.add_argument("--min-events", type=int)
    ap.add_argument("--report", help="write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args(argv)
    if a.disk_fill is not None and a.disk_fill > 1:
        ap.error("--disk-fills: at most 1")
    return a


def on_signal(signo, frame):
    raise Stop("signal %d" % signo)


def main(argv):
    args = parse_args(argv)
    why = netns.probe()
    if why:
        print("SKIP soak campaign: this machine does not permit `ip netns`: %s" % why,
              flush=True)
        return SKIP
    for name in netns.clean_stale():
        log("deleted a dead campaign's namespace %s" % name)
    for mnt in clean_stale_mounts():
        log("unmounted a dead campaign's tmpfs %s" % mnt)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    camp = Campaign(args)
    checks = report = None
    t0 = time.monotonic()
    try:
        camp.setup()
        camp.run()
        camp.quiesce()
        checks, report = camp.judge()
    except (TestFailure, Stop, netns.NetnsError) as e:
        log("campaign aborted: %s" % e)
    except Exception:
        log("campaign aborted:\n%s" % traceback.format_exc())
    finally:
        problems = camp.teardown()
    failed = checks is None or any(bad for _t, bad in checks) or bool(problems)
    if checks is not None:
        report["wall_s"] = round(time.monotonic() - t0, 1)
        report["load_avg"] = os.getloadavg()
        print("\n== fault campaign: figures ==")
        for key in ("faults_executed", "database: sessions ended, seqs contiguous, outbox empty",
                    "events: every stored event delivered, in order, duplicates with the same "
                    "msg_id", "alarms: every alarm delivered and closed",
                    "gateway deaths (kills and crashes): inflated cuffs deflated, open sessions "
                    "aborted/gateway_restart",
                    "subscribers: the recorder and the witness agree (no subscriber-side loss)",
                    "memory: gateway RSS flat over its longest life (judged from 5 min)",
                    "clinician", "scheduling"):
            print("%s: %s" % (key.split(":")[0], json.dumps(report.get(key))))
        print("\n== fault campaign: checks ==")
        for title, bad in checks:
            print("%s %s" % ("FAIL" if bad else "PASS", title))
            for line in bad:
                print("     %s" % line)
        if args.report:
            with open(args.report, "w") as f:
                json.dump(report, f, indent=1, default=str)
    print("fault campaign: %s (%.0f s; logs in %s)" % ("FAILED" if failed else "passed",
                                                       time.monotonic() - t0, camp.tmp),
          flush=True)
    if camp.tmp and not failed and not args.keep:
        subprocess.run(["rm", "-rf", camp.tmp])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
