#!/bin/bash
# uprobes.sh - entry and return uprobes on functions of a binary, for
# profile_burst.py --probes (which records probe_bfr:F and probe_bfr:F__return).
#
#   tests/bench/uprobes.sh add BUILD/bfr-gateway io_cb on_flush_post ...
#   tests/bench/uprobes.sh clear
#
# `perf probe -x` needs perf to read the binary's symbols; the perf of this
# machine cannot read the Release build's ELF ("symsrc__init: cannot get elf
# header"), so the probes are written to tracefs directly, at each function's
# file offset (nm for the address, the executable LOAD segment for the
# offset). Static functions that the compiler inlined everywhere have no
# address and are skipped with a message. Root only; `clear` removes every
# probe_bfr probe again.
set -euo pipefail
T=/sys/kernel/tracing
[ -d $T/events ] || T=/sys/kernel/debug/tracing

case "${1:-}" in
clear)
	grep -o 'probe_bfr/[A-Za-z0-9_]*' $T/uprobe_events 2>/dev/null | while read -r e; do
		echo "-:$e" >> $T/uprobe_events
	done
	;;
add)
	bin=$(readlink -f "$2")
	shift 2
	read -r vaddr off < <(readelf -lW "$bin" | awk '$1 == "LOAD" && / E / { print $3, $2; exit }')
	delta=$(( vaddr - off ))
	for f in "$@"; do
		addr=$(nm "$bin" | awk -v f="$f" '$3 == f && !n++ { print $1 }') # no early exit: nm would get SIGPIPE
		if [ -z "$addr" ]; then
			echo "uprobes.sh: no symbol $f in $bin (inlined?)" >&2
			continue
		fi
		o=$(( 0x$addr - delta ))
		printf 'p:probe_bfr/%s %s:0x%x\n' "$f" "$bin" "$o" >> $T/uprobe_events
		printf 'r:probe_bfr/%s__return %s:0x%x\n' "$f" "$bin" "$o" >> $T/uprobe_events
	done
	grep probe_bfr $T/uprobe_events || true
	;;
*)
	echo "usage: $0 add BINARY FUNCTION... | clear" >&2
	exit 2
	;;
esac
