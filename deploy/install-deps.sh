#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need on Debian 12
# (also Raspberry Pi OS bookworm). Idempotent: does nothing when all is there,
# and runs `apt-get update` only when something is missing.
#
# Runs as root, or through sudo when not root. The mosquitto package starts a
# system broker on port 1883; the tests and the demo start their own brokers,
# so when (and only when) this script itself installed mosquitto, it stops that
# service and disables it. A broker an administrator already had is left alone.
set -euo pipefail

PACKAGES=(
	build-essential cmake ninja-build pkg-config
	clang libclang-rt-14-dev # libFuzzer targets (tests/fuzz/; Debian 12's clang is clang 14)
	libpaho-mqtt-dev libjansson-dev libconfig-dev libsqlite3-dev libbluetooth-dev libcmocka-dev
	libssl-dev libsystemd-dev openssl
	mosquitto mosquitto-clients
	python3 python3-paho-mqtt python3-jsonschema
	sqlite3
	chromium
	iproute2 # tests/soak: the broker behind a veth in its own network namespace
)
# The dashboard's build (npm ci, esbuild) and the browser tests need Node.js
# and npm; Debian's are used only when there is none (a machine may have a
# newer Node.js from elsewhere, whose npm comes with it).
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

log() { printf 'install-deps: %s\n' "$*"; }

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	log "this script needs Debian 12 (dpkg and apt-get); install these yourself: ${PACKAGES[*]}"
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	log "all ${#PACKAGES[@]} packages present"
	exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		log "missing: ${missing[*]}; run as root or install sudo"
		exit 1
	fi
fi

mosquitto_was_missing=no
for p in "${missing[@]}"; do
	[ "$p" = mosquitto ] && mosquitto_was_missing=yes
done

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"

if [ "$mosquitto_was_missing" = yes ]; then
	# The package just started a system broker nobody asked for: stop it,
	# and keep it from starting at boot.
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		"${SUDO[@]}" systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
	else
		if command -v invoke-rc.d >/dev/null 2>&1; then
			"${SUDO[@]}" invoke-rc.d mosquitto stop >/dev/null 2>&1 || true
		fi
		if command -v update-rc.d >/dev/null 2>&1; then
			"${SUDO[@]}" update-rc.d mosquitto disable >/dev/null 2>&1 || true
		fi
	fi
	log "stopped and disabled the system mosquitto service (tests run their own brokers)"
fi

still=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
	log "still missing after install: ${still[*]}"
	exit 1
fi
log "done"
