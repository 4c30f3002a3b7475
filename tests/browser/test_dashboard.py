#!/usr/bin/python3
"""The dashboard in Debian's chromium against real mosquitto (its websockets
listener serving dashboard/dist/index.html from http_dir), cuffsim and
bfr-gateway: what a physiotherapist sees and does (docs/dashboard.md).

- the page mosquitto serves (no Content-Type) runs, and shows a tile for
  every cuff, grouped by bay;
- the pressure on screen is a sample the gateway published moments ago;
- a session started from the page's form runs and shows its set and rep;
- a command the gateway refuses shows the gateway's error;
- a cuffsim pressure spike raises a high alarm that flashes and stays
  (latched) after its condition is gone; acknowledging it from the page
  closes it;
- the e-stop (one click plus confirm) deflates every cuff;
- a killed gateway greys its tiles within 3 s (Last Will).

With BFR_SCREENSHOTS=DIR the screenshots of these states go to DIR
(tests/browser/screenshots.sh puts them in docs/img/).
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from browser import DIST, Browser, check_prerequisites, ws_url  # noqa: E402
from harness import (PREFIX, Suite, alarm_records, check_that, fail, short_plan,  # noqa: E402
                     sim_cuff_stats, start_session, wait_alarm, wait_phase, wait_sim)

CUFFS = ["bay1-left-thigh", "bay1-right-thigh", "bay2-left-thigh", "bay2-right-thigh"]
C1, C2, C3, C4 = CUFFS
LOP = 120          # cuffsim --lop: a LOP measurement takes about 6 s
PAGE_S = 15        # the page loaded and showing what the broker retains
SESSION_S = 45     # from start to the 'set' phase: LOP measurement and inflation


def tile(c):
    return '[data-cuff="%s"]' % c


def field(c, f):
    return '%s [data-field="%s"]' % (tile(c), f)


def reply_js(ok):
    """Page function: the reply bar's text once it shows an outcome with data-ok=ok."""
    return ("const e = document.querySelector('[data-field=\"reply\"]');"
            "return e && e.dataset.ok === '%s' ? e.textContent : null;" % ("true" if ok else "false"))


def telemetry_values(col, cuff, since):
    out = []
    for m in col.select("telemetry", since=since, topic="%s/cuff/%s/telemetry" % (PREFIX, cuff)):
        out += [s[1] for s in m.payload["samples"] if s[1] is not None]
    return out


