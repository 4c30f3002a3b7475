#!/usr/bin/env bash
# BFR Gateway demo: four simulated cuffs -> bfr-gateway -> a private mosquitto,
# the clinic dashboard served by that mosquitto, a live table of the cuffs in
# the terminal, and one short session. Stops when the session has ended
# (or after --duration seconds; 0 = until Ctrl-C). Everything runs on
# loopback in a temporary directory and is stopped on exit: Ctrl-C, the end,
# an error, or the output pipe closing (deploy/demo.sh | head).
#
#   deploy/demo.sh [--duration SECONDS] [--keep] [--no-build] [--build-dir DIR]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-demo"
DURATION=120 # upper bound; the demo ends earlier, when its session has ended
KEEP=0
BUILD_IT=1
PY=/usr/bin/python3

usage() {
	sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case "$1" in
	--duration)
		[ $# -ge 2 ] || { echo "demo: --duration needs SECONDS" >&2; exit 2; }
		DURATION=$2
		shift 2
		;;
	--duration=*) DURATION=${1#--duration=}; shift ;;
	--keep) KEEP=1; shift ;;
	--no-build) BUILD_IT=0; shift ;;
	--build-dir)
		[ $# -ge 2 ] || { echo "demo: --build-dir needs DIR" >&2; exit 2; }
		BUILD=$(cd "$2" && pwd) || exit 2
		BUILD_IT=0
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	*) echo "demo: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
done
case "$DURATION" in
'' | *[!0-9]*) echo "demo: --duration must be whole seconds, got '$DURATION'" >&2; exit 2 ;;
esac

if [ -t 1 ]; then
	B=$'\e[1m' G=$'\e[32m' Y=$'\e[33m' R=$'\e[31m' N=$'\e[0m'
else
	B='' G='' Y='' R='' N=''
fi
# Output may go to a pipe that closes (| head): a failed write is no reason
# to stop half-way through the cleanup.
say() { printf '%s==>%s %s\n' "$B$G" "$N" "$*" 2>/dev/null || true; }
warn() { printf '%s==>%s %s\n' "$B$Y" "$N" "$*" >&2 2>/dev/null || true; }
die() { printf '%s==> demo failed:%s %s\n' "$B$R" "$N" "$*" >&2 2>/dev/null || true; exit 1; }

TMP=""
WWW=""
PIDS=()   # started children, stopped in reverse order
NAMES=()

