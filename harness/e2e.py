#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""End-to-end tests of the failover pair beyond upstream's functional test.

tests/functional/x86_64/test_failover_pair.py boots the project's Linux
guest with the pair in QEMU on user networking.  This harness runs the
same scenarios where a functional test cannot: with the pair kept by
scripts/qmp/failover-policy.py over QMP instead of the device (--mode tool),
and on a tap bridge in a network namespace of its own (--net tap, root).

It boots a small Linux guest (build-glue/guest/build.sh) with a virtio-net
NIC and a legacy NIC (rtl8139 or e1000) joined in a failover pair, both on
one slirp backend through a hub, and checks three views of each scenario:

- the guest's: the "E2E ..." lines its /init prints on ttyS0 (carrier of
  each interface, DHCP, ping 10.0.2.2);
- QMP's: DRIVER_STATUS_CHANGED and FAILOVER_PAIR_CHANGED events,
  query-driver-status and qom-get pair0 active;
- traffic: DHCP and ping go through the NIC that has the link.

With --net tap, each scenario runs in a network namespace of its own
instead (root only): a Linux bridge with the host's address 10.0.3.1, a
DHCP server (dnsmasq) that has one address to give, and each NIC on its
own tap in the bridge.  Both NICs have the same MAC address, so the guest
keeps its lease across a switch; two scenarios with a guest that sends
nothing by itself check that the bridge follows the switch when the pair
announces it, and does not when it does not.  The namespace, and all in
it, is removed after each scenario, also when it fails.

Without the series (no failover-pair device in the emulator) the harness
simulates the pair itself with set_link, driven by the guest's lines, so
that guest and harness can be tested on upstream QEMU; the QMP-side checks
of the series are then skipped and the result line says "(simulated)".

    /usr/bin/python3 harness/e2e.py --qemu PATH --guest DIR [--net tap]
                                       [--scenario NAME]...
"""

import argparse
import asyncio
from datetime import datetime
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (os.environ.get('QEMU_PYTHON'),
           os.path.join(HERE, '..', 'build', 'src', 'python')):
    if _p and os.path.isdir(os.path.join(_p, 'qemu', 'qmp')):
        sys.path.insert(0, os.path.abspath(_p))
        QEMU_PYTHON = os.path.abspath(_p)
        break
else:
    QEMU_PYTHON = None
from qemu.qmp import QMPClient, QMPError  # noqa: E402

MAC = '52:54:00:12:34:56'
LEGACY_DRIVERS = {'rtl8139': '8139cp', 'e1000': 'e1000'}
FALLBACK_DELAY = 0.5
BOOT_TIMEOUT = 120.0       # QEMU start to the guest's first line, TCG, busy host
MODES = ('auto', 'real', 'sim', 'tool')
DEFAULT_POLICY_TOOL = os.path.join(HERE, '..', 'build', 'src', 'scripts',
                                   'qmp', 'failover-policy.py')
TOOL_START_TIMEOUT = 30.0  # tool start to its first decision (active=none)


class Fail(Exception):
    """A scenario's expectation was not met."""


async def command(*argv, check=True):
    """Run ARGV; its stdout.  Fail with its stderr when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise Fail(f'{" ".join(argv)}: exit {proc.returncode}: '
                   f'{err.decode(errors="replace").strip()}')
    return out.decode(errors='replace') if proc.returncode == 0 else None


class TapNet:
    """A network namespace with a bridge, a DHCP server and a tap per NIC.

    The host's side is the bridge's address (the guest's router); the
    taps exist before QEMU, which runs in the namespace and opens them by
    name.  Nothing leaves the namespace, and removing it removes all."""

    PREFIX = 'fo-e2e-'
    HOST = '10.0.3.1'
    GUEST = '10.0.3.15'
    TAPS = ('tapv', 'tapl')     # virtio-net's, the legacy NIC's
    count = 0

    def __init__(self, workdir):
        TapNet.count += 1
        self.ns = f'{self.PREFIX}{os.getpid()}-{TapNet.count}'
        self.workdir = workdir
        self.dhcp = None

    @classmethod
    async def remove_stale(cls):
        """Namespaces left by a run that was killed (its pid is gone)."""
        out = await command('ip', 'netns', 'list')
        for line in out.splitlines():
            name = line.split()[0] if line.split() else ''
            if not name.startswith(cls.PREFIX):
                continue
            pid = name[len(cls.PREFIX):].split('-')[0]
            if pid.isdigit() and not os.path.exists(f'/proc/{pid}'):
                await cls._remove(name)

    @staticmethod
    async def _remove(ns):
        pids = await command('ip', 'netns', 'pids', ns, check=False) or ''
        for pid in pids.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        await command('ip', 'netns', 'del', ns, check=False)

    def wrap(self, argv):
        return ['ip', 'netns', 'exec', self.ns] + list(argv)

    async def setup(self):
        ip = ('ip', '-n', self.ns)
        await command('ip', 'netns', 'add', self.ns)
        await command(*ip, 'link', 'set', 'lo', 'up')
        await command(*ip, 'link', 'add', 'br0', 'type', 'bridge',
                      'forward_delay', '0')
        await command(*ip, 'addr', 'add', f'{self.HOST}/24', 'dev', 'br0')
        await command(*ip, 'link', 'set', 'br0', 'up')
        for tap in self.TAPS:
            await command(*ip, 'tuntap', 'add', 'dev', tap, 'mode', 'tap')
            await command(*ip, 'link', 'set', tap, 'master', 'br0', 'up')
        # One address to give: a second identity would get no lease
        self.dhcp = await asyncio.create_subprocess_exec(
            *self.wrap(['dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null',
                        '--port=0', '--interface=br0', '--bind-interfaces',
                        '--user=root', '--pid-file=', '--no-ping',
                        f'--dhcp-range={self.GUEST},{self.GUEST},255.255.255.0,1h',
                        f'--dhcp-option=option:router,{self.HOST}',
                        '--dhcp-leasefile=' +
                        os.path.join(self.workdir, f'{self.ns}.leases')]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)

    async def cleanup(self):
        if self.dhcp and self.dhcp.returncode is None:
            self.dhcp.kill()
            await self.dhcp.wait()
        await self._remove(self.ns)

    def netdevs(self):
        return [f'tap,id={n},ifname={tap},script=no,downscript=no'
                for n, tap in zip(('net0', 'net1'), self.TAPS)]

    async def fdb_port(self, mac):
        """The bridge port that the bridge forwards MAC to, or None."""
        out = await command('bridge', '-n', self.ns, 'fdb', 'show', 'br', 'br0')
        for line in out.splitlines():
            w = line.split()
            if w[:1] == [mac.lower()] and 'dev' in w and 'permanent' not in w:
                return w[w.index('dev') + 1]
        return None

    async def ping(self, timeout):
        """Whether the guest answers the host's ping within TIMEOUT s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await command(*self.wrap(['ping', '-c', '1', '-W', '0.2',
                                         self.GUEST]), check=False) is not None:
                return True
        return False


