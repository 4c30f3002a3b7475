#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into tests/fuzz/corpus/<target>/.

Plain Python 3, no packages. Seeds are valid (and a few invalid) examples of
what each target's input means (see the header comment of each
tests/fuzz/fuzz_<target>.c); libFuzzer mutates from there. Files are named
seed-<what>; re-running rewrites them and removes seeds no longer listed
here (files named otherwise, e.g. merged campaign inputs, are left alone).

    python3 tests/fuzz/seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u16(v):
    return struct.pack('<H', v)


def u32(v):
    return struct.pack('<I', v)


BFR_BASE = bytes.fromhex('5f4e3d2c1b0a8e9f3b4d2a5c') # low 12 bytes, little-endian


def bfr_uuid(n):
    return BFR_BASE + u16(n) + bytes.fromhex('1e7b')


# --- ATT PDUs -----------------------------------------------------------------------------------
def char_decl(handle, props, value_handle, uuid):
    return u16(handle) + bytes([props]) + u16(value_handle) + uuid


ATT = {
    'mtu-req': b'\x02' + u16(517),
    'mtu-rsp': b'\x03' + u16(247),
    'error-rsp': b'\x01\x10' + u16(0x0001) + b'\x0a',
    'find-info-req': b'\x04' + u16(0x0012) + u16(0x0014),
    'find-info-rsp-16': b'\x05\x01' + u16(0x0013) + u16(0x2902) + u16(0x0014) + u16(0x2901),
    'find-info-rsp-128': b'\x05\x02' + u16(0x0013) + bfr_uuid(2),
    'find-by-type-req': b'\x06' + u16(1) + u16(0xffff) + u16(0x2800) + u16(0x180f),
    'find-by-type-rsp': b'\x07' + u16(0x0020) + u16(0x0023) + u16(0x0030) + u16(0x0031),
    'read-by-type-req-16': b'\x08' + u16(1) + u16(0xffff) + u16(0x2803),
    'read-by-type-req-128': b'\x08' + u16(1) + u16(0xffff) + bfr_uuid(4),
    'read-by-type-rsp-decl16': b'\x09\x07' + char_decl(0x0002, 0x02, 0x0003, u16(0x2a00))
                               + char_decl(0x0004, 0x20, 0x0005, u16(0x2a05)),
    'read-by-type-rsp-decl128': b'\x09\x15' + char_decl(0x0011, 0x10, 0x0012, bfr_uuid(2)),
    'read-req': b'\x0a' + u16(0x0012),
    'read-rsp': b'\x0b' + b'BFR Cuff 01',
    'read-blob-req': b'\x0c' + u16(0x0012) + u16(22),
    'read-blob-rsp': b'\x0d' + b'more text',
    'read-by-group-req': b'\x10' + u16(1) + u16(0xffff) + u16(0x2800),
    'read-by-group-rsp-16': b'\x11\x06' + u16(1) + u16(5) + u16(0x1800)
                            + u16(6) + u16(9) + u16(0x1801),
    'read-by-group-rsp-128': b'\x11\x14' + u16(0x10) + u16(0x2f) + bfr_uuid(1),
    'write-req': b'\x12' + u16(0x0013) + u16(1),
    'write-rsp': b'\x13',
    'ntf-pressure': b'\x1b' + u16(0x0012) + b'\x01' + u16(0x0102) + u32(0x0a0b0c0d)
                    + bytes.fromhex('d0f708f7fae0') + u16(0x0105),
    'ind-cp': b'\x1d' + u16(0x0015) + bytes.fromhex('80037af6'),
    'cfm': b'\x1e',
    'write-cmd': b'\x52' + u16(0x0019) + u16(7),
    'unknown-opcode': b'\x3f\x01\x02',
    'uuid-text-16': b'2a19',
    'uuid-text-128': b'7b1e0002-5c2a-4d3b-9f8e-0a1b2c3d4e5f',
}

# --- profile values (docs/gatt-profile.md examples) -----------------------------------------------
SAMPLE = u16(0x0102) + u32(0x0a0b0c0d) + bytes.fromhex('d0f708f7fae0') + u16(0x0105)
PROFILE = {
    'pressure-1': b'\x01' + SAMPLE,
    'pressure-2-nan': b'\x02' + SAMPLE + u16(3) + u32(40) + u16(0x07ff) + u16(0) + u16(0x0800)
                      + u16(0x0100),
    'cp-set-target': bytes.fromhex('01d0f7e803'),
    'cp-deflate-estop': bytes.fromhex('0202'),
    'cp-measure-lop': bytes.fromhex('035e01'),
    'cp-cue': bytes.fromhex('0403'),
    'cp-identify': bytes.fromhex('05'),
    'cp-set-supervision': bytes.fromhex('06b80b'),
    'cp-rsp-lop': bytes.fromhex('80037af6'),
    'cp-rsp-lop-ok': bytes.fromhex('8003007af6'),
    'cp-rsp-busy': bytes.fromhex('800103'),
    'status': bytes([2, 87]) + u16(0x0009) + u16(0xf67a) + u16(115),
    'features': bytes.fromhex('6e00012c01320007 00'.replace(' ', '')),
    'supervision': u16(7),
    'sfloat-largest': u16(0x77fd),
    'sfloat-reserved': u16(0x37ff),
}

