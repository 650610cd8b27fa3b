#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Show a failover pair at work in a real guest.

Boots the e2e guest with a virtio-net NIC and an rtl8139 joined in a
failover pair, loads the rtl8139 driver (8139cp) at once and virtio_net a
few seconds later, and tells what happens: QMP events with their time
since QEMU started, what the guest sees on its console, then a table of
query-driver-status and the pair's active NIC.  Exits 0 when the story
went as expected, 1 with the differences otherwise.

With --net tap (root), each NIC is on its own tap in a Linux bridge, in
a network namespace of its own with a DHCP server (e2e.py's TapNet), and
the story also tells what the host sees: which tap the bridge forwards
the guest's MAC address to, and whether the guest answers the host's
pings (one every 50 ms).

    /usr/bin/python3 harness/demo.py [--qemu PATH] [--guest DIR] [--net tap]
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no __pycache__ in harness/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  pylint: disable=wrong-import-position

LATER = '+3'   # load virtio_net 3 s after the guest's first ping went through
NICS = {'vnet0': 'virtio-net-pci', 'legacy0': 'rtl8139'}


def describe(t, kind, data):
    """One line of the story for a record of e2e.Run, or None."""
    if kind == 'event':
        ev, d = data['event'], data.get('data', {})
        sim = ' (simulated)' if data.get('simulated') else ''
        if ev == 'DRIVER_STATUS_CHANGED':
            who = d.get('device') or d.get('qom-path')
            return f'QMP    DRIVER_STATUS_CHANGED {who}: {d.get("status")}'
        if ev == 'FAILOVER_PAIR_CHANGED':
            who = d.get('device') or d.get('qom-path')
            return f'QMP    FAILOVER_PAIR_CHANGED {who}: active={d.get("active")}{sim}'
        if ev == 'SHUTDOWN' and d.get('reason') == 'host-qmp-quit':
            return None
        if ev in ('RESET', 'SHUTDOWN', 'STOP'):
            return f'QMP    {ev}'
        return None
    if kind == 'host':
        return f'host   {data}'
    if kind == 'guest':
        w = data['what']
        if w == 'boot':
            return (f'guest  /init runs (boot {data.get("n")}), loads '
                    f'{data.get("load")}, later {data.get("later")}')
        if w == 'load':
            return f'guest  modprobe {data.get("mod")}: {"ok" if "ok" in data else "FAILED"}'
        if w == 'carrier':
            state = {'1': 'link UP', '0': 'link down', 'gone': 'interface gone'}
            return (f'guest  {data.get("iface")} ({data.get("driver")}): '
                    f'{state.get(data.get("carrier"), data.get("carrier"))}')
        if w == 'dhcp':
            return f'guest  DHCP on {data.get("iface")}: {data.get("ip", "failed")}'
        if w == 'ping':
            return (f'guest  ping of the router via {data.get("iface")}: '
                    f'{"ok" if "ok" in data else "FAILED"}')
        return f'guest  {w}'
    return None


async def host_view(run, net):
    """What the host sees, as records of RUN: the bridge port of the
    guest's MAC address and whether the guest answers pings."""
    taps = {net.TAPS[0]: 'virtio-net', net.TAPS[1]: 'rtl8139'}
    port = answers = None
    while True:
        now_port = await net.fdb_port(e2e.MAC)
        if now_port != port:
            port = now_port
            where = f'{port} ({taps.get(port, "?")}\'s tap)' if port else 'nowhere'
            await run.record('host', f'bridge forwards the guest to {where}')
        now_answers = await net.ping(0.05)
        if now_answers != answers:
            answers = now_answers
            await run.record('host', 'the guest answers the host\'s pings'
                             if answers else 'no answer from the guest')


async def story(args):
    simulate = not e2e.has_failover_pair(args.qemu)
    print(f'demo: {args.qemu}')
    if simulate:
        print('demo: this emulator has no failover-pair device; the harness '
              'simulates the pair with set_link and there is no '
              'query-driver-status')
    print('demo: guest loads 8139cp at once, and virtio_net 3 s after its '
          'first ping went through\n')
    net = e2e.TapNet(args.logdir) if args.net == 'tap' else None
    run = e2e.Run(args.qemu, args.guest, 'demo',
                  f'e2e.load=8139cp e2e.later=virtio_net@{LATER} e2e.off=60',
                  legacy='rtl8139', simulate=simulate,
                  kernel=args.kernel, firmware=args.firmware or (), net=net)
    watch = None

    def show(t, kind, data):
        line = describe(t, kind, data)
        if line:
            late = run.now() - t
            if kind == 'event' and late > 0.3:
                # Rate-limited past a burst; the time stamp is the change's.
                line += f'   (QMP sent it {late:.1f} s later: rate-limited)'
            print(f'{t:7.2f} s  {line}', flush=True)
    run.listener = show
    print(f'{0:7.2f} s  QEMU   starts: vnet0 (virtio-net-pci) + legacy0 '
          '(rtl8139) in failover-pair pair0, links down, guest booting')
    problems = []
    try:
        if net:
            await e2e.TapNet.remove_stale()
            await net.setup()
        await run.start()
        if net:
            watch = asyncio.ensure_future(host_view(run, net))
        leg = await e2e.traffic(run, '8139cp', e2e.BOOT_TIMEOUT)
        t_load, _ = await run.wait_line(e2e.line_is('load', mod='virtio_net'),
                                        30, 'the delayed load of virtio_net')
        vif = await e2e.traffic(run, 'virtio_net', 30, since=t_load - 0.5)
        await run.wait_line(e2e.is_carrier('8139cp', '0'), 10,
                            f'{leg} losing its link', since=t_load - 0.5)
        await asyncio.sleep(1.5)   # let events held back arrive
        active = await run.active()
        statuses = None if simulate else \
            await run.qmp.execute('query-driver-status')
    except e2e.Fail as e:
        problems.append(str(e))
        active, statuses, vif = None, None, None
        try:   # the state it stopped in
            active = await asyncio.wait_for(run.active(), 5)
            if not simulate:
                statuses = await asyncio.wait_for(
                    run.qmp.execute('query-driver-status'), 5)
        except Exception:  # pylint: disable=broad-except
            pass
    finally:
        if watch:
            watch.cancel()
        await run.stop()
        if net:
            await net.cleanup()

    print('\nfinal state (QMP):')
    if statuses is not None:
        print(f'  {"device":10} {"qom-path":44} status')
        for ent in statuses:
            print(f'  {ent.get("device", "-"):10} {ent.get("qom-path", ""):44} '
                  f'{ent.get("status")}')
    elif simulate:
        print('  (query-driver-status needs the series)')
    print(f'  pair0 active: {active}'
          + (' (simulated)' if simulate else ''))
    if vif:
        print(f'  the guest reaches its router through {vif} (virtio_net)')
    ready_l = [t for t, s in run.status_events('legacy0') if s == 'ready']
    ready_v = [t for t, s in run.status_events('vnet0') if s == 'ready']
    fb = [t for t, a in run.pair_events() if a == 'fallback']
    pr = [t for t, a in run.pair_events() if a == 'primary']
    if ready_l and fb:
        gap = fb[0] - ready_l[0]
        print(f'  fallback came {gap:.2f} s after the rtl8139 driver was ready '
              f'(fallback-delay-ms={run.delay_ms})')
        if gap < run.delay - 0.1:
            problems.append(f'the fallback came {gap:.2f} s after the rtl8139 '
                            f'driver was ready, before the {run.delay} s delay')
    if ready_v and pr:
        print(f'  primary came {pr[-1] - ready_v[-1]:.2f} s after the virtio-net '
              'driver was ready')

    if not problems:
        acts = [a for _, a in run.pair_events()]
        if acts[:1] != ['fallback'] or acts[-1:] != ['primary']:
            problems.append(f'FAILOVER_PAIR_CHANGED went {acts}, expected '
                            'fallback first and primary last')
        if active != 'primary':
            problems.append(f'pair0 active is {active!r}, expected primary')
        if statuses is not None:
            st = {}
            for ent in statuses:
                for dev in NICS:
                    p = f'/machine/peripheral/{dev}'
                    path = ent.get('qom-path', '')
                    if ent.get('device') == dev or path == p or path.startswith(p + '/'):
                        st[dev] = ent.get('status')
            for dev in NICS:
                if st.get(dev) != 'ready':
                    problems.append(f'{dev} ({NICS[dev]}) driver status is '
                                    f'{st.get(dev)!r}, expected ready')
            for dev in NICS:
                if 'ready' not in [s for _, s in run.status_events(dev)]:
                    problems.append(f'no DRIVER_STATUS_CHANGED ready for {dev}')
    if problems:
        print('\ndemo: NOT as expected:')
        for p in problems:
            print(f'  - {p}')
        if args.log:
            run.dump(args.log)
            print(f'  (full log in {args.log})')
        return 1
    print('\ndemo: as expected: rtl8139 first (after the fallback delay), '
          'then virtio-net as soon as its driver was ready')
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    e2e.add_machine_args(ap)
    ap.add_argument('--kernel', choices=('auto', 'vmlinux', 'vmlinuz'),
                    default='auto')
    ap.add_argument('-L', '--firmware', action='append',
                    help="QEMU's -L, for an emulator that does not find its firmware")
    ap.add_argument('--log', help='write the full log here when it fails')
    ap.add_argument('--net', choices=('user', 'tap'), default='user',
                    help='tap: each NIC on a tap in a bridge, in a network '
                    'namespace of its own (root), with what the host sees')
    args = ap.parse_args()
    args.qemu = os.path.abspath(args.qemu)
    if not os.access(args.qemu, os.X_OK):
        raise SystemExit(f'demo: no emulator at {args.qemu}')
    args.guest = e2e.find_guest(args.guest)
    if args.net == 'tap' and os.geteuid() != 0:
        raise SystemExit('demo: --net tap needs root (network namespaces)')
    args.logdir = tempfile.mkdtemp(prefix='demo-')
    t0 = time.monotonic()
    try:
        rc = asyncio.run(story(args))
    finally:
        shutil.rmtree(args.logdir, ignore_errors=True)
    print(f'demo: {time.monotonic() - t0:.0f} s')
    return rc


if __name__ == '__main__':
    sys.exit(main())
