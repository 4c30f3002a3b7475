#!/usr/bin/python3
"""Issue 11: docs/operations.md's walk-through of the site credentials works
as written, and every name in it matches the shipped configurations.

- the code block marked "test_security_doc.py runs the next block" is run
  as it stands (bash) in an empty directory holding a `deploy` link to the
  source tree's deploy/;
- every `site-clinic-a/...` path the document names exists afterwards;
- every /etc/mosquitto/bfr/ file that production.conf and home.conf name
  is among what the script made for the clinic broker and the home broker;
- the gateway configuration of section 2 passes `bfr-gateway --check`
  with its /etc/bfr-gateway/ files taken from the gateway's directory, and
  its mqtt group names the same URI and files as the mqtt.conf the script
  wrote; the accounts the document names are in the ACL with their roles;
- mosquitto starts with the clinic broker's result: the gateway's
  certificate may publish its status, the clinician may send a command,
  the viewer may not; the home broker starts with its result and takes the
  home gateway's password.
"""

import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Suite, check_that, fail  # noqa: E402
from test_security_common import (GATEWAY_ETC, INSTALL_DIR, SecureBroker,  # noqa: E402
                                  acl_blocks, first_line, mosquitto_pub, read)
from validate import SOURCE_DIR  # noqa: E402

DOC = os.path.join(SOURCE_DIR, "docs", "operations.md")
RUN_MARK = "<!-- test_security_doc.py runs the next block"
CONF_MARK = "<!-- test_security_doc.py checks this configuration"
OUT = "site-clinic-a"


def block_after(text, mark):
    i = text.find(mark)
    if i < 0:
        fail("docs/operations.md has no block marked %r" % mark)
    m = re.compile(r"```[a-z]*\n(.*?)```", re.S).search(text, i)
    check_that(m, "no code block after %r" % mark)
    return m.group(1)


def settings(text):
    """key -> value of every `key = "value"` in libconfig text."""
    return dict(re.findall(r'(\w+) = "([^"]*)"', text))