def find_guest(path):
    """The folder holding vmlinuz and initramfs.gz (PATH or PATH/guest)."""
    for d in (path, os.path.join(path, 'guest'), os.path.join(path, 'guest', 'guest')):
        if (os.path.isfile(os.path.join(d, 'vmlinuz')) and
                os.path.isfile(os.path.join(d, 'initramfs.gz'))):
            return d
    raise SystemExit(f'e2e: no vmlinuz/initramfs.gz in {path} '
                     '(run build-glue/guest/build.sh first)')


def has_failover_pair(qemu):
    out = subprocess.run([qemu, '-device', 'help'], capture_output=True,
                         text=True, check=False).stdout
    return '"failover-pair"' in out


def parse_e2e(line):
    """'E2E iface=eth0 driver=8139cp carrier=1 t=6.9' -> dict, or None."""
    i = line.find('E2E ')
    if i < 0:
        return None
    words = line[i + 4:].split()
    if not words:
        return None
    rec = {}
    if '=' not in words[0]:
        rec['what'] = words.pop(0)
    for w in words:
        k, _, v = w.partition('=')
        rec[k] = v
    if 'what' not in rec:
        rec['what'] = 'carrier' if 'carrier' in rec else words[0].split('=')[0]
    return rec


class Run:
    """One QEMU process with a failover pair, its events and guest lines."""

    def __init__(self, qemu, guest, name, append, legacy='rtl8139',
                 simulate=False, workdir=None, delay_ms=500, verbose=False,
                 kernel='auto', firmware=(), machine='pc', tool=None, tag=None,
                 net=None, pair_props=''):
        self.qemu = qemu
        self.machine = machine
        self.firmware = list(firmware)
        self.guest = guest
        if kernel == 'auto':
            # PVH boot of the uncompressed kernel saves ~8 s of TCG time.
            kernel = 'vmlinux' if os.path.isfile(os.path.join(guest, 'vmlinux')) \
                else 'vmlinuz'
        self.kernel = os.path.join(guest, kernel)
        self.name = name
        self.append = append
        self.legacy = legacy
        self.net = net             # a TapNet, or None for user networking
        self.pair_props = pair_props
        self.simulate = simulate
        # tool mode: scripts/qmp/failover-policy.py (path in TOOL) keeps the pair
        # over a second QMP socket; no failover-pair device in QEMU.
        self.tool = tool
        assert not (tool and simulate)
        self.tool_proc = None
        self.tool_active = 'none'   # as last logged by the tool
        self.tool_started = False   # its first decision (links down) is done
        self.tool_exited = False
        self.tool_tasks = []
        self.delay = delay_ms / 1000.0
        self.delay_ms = delay_ms
        self.verbose = verbose
        self.workdir = workdir or tempfile.mkdtemp(prefix='e2e-')
        self.tag = tag or name    # file names (unique across modes)
        self.sock = os.path.join(self.workdir, f'{self.tag}.qmp')
        self.tool_sock = os.path.join(self.workdir, f'{self.tag}.tool.qmp')
        self.log = []          # (t, 'event'|'guest'|'note'|'console', data)
        self.events = []       # (t, event dict); t from QEMU's timestamp
        self.lines = []        # (t, parsed E2E dict)
        self.cond = asyncio.Condition()
        self.proc = None
        self.qmp = None
        self.tasks = []
        self.t0 = None
        self.exited = False
        self.listener = None   # called as listener(t, kind, data) per record
        # simulated pair state
        self.sim = {'virtio': False, 'legacy': False, 'active': 'none',
                    'timer': None}

    # -- bookkeeping -------------------------------------------------------
    def now(self):
        return time.time() - self.t0

    async def record(self, kind, data):
        """A record from outside the run: what the host sees, say."""
        await self._record(kind, data)

    async def _record(self, kind, data, t=None):
        t = self.now() if t is None else t
        self.log.append((t, kind, data))
        if kind == 'event':
            self.events.append((t, data))
        elif kind == 'guest':
            self.lines.append((t, data))
        if self.verbose:
            print(f'  [{self.name} {t:6.2f}] {kind}: {data}', flush=True)
        if self.listener:
            self.listener(t, kind, data)
        async with self.cond:
            self.cond.notify_all()

    def argv(self):
        legacy_dev = self.legacy
        argv = [self.qemu, '-machine', self.machine, '-accel', 'tcg', '-m', '256',
                '-nodefaults', '-no-user-config', '-display', 'none',
                '-serial', 'stdio', '-monitor', 'none',
                '-chardev', f'socket,id=qmp0,path={self.sock}',
                '-mon', 'chardev=qmp0,mode=control',
                '-kernel', self.kernel,
                '-initrd', os.path.join(self.guest, 'initramfs.gz'),
                '-append', 'console=ttyS0 quiet loglevel=1 ' + self.append,
                '-device', f'virtio-net-pci,id=vnet0,netdev=net0,mac={MAC},romfile=',
                '-device', f'{legacy_dev},id=legacy0,netdev=net1,mac={MAC},romfile=',
                '-no-shutdown', '-S']
        if self.net:
            for netdev in self.net.netdevs():
                argv += ['-netdev', netdev]
        else:
            argv += ['-netdev', 'user,id=user0',
                     '-netdev', 'hubport,id=hp0,hubid=0,netdev=user0',
                     '-netdev', 'hubport,id=net0,hubid=0',
                     '-netdev', 'hubport,id=net1,hubid=0']
        for d in self.firmware:
            argv += ['-L', d]
        if self.tool:
            argv += ['-qmp', f'unix:{self.tool_sock},server=on,wait=off']
        elif not self.simulate:
            argv += ['-device', 'failover-pair,id=pair0,primary=vnet0,'
                     f'fallback=legacy0,fallback-delay-ms={self.delay_ms}'
                     + (',' + self.pair_props if self.pair_props else '')]
        return self.net.wrap(argv) if self.net else argv

    def tool_argv(self):
        return [sys.executable, self.tool, '--qmp', self.tool_sock,
                '--primary', 'vnet0', '--fallback', 'legacy0',
                '--delay-ms', str(self.delay_ms)]

    async def start(self):
        try:
            await self._start()
        except Fail as e:
            # An emulator without pvh.bin cannot boot vmlinux: use vmlinuz.
            if 'pvh.bin' not in str(e) or not self.kernel.endswith('vmlinux'):
                raise
            self.kernel = self.kernel[:-len('vmlinux')] + 'vmlinuz'
            await self._record('note', 'no pvh.bin: booting vmlinuz instead')
            self.qmp = None
            await self._start()

    async def _start(self):
        self.t0 = time.time()
        self.qmp = QMPClient(self.name)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        await self.qmp.start_server(self.sock)
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        accept = asyncio.ensure_future(self.qmp.accept())
        died = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait({accept, died}, timeout=60,
                                     return_when=asyncio.FIRST_COMPLETED)
        if accept not in done:
            accept.cancel()
            err = (await self.proc.stderr.read()).decode(errors='replace') \
                if died in done else ''
            raise Fail(f'QEMU did not connect to QMP: {err.strip()[-400:]}')
        died.cancel()
        self.tasks = [asyncio.ensure_future(f()) for f in
                      (self._read_console, self._read_stderr, self._read_events)]
        if self.simulate:
            await self._sim_links(False, False)
        if self.tool:
            await self._start_tool()
        await self.qmp.execute('cont')

    # -- the pair, kept by scripts/qmp/failover-policy.py (tool mode) ----------
    async def _start_tool(self):
        """Start the policy tool while QEMU is still stopped (-S), and wait
        for its first decision (both links down) so that the guest never
        sees a carrier the tool did not give."""
        env = dict(os.environ)
        if QEMU_PYTHON:   # a copy of the tool outside the tree finds qemu.qmp
            env['PYTHONPATH'] = os.pathsep.join(
                [QEMU_PYTHON] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
        await self._record('note', 'policy tool: ' + ' '.join(self.tool_argv()))
        self.tool_proc = await asyncio.create_subprocess_exec(
            *self.tool_argv(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.tool_tasks = [asyncio.ensure_future(self._read_tool_stdout()),
                           asyncio.ensure_future(self._read_tool_stderr())]
        await self.wait_for(lambda r: r.tool_started, TOOL_START_TIMEOUT,
                            "the policy tool's first decision (active=none)")

    def _tool_time(self, line):
        """The time of a tool line ('<ISO 8601 UTC> failover-policy: ...')."""
        try:
            t = datetime.fromisoformat(line.split(' ', 1)[0]).timestamp() - self.t0
        except ValueError:
            return self.now()
        return t if 0 <= t <= self.now() + 1 else self.now()

    async def _read_tool_stdout(self):
        while True:
            raw = await self.tool_proc.stdout.readline()
            if not raw:
                break
            line = raw.decode(errors='replace').rstrip()
            t = self._tool_time(line)
            _, _, msg = line.partition('failover-policy: ')
            await self._record('tool', msg or line, t)
            if msg.startswith('active='):
                active = msg[len('active='):].split()[0]
                self.tool_started = True
                if active != self.tool_active:
                    self.tool_active = active
                    # What the device would have sent; pair_events() and
                    # pair_settles() read these as they read the device's.
                    await self._record('event', {
                        'event': 'FAILOVER_PAIR_CHANGED', 'tool': True,
                        'data': {'device': 'pair0',
                                 'qom-path': '/machine/peripheral/pair0',
                                 'active': active}}, t)
        rc = await self.tool_proc.wait()
        self.tool_exited = True
        await self._record('note', f'policy tool exited with status {rc}')

    async def _read_tool_stderr(self):
        while True:
            raw = await self.tool_proc.stderr.readline()
            if not raw:
                return
            await self._record('toolerr', raw.decode(errors='replace').rstrip())

    async def stop_tool(self):
        """SIGTERM the tool; Fail unless it exits with status 0."""
        proc = self.tool_proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise Fail('the policy tool did not exit within 10 s of SIGTERM')
        # Let the readers drain its last lines.
        await asyncio.wait(self.tool_tasks, timeout=5)
        expect(proc.returncode == 0,
               f'the policy tool exited with status {proc.returncode}: '
               f'{self._tool_stderr_tail()}')

    def _tool_stderr_tail(self):
        err = [d for _, k, d in self.log if k == 'toolerr']
        return ' | '.join(err[-3:]) or '(no stderr)'

    async def stop(self):
        if self.tool_proc and self.tool_proc.returncode is None:
            self.tool_proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.tool_proc.wait(), 10)
            except asyncio.TimeoutError:
                self.tool_proc.kill()
                await self.tool_proc.wait()
        for t in self.tool_tasks:
            t.cancel()
        if self.proc and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.qmp.execute('quit'), 5)
            except (QMPError, asyncio.TimeoutError, OSError, EOFError):
                pass
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        try:
            await asyncio.wait_for(self.qmp.disconnect(), 5)
        except Exception:  # pylint: disable=broad-except
            pass
        for t in self.tasks:
            t.cancel()
        for sock in (self.sock, self.tool_sock):
            if os.path.exists(sock):
                os.unlink(sock)

    async def _read_console(self):
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                self.exited = True
                await self._record('note', 'console closed (QEMU exited)')
                return
            line = raw.decode(errors='replace').rstrip('\r\n')
            rec = parse_e2e(line)
            if rec is None:
                self.log.append((self.now(), 'console', line))
                continue
            await self._record('guest', rec)
            if self.simulate:
                await self._sim_guest_line(rec)

    async def _read_stderr(self):
        while True:
            raw = await self.proc.stderr.readline()
            if not raw:
                return
            self.log.append((self.now(), 'stderr',
                             raw.decode(errors='replace').rstrip()))

    async def _read_events(self):
        async for ev in self.qmp.events:
            ts = ev.get('timestamp', {})
            t = ts.get('seconds', 0) + ts.get('microseconds', 0) / 1e6 - self.t0
            if t < 0 or t > self.now() + 1:
                t = self.now()
            ev = {'event': ev['event'], 'data': dict(ev.get('data', {}))}
            if self.simulate and ev['event'] == 'RESET':
                self.sim.update(virtio=False, legacy=False)
                await self._sim_decide()
            await self._record('event', ev, t)

    # -- the pair, simulated with set_link (upstream QEMU only) -----------
    async def _sim_links(self, virtio_up, legacy_up):
        await self.qmp.execute('set_link', {'name': 'vnet0', 'up': virtio_up})
        await self.qmp.execute('set_link', {'name': 'legacy0', 'up': legacy_up})

    async def _sim_set_active(self, active):
        if self.sim['active'] != active:
            self.sim['active'] = active
            await self._record('event', {
                'event': 'FAILOVER_PAIR_CHANGED', 'simulated': True,
                'data': {'device': 'pair0', 'qom-path': '/machine/peripheral/pair0',
                         'active': active}})

    async def _sim_decide(self):
        if self.sim['timer']:
            self.sim['timer'].cancel()
            self.sim['timer'] = None
        if self.sim['virtio']:
            await self._sim_links(True, False)
            await self._sim_set_active('primary')
        elif self.sim['legacy']:
            await self._sim_links(False, False)
            if self.sim['active'] == 'primary':
                await self._sim_set_active('none')

            async def later():
                await asyncio.sleep(self.delay)
                self.sim['timer'] = None
                await self._sim_links(False, True)
                await self._sim_set_active('fallback')
            if self.sim['active'] != 'fallback':
                self.sim['timer'] = asyncio.ensure_future(later())
        else:
            await self._sim_links(False, False)
            await self._sim_set_active('none')

    async def _sim_guest_line(self, rec):
        if rec['what'] != 'carrier':
            return
        kind = 'virtio' if rec.get('driver') == 'virtio_net' else 'legacy'
        ready = rec.get('carrier') != 'gone'
        if self.sim[kind] != ready:
            self.sim[kind] = ready
            await self._sim_decide()

    # -- queries -----------------------------------------------------------
    async def active(self):
        if self.simulate:
            return self.sim['active']
        if self.tool:
            return self.tool_active
        return await self.qmp.execute('qom-get', {'path': '/machine/peripheral/pair0',
                                                  'property': 'active'})

    async def driver_status(self):
        """{'vnet0': status, 'legacy0': status} from query-driver-status."""
        if self.simulate:
            return None
        res = await self.qmp.execute('query-driver-status')
        out = {}
        for ent in res:
            path = ent.get('qom-path', '')
            for dev in ('vnet0', 'legacy0'):
                p = f'/machine/peripheral/{dev}'
                if ent.get('device') == dev or path == p or path.startswith(p + '/'):
                    out[dev] = ent['status']
        return out

    # -- waiting -----------------------------------------------------------
    async def wait_for(self, pred, timeout, what):
        """Wait until pred() is true; pred sees self.  Returns its value."""
        deadline = time.monotonic() + timeout
        async with self.cond:
            while True:
                v = pred(self)
                if v:
                    return v
                if self.exited:
                    raise Fail(f'QEMU exited while waiting for {what}')
                if self.tool_exited and self.tool_proc.returncode != 0:
                    raise Fail(f'the policy tool exited with status '
                               f'{self.tool_proc.returncode} while waiting for '
                               f'{what}: {self._tool_stderr_tail()}')
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail(f'timed out ({timeout:.0f} s) waiting for {what}')
                try:
                    await asyncio.wait_for(self.cond.wait(), left)
                except asyncio.TimeoutError:
                    pass

    def guest_line(self, pred, since=-1.0):
        for t, rec in self.lines:
            if t >= since and pred(rec):
                return t, rec
        return None

    def guest_lines(self, pred, since=-1.0, until=1e9):
        return [(t, r) for t, r in self.lines if since <= t <= until and pred(r)]

    async def wait_line(self, pred, timeout, what, since=-1.0):
        return await self.wait_for(lambda r: r.guest_line(pred, since),
                                   timeout, what)

    def pair_events(self, since=-1.0):
        return [(t, e['data'].get('active')) for t, e in self.events
                if e['event'] == 'FAILOVER_PAIR_CHANGED' and t >= since]

    def status_events(self, dev):
        p = f'/machine/peripheral/{dev}'
        out = []
        for t, e in self.events:
            if e['event'] != 'DRIVER_STATUS_CHANGED':
                continue
            d = e['data']
            path = d.get('qom-path', '')
            if d.get('device') == dev or path == p or path.startswith(p + '/'):
                out.append((t, d.get('status')))
        return out

    def dump(self, path):
        with open(path, 'w', encoding='utf-8') as f:
            f.write(f'# {self.name}: {" ".join(self.argv())}\n')
            if self.tool:
                f.write(f'# policy tool: {" ".join(self.tool_argv())}\n')
            for t, kind, data in sorted(self.log, key=lambda x: x[0]):
                f.write(f'{t:8.3f} {kind:7} {data}\n')


# -- predicates on guest lines ---------------------------------------------
def is_carrier(driver, value):
    return lambda r: (r['what'] == 'carrier' and r.get('driver') == driver and
                      r.get('carrier') == value)


def iface_of(run, driver, since=-1.0):
    hit = run.guest_line(lambda r: r['what'] == 'carrier' and
                         r.get('driver') == driver, since)
    return hit[1]['iface'] if hit else None


def line_is(what, **kv):
    def pred(r):
        return r['what'] == what and all(r.get(k) == v for k, v in kv.items())
    return pred


def ping_ok(iface):
    return lambda r: r['what'] == 'ping' and r.get('iface') == iface and 'ok' in r


def ping_any(iface):
    return lambda r: r['what'] == 'ping' and r.get('iface') == iface


def dhcp_any(iface):
    return lambda r: r['what'] == 'dhcp' and r.get('iface') == iface


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


async def traffic(run, driver, timeout, since=-1.0):
    """Wait for carrier, DHCP and ping on the interface of DRIVER."""
    if timeout > 30:
        # The boot may take long on a busy host; the link should not.
        await run.wait_line(line_is('boot'), timeout, "the guest's /init", since)
        timeout = 30
    _, rec = await run.wait_line(is_carrier(driver, '1'), timeout,
                                 f'carrier on the {driver} interface', since)
    iface = rec['iface']
    _, d = await run.wait_line(dhcp_any(iface), 30, f'DHCP on {iface} ({driver})', since)
    # The same address on either NIC: one identity across a switch
    ip = run.net.GUEST if run.net else '10.0.2.15'
    expect(d.get('ip') == ip, f'DHCP on {iface} ({driver}): {d}, expected {ip}')
    _, p = await run.wait_line(ping_any(iface), 30, f'ping on {iface} ({driver})', since)
    expect('ok' in p, f'ping of the router on {iface} ({driver}) failed')
    return iface


TOOL_REACT = 1.0   # tool mode: how long the tool may take to follow an event


async def check_qmp(run, active, statuses):
    """qom-get pair0 active and query-driver-status, as now.

    In tool mode "active" is the tool's last logged decision.  The tool
    follows QEMU's events over its own QMP connection, so it may lag the
    harness's view of the same event (e.g. RESET) a little: give it up to
    TOOL_REACT seconds to get there."""
    if run.tool:
        try:
            await run.wait_for(lambda r: r.tool_active == active, TOOL_REACT,
                               f'the policy tool deciding active={active}')
        except Fail:
            pass
    got = await run.active()
    expect(got == active, f'pair0 active is {got!r}, expected {active!r}')
    if run.simulate:
        return
    st = await run.driver_status()
    for dev, want in statuses.items():
        have = st.get(dev)
        ok = have in want if isinstance(want, (set, tuple, list)) else have == want
        expect(ok, f'query-driver-status: {dev} is {have!r}, expected {want!r} '
               f'(all: {st})')


async def check_fallback_delay(run, t_pair):
    """The fallback came at least about the delay after the legacy driver."""
    if run.simulate:
        return

    def ready_times(r):
        return [t for t, s in r.status_events('legacy0') if s == 'ready' and t <= t_pair]
    # DRIVER_STATUS_CHANGED is rate-limited per device (a burst of eight,
    # then one a second) but keeps the time stamp of the change: wait for
    # one that may have been held back.
    try:
        await run.wait_for(ready_times, 2.5, 'DRIVER_STATUS_CHANGED ready')
    except Fail:
        pass
    ready = ready_times(run)
    expect(ready, 'no DRIVER_STATUS_CHANGED ready for legacy0 before the fallback '
           f'({run.status_events("legacy0")}, fallback at {t_pair:.2f})')
    gap = t_pair - ready[-1]
    expect(gap >= FALLBACK_DELAY - 0.1,
           f'fallback came {gap:.2f} s after legacy0 ready, expected '
           f'>= {FALLBACK_DELAY} s')


async def pair_settles(run, last, timeout=3.0):
    """The pair's events once the last one is LAST (or TIMEOUT passed).

    QMP events can come a little after what they report: past a burst,
    the monitor holds DRIVER_STATUS_CHANGED and FAILOVER_PAIR_CHANGED back
    to one a second per device, keeping the time stamp."""
    try:
        await run.wait_for(lambda r: (r.pair_events() or [(0, None)])[-1][1] == last,
                           timeout, f'FAILOVER_PAIR_CHANGED {last}')
    except Fail:
        pass
    return [a for _, a in run.pair_events()]


def check_event_shapes(run):
    """Every event of the series carries the documented data."""
    for t, e in run.events:
        d = e['data']
        if e['event'] == 'FAILOVER_PAIR_CHANGED' and not e.get('simulated'):
            expect(d.get('device') == 'pair0' and
                   d.get('qom-path') == '/machine/peripheral/pair0' and
                   d.get('active') in ('none', 'primary', 'fallback'),
                   f'FAILOVER_PAIR_CHANGED at {t:.2f} s has data {d}')
        elif e['event'] == 'DRIVER_STATUS_CHANGED':
            expect(isinstance(d.get('qom-path'), str) and
                   d.get('status') in ('none', 'initializing', 'ready', 'failed'),
                   f'DRIVER_STATUS_CHANGED at {t:.2f} s has data {d}')


# -- scenarios --------------------------------------------------------------
# Each is (name, legacy device, kernel command line, coroutine(run)).
# Times in the guest's command line count from /init's start, or with a
# '+' from the first ping that went through (see guest/README.md).

async def sc_virtio_boot(run):
    iface = await traffic(run, 'virtio_net', BOOT_TIMEOUT)
    await run.wait_line(lambda r: r['what'] == 'carrier' and
                        r.get('driver') == '8139cp', 20, 'the rtl8139 interface')
    # Give a wrong fallback time to show itself.
    await asyncio.sleep(FALLBACK_DELAY + 1.0)
    expect(not run.guest_lines(is_carrier('8139cp', '1')),
           'the legacy NIC got carrier although virtio-net was ready')
    t_up = run.guest_line(is_carrier('virtio_net', '1'))[0]
    expect(not run.guest_lines(is_carrier('virtio_net', '0'), since=t_up + 1e-6),
           f'virtio-net ({iface}) lost carrier')
    await check_qmp(run, 'primary', {'vnet0': 'ready', 'legacy0': 'ready'})
    expect(await pair_settles(run, 'primary') == ['primary'],
           f'FAILOVER_PAIR_CHANGED: {run.pair_events()}, expected [primary]')
    if not run.simulate:
        expect(('ready' in [s for _, s in run.status_events('vnet0')]),
               f'no DRIVER_STATUS_CHANGED ready for vnet0: {run.status_events("vnet0")}')


def sc_legacy(driver):
    async def sc(run):
        iface = await traffic(run, driver, BOOT_TIMEOUT)
        first = run.guest_line(lambda r: r['what'] == 'carrier' and
                               r.get('driver') == driver)
        # The guest brings the interface up at once; the link should follow
        # about the fallback delay later (the guest polls every 100 ms).
        # A driver that is "ready" already at probe may have used up the
        # delay before the interface is up: then only QMP's times count.
        if first[1]['carrier'] == '0':
            t0 = float(first[1].get('t', 0))
            t1 = float(run.guest_line(is_carrier(driver, '1'))[1].get('t', 0))
            expect(t1 - t0 >= FALLBACK_DELAY - 0.2,
                   f'guest saw carrier {t1 - t0:.2f} s after bringing {iface} '
                   f'up, expected about {FALLBACK_DELAY} s')
        else:
            expect(not run.simulate, f'{iface} ({driver}) had carrier at once')
        expect(not run.guest_lines(lambda r: r.get('driver') == 'virtio_net'),
               'a virtio-net interface appeared without its driver')
        await check_qmp(run, 'fallback', {'vnet0': 'none', 'legacy0': 'ready'})
        acts = await pair_settles(run, 'fallback')
        pe = run.pair_events()
        expect(acts in (['fallback'], ['none', 'fallback']),
               f'FAILOVER_PAIR_CHANGED: {pe}, expected [fallback]')
        await check_fallback_delay(run, pe[-1][0])
    return sc


async def moves_to_virtio(run, leg, legacy, since):
    """From SINCE on, virtio-net carries the traffic and LEG, the interface
    of LEGACY's NIC, loses carrier; returns virtio-net's interface."""
    vif = await traffic(run, 'virtio_net', 30, since=since - 0.5)
    await run.wait_line(is_carrier(legacy, '0'), 10,
                        f'{leg} ({legacy}) losing carrier', since=since - 0.5)
    return vif


async def ends_on_primary(run):
    """Both drivers ready, the pair on the primary after the fallback."""
    await check_qmp(run, 'primary', {'vnet0': 'ready', 'legacy0': 'ready'})
    pe = await pair_settles(run, 'primary')
    expect(pe[:1] == ['fallback'] and pe[-1:] == ['primary'],
           f'FAILOVER_PAIR_CHANGED: {run.pair_events()}, expected fallback ... primary')


async def sc_virtio_later(run):
    leg = await traffic(run, '8139cp', BOOT_TIMEOUT)
    t_ping, _ = run.guest_line(ping_ok(leg))
    t_load, _ = await run.wait_line(line_is('load', mod='virtio_net'), 30,
                                    'the delayed load of virtio_net')
    expect(t_ping < t_load, 'virtio_net was loaded before the legacy NIC '
           'carried traffic (raise e2e.later)')
    vif = await moves_to_virtio(run, leg, '8139cp', t_load)
    await asyncio.sleep(FALLBACK_DELAY + 0.5)
    late = run.guest_lines(is_carrier('8139cp', '1'), since=t_load + 0.5)
    expect(not late, f'{leg} got carrier again while virtio-net ({vif}) was active')
    await ends_on_primary(run)


async def sc_virtio_bound(run):
    """virtio_net binds its NIC at probe, and the guest's network
    configuration names only the e1000 interface (an image made on an
    e1000 VM), until the guest brings the virtio interface up too."""
    leg = await traffic(run, 'e1000', BOOT_TIMEOUT)
    t_ping, _ = run.guest_line(ping_ok(leg))
    await check_qmp(run, 'fallback', {'vnet0': 'initializing',
                                      'legacy0': 'ready'})
    t_up, _ = await run.wait_line(line_is('ifup', driver='virtio_net'), 30,
                                  'the virtio interface brought up')
    expect(t_ping < t_up, 'the virtio interface came up before the legacy '
           'NIC carried traffic (raise e2e.ifup)')
    await moves_to_virtio(run, leg, 'e1000', t_up)
    await ends_on_primary(run)


async def sc_rmmod_virtio(run):
    vif = await traffic(run, 'virtio_net', BOOT_TIMEOUT)
    t_ping, _ = run.guest_line(ping_ok(vif))
    t_rm, rm = await run.wait_line(line_is('rmmod', mod='virtio_net'), 30,
                                   'rmmod virtio_net')
    expect('ok' in rm, f'rmmod virtio_net failed in the guest: {rm}')
    expect(t_ping < t_rm, 'virtio_net was removed before virtio-net carried '
           'traffic (raise e2e.rmmod)')
    await run.wait_line(lambda r: r['what'] == 'carrier' and r.get('iface') == vif and
                        r.get('carrier') == 'gone', 10, f'{vif} going away')
    leg = await traffic(run, '8139cp', 30, since=t_rm - 0.5)
    await check_qmp(run, 'fallback', {'vnet0': ('none', 'initializing'),
                                      'legacy0': 'ready'})
    acts = await pair_settles(run, 'fallback')
    pe = run.pair_events()
    expect(acts[:1] == ['primary'] and acts[-1:] == ['fallback'],
           f'FAILOVER_PAIR_CHANGED: {pe}, expected primary ... fallback')
    del leg


async def sc_reboot(run):
    vif = await traffic(run, 'virtio_net', BOOT_TIMEOUT)
    await check_qmp(run, 'primary', {'vnet0': 'ready'})
    t_reset, _ = await run.wait_for(
        lambda r: next(((t, e) for t, e in r.events if e['event'] == 'RESET'), None),
        40, 'the guest reboot (RESET event)')
    # Right after the reset, before the guest's kernel runs again.
    await check_qmp(run, 'none', {'vnet0': 'none', 'legacy0': 'none'})
    await run.wait_line(line_is('boot', n='2'), BOOT_TIMEOUT,
                        'the second boot (e2e.load2)', since=t_reset)
    first = await run.wait_line(lambda r: r['what'] == 'carrier' and
                                r.get('driver') == '8139cp', 30,
                                'the rtl8139 interface in the second boot', since=t_reset)
    expect(first[1]['carrier'] == '0', 'the legacy NIC had carrier right '
           'after the reboot (link not reset)')
    leg = await traffic(run, '8139cp', 30, since=t_reset)
    await check_qmp(run, 'fallback', {'vnet0': 'none', 'legacy0': 'ready'})
    acts = await pair_settles(run, 'fallback')
    pe = run.pair_events()
    # The guest's reboot may reset virtio-net before the machine reset
    # does: 'none' may come just before RESET.
    expect(acts[:1] == ['primary'] and 'none' in acts and
           acts[-1:] == ['fallback'] and pe[-1][0] > t_reset and
           acts.index('none') < len(acts) - 1,
           f'FAILOVER_PAIR_CHANGED: {pe} (reset at {t_reset:.2f}), '
           'expected primary, then none, then fallback after the reset')
    del vif, leg


async def sc_no_driver(run):
    t_boot, _ = await run.wait_line(line_is('boot'), BOOT_TIMEOUT, 'the guest /init')
    await run.wait_for(lambda r: r.now() > t_boot + 3 * FALLBACK_DELAY + 2.0, 10,
                       'a few seconds')
    expect(not run.guest_lines(lambda r: r['what'] == 'carrier'),
           'a network interface appeared without any driver')
    await check_qmp(run, 'none', {'vnet0': 'none', 'legacy0': 'none'})
    expect(all(a == 'none' for _, a in run.pair_events()),
           f'FAILOVER_PAIR_CHANGED: {run.pair_events()}, expected none')


def sc_silent_switch(announce):
    """A guest that sends nothing by itself, on the tap bridge: the host
    pings it over the legacy NIC, then virtio_net loads.  The bridge
    learned the guest's MAC on the legacy NIC's tap from its replies;
    with the announcement it moves to virtio-net's tap at the switch and
    the host reaches the guest again, without it stays where it was."""
    async def sc(run):
        legacy_tap, virtio_tap = TapNet.TAPS[1], TapNet.TAPS[0]
        await run.wait_line(line_is('static', ip=TapNet.GUEST), BOOT_TIMEOUT,
                            'the static address on the legacy interface')
        expect(await run.net.ping(10), 'the host got no answer over the legacy NIC')
        port = await run.net.fdb_port(MAC)
        expect(port == legacy_tap, f'the bridge forwards the guest to {port}, '
               f'expected {legacy_tap}')
        t_sw, _ = await run.wait_for(
            lambda r: next(((t, a) for t, a in r.pair_events() if a == 'primary'),
                           None), 60, 'the switch to virtio-net')
        await run.wait_line(line_is('static', ip=TapNet.GUEST), 10,
                            'the static address on the virtio-net interface',
                            since=t_sw - 0.5)
        if announce:
            port = await run.net.fdb_port(MAC)
            expect(port == virtio_tap, f'after the switch the bridge forwards '
                   f'the guest to {port}, expected {virtio_tap}')
            expect(await run.net.ping(2), 'the host got no answer over virtio-net '
                   'within 2 s of the switch')
        else:
            await asyncio.sleep(2)
            port = await run.net.fdb_port(MAC)
            expect(port == legacy_tap, f'without an announcement the bridge moved '
                   f'the guest to {port}: the guest sent something by itself, '
                   'so this run shows nothing')
            expect(not await run.net.ping(1), 'the host reached a guest that the '
                   'bridge forwards to a NIC whose link is down')
    return sc


SCENARIOS = [
    ('virtio-boot', 'rtl8139', 'e2e.load=virtio_net,8139cp e2e.off=60', sc_virtio_boot),
    ('legacy-rtl8139', 'rtl8139', 'e2e.load=8139cp e2e.off=60', sc_legacy('8139cp')),
    ('legacy-e1000', 'e1000', 'e2e.load=e1000 e2e.off=60', sc_legacy('e1000')),
    ('virtio-later', 'rtl8139', 'e2e.load=8139cp e2e.later=virtio_net@+2 e2e.off=60',
     sc_virtio_later),
    ('virtio-bound', 'e1000', 'e2e.load=virtio_net,e1000 '
     'e2e.ifup=virtio_net@+2 e2e.off=60', sc_virtio_bound),
    ('rmmod-virtio', 'rtl8139', 'e2e.load=virtio_net,8139cp e2e.rmmod=virtio_net@+2 '
     'e2e.off=60', sc_rmmod_virtio),
    ('reboot', 'rtl8139', 'e2e.load=virtio_net,8139cp e2e.reboot=+2 '
     'e2e.load2=8139cp e2e.off=60', sc_reboot),
    ('no-driver', 'rtl8139', 'e2e.load= e2e.off=60', sc_no_driver),
]

# On the tap bridge only, in the real mode only: (name, legacy device,
# kernel command line, coroutine(run), failover-pair properties)
SILENT = f'ipv6.disable=1 e2e.static={TapNet.GUEST}/24 e2e.load=8139cp ' \
    'e2e.later=virtio_net@10 e2e.off=60'
TAP_SCENARIOS = [
    ('silent-announce', 'rtl8139', SILENT, sc_silent_switch(True), ''),
    ('silent-no-announce', 'rtl8139', SILENT, sc_silent_switch(False),
     'announce=off'),
]


async def run_scenario(args, sc, mode, sem, logdir, label=False):
    """One scenario in MODE (real, sim or tool); LABEL: name the mode in
    the result line and the log's file name (several modes in one run)."""
    name, legacy, append, fn, *props = sc
    simulate = mode == 'sim'
    tag = f'{name}.{mode}' if label else name
    shown = f'{name} [{mode}]' if label or mode == 'tool' else name
    async with sem:
        start = time.monotonic()
        net = TapNet(logdir) if args.net == 'tap' else None
        run = Run(args.qemu, args.guest, name, append, legacy=legacy,
                  simulate=simulate, workdir=logdir, verbose=args.verbose,
                  kernel=args.kernel, firmware=args.firmware or (),
                  machine=args.machine,
                  tool=args.policy_tool if mode == 'tool' else None, tag=tag,
                  net=net, pair_props=props[0] if props else '')
        err = None
        try:
            if net:
                await net.setup()
            await run.start()
            await asyncio.wait_for(fn(run), args.timeout)
            check_event_shapes(run)
            await run.stop_tool()
        except Fail as e:
            err = str(e)
            if not simulate and run.proc and run.proc.returncode is None:
                try:   # what QMP says now, to help reading the failure
                    st = await asyncio.wait_for(run.driver_status(), 5)
                    act = await asyncio.wait_for(run.active(), 5)
                    who = 'tool' if run.tool else 'pair0'
                    err += f' [now: {who} active={act}, driver status {st}]'
                except Exception:  # pylint: disable=broad-except
                    pass
        except asyncio.TimeoutError:
            err = f'scenario took longer than {args.timeout:.0f} s'
        except (QMPError, OSError) as e:
            err = f'{type(e).__name__}: {e}'
        except Exception as e:  # pylint: disable=broad-except
            import traceback
            traceback.print_exc()
            err = f'harness error {type(e).__name__}: {e}'
        finally:
            await run.stop()
            if net:
                await net.cleanup()
        dt = time.monotonic() - start
        log = os.path.join(logdir, f'{tag}.log')
        run.dump(log)
        sim = ' (simulated pair)' if simulate else ''
        if err is None:
            print(f'{shown}: ok{sim} ({dt:.1f} s)', flush=True)
        else:
            print(f'{shown}: FAIL: {err}{sim} ({dt:.1f} s; log {log})', flush=True)
        return err is None


def resolve_modes(args):
    """--mode (comma-separated) and --with-tool -> list of real|sim|tool."""
    modes = []
    for m in args.mode.split(','):
        m = m.strip()
        if m not in MODES:
            raise SystemExit(f'e2e: unknown mode {m!r}; known: {", ".join(MODES)}')
        if m == 'auto':
            m = ('sim' if not has_failover_pair(args.qemu) else
                 'real' if args.net == 'tap' else 'tool')
        if m == 'real' and args.net == 'user':
            raise SystemExit('e2e: the pair in QEMU on user networking is '
                             'tests/functional/x86_64/test_failover_pair.py; '
                             'here: --net tap, or --mode tool or sim')
        if m not in modes:
            modes.append(m)
    if args.with_tool and 'tool' not in modes:
        modes.append('tool')
    if 'tool' in modes and not os.path.isfile(args.policy_tool):
        raise SystemExit(f'e2e: no policy tool at {args.policy_tool} (--policy-tool)')
    return modes


async def amain(args):
    # SIGTERM (a timeout in CI): unwind, so that every scenario stops its
    # QEMU and removes its network namespace
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM,
                                                  asyncio.current_task().cancel)
    modes = resolve_modes(args)
    if 'sim' in modes:
        print('e2e: simulating the pair with set_link in sim mode; QMP checks '
              'of the series are skipped there', flush=True)
    if 'tool' in modes:
        print(f'e2e: tool mode: no failover-pair device, {args.policy_tool} '
              'keeps the pair over QMP', flush=True)
    known = SCENARIOS + (TAP_SCENARIOS if args.net == 'tap' else [])
    chosen = [s for s in known if not args.scenario or s[0] in args.scenario]
    unknown = set(args.scenario or ()) - {s[0] for s in known}
    if unknown:
        raise SystemExit(f'e2e: unknown scenario(s) {sorted(unknown)}; '
                         f'known: {[s[0] for s in known]}')
    if args.net == 'tap':
        if os.geteuid() != 0:
            raise SystemExit('e2e: --net tap needs root (network namespaces)')
        await TapNet.remove_stale()
    logdir = args.logdir or tempfile.mkdtemp(prefix='e2e-logs-')
    os.makedirs(logdir, exist_ok=True)
    sem = asyncio.Semaphore(args.jobs)
    t0 = time.monotonic()
    label = len(modes) > 1
    # Scenario by scenario, each in every mode: the slow ones of each mode
    # do not all queue at the end.
    results = await asyncio.gather(*(run_scenario(args, s, m, sem, logdir, label)
                                     for s in chosen for m in modes
                                     if s in SCENARIOS or m == 'real'))
    passed = sum(results)
    failed = len(results) - passed
    keep = args.logdir or failed or args.keep_logs
    if not keep:
        shutil.rmtree(logdir, ignore_errors=True)
    where = f'logs in {logdir}' if keep else 'logs removed'
    print(f'e2e: {where}; {time.monotonic() - t0:.0f} s wall', flush=True)
    print(f'e2e: {passed} passed, {failed} failed', flush=True)
    return 1 if failed else 0