stop_pid() { # pid name: SIGTERM, then SIGKILL after 5 s
	local pid=$1 name=$2 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name ignored SIGTERM, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? i
	# Nothing may stop the cleanup: not a closed output pipe (SIGPIPE is
	# ignored, writes fail quietly), not a second Ctrl-C, not a failing command.
	trap '' PIPE INT TERM HUP
	trap - EXIT
	set +e
	if [ ${#PIDS[@]} -gt 0 ]; then
		say "stopping everything the demo started"
		for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
			stop_pid "${PIDS[$i]}" "${NAMES[$i]}"
		done
	fi
	[ -n "$WWW" ] && rm -rf "$WWW"
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		# Logs only after a failure: not for Ctrl-C, SIGTERM, a hang-up or a closed pipe.
		if [ $rc -ne 0 ] && [ $rc -ne 130 ] && [ $rc -ne 143 ] && [ $rc -ne 129 ] && [ $rc -ne 141 ]; then
			for f in "$TMP"/*.log; do
				[ -f "$f" ] || continue
				printf '\n%s--- %s (last lines) ---%s\n' "$B" "$(basename "$f")" "$N" >&2 2>/dev/null
				tail -n 25 "$f" >&2 2>/dev/null
			done
		fi
		if [ $KEEP = 1 ]; then
			say "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# The output pipe closed (deploy/demo.sh | head): stop everything, quietly.
trap 'exit 141' PIPE

start() { # name logfile argv...: runs in the background, remembers the pid
	local name=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 &
	PIDS+=($!)
	NAMES+=("$name")
}

wait_for_line() { # file regex seconds pid what
	local file=$1 rx=$2 secs=$3 pid=$4 what=$5 i
	for i in $(seq $((secs * 10))); do
		grep -Eq "$rx" "$file" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || die "$what exited (see its log below)"
		sleep 0.1
	done
	die "$what not ready after ${secs}s"
}

# --- 1. dependencies and build ----------------------------------------------------
say "checking dependencies"
bash "$ROOT/deploy/install-deps.sh" || die "could not install dependencies (run as root?)"

if [ $BUILD_IT = 1 ]; then
	say "building bfr-gateway and cuffsim in build-demo/ (no sanitizers)"
	cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DBFR_SANITIZE=OFF -DBFR_WERROR=OFF >/dev/null || die "cmake configure failed"
	cmake --build "$BUILD" -j 2 --target bfr-gateway cuffsim || die "build failed"
fi
for b in bfr-gateway cuffsim; do
	[ -x "$BUILD/$b" ] || die "$BUILD/$b is missing (run without --no-build)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bfr-demo.XXXXXX")

# The dashboard: one index.html (dashboard/build.sh: npm ci, esbuild). The
# demo goes on without it when it cannot be built (no Node.js, no registry).
DASHBOARD=0
if command -v npm >/dev/null 2>&1; then
	say "building the dashboard (dashboard/build.sh)"
	if bash "$ROOT/dashboard/build.sh" >"$TMP/dashboard-build.log" 2>&1; then
		DASHBOARD=1
	else
		warn "the dashboard did not build: going on without it ($(tail -n 1 "$TMP/dashboard-build.log"))"
	fi
else
	warn "no npm: the demo runs without the dashboard (deploy/install-deps.sh installs Node.js)"
fi

# --- 2. broker, simulator, gateway ----------------------------------------------
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SITE=demo-clinic
GW=demo-gw1
PREFIX="bfr/v1/$SITE/$GW"

WSPORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if [ $DASHBOARD = 1 ]; then
	# mosquitto, started as root, runs as user mosquitto, who may enter
	# neither $TMP nor the source tree: the page gets a directory of its own
	# under /tmp (removed at exit like $TMP).
	WWW=$(mktemp -d /tmp/bfr-demo-www.XXXXXX)
	chmod 755 "$WWW"
	cp "$ROOT/dashboard/dist/index.html" "$WWW/index.html"
	chmod 644 "$WWW/index.html"
	sed -e "s/^listener 1883 127.0.0.1$/listener $PORT 127.0.0.1/" \
		-e "s/^listener 9001 127.0.0.1$/listener $WSPORT 127.0.0.1/" \
		-e "s|^http_dir .*|http_dir $WWW|" \
		"$ROOT/deploy/mosquitto/demo.conf" >"$TMP/mosquitto.conf"
else
	sed -e "s/^listener 1883 127.0.0.1$/listener $PORT 127.0.0.1/" \
		-e '/^# dashboard begin/,/^# dashboard end/d' \
		"$ROOT/deploy/mosquitto/demo.conf" >"$TMP/mosquitto.conf"
fi
say "mosquitto on 127.0.0.1:$PORT"
start mosquitto "$TMP/mosquitto.log" mosquitto -c "$TMP/mosquitto.conf"
wait_for_line "$TMP/mosquitto.log" 'mosquitto version .* running' 10 "${PIDS[-1]}" mosquitto

say "cuffsim: 4 simulated cuffs in $TMP/sim"
mkdir -p "$TMP/sim" "$TMP/data"
start cuffsim "$TMP/cuffsim.log" "$BUILD/cuffsim" --dir "$TMP/sim" --cuffs 4 --seed 7
wait_for_line "$TMP/cuffsim.log" '^cuffsim: ready' 10 "${PIDS[-1]}" cuffsim

CUFF_IDS=(bay1-left-thigh bay1-right-thigh bay2-left-thigh bay2-right-thigh)
{
	echo "# generated by deploy/demo.sh"
	echo "gateway = { id = \"$GW\"; site = \"$SITE\"; data_dir = \"$TMP/data\"; };"
	echo "mqtt = { uri = \"mqtt://127.0.0.1:$PORT\"; client_id = \"$GW\"; telemetry_hz = 10;"
	echo "         username = \"\"; password_file = \"\";"
	echo "         tls = { ca_file = \"\"; cert_file = \"\"; key_file = \"\"; }; };"
	echo "cuffs = ("
	for i in 0 1 2 3; do
		sep=","
		[ $i = 3 ] && sep=""
		printf '  { id = "%s"; address = "sim:%s/sim/cuff-%02d.sock"; limb = "leg"; }%s\n' \
			"${CUFF_IDS[$i]}" "$TMP" $((i + 1)) "$sep"
	done
	echo ");"
} >"$TMP/gateway.conf"

say "bfr-gateway -c $TMP/gateway.conf"
rc=0
"$BUILD/bfr-gateway" -c "$TMP/gateway.conf" --check >"$TMP/check.log" 2>&1 || rc=$?
[ $rc = 0 ] || die "bfr-gateway --check refused the generated configuration (status $rc)"
start bfr-gateway "$TMP/gateway.log" "$BUILD/bfr-gateway" -c "$TMP/gateway.conf"

# --- 3. watch MQTT -------------------------------------------------------------------
if [ $DASHBOARD = 1 ]; then
	say "${B}dashboard: http://127.0.0.1:$WSPORT/${N}  (open it in a browser on this machine)"
fi
if [ "$DURATION" = 0 ]; then
	say "live from MQTT until Ctrl-C: mosquitto_sub -h 127.0.0.1 -p $PORT -v -t '$PREFIX/#'"
else
	say "live from MQTT until the demo session ends (at most ${DURATION}s; --duration 0 keeps it running)"
fi
# The printer is the script's only writer while the demo runs: when the
# output pipe closes it exits with 141, and the EXIT trap stops everything.
$PY - "$PORT" "$PREFIX" "$DURATION" "${CUFF_IDS[@]}" <<'PYEOF'
import json, os, sys, threading, time, uuid
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, prefix, duration = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
cuffs = sys.argv[4:]
tty = sys.stdout.isatty()
def c(code, s): return "\x1b[%sm%s\x1b[0m" % (code, s) if tty else s

def txt(v, fmt="%s", none="-"):
    """A value for the table; never 'None'."""
    if v is None or v == "":
        return none
    try:
        return fmt % v
    except (TypeError, ValueError):
        return none

lock = threading.Lock()
rows = {k: {"link": None, "battery": None, "lop": None, "p": None, "target": None,
            "state": None, "session": None} for k in cuffs}
sessions = {}                        # session id -> latest session state
events = []                          # lines to print above the table
online = threading.Event()
done = threading.Event()
connected = set()
t0 = time.monotonic()
request_id = uuid.uuid4().hex
seen = set()

def stamp(): return "[%5.1fs]" % (time.monotonic() - t0)
def event(s): events.append("%s %s" % (stamp(), s))

def on_connect(cl, u, flags, rc, properties=None):
    cl.subscribe(prefix + "/#", qos=1)

def on_message(cl, u, m):
    sub = m.topic[len(prefix) + 1:]
    try:
        p = json.loads(m.payload) if m.payload else None
    except ValueError:
        with lock: event(c("31", "not JSON on %s" % m.topic))
        return
    if isinstance(p, dict) and p.get("msg_id"):
        if p["msg_id"] in seen:      # QoS 1 may deliver twice: dedupe on msg_id
            return
        seen.add(p["msg_id"])
    with lock:
        if sub == "status" and p:
            event(c("1", "gateway %s" % txt(p.get("state"))) + ", version %s, %s cuffs" % (
                txt(p.get("version")), txt(p.get("cuffs"))))
            if p.get("state") == "online": online.set()
        elif sub.endswith("/telemetry") and p:
            r = rows.get(p.get("cuff"))
            s = [x for x in p.get("samples") or [] if x and x[1] is not None]
            if r is not None and s:
                r["p"], r["target"] = s[-1][1], s[-1][2]
        elif sub.startswith("cuff/") and sub.endswith("/state") and p:
            r = rows.get(p.get("cuff"))
            if r is None: return
            if p.get("link") != r["link"]:
                event("cuff %s: link %s" % (p.get("cuff"), txt(p.get("link"))))
            r["link"], r["battery"], r["lop"] = p.get("link"), p.get("battery_pct"), p.get("lop_mmHg")
            r["state"], r["session"] = p.get("cuff_state"), p.get("session_id")
            if p.get("link") == "connected": connected.add(p.get("cuff"))
        elif sub.startswith("session/") and p:
            kind = sub.rsplit("/", 1)[-1]
            if kind == "state":
                sessions[p.get("session_id")] = p
            elif kind == "event" and p.get("type") != "rep":
                what = txt(p.get("type"))
                if p.get("type") == "phase":
                    what = "phase %s" % txt(p.get("phase"))
                    if p.get("set") is not None: what += " (set %s)" % p["set"]
                elif p.get("type") == "lop_measured":
                    what = "LOP of %s measured: %s mmHg" % (txt(p.get("cuff")),
                                                           txt(p.get("lop_mmHg"), "%.0f"))
                elif p.get("reason"):
                    what += " (%s)" % p["reason"]
                event(c("36", "session %s: %s" % (txt(p.get("session_id")), what)))
            elif kind == "summary":
                event(c("36", "session %s ended: %s, %s s under pressure" % (
                    txt(p.get("session_id")), txt(p.get("outcome")),
                    txt(p.get("inflation_s_total"), "%.0f"))))
                done.set()
        elif sub.startswith("alarm/"):
            if p:
                event(c("31;1", "ALARM %s %s on %s: %s (%s)" % (
                    txt(p.get("priority")), txt(p.get("code")), txt(p.get("cuff"), none="gateway"),
                    txt(p.get("message")), txt(p.get("state")))))
            else:
                event("alarm %s closed" % sub[6:])
        elif sub.startswith("reply/demo-") and p:
            if p.get("ok"):
                event(c("32", "session start accepted: %s" % txt(p.get("session_id"))))
            else:
                e = p.get("error") or {}
                event(c("33", "session start refused: %s %s" % (txt(e.get("code")),
                                                              txt(e.get("message")))))
                done.set()

def bar(p, full=250.0, width=16):
    n = 0 if p is None else max(0, min(width, int(round(p / full * width))))
    return "#" * n + "." * (width - n)

def table(live):
    """The cuff rows. live=False (output to a pipe or file, where a row is printed
    only when it changed): no pressure, reps or seconds, which change all the time."""
    if live:
        out = ["%-17s %-11s %7s %5s  %-16s %4s %6s  %s" % (
            "cuff", "link", "battery", "LOP", "pressure (mmHg)", "", "target", "session")]
    else:
        out = ["%-17s %-11s %7s %5s %6s  %s" % ("cuff", "link", "battery", "LOP", "target", "session")]
    for k in cuffs:
        r = rows[k]
        sess = sessions.get(r["session"]) if r["session"] else None
        if sess and sess.get("phase"):
            what = sess["phase"]
            if sess.get("set") is not None: what += ", set %s" % sess["set"]
            if live and sess.get("rep") is not None: what += " rep %s" % sess["rep"]
            if live and sess.get("seconds_left") is not None: what += ", %s s left" % sess["seconds_left"]
        else:
            what = txt(r["state"], none="")
        cells = (k, txt(r["link"]), txt(r["battery"], "%d %%"), txt(r["lop"], "%.0f"))
        # During a LOP search the cuff reports its search ceiling as the target.
        searching = r["state"] == "measuring_lop" or (sess or {}).get("phase") == "lop"
        target = "-" if searching else txt(r["target"] or None, "%.0f")
        if live:
            out.append("%-17s %-11s %7s %5s  %-16s %4s %6s  %s" % (
                cells + (bar(r["p"]), txt(r["p"], "%.0f"), target, what)))
        else:
            out.append("%-17s %-11s %7s %5s %6s  %s" % (cells + (target, what)))
    return out

class Screen:
    """TTY: events scroll above a table redrawn in place. Pipe: events, and a
    table row only when it changed (no repeated lines)."""
    def __init__(self):
        self.drawn = 0
        self.printed = {}
    def write(self, lines):
        sys.stdout.write("".join(l + "\n" for l in lines))
    def update(self):
        with lock:
            ev, events[:] = list(events), []
            tab = table(live=tty)
            have_rows = any(r["link"] for r in rows.values())
        if tty:
            # Up to the table's first line, clear to the end, events, table.
            up = "\x1b[%dF\x1b[J" % self.drawn if self.drawn else ""
            sys.stdout.write(up)
            self.write(ev + tab)
            self.drawn = len(tab)
        else:
            self.write(ev)
        if not tty and have_rows:
            changed = [row for i, row in enumerate(tab)
                       if self.printed.get(i) != row and (i > 0 or not self.printed)]
            for i, row in enumerate(tab):
                self.printed[i] = row
            if changed and changed != [tab[0]]:
                self.write(["%s %s" % (stamp(), row) for row in changed])
        sys.stdout.flush()

cl = mqtt.Client(client_id="bfr-demo-%s" % request_id[:6], protocol=mqtt.MQTTv5)
cl.on_connect, cl.on_message = on_connect, on_message
cl.connect("127.0.0.1", port, keepalive=30)
cl.loop_start()
screen = Screen()
end = t0 + duration if duration > 0 else float("inf")
rc = 0
try:
    sent = False
    finished_at = None
    while time.monotonic() < end:
        if done.is_set() and duration > 0:
            finished_at = finished_at or time.monotonic()
            if time.monotonic() - finished_at > 3:
                break
        with lock:
            if not sent and len(connected) == len(cuffs):
                sent = True
                # A short plan on two cuffs; docs/sessions.md has the full command.
                cmd = {"request_id": request_id, "patient": "demo-patient",
                       "plan": {"exercises": [{
                           "name": "knee extension", "cuffs": cuffs[:2], "mode": "continuous",
                           "pct_lop": 60, "sets": [5, 5], "tempo_s": [1, 1], "rest_s": 5,
                           "reperfusion_s": 60}]}}
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = "%s/reply/demo-%s" % (prefix, request_id)
                props.CorrelationData = request_id.encode()
                cl.publish(prefix + "/cmd/session/start", json.dumps(cmd), qos=1, properties=props)
                event("sent cmd/session/start (2 cuffs, 2 short sets)")
        screen.update()
        time.sleep(0.5)
    screen.update()
    if not done.is_set() and duration > 0:
        print(stamp(), "the demo session did not end within %.0f s" % duration)
except KeyboardInterrupt:
    rc = 130
except BrokenPipeError:
    # The reader went away (| head): stop quietly; the shell cleans up.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    rc = 141
finally:
    cl.disconnect()
    cl.loop_stop()
sys.exit(rc)
PYEOF

say "demo finished; logs were in $TMP (use --keep to keep them)"