def main():
    suite = Suite("test_security_doc")
    doc = read(DOC)
    with suite.harness() as h:
        work = os.path.join(h.tmp, "work")
        os.makedirs(work)
        os.symlink(os.path.join(SOURCE_DIR, "deploy"), os.path.join(work, "deploy"))
        out = os.path.join(work, OUT)

        def run_block():
            script = block_after(doc, RUN_MARK)
            print("  $ " + script.strip().replace("\n", "\n  "))
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            text = r.stdout.decode("utf-8", "replace")
            check_that(r.returncode == 0, "the block failed (%d):\n%s" % (r.returncode, text))

        suite.check("the document's credentials block runs as written", run_block)

        def paths_exist():
            names = sorted(set(re.findall(r"%s/[\w./*-]*[\w*/]" % OUT, doc)))
            check_that(len(names) >= 10, "few paths named: %r" % names)
            for name in names:
                check_that(glob.glob(os.path.join(work, name)), "%s does not exist" % name)
            print("  %d paths named in the document exist" % len(names))

        suite.check("every site-clinic-a/ path in the document exists", paths_exist)

        def configs_name_what_was_made():
            for conf, bfr in ((os.path.join(SOURCE_DIR, "deploy", "mosquitto", "production.conf"),
                               os.path.join(out, "clinic-broker", "bfr")),
                              (os.path.join(out, "homes", "home-0042", "broker", "conf.d",
                                            "bfr.conf"),
                               os.path.join(out, "homes", "home-0042", "broker", "bfr"))):
                lines = "\n".join(x for x in read(conf).splitlines()
                                  if not x.lstrip().startswith("#"))
                files = set(re.findall(re.escape(INSTALL_DIR) + r"([\w.-]+)", lines))
                check_that(files, "%s names no %s files" % (conf, INSTALL_DIR))
                check_that(files <= set(os.listdir(bfr)), "%s names %r, the script made %r" %
                           (conf, sorted(files), sorted(os.listdir(bfr))))
            check_that(read(os.path.join(out, "clinic-broker", "conf.d", "bfr.conf")) ==
                       read(os.path.join(SOURCE_DIR, "deploy", "mosquitto", "production.conf")),
                       "clinic-broker/conf.d/bfr.conf is not production.conf")
            home = read(os.path.join(out, "homes", "home-0042", "broker", "conf.d", "bfr.conf"))
            check_that("@" not in re.sub(r"#.*", "", home), "home.conf placeholders left")
            check_that("address broker.clinic-a.lan:8883" in home, "home bridge address")

        suite.check("production.conf and home.conf name exactly the files made",
                    configs_name_what_was_made)

        def gateway_config():
            text = block_after(doc, CONF_MARK)
            etc = os.path.join(out, "gateways", "clinic-a-gw1")
            made = settings(read(os.path.join(etc, "mqtt.conf")))
            shown = settings(text)
            for key in ("uri", "client_id", "ca_file", "cert_file", "key_file"):
                check_that(shown.get(key) == made.get(key), "%s: document %r, mqtt.conf %r" %
                           (key, shown.get(key), made.get(key)))
            check_that(re.search(r'gateway = \{ id = "clinic-a-gw1"; site = "clinic-a";', text),
                       "gateway id/site in the document")
            data = os.path.join(h.tmp, "data")
            text = text.replace(GATEWAY_ETC, etc + "/").replace("/var/lib/bfr-gateway", data)
            conf = os.path.join(h.tmp, "gateway.conf")
            with open(conf, "w") as f:
                f.write(text)
            r = subprocess.run([h.binary("bfr-gateway"), "-c", conf, "--check"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            check_that(r.returncode == 0, "--check: %s" % r.stdout.decode())
            acl = acl_blocks(os.path.join(out, "clinic-broker", "bfr", "acl"))
            for user, line in (("clinic-a-gw1", "read bfr/v1/clinic-a/clinic-a-gw1/cmd/#"),
                               ("clinic-a-gw2", "readwrite bfr/v1/clinic-a/clinic-a-gw2/alarm/+"),
                               ("home-0042.bridge", "read bfr/v1/clinic-a/home-0042/cmd/#"),
                               ("dr-lee", "write bfr/v1/+/+/cmd/#"),
                               ("wall-1", "read bfr/v1/#")):
                check_that(user in doc, "the document does not name %s" % user)
                check_that(line in acl.get(user, []), "%s lacks %r: %r" %
                           (user, line, acl.get(user)))

        suite.check("section 2's configuration matches mqtt.conf and passes --check; "
                    "accounts in the ACL", gateway_config)

        def clinic_broker_runs():
            broker = SecureBroker(h, os.path.join(out, "clinic-broker"), "clinic").start()
            ca = os.path.join(out, "clinic-broker", "bfr", "ca.crt")
            gw = os.path.join(out, "gateways", "clinic-a-gw1")
            # The certificate is for broker.clinic-a.lan, which does not resolve
            # here: --insecure skips only the host name check (the chain is
            # verified; test_security_tls.py checks host names).
            rc, text = mosquitto_pub(broker.port(8883), "bfr/v1/clinic-a/clinic-a-gw1/status",
                                     '{"state":"online"}', ca=ca, insecure=True,
                                     cert=os.path.join(gw, "client.crt"),
                                     key=os.path.join(gw, "client.key"))
            check_that(rc == 0 and re.search(r"PUBACK \(Mid: \d+, RC:(0|16)\)", text),
                       "gateway status: %s" % text)
            for user, role, ok in (("dr-lee", "clinician", True), ("wall-1", "viewer", False)):
                pw = first_line(os.path.join(out, "users", role, "%s.pass" % user))
                rc, text = mosquitto_pub(broker.port(8884), "bfr/v1/clinic-a/clinic-a-gw1/cmd/"
                                         "cuff/identify", "{}", user=user, password=pw, ca=ca,
                                         insecure=True)
                check_that(("RC:135" not in text and "PUBACK" in text) if ok else
                           "RC:135" in text, "%s's command: %s" % (user, text))
            broker.stop()

        suite.check("mosquitto runs the clinic broker result: gateway, clinician yes, viewer no",
                    clinic_broker_runs)

        def home_broker_runs():
            home = SecureBroker(h, os.path.join(out, "homes", "home-0042", "broker"), "home",
                                bridge_address="127.0.0.1:9").start()
            pw = first_line(os.path.join(out, "homes", "home-0042", "gateway", "mqtt.pass"))
            rc, text = mosquitto_pub(home.port(1883), "bfr/v1/clinic-a/home-0042/status",
                                     '{"state":"online"}', user="home-0042", password=pw,
                                     host="127.0.0.1")
            check_that(rc == 0 and "RC:135" not in text and "PUBACK" in text,
                       "home gateway login: %s" % text)
            home.stop()

        suite.check("mosquitto runs the home broker result; the home gateway logs in",
                    home_broker_runs)
    return suite.finish()


if __name__ == "__main__":
    sys.exit(main())