def page_pressure_is_telemetry(b, col, cuff, timeout=10.0):
    """The tile's pressure is one of the samples published in the last 3 s, and its
    text is that sample rounded."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        raw = b.attr(field(cuff, "pressure"), "data-value")
        text = b.text(field(cuff, "pressure"))
        recent = telemetry_values(col, cuff, time.monotonic() - 3.0)
        if raw not in (None, "") and recent:
            v = float(raw)
            if any(abs(v - s) < 0.05 for s in recent) and abs(float(text) - v) <= 0.5:
                return v
            last = (v, text, recent[-5:])
        if time.monotonic() > deadline:
            fail("%s: the page shows %r, not a sample of the last 3 s" % (cuff, last))
        b.wait_fn("return new Promise(r => setTimeout(() => r(true), 200));", 2, "200 ms")


def no_horizontal_scroll(b, what):
    w = b.js("return [document.documentElement.scrollWidth, window.innerWidth];")
    check_that(w[0] <= w[1], "%s: the page is %d px wide in a %d px window" % (what, w[0], w[1]))


def main():
    suite = Suite("test_dashboard")
    with suite.harness() as h:
        check_prerequisites()
        broker = h.start_broker(websockets={"http_dir": DIST})
        sim = h.start_cuffsim(4, ["--lop", str(LOP), "--seed", "11"])
        cfg = [{"id": c, "address": "sim:" + sim.socket_path(i + 1), "limb": "leg"}
               for i, c in enumerate(CUFFS)]
        col = h.collector()
        gw = h.start_gateway(h.write_gateway_config(cfg))
        col.wait_for(lambda c: (c.latest_payload("status") or {}).get("state") == "online",
                     20, "the gateway online")
        col.wait_for(lambda c: len(c.telemetry_cuffs()) == 4, 20, "telemetry of all 4 cuffs")

        with Browser(h) as b:
            def page_runs():
                r = b.goto(ws_url(broker))
                check_that(r["status"] == 200, "mosquitto answered %s" % r["status"])
                # What makes the one-file build necessary (DESIGN section 10):
                ct = r["headers"].get("content-type")
                check_that(ct is None, "mosquitto now sends Content-Type %r: docs/dashboard.md "
                           "says it does not" % ct)
                b.wait('%s [data-field="pressure"]' % tile(C1), PAGE_S)
            suite.check("the page mosquitto serves without a Content-Type runs in chromium",
                        page_runs)

            def tiles():
                for c in CUFFS:
                    b.wait(tile(c), PAGE_S)
                check_that(b.count("[data-cuff]") == 4, "%d tiles" % b.count("[data-cuff]"))
                for c in CUFFS:
                    bay = c.split("-")[0]
                    check_that(b.count('[data-bay="%s"] %s' % (bay, tile(c))) == 1,
                               "%s is not in the group of %s" % (c, bay))
                    for f in ("pressure", "target", "pct-lop", "phase", "set", "rep",
                              "time-left", "battery", "link"):
                        check_that(b.count(field(c, f)) == 1, "%s has no data-field %s" % (c, f))
                    b.wait_fn("return document.querySelector(arg).dataset.value === 'connected';",
                              10, "%s link connected" % c, arg=field(c, "link"))
                    check_that(b.attr(tile(c), "data-stale") == "false", "%s is stale" % c)
                no_horizontal_scroll(b, "1366x768")
                b.assert_clean_text()
            suite.check("a tile for every cuff, grouped by bay, live", tiles)

            suite.check("pressure on screen is the published telemetry (idle cuffs)",
                        lambda: [page_pressure_is_telemetry(b, col, c) for c in CUFFS])

            def start_from_page():
                b.click(tile(C1) + ' [data-action="start"]')
                b.select('select[name="template"]', "short")
                b.fill('input[name="patient"]', "p-0042")
                b.fill('input[name="pct_lop"]', "60")
                b.fill('input[name="sets"]', "12, 12")
                b.screenshot("dashboard-start-dialog")
                since = time.monotonic()
                b.click('[data-action="confirm"]')
                text = b.wait_fn(reply_js(True), 15, "the start's reply")
                check_that("accepted" in text, "reply bar says %r" % text)
                b.gone('[role="dialog"]', 5)
                cmds = col.select(topic=PREFIX + "/cmd/session/start", since=since)
                check_that(len(cmds) == 1, "%d session/start commands" % len(cmds))
                errs = h.validator.errors("cmd-session-start", cmds[0].payload)
                check_that(not errs, "the page's command breaks its schema: %s" % errs)
                ex = cmds[0].payload["plan"]["exercises"][0]
                check_that(ex["cuffs"] == [C1] and ex["pct_lop"] == 60 and ex["sets"] == [12, 12],
                           "the page sent %s" % ex)
                b.wait_fn("return document.querySelector(arg).dataset.value === 'set';", SESSION_S,
                          "phase 'set' on the page", arg=field(C1, "phase"))
                b.wait_fn("const s = document.querySelector(arg[0]).dataset.value;"
                          "const r = document.querySelector(arg[1]).dataset.value;"
                          "return s === '1' && Number(r) >= 2;", 15, "set 1, rep 2 on the page",
                          arg=[field(C1, "set"), field(C1, "rep")])
                rep_text = b.text(field(C1, "rep"))
                check_that(rep_text.split()[0].isdigit(), "rep shows %r" % rep_text)
                check_that("p-0042" in b.text(tile(C1)), "the patient is not shown")
                b.assert_clean_text()
            suite.check("a session started from the page runs and shows set and rep",
                        start_from_page)

            suite.check("pressure on screen is the published telemetry (inflated cuff)",
                        lambda: check_that(page_pressure_is_telemetry(b, col, C1) > 40,
                                           "cuff 1 is not inflated"))
            b.screenshot("dashboard-session")

            def refused():
                b.click(tile(C3) + ' [data-action="start"]')
                b.fill('input[name="pct_lop"]', "95")  # leg limit: max_pct_lop 80
                b.click('[data-action="confirm"]')
                text = b.wait_fn(reply_js(False), 15, "the refusal in the reply bar")
                code = b.attr('[data-field="reply"]', "data-code")
                check_that(code == "limit_exceeded", "reply code %r (%s)" % (code, text))
                # The page may get its reply before this collector does.
                replies = col.wait_for(
                    lambda c: [m.payload for m in c.select("reply") if m.payload and
                               not m.payload.get("ok") and
                               (m.payload.get("error") or {}).get("code") == "limit_exceeded"],
                    5, "the limit_exceeded reply on the collector")
                msg = replies[-1]["error"]["message"]
                check_that(msg in text, "the page does not show the gateway's words %r: %r" %
                           (msg, text))
                check_that(msg in (b.text('[role="dialog"] .dialog-error') or ""),
                           "the dialog does not show the error")
                b.screenshot("dashboard-refused")
                b.click('[data-action="cancel"]')
                b.gone('[role="dialog"]', 5)
            suite.check("a command the gateway refuses shows its error", refused)

            state = {}

            def alarm():
                since = time.monotonic()
                sim.control("spike 1 200 300")
                a = wait_alarm(col, C1, "over_pressure_ceiling", 5, since).payload
                state["alarm"] = a["alarm_id"]
                sel = '%s [data-alarm-id="%s"]' % (tile(C1), a["alarm_id"])
                b.wait(sel + '[data-priority="high"][data-state="active"]', 5)
                b.wait('[data-field="banner"] [data-alarm-id="%s"]' % a["alarm_id"], 5)
                anim = b.js("return getComputedStyle(document.querySelector(arg)).animationName;",
                            sel)
                check_that(anim == "flash-high", "the high alarm does not flash (%r)" % anim)
                # Latched: the spike is long over, the gateway says the condition is
                # gone, and the alarm is still there, still flashing.
                col.wait_for(lambda c: any(m.payload["condition_present"] is False for m in
                                           alarm_records(c, C1, "over_pressure_ceiling", since)),
                             10, "condition_present false")
                b.wait_fn("const e = document.querySelector(arg);"
                          "return e && e.textContent.includes('condition gone');", 5,
                          "the page to show 'condition gone'", arg=sel)
                check_that(b.attr(sel, "data-state") == "active", "the alarm did not latch")
                check_that(b.js("return getComputedStyle(document.querySelector(arg))"
                                ".animationName;", sel) == "flash-high", "latched alarm stopped flashing")
                b.screenshot("dashboard-alarm")
                b.assert_clean_text()
            suite.check("a pressure spike raises a high alarm that flashes and latches", alarm)

            def ack():
                aid = state.get("alarm") or fail("no alarm from the previous check")
                b.click('%s [data-alarm-id="%s"] [data-action="ack"]' % (tile(C1), aid))
                b.fill('[role="dialog"] input[name="by"]', "physio-anna")
                b.click('[data-action="confirm"]')
                b.wait_fn(reply_js(True), 10, "the acknowledgement's reply")
                b.gone('[data-alarm-id="%s"]' % aid, 10)
                check_that(b.count('[data-field="banner"]') == 0, "the banner is still there")
                # The page and this collector are separate subscribers: the
                # record may reach the page first.
                col.wait_for(lambda c: any(m.payload and m.payload.get("acked_by") == "physio-anna"
                                           for m in c.select("alarm",
                                                             topic=PREFIX + "/alarm/" + aid)),
                             5, "a record acknowledged by physio-anna")
            suite.check("acknowledging from the page clears the latched alarm", ack)

            def estop():
                sid = start_session(h, col, short_plan(C2, reps=30, pct_lop=60))
                wait_phase(col, sid, "set", SESSION_S)
                before = [sim_cuff_stats(sim, i)["deflates"]["estop"] for i in range(1, 5)]
                b.click('[data-action="estop"]')
                b.wait('[role="dialog"]', 5)
                b.screenshot("dashboard-estop-confirm")
                since = time.monotonic()
                b.click('[data-action="confirm"]')
                b.wait_fn(reply_js(True), 10, "the e-stop's reply")
                for i in range(1, 5):
                    wait_sim(sim, i, lambda s, n=before[i - 1]: s["deflates"]["estop"] > n, 5,
                             "a DEFLATE (e-stop)")
                col.wait_for(lambda c: (lambda v: v and max(v) < 20)(
                    telemetry_values(c, C2, time.monotonic() - 0.5)), 8, "%s deflated" % C2)
                cmds = col.select(topic=PREFIX + "/cmd/estop", since=since)
                check_that(cmds, "no cmd/estop published")
                b.wait('[data-field="banner"] [data-priority="high"]', 5)
                b.screenshot("dashboard-estop")
                # The e-stop alarm blocks every inflation until acknowledged: do it.
                b.click('[data-field="banner"] [data-action="ack"]')
                b.fill('[role="dialog"] input[name="by"]', "physio-anna")
                b.click('[data-action="confirm"]')
                b.wait_fn(reply_js(True), 10, "the e-stop acknowledgement")
                b.gone('[data-field="banner"]', 10)
            suite.check("the e-stop (one click and confirm) deflates every cuff", estop)

            def tablet():
                for w, hh in ((1024, 768), (768, 1024)):
                    b.call("viewport", 10, width=w, height=hh)
                    b.wait_fn("return document.querySelector(arg).getBoundingClientRect().width > 0;",
                              5, "layout", arg=tile(C4))
                    no_horizontal_scroll(b, "%dx%d" % (w, hh))
                    visible = b.js("const r = document.querySelector('[data-action=\"estop\"]')"
                                   ".getBoundingClientRect(); return r.right <= innerWidth && r.bottom > 0;")
                    check_that(visible, "e-stop not visible at %dx%d" % (w, hh))
                b.screenshot("dashboard-tablet")
                b.call("viewport", 10, width=1366, height=768)
            suite.check("tablet sizes: no horizontal scrolling, e-stop in view", tablet)

            def killed():
                gw.kill()
                t0 = time.monotonic()
                b.wait_fn("return [...document.querySelectorAll('[data-cuff]')]"
                          ".every(t => t.dataset.stale === 'true');", 3.0,
                          "every tile stale (3 s after the kill)")
                took = time.monotonic() - t0
                check_that(took <= 3.0, "tiles greyed after %.1f s" % took)
                for c in CUFFS:
                    t = b.text(field(c, "stale")) or ""
                    check_that(t.startswith("Gateway offline since"), "%s says %r" % (c, t))
                    check_that(b.attr(field(c, "link"), "data-value") == "unknown",
                               "%s still claims a link" % c)
                b.screenshot("dashboard-offline")
                b.assert_clean_text()
                return took
            suite.check("a killed gateway greys its tiles within 3 s", killed)

            def no_errors():
                errors = b.errors()
                check_that(not errors, "page errors: %s" % errors)
            suite.check("no errors in the page", no_errors)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
