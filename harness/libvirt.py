#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The failover pair through libvirt, as the docs show it.

The domain is the XML of docs/system/failover-pair.rst ("A pair on a
bridge with libvirt") as the docs write it, with what a real domain adds
where they write "...": a name, memory, the e2e test guest's kernel,
initramfs and command line, and, in <devices>, the built emulator and a
serial port whose output goes to a file.  Only type='kvm' becomes
type='qemu' (TCG).

Debian's libvirtd runs as root, but as one of its own: in a network
namespace of e2e.TapNet's (the bridge br0 of the docs' XML, with dnsmasq
as its DHCP server), and in a mount namespace of its own where /run,
/var and /etc/libvirt are folders of a temporary directory.  Nothing it
makes lands on the host, and removing the namespace and the directory
removes all of it, also when a scenario fails.  virsh reaches it through
its socket in that directory.

Scenarios:

- virtio: the guest loads virtio_net and e1000 and reaches its router
  through virtio-net; query-failover-pairs and query-driver-status
  through "virsh qemu-monitor-command", FAILOVER_PAIR_CHANGED through
  "virsh qemu-monitor-event";
- fallback: the guest loads e1000 only and reaches its router through it;
- save-mid-delay: the guest's e1000 driver is ready and the pair waits
  its delay when "virsh save" stops the VM; "virsh restore" goes on, and
  the guest reaches its router through the e1000;
- detach-save: "virsh detach-device-alias" of the fallback, then save
  and restore: the restored pair is dissolved and the host reaches the
  guest through virtio-net.

    /usr/bin/python3 harness/libvirt.py --qemu PATH --guest DIR
                                        [--scenario NAME]...
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no __pycache__ in harness/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                    'docs', 'system', 'failover-pair.rst')
SECTION = 'A pair on a bridge with libvirt'
BOOT_TIMEOUT = 180.0        # libvirt's start to the guest's ping, TCG
LIBVIRTD_TIMEOUT = 30.0

QEMU_CONF = '''\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
'''
LIBVIRTD_CONF = '''\
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
'''


def docs_domain_xml():
    """The XML block of the docs' libvirt section, as written there."""
    text = open(DOCS).read()
    start = text.index(SECTION)
    start = text.index('.. code-block:: xml', start)
    lines = text[start:].splitlines()[1:]
    block = []
    for line in lines:
        if line.strip() and not line.startswith('    '):
            break
        block.append(line[4:])
    return '\n'.join(block).strip() + '\n'


def domain_xml(name, qemu, guest, workdir, load):
    """The docs' domain, filled in for this run."""
    xml = docs_domain_xml()
    if xml.count("<domain type='kvm'") != 1 or xml.count('  ...\n') != 1:
        raise e2e.Fail("the docs' XML has no <domain type='kvm'> or no "
                       "'...' line to fill in")
    console = os.path.join(workdir, f'{name}.console')
    kernel = os.path.join(guest, 'vmlinuz')
    initrd = os.path.join(guest, 'initramfs.gz')
    head = f'''\
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet loglevel=1 e2e.off=600 \
e2e.load={load}</cmdline>
  </os>
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
'''
    devices = f'''\
    <emulator>{qemu}</emulator>
    <serial type='file'>
      <source path='{console}' append='on'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
'''
    xml = xml.replace("<domain type='kvm'", "<domain type='qemu'")
    xml = xml.replace('  ...\n', head)
    xml = xml.replace('  <devices>\n', '  <devices>\n' + devices, 1)
    return xml, console


