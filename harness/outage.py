#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Host-to-guest traffic lost when a failover pair switches, on a tap bridge.

Each case boots the e2e test guest with a pair of rtl8139 and virtio-net,
both NICs on their own tap in a Linux bridge, in a network namespace of
its own (e2e.py's TapNet), both with the same MAC address.  From the
moment the host first reaches the guest over the first NIC, the host
pings it every millisecond (1,000 packets per second) until a few
seconds after the guest's driver change that makes the pair switch:

- to-virtio: the guest has only 8139cp, then loads virtio_net;
- fallback: the guest has both, then removes virtio_net (the pair waits
  fallback-delay-ms, 500 ms of guest time, before the fallback's link
  goes up: that wait is part of the gap by design).

Each with the pair's announcement on and off, and with two guests: one
that gets its address by DHCP (and sends its own IPv6 chatter), and one
that sends nothing by itself (IPv4 only, a static address).  For each
case: packets sent, lost, and the longest time without a reply, on the
wall clock; "never" when no reply came after the switch.  The goal
(issue: Linux bonding's miimon is commonly 100 ms): with the announce,
the longest gap of the switch to virtio-net under 100 ms for every guest.

    /usr/bin/python3 harness/outage.py --qemu PATH --guest DIR [--csv FILE]
"""

import argparse
import asyncio
import csv
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in harness/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  pylint: disable=wrong-import-position

SWITCH_AT = 12          # guest seconds after /init: the driver change
AFTER = 5.0             # seconds of pinging after the switch
GOAL_MS = 100.0
RATE = 1000             # host-to-guest packets per second

GUESTS = {
    'dhcp': '',
    'silent': f'ipv6.disable=1 e2e.static={e2e.TapNet.GUEST}/24',
}
SWITCHES = {
    'to-virtio': ('e2e.load=8139cp', f'e2e.later=virtio_net@{SWITCH_AT}',
                  'primary'),
    'fallback': ('e2e.load=virtio_net,8139cp', f'e2e.rmmod=virtio_net@{SWITCH_AT}',
                 'fallback'),
}


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack(f'!{len(data) // 2}H', data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def send(target, rate):
    """Run in the namespace: ICMP echo requests to TARGET at RATE per
    second, whether answers come or not, until SIGINT; then print
    'sent N' and a 'reply SEQ TIME' line for each answer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xffff
    replies = []
    stop = threading.Event()

    def receive():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data = sock.recv(2048)
            except socket.timeout:
                continue
            icmp = data[(data[0] & 0xf) * 4:]
            kind, _, _, rid, seq = struct.unpack('!BBHHH', icmp[:8])
            if kind == 0 and rid == ident:
                replies.append((seq, time.time()))

    reader = threading.Thread(target=receive)
    reader.start()
    sent = 0
    next_t = time.monotonic()
    try:
        while True:
            packet = struct.pack('!BBHHH', 8, 0, 0, ident, sent & 0xffff) + \
                b'failover-pair outage'
            packet = packet[:2] + struct.pack('!H', checksum(packet)) + packet[4:]
            sock.sendto(packet, (target, 0))
            sent += 1
            next_t += 1.0 / rate
            time.sleep(max(0.0, next_t - time.monotonic()))
    except KeyboardInterrupt:
        pass
    time.sleep(0.2)     # the answers still on their way
    stop.set()
    reader.join()
    print(f'sent {sent}')
    for seq, t in replies:
        print(f'reply {seq} {t:.6f}')


def longest_gap(replies, start, end):
    """The longest time without a reply between START and END (wall
    clock, seconds)."""
    times = [start] + [t for t in replies if start <= t <= end] + [end]
    return max(b - a for a, b in zip(times, times[1:]))


async def one(args, guest, switch, announce, logdir):
    """One case: (sent, lost, longest gap in ms, replies after the switch)."""
    net = e2e.TapNet(logdir)
    load, change, active = SWITCHES[switch]
    append = ' '.join(x for x in (GUESTS[guest], load, change,
                                  f'e2e.off={SWITCH_AT + 30}') if x)
    name = f'{switch}-{guest}-{"announce" if announce else "no-announce"}'
    run = e2e.Run(args.qemu, args.guest, name, append, net=net, workdir=logdir,
                  pair_props='' if announce else 'announce=off')
    ping = None
    out_file = open(os.path.join(logdir, f'{name}.ping'), 'w+b')
    try:
        await net.setup()
        await run.start()
        first = 'static' if guest == 'silent' else 'ping'
        await run.wait_line(e2e.line_is(first), e2e.BOOT_TIMEOUT,
                            f'the guest on its first NIC ({first})')
        e2e.expect(await net.ping(10), 'the host got no answer before the switch')
        # ping(8) slows down when no answers come: a sender of our own
        # keeps the rate.  Into a file, which never makes it wait.
        ping = await asyncio.create_subprocess_exec(
            *net.wrap([sys.executable, os.path.abspath(__file__), '--send',
                       e2e.TapNet.GUEST]),
            stdin=subprocess.DEVNULL, stdout=out_file,
            stderr=subprocess.DEVNULL)
        t_start = time.time()
        t_sw, _ = await run.wait_for(
            lambda r: next(((t, a) for t, a in r.pair_events() if a == active),
                           None), 60, f'the switch to {active}')
        t_switch = run.t0 + t_sw
        await asyncio.sleep(max(0.0, t_switch + AFTER - time.time()))
        t_end = time.time()
        ping.send_signal(signal.SIGINT)
        await ping.wait()
    finally:
        if ping and ping.returncode is None:
            ping.kill()
            await ping.wait()
        await run.stop()
        await net.cleanup()
    out_file.seek(0)
    text = out_file.read().decode(errors='replace')
    out_file.close()
    replies = sorted(float(m.group(1)) for m in
                     re.finditer(r'^reply \d+ (\d+\.\d+)$', text, re.M))
    m = re.search(r'^sent (\d+)$', text, re.M)
    e2e.expect(m, f'{name}: the sender printed no count')
    sent, got = int(m.group(1)), len(replies)
    after = [t for t in replies if t > t_switch]
    gap = longest_gap(replies, t_start, t_end) * 1000
    return name, sent, sent - got, gap, bool(after)


async def amain(args):
    logdir = tempfile.mkdtemp(prefix='outage-')
    try:
        return await cases(args, logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


async def cases(args, logdir):
    """Every case in turn, printed as it ends; the CSV at the end."""
    await e2e.TapNet.remove_stale()
    rows = []
    print(f'{"case":36} {"sent":>6} {"lost":>6} {"longest gap":>12}  goal')
    for switch in SWITCHES:
        for guest in GUESTS:
            for announce in (True, False):
                name, sent, lost, gap, after = await one(args, guest, switch,
                                                         announce, logdir)
                shown = f'{gap:9.0f} ms' if after else '     never'
                goal = ''
                if switch == 'to-virtio' and announce:
                    goal = 'met' if after and gap < GOAL_MS else 'MISSED'
                print(f'{name:36} {sent:6} {lost:6} {shown:>12}  {goal}',
                      flush=True)
                rows.append({'case': name, 'sent': sent, 'lost': lost,
                             'longest_gap_ms': round(gap) if after else '',
                             'replies_after_switch': after,
                             'goal_ms': GOAL_MS if goal else '',
                             'goal_met': goal == 'met' if goal else ''})
    if args.csv:
        os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
        with open(args.csv, 'w', newline='', encoding='utf-8') as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


def main():
    if sys.argv[1:2] == ['--send']:
        send(sys.argv[2], RATE)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    e2e.add_machine_args(ap)
    ap.add_argument('--csv', help='write the table here too')
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit('outage: needs root (network namespaces)')
    args.qemu = os.path.abspath(args.qemu)
    args.guest = e2e.find_guest(args.guest)
    try:
        return asyncio.run(amain(args))
    except e2e.Fail as e:
        print(f'outage: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