def add_machine_args(ap):
    """The emulator and guest options that e2e.py and demo.py share."""
    ap.add_argument('--qemu', default=os.path.join(HERE, '..', 'build',
                                                   'qemu-system-x86_64'),
                    help='the emulator (default: ../build/qemu-system-x86_64)')
    ap.add_argument('--guest', default=os.path.expanduser(
        '~/.cache/qemu-driver-status/guest/guest'),
                    help="build-glue/guest/build.sh's output folder (or the "
                    'CACHE_DIR given to it)')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    add_machine_args(ap)
    ap.add_argument('--scenario', action='append',
                    help='run only this scenario (repeatable); default all')
    ap.add_argument('--jobs', type=int, default=2, help='QEMUs at once (default 2)')
    ap.add_argument('--mode', default='auto', metavar='MODE[,MODE...]',
                    help='real: use -device failover-pair (--net tap only); '
                    'sim: simulate it with set_link; tool: run '
                    'scripts/qmp/failover-policy.py over a second QMP socket '
                    'instead of the device; auto: real with --net tap, tool '
                    'without, sim if the emulator has no pair.  Several, '
                    'comma-separated (e.g. tool,sim), run every scenario in '
                    'each mode')
    ap.add_argument('--with-tool', action='store_true',
                    help='also run every scenario in tool mode (same as '
                    'adding ",tool" to --mode)')
    ap.add_argument('--policy-tool', default=DEFAULT_POLICY_TOOL, metavar='PATH',
                    help='the failover policy tool for tool mode (default: '
                    '%(default)s)')
    ap.add_argument('--timeout', type=float, default=150.0,
                    help='per scenario, seconds')
    ap.add_argument('--machine', choices=('pc', 'q35'), default='pc')
    ap.add_argument('--net', choices=('user', 'tap'), default='user',
                    help='user: both NICs on one slirp backend through a hub; '
                    'tap: each on its own tap in a bridge, in a network '
                    'namespace with a DHCP server (root only); adds the '
                    'scenarios of a guest that sends nothing by itself')
    ap.add_argument('--kernel', choices=('auto', 'vmlinux', 'vmlinuz'),
                    default='auto', help='vmlinux (PVH, faster) when the '
                    'guest has it, else vmlinuz')
    ap.add_argument('-L', '--firmware', action='append',
                    help="QEMU's -L: where to look for firmware (repeatable); "
                    'only for an emulator that does not find its own')
    ap.add_argument('--logdir', help='keep per-scenario logs here')
    ap.add_argument('--keep-logs', action='store_true')
    ap.add_argument('--list', action='store_true', help='list scenarios')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args()
    if args.list:
        for s in SCENARIOS + (TAP_SCENARIOS if args.net == 'tap' else []):
            print(s[0])
        return 0
    args.qemu = os.path.abspath(args.qemu)
    if not os.access(args.qemu, os.X_OK):
        raise SystemExit(f'e2e: no emulator at {args.qemu}')
    args.guest = find_guest(args.guest)
    args.policy_tool = os.path.abspath(args.policy_tool)
    try:
        return asyncio.run(amain(args))
    except asyncio.CancelledError:
        print('e2e: stopped by SIGTERM; cleaned up', flush=True)
        return 128 + signal.SIGTERM


if __name__ == '__main__':
    sys.exit(main())
