#!/usr/bin/python3
"""deploy/demo.sh as a new user runs it (issue 9 item 13, issue 10):

- it prints the dashboard's URL, and the page there shows the four demo
  cuffs and the demo's session (in chromium);
- its output (to a pipe) has no "None" and no repeated line;
- it ends by itself once its session has ended, and leaves no process;
- `deploy/demo.sh | head` leaves no process either (mosquitto, cuffsim and
  the gateway used to survive it), and neither does a second run.

The demo runs the binaries of the test build (--build-dir), in a TMPDIR of
its own, so that its processes can be told from anybody else's.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from browser import Browser, check_prerequisites  # noqa: E402
from harness import BUILD_DIR, SOURCE_DIR, Suite, check_that, fail  # noqa: E402

DEMO = os.path.join(SOURCE_DIR, "deploy", "demo.sh")
CUFFS = ["bay1-left-thigh", "bay1-right-thigh", "bay2-left-thigh", "bay2-right-thigh"]


def processes_under(prefix):
    """pids whose command line mentions prefix (the demo's TMPDIR)."""
    out = []
    needle = prefix.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if needle in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


def wait_no_processes(prefix, timeout):
    deadline = time.monotonic() + timeout
    while True:
        left = processes_under(prefix)
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            fail("processes left behind: %s" % left)
        time.sleep(0.1)  # nothing to wait on for another process's exit: poll with a deadline


class Demo:
    """The demo with its stdout on a pipe we read line by line."""

    def __init__(self, h, name, duration=120):
        self.tmpdir = os.path.join(h.tmp, name)
        os.makedirs(self.tmpdir)
        env = dict(os.environ, TMPDIR=self.tmpdir)
        self.proc = subprocess.Popen(
            ["bash", DEMO, "--build-dir", BUILD_DIR, "--duration", str(duration)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # EOF
            self.cond.notify_all()

    def wait_line(self, regex, timeout):
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        i = 0
        with self.cond:
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    if line is None:
                        fail("the demo ended before printing /%s/:\n%s" %
                             (regex, "\n".join(l for l in self.lines[-30:] if l)))
                    m = rx.search(line)
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("the demo printed no /%s/ within %.0f s" % (regex, timeout))
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return [l for l in self.lines if l is not None]


def main():
    suite = Suite("test_demo")
    with suite.harness() as h:
        check_prerequisites()
        demo = Demo(h, "run1")
        state = {}

        def url():
            m = demo.wait_line(r"dashboard: (http://127\.0\.0\.1:\d+/)", 180)
            state["url"] = m.group(1)
        suite.check("the demo prints the dashboard's URL", url)

        with Browser(h) as b:
            def page():
                b.goto(state.get("url") or fail("no URL"))
                for c in CUFFS:
                    b.wait('[data-cuff="%s"] [data-field="pressure"]' % c, 20)
                # The demo's own session, as the page shows it.
                b.wait_fn("return ['lop', 'inflating', 'set', 'rest'].includes("
                          "document.querySelector(arg).dataset.value);", 60,
                          "the demo session on the page",
                          arg='[data-cuff="bay1-left-thigh"] [data-field="phase"]')
                b.assert_clean_text()
            suite.check("the page at that URL shows the demo's cuffs and session", page)

        def ends():
            rc = demo.proc.wait(150)
            demo.reader.join(10)
            out = demo.text()
            check_that(rc == 0, "the demo exited %s:\n%s" % (rc, "\n".join(out[-20:])))
            check_that(any("ended: completed" in l for l in out),
                       "the demo session did not complete")
            bad = [l for l in out if re.search(r"\bNone\b", l)]
            check_that(not bad, "the demo printed None: %s" % bad[:3])
            dup = sorted({l for l in out if l.strip() and out.count(l) > 1})
            check_that(not dup, "the demo repeated lines: %s" % dup[:3])
            wait_no_processes(demo.tmpdir, 10)
            check_that(not os.listdir(demo.tmpdir), "left %s" % os.listdir(demo.tmpdir))
        suite.check("it ends with its session, prints no None and no repeated line, "
                    "and leaves no process", ends)

        def head():
            tmpdir = os.path.join(h.tmp, "run2")
            os.makedirs(tmpdir)
            env = dict(os.environ, TMPDIR=tmpdir)
            # The demo's stderr (its warnings, a failure's reason and logs) goes
            # to a file beside run2, so that a failure here says why.
            errpath = os.path.join(h.tmp, "run2-stderr.log")
            with open(errpath, "wb") as err:
                p = subprocess.Popen(
                    ["bash", "-c", 'bash "$0" --build-dir "$1" --duration 120 | head -n 12',
                     DEMO, BUILD_DIR], stdout=subprocess.PIPE, stderr=err,
                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
                out, _ = p.communicate(timeout=120)
            lines = out.decode("utf-8", "replace").splitlines()
            with open(errpath, "rb") as f:
                stderr_tail = f.read().decode("utf-8", "replace").splitlines()[-40:]
            check_that(len(lines) == 12, "head printed %d lines:\n%s\nthe demo's stderr:\n%s" % (
                len(lines), "\n".join(lines), "\n".join(stderr_tail)))
            # The pipeline has returned: the demo saw the pipe close and cleaned up.
            wait_no_processes(tmpdir, 15)
            check_that(not os.listdir(tmpdir), "left %s" % os.listdir(tmpdir))
            check_that(not any(re.search(r"\bNone\b", l) for l in lines), "None in %s" % lines)
        suite.check("`deploy/demo.sh | head` leaves no process behind (a second run)", head)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
