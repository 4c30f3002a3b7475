"""Network namespaces of one fault campaign (tests/soak/campaign.py).

Layout (every name carries the campaign's pid, so runs never collide and a
later run can tell a dead run's leftovers from a live one's):

    namespace bfrsoak-<pid>-gw               namespace bfrsoak-<pid>-br
    bfr-gateway                              mosquitto, cuffsim, the campaign
    bs<pid>g 10.77.0.1/30  <---- veth ---->  bs<pid>b 10.77.0.2/30, lo 127.0.0.1

The campaign process itself enters the broker's namespace (setns, before any
thread exists), so its subscribers and the clinician reach mosquitto on that
namespace's loopback and are never cut off; only the gateway's path crosses
the veth, and a network cut (`ip link set down` on one end) cuts exactly the
gateway from the broker. Cuffs are AF_UNIX sockets (file system paths), which
network namespaces do not separate. Nothing is configured in the root
namespace: both veth ends and both addresses live in namespaces this run
created, and destroy() deletes them (deleting a namespace deletes its veth).

tc netem would be the other way to cut; Debian's kernel here has no sch_netem
loaded, and link down is what the campaign uses (documented in
docs/reliability.md).
"""

import ctypes
import os
import re
import subprocess

CLONE_NEWNET = 0x40000000
NAME_RX = re.compile(r"^bfrsoak-(\d+)-(gw|br|probe)\b")
GW_ADDR = "10.77.0.1"
BR_ADDR = "10.77.0.2"


class NetnsError(RuntimeError):
    pass


def _ip(*args):
    r = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise NetnsError("ip %s: %s" % (" ".join(args),
                                        r.stdout.decode("utf-8", "replace").strip()))
    return r.stdout.decode("utf-8", "replace")


def probe():
    """None when this process may create network namespaces, else the reason."""
    name = "bfrsoak-%d-probe" % os.getpid()
    try:
        _ip("netns", "add", name)
    except (NetnsError, OSError) as e:
        return str(e)
    try:
        _ip("netns", "del", name)
    except NetnsError as e:
        return "created %s but cannot delete it: %s" % (name, e)
    return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale():
    """Deletes the namespaces of campaigns whose process is gone (one killed
    with SIGKILL cannot clean up). Returns the names deleted."""
    try:
        out = _ip("netns", "list")
    except NetnsError:
        return []
    gone = []
    for line in out.splitlines():
        m = NAME_RX.match(line.strip())
        if m and not _pid_alive(int(m.group(1))):
            name = line.split()[0]
            try:
                _ip("netns", "del", name)
                gone.append(name)
            except NetnsError:
                pass
    return gone


class Net:
    def __init__(self):
        pid = os.getpid()
        self.gw = "bfrsoak-%d-gw" % pid
        self.br = "bfrsoak-%d-br" % pid
        self.veth_gw = ("bs%dg" % pid)[:15]
        self.veth_br = ("bs%db" % pid)[:15]
        self.created = []
        self.cut_side = None

    def create(self):
        for ns in (self.gw, self.br):
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", self.veth_gw, "netns", self.gw, "type", "veth",
            "peer", "name", self.veth_br, "netns", self.br)
        _ip("-n", self.gw, "addr", "add", GW_ADDR + "/30", "dev", self.veth_gw)
        _ip("-n", self.br, "addr", "add", BR_ADDR + "/30", "dev", self.veth_br)
        _ip("-n", self.gw, "link", "set", self.veth_gw, "up")
        _ip("-n", self.br, "link", "set", self.veth_br, "up")

    def enter_broker_ns(self):
        """Moves the calling thread (call it before any other thread exists:
        threads inherit it) into the broker's namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/run/netns/%s" % self.br, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetnsError("setns(%s): %s" % (self.br, os.strerror(err)))
        finally:
            os.close(fd)

    def gateway_prefix(self):
        """argv prefix that runs a program in the gateway's namespace (exec, same pid)."""
        return ["nsenter", "--net=/run/netns/%s" % self.gw, "--"]

    def cut(self, side):
        """Link down on the gateway's end ('gw') or the broker's end ('br')."""
        if side == "gw":
            _ip("-n", self.gw, "link", "set", self.veth_gw, "down")
        else:
            _ip("-n", self.br, "link", "set", self.veth_br, "down")
        self.cut_side = side

    def restore(self):
        _ip("-n", self.gw, "link", "set", self.veth_gw, "up")
        _ip("-n", self.br, "link", "set", self.veth_br, "up")
        self.cut_side = None

    def link_state(self):
        """'UP'/'DOWN'/... of both ends, for the log."""
        out = []
        for ns, dev in ((self.gw, self.veth_gw), (self.br, self.veth_br)):
            try:
                text = _ip("-n", ns, "-o", "link", "show", dev)
                m = re.search(r"state (\S+)", text)
                out.append("%s:%s" % (dev, m.group(1) if m else "?"))
            except NetnsError as e:
                out.append("%s:%s" % (dev, e))
        return " ".join(out)

    def destroy(self):
        """Deletes what create() made; returns the problems (never raises)."""
        problems = []
        for ns in reversed(self.created):
            try:
                _ip("netns", "del", ns)
            except NetnsError as e:
                problems.append(str(e))
        self.created = []
        return problems