# --- configuration files ---------------------------------------------------------------------------
GW = 'gateway = { id = "gw1"; site = "site1"; };\n'
CONFIG = {
    'minimal': GW,
    'full': GW + 'mqtt = { uri = "mqtt://127.0.0.1:1883"; client_id = "gw1"; telemetry_hz = 10;'
                 ' keepalive_s = 10; };\nble = { security = "high"; };\n'
                 'limits = { leg = { max_pressure_mmHg = 240; max_pct_lop = 70; session_total_s = 1000; };\n'
                 '  arm = { max_pressure_mmHg = 180; max_pct_lop = 50; session_total_s = 600; };\n'
                 '  max_inflation_s = 300; min_reperfusion_s = 90; sample_timeout_ms = 400;\n'
                 '  deflate_timeout_ms = 3000; lop_max_age_s = 1800; };\n'
                 'store = { outbox_max_mib = 16; };\nsupervision_timeout_ms = 1500;\n'
                 'cuffs = ( { id = "bay1-left"; address = "sim:/run/cuffsim/cuff-01.sock"; limb = "leg";\n'
                 '            limits = { max_pressure_mmHg = 220; }; },\n'
                 '          { id = "bay2-arm"; address = "C4:7F:51:00:12:9A"; address_type = "random";\n'
                 '            adapter = "hci1"; limb = "arm"; limits = { max_pct_lop = 40; }; } );\n',
    'tls': GW + 'mqtt = { uri = "mqtts://broker.example:8883"; tls = { ca_file = ""; }; };\n',
    'syntax-error': 'gateway = { id = "gw1";\n site = ; };\n',
    'unknown-key': GW + 'colour = "red";\n',
    'bad-address': GW + 'cuffs = ( { id = "c0"; address = "C4:7F:51:00:12"; limb = "leg"; } );\n',
    'duplicate-cuff': GW + 'cuffs = ( { id = "c0"; address = "sim:/a"; limb = "leg"; },\n'
                           '  { id = "c0"; address = "sim:/b"; limb = "arm"; } );\n',
}
with open(os.path.join(HERE, '..', '..', 'deploy', 'gateway.conf.example')) as f:
    CONFIG['example'] = f.read()

# --- MQTT commands: byte 0 = verb number (command.h order), then the payload ------------------------
EX = ('"name":"squat","cuffs":["L"],"pct_lop":50,"sets":[30,15,15,15],"tempo_s":[2,2],'
      '"rest_s":30,"reperfusion_s":60,"mode":"continuous"')
CYCLE = ('"name":"kaatsu","cuffs":["L","R"],"pct_lop":40,"mode":"cycle","on_s":30,"off_s":10,'
         '"cycles":5,"reperfusion_s":90')