class Libvirtd:
    """Debian's libvirtd, with its state in WORKDIR, in NET's namespace."""

    def __init__(self, net, workdir):
        self.net = net
        self.root = os.path.join(workdir, 'libvirt')
        self.proc = None
        self.uri = ('qemu:///system?socket=' +
                    os.path.join(self.root, 'run', 'libvirt', 'libvirt-sock'))

    async def start(self):
        for d in ('etc', 'run/libvirt', 'var/lib/libvirt/qemu',
                  'var/cache/libvirt/qemu', 'var/log/libvirt/qemu',
                  'var/tmp'):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        os.symlink('/run', os.path.join(self.root, 'var', 'run'))
        with open(os.path.join(self.root, 'etc', 'qemu.conf'), 'w') as f:
            f.write(QEMU_CONF)
        with open(os.path.join(self.root, 'etc', 'libvirtd.conf'), 'w') as f:
            f.write(LIBVIRTD_CONF)
        script = ' && '.join([
            'set -e',
            f'mount --bind {self.root}/etc /etc/libvirt',
            f'mount --bind {self.root}/run /run',
            f'mount --bind {self.root}/var /var',
            'exec libvirtd --config /etc/libvirt/libvirtd.conf'])
        self.proc = await asyncio.create_subprocess_exec(
            *self.net.wrap(['unshare', '--mount', '--propagation', 'private',
                            'sh', '-c', script]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + LIBVIRTD_TIMEOUT
        while await self.virsh('list', '--all', check=False) is None:
            if self.proc.returncode is not None or \
                    time.monotonic() > deadline:
                raise e2e.Fail('libvirtd did not start: ' + self.log_tail())
            await asyncio.sleep(0.2)

    def log_tail(self):
        path = os.path.join(self.root, 'var', 'log', 'libvirt',
                            'libvirtd.log')
        try:
            with open(path) as f:
                return ''.join(f.readlines()[-5:]).strip()
        except OSError:
            return '(no libvirtd.log)'

    async def virsh(self, *args, check=True):
        return await e2e.command('virsh', '-q', '-c', self.uri, *args,
                                 check=check)

    async def qmp(self, dom, command):
        out = await self.virsh('qemu-monitor-command', dom,
                               json.dumps({'execute': command}))
        return json.loads(out)['return']

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Domain:
    """A domain of the docs' XML on LIBVIRTD, booting the guest with LOAD."""

    count = 0

    def __init__(self, libvirtd, args, workdir, load):
        Domain.count += 1
        self.libvirtd = libvirtd
        self.name = f'fo-libvirt-{os.getpid()}-{Domain.count}'
        self.xml, self.console = domain_xml(self.name, args.qemu, args.guest,
                                            workdir, load)
        self.path = os.path.join(workdir, f'{self.name}.xml')
        with open(self.path, 'w') as f:
            f.write(self.xml)
        self.events = None

    async def define(self):
        await self.libvirtd.virsh('define', self.path)

    async def start(self, *events):
        """Start it, with qemu-monitor-event listening for EVENTS."""
        await self.libvirtd.virsh('start', '--paused', self.name)
        if events:
            # virsh writes to a pipe in blocks: make it write each line
            argv = ['stdbuf', '-oL', 'virsh', '-q', '-c', self.libvirtd.uri,
                    'qemu-monitor-event', self.name, '--loop']
            for ev in events:
                argv += ['--event', ev]
            self.events = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL)
            # qemu-monitor-event says nothing once it listens: give it time
            await asyncio.sleep(1.0)
        await self.libvirtd.virsh('resume', self.name)

    async def event(self, name, pred, timeout):
        """The data of the next event NAME for which PRED holds."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise e2e.Fail(f'no {name} event within {timeout:.0f} s; '
                               f'saw {seen}')
            try:
                line = await asyncio.wait_for(self.events.stdout.readline(),
                                              left)
            except asyncio.TimeoutError:
                continue
            if not line:
                raise e2e.Fail('qemu-monitor-event ended')
            seen.append(line.decode().strip())
            m = re.match(r"event (\S+) at \S+ for domain '[^']*': (.*)$",
                         line.decode().strip())
            if m and m.group(1) == name:
                data = json.loads(m.group(2))
                if pred(data):
                    return data

    async def console_wait(self, text, timeout=BOOT_TIMEOUT, fail=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(self.console, errors='replace') as f:
                    out = f.read()
            except OSError:
                out = ''
            if text in out:
                return
            if fail and fail in out:
                raise e2e.Fail(f'the guest said "{fail}"')
            await asyncio.sleep(0.2)
        raise e2e.Fail(f'the guest did not say "{text}" within '
                       f'{timeout:.0f} s')

    async def pair(self):
        pairs = await self.libvirtd.qmp(self.name, 'query-failover-pairs')
        expect(len(pairs) == 1, f'query-failover-pairs: {pairs}')
        return pairs[0]

    async def status(self, device):
        for s in await self.libvirtd.qmp(self.name, 'query-driver-status'):
            if s.get('device') == device:
                return s['status']
        return None

    async def destroy(self):
        if self.events and self.events.returncode is None:
            self.events.kill()
            await self.events.wait()
        await self.libvirtd.virsh('destroy', self.name, check=False)
        await self.libvirtd.virsh('undefine', self.name, check=False)


def expect(cond, msg):
    if not cond:
        raise e2e.Fail(msg)


async def sc_virtio(dom):
    await dom.start('FAILOVER_PAIR_CHANGED')
    await dom.console_wait('driver=virtio_net ok',
                           fail='driver=virtio_net fail')
    ev = await dom.event('FAILOVER_PAIR_CHANGED',
                         lambda d: d.get('active') == 'primary', 30)
    expect(ev.get('device') == 'pair0', f'event of another device: {ev}')
    pair = await dom.pair()
    expect(pair['formed'] and pair['active'] == 'primary',
           f'query-failover-pairs: {pair}')
    expect(pair['primary']['link-up'] and not pair['fallback']['link-up'],
           f'links: {pair}')
    expect(await dom.status('ua-vnet0') == 'ready', 'ua-vnet0 not ready')


async def sc_fallback(dom):
    await dom.start()
    await dom.console_wait('driver=e1000 ok', fail='driver=e1000 fail')
    pair = await dom.pair()
    expect(pair['active'] == 'fallback', f'query-failover-pairs: {pair}')
    expect(await dom.status('ua-legacy0') == 'ready', 'ua-legacy0 not ready')
    expect(await dom.status('ua-vnet0') == 'none', 'ua-vnet0 has a driver')


async def sc_save_mid_delay(dom, workdir):
    lv = dom.libvirtd
    for attempt in range(3):
        await dom.start('DRIVER_STATUS_CHANGED')
        await dom.event('DRIVER_STATUS_CHANGED',
                        lambda d: d.get('device') == 'ua-legacy0' and
                        d.get('status') == 'ready', BOOT_TIMEOUT)
        await lv.virsh('suspend', dom.name)
        if (await dom.pair())['active'] == 'none':
            expect(await dom.status('ua-legacy0') == 'ready',
                   'ua-legacy0 not ready')
            print(f'save-mid-delay: stopped inside the delay at boot '
                  f'{attempt + 1}', flush=True)
            break
        # The delay ran out before the VM stopped: boot again
        await lv.virsh('destroy', dom.name)
        dom.events.kill()
        await dom.events.wait()
    else:
        raise e2e.Fail('could not stop the VM inside the fallback delay')
    state = os.path.join(workdir, f'{dom.name}.save')
    await lv.virsh('save', dom.name, state)
    # Saved paused, it would come back paused
    await lv.virsh('restore', state, '--running')
    await dom.console_wait('driver=e1000 ok', fail='driver=e1000 fail')
    pair = await dom.pair()
    expect(pair['active'] == 'fallback', f'after restore: {pair}')
    os.unlink(state)


async def sc_detach_save(dom, workdir):
    lv = dom.libvirtd
    await dom.start()
    await dom.console_wait('driver=virtio_net ok',
                           fail='driver=virtio_net fail')
    await lv.virsh('detach-device-alias', dom.name, 'ua-legacy0', '--live')
    deadline = time.monotonic() + 60
    while (await dom.pair())['formed']:
        expect(time.monotonic() < deadline, 'the fallback did not leave')
        await asyncio.sleep(0.5)
    state = os.path.join(workdir, f'{dom.name}.save')
    await lv.virsh('save', dom.name, state)
    await lv.virsh('restore', state)
    pair = await dom.pair()
    expect(not pair['formed'] and pair['active'] == 'none',
           f'after restore: {pair}')
    expect(pair['primary'].get('link-up'), f'after restore: {pair}')
    expect(await dom.libvirtd.net.ping(30), 'the host cannot reach the guest')
    os.unlink(state)


SCENARIOS = {
    'virtio': ('virtio_net,e1000', sc_virtio),
    'fallback': ('e1000', sc_fallback),
    'save-mid-delay': ('e1000', sc_save_mid_delay),
    'detach-save': ('virtio_net,e1000', sc_detach_save),
}


async def run(args, names):
    # SIGTERM (a timeout in CI): unwind, so that the domains, libvirtd and
    # the namespace go away as after a failure
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGTERM, asyncio.current_task().cancel)
    await e2e.TapNet.remove_stale()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix='fo-libvirt-') as workdir:
        net = e2e.TapNet(workdir)
        libvirtd = Libvirtd(net, workdir)
        try:
            await net.setup()
            await libvirtd.start()
            for name in names:
                load, fn = SCENARIOS[name]
                dom = Domain(libvirtd, args, workdir, load)
                start = time.monotonic()
                try:
                    await dom.define()
                    if fn in (sc_save_mid_delay, sc_detach_save):
                        await fn(dom, workdir)
                    else:
                        await fn(dom)
                    passed += 1
                    print(f'{name}: ok ({time.monotonic() - start:.1f} s)',
                          flush=True)
                except e2e.Fail as e:
                    failed += 1
                    print(f'{name}: FAIL: {e}', flush=True)
                    try:
                        with open(dom.console, errors='replace') as f:
                            print(''.join(f.readlines()[-15:]), flush=True)
                    except OSError:
                        pass
                finally:
                    await dom.destroy()
        except e2e.Fail as e:
            failed += 1
            print(f'libvirt: FAIL: {e}', flush=True)
        finally:
            await libvirtd.stop()
            await net.cleanup()
    print(f'libvirt: {passed} passed, {failed} failed', flush=True)
    return failed == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--guest', required=True)
    ap.add_argument('--scenario', action='append', choices=list(SCENARIOS))
    args = ap.parse_args()
    args.qemu = os.path.abspath(args.qemu)
    args.guest = e2e.find_guest(os.path.abspath(args.guest))
    if os.geteuid() != 0:
        raise SystemExit('libvirt: needs root (a libvirtd of its own)')
    for prog in ('libvirtd', 'virsh', 'unshare', 'dnsmasq'):
        if not shutil.which(prog):
            raise SystemExit(f'libvirt: {prog} not found (make deps)')
    try:
        ok = asyncio.run(run(args, args.scenario or list(SCENARIOS)))
    except asyncio.CancelledError:
        print('libvirt: stopped by SIGTERM; cleaned up', flush=True)
        sys.exit(128 + signal.SIGTERM)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
