#!/usr/bin/python3
"""sched_wait: where the gateway's event loop thread waits when it is not running.

Run (as root, while a gateway runs, e.g. under bench_scale or profile_burst):

    /usr/bin/python3 tests/bench/sched_wait.py PID [--seconds 4]

Records `perf record -a -e sched:sched_switch -g` for the given seconds and,
for the thread whose tid is PID (the event loop: the process's main
thread), pairs every switch-out with the next switch-in and sorts the gaps
by why it left the CPU:

  R / R+      preempted while runnable (what ran instead is counted: the
              Paho send thread, cuffsim, another engineer's process ...);
  S-epoll     asleep in epoll_wait (idle: nothing to do);
  S-futex     blocked on a lock (a mutex another thread held);
  S-other     any other sleep.

A safety reaction waits for every R and S-futex gap that falls between
the sample's arrival and its DEFLATE; this is how the Paho send thread was
found to preempt the loop on every publish (docs/benchmarks.md, "Performance
at scale"). Not a benchmark with a pass/fail.
"""

import argparse
import collections
import re
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pid", type=int, help="the gateway's pid (= its loop thread's tid)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", default="/tmp/bfr-sched-wait.perf")
    args = ap.parse_args()
    subprocess.run(["perf", "record", "-a", "-e", "sched:sched_switch", "-g", "-o", args.out,
                    "--", "sleep", str(args.seconds)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    text = subprocess.run(["perf", "script", "-i", args.out, "-F", "time,trace,ip,sym"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    pat = re.compile(r"([\d.]+):.*prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(\S+) "
                     r"next_pid=(\d+)")
    switches, cur = [], None
    for ln in text.splitlines():
        m = pat.search(ln)
        if m:
            cur = {"t": float(m.group(1)), "prev": int(m.group(2)), "state": m.group(3),
                   "next_comm": m.group(4), "next": int(m.group(5)), "stack": []}
            switches.append(cur)
        elif cur is not None and ln.strip():
            parts = ln.split()
            if len(parts) >= 2:
                cur["stack"].append(parts[1])
    gaps = collections.defaultdict(list)
    out = None
    for sw in switches:
        if sw["prev"] == args.pid:
            why = "other"
            for frame in sw["stack"]:
                if "futex" in frame:
                    why = "futex"
                    break
                if "ep_poll" in frame or "epoll" in frame:
                    why = "epoll"
                    break
            state = sw["state"] if sw["state"] != "S" else "S-" + why
            out = (sw["t"], state, sw["next_comm"])
        elif sw["next"] == args.pid and out:
            gaps[out[1]].append(((sw["t"] - out[0]) * 1000.0, out[2]))
            out = None
    print("loop thread %d over %.1f s:" % (args.pid, args.seconds))
    for state, v in sorted(gaps.items()):
        ms = sorted(x[0] for x in v)
        print("  %-8s n=%6d  total %8.1f ms  p50 %.3f  p99 %.3f  max %.3f ms" %
              (state, len(ms), sum(ms), ms[len(ms) // 2], ms[int(len(ms) * 0.99)], ms[-1]))
    by = collections.Counter(x[1] for k in ("R", "R+") for x in gaps.get(k, []))
    print("  preempted by: %s" % ", ".join("%s %d" % kv for kv in by.most_common(8)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