COMMAND = {
    'start': b'\x00' + ('{"request_id":"r1","v":1,"ts":"2026-01-31T09:30:00.123Z","msg_id":"m1",'
                        '"patient":"p-17","plan":{"exercises":[{' + EX + '},{' + CYCLE + '}]}}').encode(),
    'pause': b'\x01{"request_id":"r2","session_id":"s-0001"}',
    'resume': b'\x02{"request_id":"r3","session_id":"s-0001"}',
    'stop': b'\x03{"request_id":"r4","session_id":"s-0001"}',
    'estop-all': b'\x04{"request_id":"r5"}',
    'estop-cuffs': b'\x04{"request_id":"r6","cuffs":["L","R"]}',
    'ack': b'\x05{"request_id":"r7","alarm_id":"a-12","by":"Dr. M\xc3\xbcller"}',
    'lop': b'\x06{"request_id":"r8","cuff":"bay1-left"}',
    'identify': b'\x07{"request_id":"r9","cuff":"bay1-left"}',
    'snapshot': b'\x08{"request_id":"dash-1"}',
    'prescription-set': b'\x09' + ('{"request_id":"rx-1","patient":"p-0042","plan":{"exercises":[{'
                                   + EX + '}]},"valid_from":"2026-11-24T08:00:00+01:00",'
                                   '"valid_until":"2026-12-22T20:00:00-05:30","max_per_day":2,'
                                   '"min_hours_between":6,"supervision":"remote"}').encode(),
    'prescription-set-live': b'\x09' + ('{"request_id":"rx-3","plan":{"exercises":[{' + CYCLE + '}]},'
                                        '"valid_from":"2028-02-29T23:59:59.999999999Z",'
                                        '"valid_until":"9999-12-31T23:59:59.5Z","supervision":"live"}'
                                        ).encode(),
    'prescription-bad-date': b'\x09' + ('{"request_id":"rx-4","plan":{"exercises":[{' + EX + '}]},'
                                        '"valid_from":"2026-02-29T08:00:00Z",'
                                        '"valid_until":"2026-03-01T08:00:00Z","supervision":"none"}'
                                        ).encode(),
    'prescription-clear': b'\x0a{"request_id":"rx-2"}',
    'unknown-verb': b'\x0b{"request_id":"r10"}',
    'stop-by-reason': b'\x03{"request_id":"r11","session_id":"s-0001","by":"nurse 2","reason":"pain"}',
    'estop-by-reason': b'\x04{"request_id":"r12","cuffs":["L"],"by":"patient","reason":"button"}',
    'duplicate-key': b'\x01{"request_id":"r13","request_id":"r13","session_id":"s"}',
    'nul-in-string': b'\x05{"request_id":"r14","alarm_id":"a\\u0000","by":"x"}',
    'prescription-before-1970': b'\x09' + ('{"request_id":"rx-5","plan":{"exercises":[{' + EX + '}]},'
                                           '"valid_from":"1970-01-01T00:30:00+01:00",'
                                           '"valid_until":"1970-01-02T00:00:00Z","supervision":"none"}'
                                           ).encode(),
    'start-intermittent': b'\x00' + ('{"request_id":"r15","plan":{"exercises":[{'
                                     + EX.replace('continuous', 'intermittent') + '}]}}').encode(),
    'number-overflow': b'\x01{"request_id":"r16","session_id":"s","n":123456789012345678901234567890}',
    'nested-too-deeply': b'\x02' + b'[' * 2100,
    'prescription-supervision-number': b'\x09' + ('{"request_id":"rx-6","plan":{"exercises":[{' + EX
                                                  + '}]},"valid_from":"2026-11-24T08:00:00Z",'
                                                  '"valid_until":"2026-11-25T08:00:00Z",'
                                                  '"supervision":1}').encode(),
    'bad-json': b'\x00{"request_id":"r1",',
    'unknown-field': b'\x03{"request_id":"r4","session_id":"s","x":1}',
    'reply-ok': b'\xf0\x00\x00r1\x00s-0001\x00',
    'reply-refusal': b'\xf0\x08\x02r1\x00\x00cuff "x": not configured',
    'reply-via-error-set': b'\xf0\x0a\x06r1\x00\x00limit \xe2\x82\xac exceeded',
    'reply-retry-after': b'\xf0\x0c\x76r1\x00\x00cuff L: reperfusion',
    'reply-retry-after-max': b'\xf0\x15\xf0r1\x00\x00',
}

# --- cuffsim control: bytes 0-1 cuffs, byte 2 mode (0 line, 1 scenario), text --------------------------
def ctl(n, mode, text):
    return u16(n) + bytes([mode]) + text.encode()


CONTROL = {
    'leak': ctl(4, 0, 'leak 2 20\n'),
    'spike-all': ctl(4, 0, 'spike all 120 300'),
    'battery': ctl(4, 0, 'battery 1 15'),
    'limit': ctl(4, 0, 'limit all 240\r\n'),
    'status': ctl(4, 0, 'status 3'),
    'stats': ctl(4, 0, 'stats'),
    'quit': ctl(4, 0, 'quit'),
    'stuck-valve': ctl(500, 0, 'stuck-valve 500'),
    'bad-cuff': ctl(4, 0, 'leak 9'),
    'scenario': ctl(4, 1, '# over-pressure drill\n0    limit all 240\n5    spike 1 80 300\n'
                          '10   stuck-valve 2\n30   clear all\n31.5 leak 3 40\n60   stats\n'
                          '61 sensor-freeze 1 # comment\n62 stall 2\n63 drop 3\n64 deflate-fail 4\n'
                          '65 lop-fail all\n66 battery 2 5\n90   quit\n'),
}

# --- the stateful link target: header (shift, MTU, supervision timeout) + steps --------------------------
def link(shift, mtu, timeout_sel, *steps):
    return bytes([shift]) + u16(mtu - 23) + bytes([timeout_sel]) + b''.join(steps)


