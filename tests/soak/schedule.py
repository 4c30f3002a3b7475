"""The campaign's fault schedule: a list of timed actions drawn from one seed.

The same seed, duration, cuff count and fault counts give the same schedule
(times, kinds, cuffs, parameters); the product's reactions differ from run to
run only as real processes do.

Major faults (one at a time, each in its own slot so that its effect can be
told apart; the order of kinds is shuffled; the campaign starts one only
when the previous one has ended, and ends it `down_s` after it started):
- broker_kill: SIGKILL mosquitto, restart it after `down_s`;
- net_cut: link down on the gateway's or the broker's veth end for `down_s`;
- gateway_kill: SIGKILL bfr-gateway, restart it after `down_s` (some
  restarts come back inside the cuffs' 3 s supervision timeout);
- disk_fill: fill data_dir's tmpfs, free it `down_s` after the gateway
  reported the disk error (the campaign bounds the wait).

Minor faults, at random times on random cuffs (never two on one cuff at a
time): cuffsim `drop`, and `spike`, `leak`, `stall`, `sensor-freeze`,
`deflate-fail`, `stuck-valve`, `lop-fail`, `battery`, `cp-hang`,
`supervision-lost`, each cleared after its duration (`clear N`, or `battery N
100`). `deflate-fail` and `stuck-valve` keep a cuff inflated on purpose, so
they are planned 25 s clear of gateway kills (and the campaign delays a
kill while one is active): the check that every cuff inflated at a kill
deflates by itself must not be judged on a cuff whose valve was broken on
purpose.
"""

import random


class Item:
    __slots__ = ("t", "kind", "params")

    def __init__(self, t, kind, **params):
        self.t, self.kind, self.params = t, kind, params

    def __repr__(self):
        return "%8.1f %s %s" % (self.t, self.kind,
                                " ".join("%s=%s" % kv for kv in sorted(self.params.items())))


MAJORS = ("broker_kill", "net_cut", "gateway_kill", "disk_fill")

# kind: (weight, duration range s or None for one-shot)
CUFF_FAULTS = {
    "spike": (4, None),
    "leak": (3, (5, 20)),
    "stall": (3, (2, 8)),
    "sensor-freeze": (2, (3, 10)),
    "deflate-fail": (1, (5, 12)),
    "stuck-valve": (1, (3, 8)),
    "lop-fail": (1, (20, 60)),
    "battery": (2, (10, 30)),
    "cp-hang": (1, (5, 12)),
    "supervision-lost": (1, (4, 10)),
}
NEAR_GATEWAY_KILL = ("deflate-fail", "stuck-valve")


def build(seed, duration_s, n_cuffs, counts, short):
    """counts: {'broker_kill': n, 'net_cut': n, 'gateway_kill': n, 'disk_fill': n}."""
    rng = random.Random(seed)
    warmup = 20.0 if short else 60.0
    tail = 10.0 if short else 60.0
    majors = []
    for kind in ("broker_kill", "net_cut", "gateway_kill", "disk_fill"):
        majors += [kind] * counts.get(kind, 0)
    rng.shuffle(majors)
    if short and "disk_fill" in majors:
        # A young database still grows its WAL with every commit, so a full
        # disk shows at once; later the WAL reuses its space and the disk
        # error waits for the database to need a new page (minutes).
        majors.remove("disk_fill")
        majors.insert(0, "disk_fill")
    items = []
    span = max(1.0, duration_s - warmup - tail)
    slot = span / max(1, len(majors))
    for i, kind in enumerate(majors):
        t = warmup + i * slot + rng.uniform(0, 0.2 * slot)
        room = 0.6 * slot
        if kind == "broker_kill":
            items.append(Item(t, kind, down_s=rng.uniform(0.2, min(6.0, room))))
        elif kind == "net_cut":
            # Longer than the gateway's keepalive detection (~2.75 x 2 s).
            items.append(Item(t, kind, side=rng.choice(["gw", "br"]),
                              down_s=rng.uniform(8.0, max(8.0, min(30.0, room)))))
        elif kind == "gateway_kill":
            # A third of the restarts within the 3 s supervision timeout.
            down = rng.uniform(0.2, 2.5) if rng.random() < 0.34 else rng.uniform(3.5, 6.0)
            items.append(Item(t, kind, down_s=down))
        else:
            # Held at least this long, and until the gateway reports it.
            items.append(Item(t, kind, down_s=rng.uniform(10.0, max(10.0, min(40.0, room)))))
    gw_kills = [it.t for it in items if it.kind == "gateway_kill"]

    busy_until = [0.0] * (n_cuffs + 1)
    kinds = sorted(CUFF_FAULTS)
    weights = [CUFF_FAULTS[k][0] for k in kinds]
    gap = 6.0 if short else 8.0
    t = warmup / 2
    end = duration_s - tail
    while True:
        t += rng.expovariate(1.0 / gap)
        if t >= end:
            break
        kind = rng.choices(kinds, weights)[0]
        cuff = rng.randint(1, n_cuffs)
        rng_dur = CUFF_FAULTS[kind][1]
        dur = rng.uniform(*rng_dur) if rng_dur else 0.0
        if busy_until[cuff] > t:
            continue
        if kind in NEAR_GATEWAY_KILL and any(k - 25.0 < t + dur and t < k + 10.0
                                             for k in gw_kills):
            continue
        if kind == "spike":
            line = "spike %d %d %d" % (cuff, rng.choice([40, 70, 110, 130]),
                                       rng.randint(200, 1500))
        elif kind == "leak":
            line = "leak %d %d" % (cuff, rng.choice([5, 20, 60, 100]))
        elif kind == "battery":
            line = "battery %d %d" % (cuff, rng.choice([5, 9, 15, 19]))
        else:
            line = "%s %d" % (kind, cuff)
        items.append(Item(t, "cuff_fault", cuff=cuff, fault=kind, line=line))
        if rng_dur:
            clear = "battery %d 100" % cuff if kind == "battery" else "clear %d" % cuff
            items.append(Item(t + dur, "cuff_clear", cuff=cuff, fault=kind, line=clear))
            busy_until[cuff] = t + dur + 1.0
        else:
            busy_until[cuff] = t + 2.0

    t = warmup / 2
    while True:
        t += rng.expovariate(1.0 / (25.0 if short else 30.0))
        if t >= end:
            break
        cuff = rng.randint(1, n_cuffs)
        items.append(Item(t, "cuff_drop", cuff=cuff, line="drop %d" % cuff))
    items.sort(key=lambda it: it.t)
    return items


def summary(items):
    out = {}
    for it in items:
        key = it.params["fault"] if it.kind == "cuff_fault" else it.kind
        if it.kind == "cuff_clear":
            continue
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
