#!/usr/bin/python3
"""Validate MQTT payloads against the schemas in schemas/.

Usage:
  validate.py KIND-or-SCHEMA-PATH FILE...   validate each file ('-' = stdin)
  validate.py --topic TOPIC FILE...         choose the schema from the topic
  validate.py --doc MARKDOWN...             validate every ```json <kind> block
                                            of a document (docs/mqtt-api.md)

Exit status 0 when everything is valid, 1 when something is not, 2 on usage
errors. Also imported by harness.py: kind_for_topic(), Validator.

Runs with Debian's /usr/bin/python3 (python3-jsonschema 4.10).
"""

import json
import os
import re
import sys

import jsonschema

SOURCE_DIR = os.environ.get("BFR_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCHEMA_DIR = os.path.join(SOURCE_DIR, "schemas")

# What the gateway publishes; each must have an example in docs/mqtt-api.md.
PUBLISHED_KINDS = ("status", "sessions", "cuff-state", "telemetry", "session-state",
                   "session-event", "session-summary", "alarm", "prescription", "home-event")
# Built by messages.c (tests/unit/gateway/test_messages.c builds each); the
# home gateway's own (home.c) are validated from real runs in test_home_*.
MESSAGES_KINDS = tuple(k for k in PUBLISHED_KINDS if k not in ("prescription", "home-event"))

# Topic suffix after bfr/v1/{site}/{gateway}/ -> schema kind.
_TOPIC_RULES = (
    (re.compile(r"^status$"), "status"),
    (re.compile(r"^sessions$"), "sessions"),
    (re.compile(r"^prescription$"), "prescription"),
    (re.compile(r"^home/event$"), "home-event"),
    (re.compile(r"^supervisor$"), "supervisor"),
    (re.compile(r"^cuff/[^/]+/state$"), "cuff-state"),
    (re.compile(r"^cuff/[^/]+/telemetry$"), "telemetry"),
    (re.compile(r"^session/[^/]+/state$"), "session-state"),
    (re.compile(r"^session/[^/]+/event$"), "session-event"),
    (re.compile(r"^session/[^/]+/summary$"), "session-summary"),
    (re.compile(r"^alarm/[^/]+$"), "alarm"),
    (re.compile(r"^reply/.+$"), "reply"),
)
_PREFIX = re.compile(r"^bfr/v1/[^/]+/[^/]+/(.+)$")
_CMD = re.compile(r"^cmd/(.+)$")


class UnknownTopic(ValueError):
    pass


def kind_for_topic(topic):
    """Schema kind for a topic; 'cmd-<verb>' for commands; raises UnknownTopic."""
    m = _PREFIX.match(topic)
    if not m:
        raise UnknownTopic("topic %r is not under bfr/v1/{site}/{gateway}/" % topic)
    suffix = m.group(1)
    c = _CMD.match(suffix)
    if c:
        return "cmd-" + c.group(1).replace("/", "-")
    for rx, kind in _TOPIC_RULES:
        if rx.match(suffix):
            return kind
    raise UnknownTopic("topic %r is not part of the MQTT API" % topic)


def schema_path(kind_or_path):
    if os.sep in kind_or_path or kind_or_path.endswith(".json"):
        return kind_or_path
    return os.path.join(SCHEMA_DIR, kind_or_path + ".schema.json")


class Validator:
    """Loads schemas lazily and caches one jsonschema validator per kind."""

    def __init__(self):
        self._cache = {}

    def has_schema(self, kind):
        return os.path.exists(schema_path(kind))

    def _validator(self, kind):
        v = self._cache.get(kind)
        if v is None:
            with open(schema_path(kind), encoding="utf-8") as f:
                schema = json.load(f)
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            v = cls(schema, format_checker=cls.FORMAT_CHECKER)
            self._cache[kind] = v
        return v

    def errors(self, kind, payload):
        """List of readable errors for a payload (bytes, str or parsed JSON); [] when valid."""
        if isinstance(payload, (bytes, bytearray)):
            try:
                payload = payload.decode("utf-8")
            except UnicodeDecodeError as e:
                return ["not UTF-8: %s" % e]
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError as e:
                return ["not JSON: %s" % e]
        out = []
        for err in sorted(self._validator(kind).iter_errors(payload), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            out.append("%s: %s" % (where, err.message))
        return out


def doc_examples(path):
    """(line, kind, text) for each ```json <kind> fenced block of a markdown file."""
    out = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```json\s+([a-z0-9-]+)\s*$", lines[i])
        if m:
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            out.append((start, m.group(1), "\n".join(lines[start:j])))
            i = j
        i += 1
    return out


def _read(name):
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as f:
        return f.read()


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    v = Validator()
    bad = 0
    checked = 0
    try:
        if argv[1] == "--doc":
            for doc in argv[2:]:
                examples = doc_examples(doc)
                seen = set()
                for line, kind, text in examples:
                    seen.add(kind)
                    checked += 1
                    errs = v.errors(kind, text)
                    for e in errs:
                        print("%s:%d: %s example: %s" % (doc, line, kind, e))
                    bad += bool(errs)
                if os.path.basename(doc) == "mqtt-api.md":
                    for kind in PUBLISHED_KINDS:
                        if kind not in seen:
                            print("%s: no example of %s" % (doc, kind))
                            bad += 1
        else:
            if argv[1] == "--topic":
                if len(argv) < 4:
                    print("usage: validate.py --topic TOPIC FILE...", file=sys.stderr)
                    return 2
                kind = kind_for_topic(argv[2])
                files = argv[3:]
            else:
                kind = argv[1]
                files = argv[2:]
            if not files:
                print("validate.py: no file given", file=sys.stderr)
                return 2
            for name in files:
                checked += 1
                errs = v.errors(kind, _read(name))
                for e in errs:
                    print("%s: %s: %s" % (name, kind, e))
                bad += bool(errs)
    except (OSError, UnknownTopic, jsonschema.exceptions.SchemaError) as e:
        print("validate.py: %s" % e, file=sys.stderr)
        return 2
    print("validate: %d valid, %d invalid" % (checked - bad if checked >= bad else 0, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
