#!/usr/bin/python3
"""Every JSON builder of the gateway (gateway/src/messages.c) against schemas/.

Runs the unit test program test_messages with BFR_MESSAGES_OUT set, so it
writes every message it builds (typical and edge-case inputs: nulls, NaN,
cleared alarms, every event type) as "<kind> <json>" lines, and validates
each line with jsonschema against schemas/<kind>.schema.json."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from validate import MESSAGES_KINDS, Validator  # noqa: E402


def main():
    build = os.environ.get("BFR_BUILD_DIR", "build")
    prog = os.path.join(build, "test_messages")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "messages.txt")
        env = dict(os.environ, BFR_MESSAGES_OUT=out)
        r = subprocess.run([prog], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if r.returncode != 0:
            print(r.stdout.decode(errors="replace"))
            print("FAIL test_messages exited %d" % r.returncode)
            return 1
        with open(out, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    v = Validator()
    seen = {}
    failed = 0
    for ln in lines:
        kind, text = ln.split(" ", 1)
        seen[kind] = seen.get(kind, 0) + 1
        errs = v.errors(kind, text)
        if errs:
            failed += 1
            print("FAIL %s: %s\n  %s" % (kind, "; ".join(errs), text[:300]))
    missing = [k for k in MESSAGES_KINDS if k not in seen]
    if missing:
        failed += 1
        print("FAIL no message built for: %s" % ", ".join(missing))
    print("%s %d messages of %d kinds validated (%s)" %
          ("FAIL" if failed else "PASS", len(lines), len(seen),
           ", ".join("%s %d" % kv for kv in sorted(seen.items()))))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