AUTO = b'\x02\x2f'                    # honest peer until quiet (up to 48 rounds)
def advance(i): return bytes([3, i])  # 0:1 1:10 2:100 3:333 4:1000 5:1001 6:3000 7:5001 8:30001 9:60001
def cp(op, a): return bytes([10, op, a])
def samples(p): return bytes([8, 0, 1, 0, p, 100, 4, 0])
def cp_mode(m): return bytes([15, m])
RELEASE = bytes([15, 0x40])          # cuff_link_release (SR-24)


LINK = {
    'ready': link(0, 517, 4, AUTO),
    'ready-shifted-mtu23': link(40, 23, 0, AUTO),
    'session': link(3, 247, 4, AUTO, cp(1, 100), AUTO, samples(120), advance(4), AUTO,
                    cp(4, 2), AUTO, samples(200), cp(2, 1), AUTO, advance(6), AUTO),
    'lop': link(0, 517, 3, AUTO, cp(3, 150), AUTO, advance(7), AUTO),
    'cp-silent-timeout': link(0, 185, 4, AUTO, cp_mode(1), cp(1, 80), AUTO, advance(7), AUTO),
    'cp-fail': link(0, 185, 4, AUTO, cp_mode(2), cp(1, 80), AUTO, cp(5, 0), AUTO),
    'att-timeout': link(0, 517, 4, b'\x01\x03', b'\x06\x00\x00', advance(8), AUTO, advance(6), AUTO),
    'error-answers': link(0, 517, 4, b'\x01\x00', b'\x06\x01\x0a', b'\x01\x00', b'\x06\x01\x00',
                          AUTO, advance(6), b'\x01\x05', b'\x06\x01\x05', AUTO, advance(6), AUTO,
                          cp(1, 90), b'\x06\x01\x03', AUTO),
    'wrong-and-duplicate-answers': link(0, 517, 4, b'\x06\x02\x00', b'\x06\x03\x00', AUTO,
                                        b'\x06\x03\x00', AUTO, advance(6), AUTO),
    'small-sndbuf': link(0, 517, 0x84, AUTO, *[advance(4) for _ in range(12)], AUTO,
                         *[cp(4, 1) for _ in range(8)], AUTO),
    'drop-reconnect': link(0, 517, 4, AUTO, b'\x0c', advance(6), AUTO, advance(6), AUTO),
    'refused-connect': link(0, 517, 4, b'\x0e', b'\x0c', advance(6), AUTO),
    'tamper-discovery': link(0, 517, 4, b'\x05\x07\x01', AUTO, advance(6), AUTO),
    'service-changed': link(0, 517, 4, AUTO, bytes([7, 6 | 0x80, 4]) + u16(1) + u16(0xffff),
                            advance(6), AUTO),
    'bad-features': link(0, 517, 4, bytes([11, 0, 3, 1, 2, 3]), AUTO, advance(6), AUTO),
    'bad-status-ntf': link(0, 517, 4, AUTO, bytes([11, 1, 8, 9, 200, 0, 0, 0, 0, 0, 0]),
                           bytes([9, 1]), AUTO),
    'raw-pdus': link(0, 517, 4, AUTO, bytes([4, 3, 0x1b, 0x12, 0x00]),
                     bytes([4, 5, 0x12, 0x01, 0x00, 0x00, 0x00]), AUTO),
    'stop-start': link(0, 517, 4, AUTO, b'\x0d', b'\x0d', AUTO),
    # SR-24: a DEFLATE nobody answers, the gateway releases the cuff, the link drops after
    # the supervision timeout + 500 ms; without a request waiting, keepalives resume.
    'release-dead-channel': link(0, 517, 4, AUTO, cp_mode(1), cp(2, 1), AUTO, advance(4), RELEASE,
                                 advance(6), AUTO, advance(4), AUTO, advance(6), AUTO),
    'release-resume': link(0, 517, 4, AUTO, RELEASE, advance(6), AUTO, advance(4), AUTO,
                           advance(4), AUTO),
    'deflate-flood': link(0, 517, 4, AUTO, cp_mode(1),
                          *[cp(1, 50) for _ in range(12)], *[cp(2, 1) for _ in range(6)], AUTO,
                          advance(7), AUTO),
}


def write(target, seeds):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith('seed-') and name[5:] not in seeds:
            os.remove(os.path.join(d, name))
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, 'seed-' + name), 'wb') as f:
            f.write(data)


write('att', ATT)
write('profile', PROFILE)
write('config', CONFIG)
write('command', COMMAND)
write('control', CONTROL)
write('link', LINK)
