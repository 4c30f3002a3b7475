#!/usr/bin/env bash
# Makes a site's credentials and the broker configurations that use them
# (docs/operations.md, "Site credentials"):
#
#   a CA for the site                       ca/ca.crt, ca/ca.key
#   the clinic broker                       clinic-broker/conf.d/bfr.conf   -> /etc/mosquitto/conf.d/
#                                           clinic-broker/bfr/*             -> /etc/mosquitto/bfr/
#     server.crt/.key (for --broker-host), ca.crt, passwd (mosquitto_passwd), acl
#   each clinic gateway (--gateway ID)      gateways/ID/*                   -> /etc/bfr-gateway/
#     client.crt/.key (CN = ID), ca.crt, mqtt.pass, mqtt.conf (the gateway's mqtt section)
#   each home gateway (--home ID)           homes/ID/broker/conf.d/bfr.conf -> /etc/mosquitto/conf.d/
#                                           homes/ID/broker/bfr/*           -> /etc/mosquitto/bfr/
#     its own broker, bridged to the clinic over TLS with bridge.crt/.key (CN = ID.bridge)
#                                           homes/ID/gateway/*              -> /etc/bfr-gateway/
#   people (--clinician NAME, --viewer NAME) users/clinician/NAME.pass, users/viewer/NAME.pass
#
# Roles, enforced by the brokers' ACL files (DESIGN section 12):
#   gateway    writes its own topics under bfr/v1/SITE/ID/ (not cmd/, not supervisor),
#              reads its cmd/#, its retained alarm/+, prescription and supervisor, and
#              bridge (its home broker's bridge state)
#   bridge     the same rights for one home gateway, on the clinic broker
#   clinician  reads bfr/v1/#, writes bfr/v1/+/+/cmd/# and bfr/v1/+/+/supervisor
#   viewer     reads bfr/v1/#
#
# Additive: run it again with more names and the same --out; the CA, keys,
# certificates and passwords that exist are kept, and the password and ACL
# files are rebuilt from everything in --out. To renew a certificate, delete
# its .crt and .key and run the script again. Everything it writes is 0600
# in 0700 directories (umask 077); the private keys never leave --out except
# as the install commands in docs/operations.md copy them.
#
# Needs openssl and mosquitto_passwd (deploy/install-deps.sh installs both).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: make-site-credentials.sh --site SITE --out DIR --broker-host NAME [--broker-host NAME]...
                                [--gateway ID]... [--home ID]... [--clinician NAME]... [--viewer NAME]...
                                [--clinic-port PORT] [--days DAYS]
  --site SITE          site id, as gateway.site in the gateways' configuration
  --out DIR            where everything is written (created 0700)
  --broker-host NAME   the clinic broker's DNS name or IP address, as clients write it in
                       their URIs (the server certificate's subjectAltName); the first one
                       is what home bridges connect to
  --gateway ID         a gateway at the clinic (client certificate, password)
  --home ID            a home gateway with its own broker bridged to the clinic
  --clinician NAME     a person who reads everything and sends commands
  --viewer NAME        a wall display or observer: read only
  --clinic-port PORT   the clinic broker's TLS port for devices (default 8883)
  --days DAYS          validity of new server and client certificates (default 825)
EOF
}

die() {
	printf 'make-site-credentials: %s\n' "$*" >&2
	exit 1
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SITE="" OUT="" CLINIC_PORT=8883 DAYS=825
BROKER_HOSTS=() GATEWAYS=() HOMES=() CLINICIANS=() VIEWERS=()

while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { [ "$1" = -h ] || [ "$1" = --help ]; } || die "$1 needs a value"
	case "$1" in
	--site) SITE=$2 ;;
	--out) OUT=$2 ;;
	--broker-host) BROKER_HOSTS+=("$2") ;;
	--gateway) GATEWAYS+=("$2") ;;
	--home) HOMES+=("$2") ;;
	--clinician) CLINICIANS+=("$2") ;;
	--viewer) VIEWERS+=("$2") ;;
	--clinic-port) CLINIC_PORT=$2 ;;
	--days) DAYS=$2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift 2
done

