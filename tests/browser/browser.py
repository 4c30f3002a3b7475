#!/usr/bin/python3
"""Browser for the dashboard tests: Debian's chromium driven by playwright-core
through tests/browser/driver.mjs (node), used from the Python integration
harness (tests/integration/harness.py) so that one test drives mosquitto,
cuffsim, the gateway and the page together.

    with Browser(h) as b:                      # h: a harness.Harness
        b.goto(h.broker.ws_url)
        b.wait('[data-cuff="cuff-01"]', 10)
        b.click('[data-cuff="cuff-01"] [data-action="identify"]')

Every wait is a condition with a deadline (Playwright's); a timeout raises
harness.TestFailure naming what was awaited. The browser runs with a fresh
--user-data-dir in the harness's temporary directory; close() (or leaving the
with-block) ends the driver and Chromium, and kills any Chromium process
still using that profile directory.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import SOURCE_DIR, TestFailure, fail  # noqa: E402

DASHBOARD = os.path.join(SOURCE_DIR, "dashboard")
DIST = os.path.join(DASHBOARD, "dist")
CHROMIUM = os.environ.get("BFR_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"
SCREENSHOTS = os.environ.get("BFR_SCREENSHOTS")  # a directory: save the screenshots there

# Words that must never be shown for a missing value.
BAD_WORDS = re.compile(r"\b(undefined|NaN|None|null|\[object Object\])\b")


def check_prerequisites():
    """Fails with a clear message when something the browser tests need is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        fail("%s is missing: run deploy/install-deps.sh (Debian package chromium)" % CHROMIUM)
    if not os.path.exists(os.path.join(DIST, "index.html")):
        fail("dashboard/dist/index.html is missing: run `npm ci && npm run build` in dashboard/")
    if not os.path.isdir(os.path.join(DASHBOARD, "node_modules", "playwright-core")):
        fail("dashboard/node_modules/playwright-core is missing: run `npm ci` in dashboard/")


class Browser:
    def __init__(self, h, width=1366, height=768):
        self.h = h
        self.profile = os.path.join(h.tmp, "chromium-profile-%d" % id(self))
        os.makedirs(self.profile, exist_ok=True)
        self.log_path = os.path.join(h.tmp, "browser-driver.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NODE, os.path.join(HERE, "driver.mjs")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, start_new_session=True)
        self.n = 0
        self.lock = threading.Lock()
        self.version = self.call("launch", 60, userDataDir=self.profile, width=width,
                                 height=height)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def call(self, op, timeout, **args):
        """One request; the driver's own deadline is `timeout` s, ours a little more."""
        with self.lock:
            self.n += 1
            req = {"id": self.n, "op": op, "args": dict(args, timeout=int(timeout * 1000))}
            try:
                self.proc.stdin.write((json.dumps(req) + "\n").encode())
                self.proc.stdin.flush()
            except BrokenPipeError:
                fail("browser driver has exited (see %s)" % self.log_path)
            line = self._readline(timeout + 15)
            try:
                rep = json.loads(line)
            except ValueError:
                fail("browser driver said %r" % line[:200])
            if not rep.get("ok"):
                raise TestFailure("browser %s %s: %s" % (op, _short(args), rep.get("error")))
            return rep.get("value")

    def _readline(self, timeout):
        out = {}

        def read():
            out["line"] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            fail("browser driver gave no answer within %.0f s" % timeout)
        if not out["line"]:
            fail("browser driver has exited (see %s)" % self.log_path)
        return out["line"].decode("utf-8", "replace")

    # --- conveniences --------------------------------------------------------

    def goto(self, url, timeout=20):
        return self.call("goto", timeout, url=url)

    def wait(self, selector, timeout, state="visible"):
        return self.call("wait", timeout, selector=selector, state=state)

    def gone(self, selector, timeout):
        return self.call("wait", timeout, selector=selector, state="detached")

    def click(self, selector, timeout=5):
        return self.call("click", timeout, selector=selector)

    def fill(self, selector, value, timeout=5):
        return self.call("fill", timeout, selector=selector, value=value)

    def select(self, selector, value, timeout=5):
        return self.call("select", timeout, selector=selector, value=value)

    def wait_fn(self, body, timeout, what, arg=None):
        """Waits until the JavaScript function body (argument `arg`) returns a truthy
        value, and returns it."""
        try:
            return self.call("waitFn", timeout, body=body, arg=arg)
        except TestFailure as e:
            raise TestFailure("timed out after %.1f s waiting in the page for %s (%s)" %
                              (timeout, what, e))

    def js(self, body, arg=None):
        return self.call("eval", 10, body=body, arg=arg)

    def count(self, selector):
        return self.call("count", 10, selector=selector)

    def attr(self, selector, name):
        return self.js("const e = document.querySelector(arg[0]); "
                       "return e ? e.getAttribute(arg[1]) : null;", [selector, name])

    def text(self, selector):
        return self.js("const e = document.querySelector(arg); "
                       "return e ? e.textContent : null;", selector)

    def body_text(self):
        return self.js("return document.body.innerText;")

    def errors(self):
        return self.call("errors", 10)

    def screenshot(self, name):
        """Saves name.png in $BFR_SCREENSHOTS (docs/img when making the docs), else in
        the harness's temporary directory. Returns the path."""
        d = SCREENSHOTS or self.h.tmp
        os.makedirs(d, exist_ok=True)
        return self.call("screenshot", 30, path=os.path.join(d, name + ".png"))

    def assert_clean_text(self):
        """No undefined/NaN/None/null shown anywhere on the page."""
        t = self.body_text() or ""
        m = BAD_WORDS.search(t)
        if m:
            i = m.start()
            fail("the page shows %r: ...%s..." % (m.group(0), t[max(0, i - 80):i + 40]))

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"id":0,"op":"close"}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._kill_profile_processes()
        self._log.close()

    def _kill_profile_processes(self):
        """Chromium runs in its own process group: kill whatever still uses our profile."""
        needle = ("--user-data-dir=" + self.profile).encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if needle in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass


def _short(args):
    s = json.dumps({k: v for k, v in args.items() if k != "body"})
    return s if len(s) < 160 else s[:157] + "..."


def ws_url(broker):
    return "http://127.0.0.1:%d/" % broker.ws_port
