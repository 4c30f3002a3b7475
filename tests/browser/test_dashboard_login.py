#!/usr/bin/python3
"""The dashboard on a broker that needs a login (docs/dashboard.md, "Login and
roles"): mosquitto's websockets listener with a password file and an ACL of
the roles in DESIGN section 12 (clinician: read bfr/v1/#, write cmd/#;
viewer: read only), the gateway on an anonymous loopback listener.

- the page asks for a user name and password, and says when they are wrong;
- a viewer sees the tiles but no action button (the broker refused the
  page's cmd/snapshot probe with PUBACK 0x87), not even the e-stop;
- a clinician gets the buttons, and a command goes through the ACL;
- the password is never stored: not in localStorage, sessionStorage,
  cookies, the URL or the page.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from browser import DIST, Browser, check_prerequisites, ws_url  # noqa: E402
from harness import PREFIX, Suite, check_that, sim_cuffs  # noqa: E402

PASSWORDS = {"clinician": "clin-Secret-41", "viewer": "view-Secret-73"}
ACL = """# DESIGN section 12 roles, for the dashboard's websockets listener
user clinician
topic read bfr/v1/#
topic write bfr/v1/+/+/cmd/#

user viewer
topic read bfr/v1/#
"""
ACTIONS = ["start", "pause", "resume", "stop", "estop", "ack", "lop", "identify"]


def login(b, user, password):
    b.wait('[data-field="login"]', 15)
    b.fill('input[name="username"]', user)
    b.fill('input[name="password"]', password)
    b.click('[data-action="login"]')


def no_password_kept(b, password):
    found = b.js("""
        const where = [];
        const pw = arg;
        const s = (x) => JSON.stringify(x);
        if (s(Object.assign({}, localStorage)).includes(pw)) where.push('localStorage');
        if (s(Object.assign({}, sessionStorage)).includes(pw)) where.push('sessionStorage');
        if (document.cookie.includes(pw)) where.push('cookie');
        if (location.href.includes(pw)) where.push('URL');
        if (document.documentElement.outerHTML.includes(pw)) where.push('page');
        for (const i of document.querySelectorAll('input')) if (i.value.includes(pw)) where.push('input');
        return where;""", password)
    check_that(not found, "the password is kept in: %s" % ", ".join(found))


def main():
    suite = Suite("test_dashboard_login")
    with suite.harness() as h:
        check_prerequisites()
        pwfile = os.path.join(h.tmp, "passwd")
        for i, (user, pw) in enumerate(PASSWORDS.items()):
            subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) +
                           [pwfile, user, pw], check=True)
        aclfile = os.path.join(h.tmp, "acl")
        with open(aclfile, "w") as f:
            f.write(ACL)
        broker = h.start_broker(websockets={
            "http_dir": DIST,
            "conf": "allow_anonymous false\npassword_file %s\nacl_file %s\n" % (pwfile, aclfile)})
        sim = h.start_cuffsim(2)
        col = h.collector()
        h.start_gateway(h.write_gateway_config(sim_cuffs(sim)))
        col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online",
                     20, "the gateway online")

        with Browser(h) as b:
            def asks():
                b.goto(ws_url(broker))
                b.wait('[data-field="login"]', 15)
                check_that(b.count("[data-cuff]") == 0, "tiles shown before logging in")
                b.screenshot("dashboard-login")
            suite.check("the page asks for a login when the broker needs one", asks)

            def wrong():
                login(b, "viewer", "not-the-password")
                b.wait('[data-field="login-error"]', 10)
                check_that(b.count("[data-cuff]") == 0, "tiles shown after a refused login")
                no_password_kept(b, "not-the-password")
            suite.check("a wrong password is refused and said so", wrong)

            def viewer():
                login(b, "viewer", PASSWORDS["viewer"])
                b.wait('[data-cuff="cuff-02"] [data-field="pressure"]', 15)
                b.wait('[data-field="read-only"]', 10)
                for a in ACTIONS:
                    n = b.count('[data-action="%s"]' % a)
                    check_that(n == 0, "a viewer sees %d %s button(s)" % (n, a))
                no_password_kept(b, PASSWORDS["viewer"])
                b.screenshot("dashboard-viewer")
            suite.check("a viewer sees the cuffs and no action button", viewer)

            def clinician():
                b.click('[data-action="logout"]')
                login(b, "clinician", PASSWORDS["clinician"])
                b.wait('[data-cuff="cuff-01"] [data-action="identify"]', 15)
                b.wait('[data-action="estop"]', 5)
                check_that(b.count('[data-field="read-only"]') == 0, "clinician shown as view only")
                since = time.monotonic()
                b.click('[data-cuff="cuff-01"] [data-action="identify"]')
                b.click('[data-action="confirm"]')
                text = b.wait_fn("const e = document.querySelector('[data-field=reply]');"
                                 "return e && e.dataset.ok === 'true' ? e.textContent : null;",
                                 10, "the identify reply")
                check_that("accepted" in text, "reply %r" % text)
                check_that(col.select(topic=PREFIX + "/cmd/cuff/identify", since=since),
                           "the command did not reach the gateway's topic")
                no_password_kept(b, PASSWORDS["clinician"])
                no_password_kept(b, PASSWORDS["viewer"])
            suite.check("a clinician gets the actions, and a command passes the ACL", clinician)

            def no_errors():
                errors = [e for e in b.errors() if "WebSocket" not in e]
                check_that(not errors, "page errors: %s" % errors)
            suite.check("no errors in the page", no_errors)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