[ -n "$SITE" ] || { usage >&2; die "--site is required"; }
[ -n "$OUT" ] || { usage >&2; die "--out is required"; }
[ ${#BROKER_HOSTS[@]} -gt 0 ] || { usage >&2; die "--broker-host is required"; }
command -v openssl >/dev/null || die "openssl is not installed (deploy/install-deps.sh)"
command -v mosquitto_passwd >/dev/null || die "mosquitto_passwd is not installed (deploy/install-deps.sh)"

# Ids appear in MQTT topics and ACL lines: the gateway's own rule (config.c).
valid_id() {
	[[ "$1" =~ ^[A-Za-z0-9_-]{1,64}$ ]]
}
valid_id "$SITE" || die "--site \"$SITE\": use 1..64 of A-Z a-z 0-9 _ -"
for id in "${GATEWAYS[@]}" "${HOMES[@]}" "${CLINICIANS[@]}" "${VIEWERS[@]}"; do
	valid_id "$id" || die "\"$id\": use 1..64 of A-Z a-z 0-9 _ - (it is an MQTT user name)"
done
for host in "${BROKER_HOSTS[@]}"; do
	[[ "$host" =~ ^[A-Za-z0-9.:-]{1,253}$ ]] || die "--broker-host \"$host\" is not a host name or address"
done
[[ "$CLINIC_PORT" =~ ^[0-9]{1,5}$ ]] && [ "$CLINIC_PORT" -ge 1 ] && [ "$CLINIC_PORT" -le 65535 ] ||
	die "--clinic-port $CLINIC_PORT: expected 1..65535"
[[ "$DAYS" =~ ^[0-9]{1,5}$ ]] && [ "$DAYS" -ge 1 ] || die "--days $DAYS: expected a number of days"

# Every name is one broker account, whatever its role: refuse a name used twice
# (in this run or by an earlier one under another role).
declare -A ROLE_OF=()
claim() { # name role
	local other=${ROLE_OF[$1]:-}
	[ -z "$other" ] || [ "$other" = "$2" ] || die "\"$1\" is both a $other and a $2"
	ROLE_OF[$1]=$2
}
existing() { # dir: the names already made there
	local d
	[ -d "$1" ] || return 0
	for d in "$1"/*; do
		[ -e "$d" ] || continue
		d=$(basename "$d")
		printf '%s\n' "${d%.pass}"
	done
}
for id in "${GATEWAYS[@]}" $(existing "$OUT/gateways"); do claim "$id" gateway; done
for id in "${HOMES[@]}" $(existing "$OUT/homes"); do claim "$id" home; done
for id in "${CLINICIANS[@]}" $(existing "$OUT/users/clinician"); do claim "$id" clinician; done
for id in "${VIEWERS[@]}" $(existing "$OUT/users/viewer"); do claim "$id" viewer; done

umask 077
mkdir -p "$OUT"
chmod 0700 "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { printf 'make-site-credentials: %s\n' "$*"; }

# ---- keys and certificates ----------------------------------------------------

# EC P-256: small, and a TLS handshake costs a Raspberry Pi a fraction of
# what RSA 3072 does (docs/benchmarks.md, Security / TLS).
new_key() { # path
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

make_ca() {
	local dir=$OUT/ca
	mkdir -p "$dir"
	if [ -s "$dir/ca.crt" ] && [ -s "$dir/ca.key" ]; then
		return 0
	fi
	new_key "$dir/ca.key"
	openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 \
		-subj "/CN=$SITE BFR CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$dir/ca.crt" 2>/dev/null
	log "CA: $dir/ca.crt (10 years)"
}

# issue CN KIND DIR NAME: DIR/NAME.key and DIR/NAME.crt signed by the site CA.
# KIND: server (subjectAltName = the broker hosts) or client.
issue() {
	local cn=$1 kind=$2 dir=$3 name=$4 ext san="" host
	mkdir -p "$dir"
	if [ -s "$dir/$name.crt" ] && [ -s "$dir/$name.key" ]; then
		return 0
	fi
	ext=$(mktemp "$OUT/.ext.XXXXXX")
	if [ "$kind" = server ]; then
		for host in "${BROKER_HOSTS[@]}"; do
			if [[ "$host" =~ ^[0-9.]+$ ]] || [[ "$host" == *:* ]]; then
				san+="${san:+,}IP:$host"
			else
				san+="${san:+,}DNS:$host"
			fi
		done
		printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
			"$san" >"$ext"
	else
		printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$ext"
	fi
	new_key "$dir/$name.key"
	openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
	openssl x509 -req -in "$dir/$name.csr" -CA "$OUT/ca/ca.crt" -CAkey "$OUT/ca/ca.key" \
		-CAserial "$OUT/ca/ca.srl" -CAcreateserial -days "$DAYS" -sha256 \
		-extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
	rm -f "$dir/$name.csr" "$ext"
	log "$kind certificate CN=$cn: $dir/$name.crt ($DAYS days)"
}

# A password file holds one random password (the gateway's password_file format).
new_password() { # path
	[ -s "$1" ] && return 0
	mkdir -p "$(dirname "$1")"
	openssl rand -hex 16 >"$1"
}

# ---- broker files -------------------------------------------------------------

# The ACL block of a gateway account (user GW or a home's bridge) for SITE/GW.
# Listed topic by topic: mosquitto's "deny" removes reading as well as writing,
# so "all of the subtree except cmd/" is written as the subtree's branches
# (docs/mqtt-api.md). A topic added to the API must be added here too.
acl_gateway() { # user gw
	local t="bfr/v1/$SITE/$2"
	cat <<EOF
# $1: gateway $2
user $1
topic write $t/status
topic write $t/sessions
topic readwrite $t/prescription
topic write $t/cuff/#
topic write $t/session/#
topic readwrite $t/alarm/+
topic write $t/reply/#
topic write $t/home/event
topic read $t/cmd/#
topic read $t/supervisor
topic read $t/bridge

EOF
}

acl_clinician() {
	cat <<EOF
# $1: clinician
user $1
topic read bfr/v1/#
topic write bfr/v1/+/+/cmd/#
topic write bfr/v1/+/+/supervisor

EOF
}

acl_viewer() {
	cat <<EOF
# $1: viewer
user $1
topic read bfr/v1/#

EOF
}

# write_passwd FILE (NAME PASSFILE)...: mosquitto's password file, hashed by
# mosquitto_passwd -U (no password on any command line).
write_passwd() {
	local file=$1 tmp
	shift
	tmp=$(mktemp "$(dirname "$file")/.passwd.XXXXXX")
	while [ $# -gt 0 ]; do
		printf '%s:%s\n' "$1" "$(head -n 1 "$2")" >>"$tmp"
		shift 2
	done
	mosquitto_passwd -U "$tmp"
	chmod 0600 "$tmp"
	mv -f "$tmp" "$file"
}

names() { # dir: names of the entries in dir, sorted
	existing "$1" | sort
}

clinic_broker() {
	local dir=$OUT/clinic-broker id args=()
	mkdir -p "$dir/conf.d" "$dir/bfr"
	cp "$SCRIPT_DIR/mosquitto/production.conf" "$dir/conf.d/bfr.conf"
	cp "$OUT/ca/ca.crt" "$dir/bfr/ca.crt"
	issue "${BROKER_HOSTS[0]}" server "$dir/bfr" server
	{
		echo "# bfr-gateway ACL for site $SITE, written by make-site-credentials.sh: do not edit,"
		echo "# run the script again. Clients without a user name get nothing."
		echo
		for id in $(names "$OUT/gateways"); do acl_gateway "$id" "$id"; done
		for id in $(names "$OUT/homes"); do acl_gateway "$id.bridge" "$id"; done
		for id in $(names "$OUT/users/clinician"); do acl_clinician "$id"; done
		for id in $(names "$OUT/users/viewer"); do acl_viewer "$id"; done
	} >"$dir/bfr/acl"
	# Gateways log in with a password on the loopback listener (a gateway on
	# the broker's machine); people on the TLS and websockets listeners.
	for id in $(names "$OUT/gateways"); do args+=("$id" "$OUT/gateways/$id/mqtt.pass"); done
	for id in $(names "$OUT/users/clinician"); do args+=("$id" "$OUT/users/clinician/$id.pass"); done
	for id in $(names "$OUT/users/viewer"); do args+=("$id" "$OUT/users/viewer/$id.pass"); done
	write_passwd "$dir/bfr/passwd" "${args[@]}"
}

gateway_files() { # id
	local dir=$OUT/gateways/$1
	mkdir -p "$dir"
	cp "$OUT/ca/ca.crt" "$dir/ca.crt"
	issue "$1" client "$dir" client
	new_password "$dir/mqtt.pass"
	# The mqtt section of /etc/bfr-gateway/gateway.conf (docs/configuration.md):
	# TLS with the client certificate to the clinic broker.
	cat >"$dir/mqtt.conf" <<EOF
mqtt = { uri = "mqtts://${BROKER_HOSTS[0]}:$CLINIC_PORT"; client_id = "$1";
         username = ""; password_file = "";
         tls = { ca_file = "/etc/bfr-gateway/ca.crt"; cert_file = "/etc/bfr-gateway/client.crt";
                 key_file = "/etc/bfr-gateway/client.key"; }; };
EOF
}

home_files() { # id
	local dir=$OUT/homes/$1 clinic=${BROKER_HOSTS[0]}
	mkdir -p "$dir/broker/conf.d" "$dir/broker/bfr" "$dir/gateway"
	[[ "$clinic" == *:* ]] && clinic="[$clinic]"
	sed -e "s|@SITE@|$SITE|g" -e "s|@GATEWAY@|$1|g" -e "s|@CLINIC_ADDRESS@|$clinic:$CLINIC_PORT|g" \
		"$SCRIPT_DIR/mosquitto/home.conf" >"$dir/broker/conf.d/bfr.conf"
	cp "$OUT/ca/ca.crt" "$dir/broker/bfr/ca.crt"
	issue "$1.bridge" client "$dir/broker/bfr" bridge
	new_password "$dir/gateway/mqtt.pass"
	{
		echo "# bfr-gateway ACL of home gateway $1, written by make-site-credentials.sh."
		echo
		acl_gateway "$1" "$1"
	} >"$dir/broker/bfr/acl"
	write_passwd "$dir/broker/bfr/passwd" "$1" "$dir/gateway/mqtt.pass"
	cat >"$dir/gateway/mqtt.conf" <<EOF
mqtt = { uri = "mqtt://127.0.0.1:1883"; client_id = "$1";
         username = "$1"; password_file = "/etc/bfr-gateway/mqtt.pass"; };
EOF
}

make_ca
for id in "${GATEWAYS[@]}"; do gateway_files "$id"; done
for id in "${HOMES[@]}"; do home_files "$id"; done
for id in "${CLINICIANS[@]}"; do new_password "$OUT/users/clinician/$id.pass"; done
for id in "${VIEWERS[@]}"; do new_password "$OUT/users/viewer/$id.pass"; done
clinic_broker
log "done: $OUT"
