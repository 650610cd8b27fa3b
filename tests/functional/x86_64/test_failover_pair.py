#!/usr/bin/env python3
#
# Functional test of -device failover-pair with a Linux guest
#
# SPDX-License-Identifier: GPL-2.0-or-later

"""A Linux guest with a virtio-net NIC and a legacy NIC in a failover pair.

Both NICs share one MAC address and one user-mode network (a hub).  The
guest's /init brings up every interface it finds (those of the drivers
e2e.ifup names only later), runs DHCP and pings the gateway on each one
that has carrier, and prints a line for each of these
facts on the serial console ("E2E iface=eth0 driver=virtio_net carrier=1",
"E2E ping iface=eth0 driver=virtio_net ok", ...); a shell on the same
console takes the test's commands (modprobe, rmmod, reboot -f, and
e2e-link DRIVER, which prints that driver's carrier).  Each test checks
the guest's view, QMP's view (query-driver-status, the pair's "active"
property) and the pair's FAILOVER_PAIR_CHANGED events.
"""

import time

from qemu_test import QemuSystemTest, Asset
from qemu_test import exec_command, exec_command_and_wait_for_pattern
from qemu_test import wait_for_console_pattern


MAC = '52:54:00:12:34:56'
FALLBACK_DELAY = 0.5
LEGACY_DRIVERS = {'rtl8139': '8139cp', 'e1000': 'e1000', 'e1000e': 'e1000e',
                  'igb': 'igb', 'vmxnet3': 'vmxnet3'}


def stamp(event):
    return event['timestamp']['seconds'] + \
        event['timestamp']['microseconds'] / 1e6


class FailoverPair(QemuSystemTest):
    """Which NIC the pair gives the link to, as the guest's drivers come
    and go."""

    timeout = 300

    # Debian 12's kernel (linux-image-6.1.0-50-amd64 6.1.176-1, uncompressed
    # for a PVH boot) and a busybox initramfs with the NIC drivers and the
    # /init described above.  They are built from Debian's packages, the
    # same bytes on every machine, by the driver status project's
    # "make guest", which puts them in this cache: there is no address to
    # download them from.
    ASSET_KERNEL = Asset(
        'make guest: vmlinux',
        'e073b7cd71a8c37569e03b4080a69cfce606a89f3ce8a5848fd1e4eaeea5d771')
    ASSET_INITRD = Asset(
        'make guest: initramfs.gz',
        '9b2dffc52320586e2d258185e80bd81d084bc22bee7508cc996565a851c8f702')

    def setUp(self):
        super().setUp()
        self.events = []

    def launch(self, load, legacy='rtl8139', extra='', machine='pc'):
        """Boot with the drivers LOAD (comma-separated) loaded by /init."""
        self.set_machine(machine)
        self.require_device('failover-pair')
        self.require_netdev('user')
        self.vm.set_console()
        self.vm.add_args(
            '-nodefaults', '-m', '256',
            '-kernel', self.ASSET_KERNEL.fetch(),
            '-initrd', self.ASSET_INITRD.fetch(),
            '-append', f'console=ttyS0 quiet loglevel=1 e2e.shell=1 '
                       f'e2e.load={load} {extra}',
            '-netdev', 'user,id=user0',
            '-netdev', 'hubport,id=hp0,hubid=0,netdev=user0',
            '-netdev', 'hubport,id=net0,hubid=0',
            '-netdev', 'hubport,id=net1,hubid=0',
            '-device', f'virtio-net-pci,id=vnet0,netdev=net0,mac={MAC},'
                       'romfile=',
            '-device', f'{legacy},id=legacy0,netdev=net1,mac={MAC},romfile=',
            '-device', 'failover-pair,id=pair0,primary=vnet0,'
                       f'fallback=legacy0,'
                       f'fallback-delay-ms={int(FALLBACK_DELAY * 1000)}')
        self.vm.launch()
        wait_for_console_pattern(self, 'E2E boot n=1')

    def wait_traffic(self, driver, failure=None):
        """DHCP and a ping of the gateway went through DRIVER's NIC."""
        wait_for_console_pattern(self, f'driver={driver} ok',
                                 failure or f'driver={driver} fail')

    def assert_carrier(self, driver, carrier):
        """DRIVER's interface has CARRIER ('0', '1', or 'none' for no such
        interface), as the guest's e2e-link prints it."""
        exec_command_and_wait_for_pattern(self, f'e2e-link {driver}',
                                          f'E2E link driver={driver} carrier=')
        rest = wait_for_console_pattern(self, ' t=').decode()
        self.assertEqual(rest.split()[0], carrier,
                         f'carrier of the {driver} interface')

    def assert_pair(self, active, **status):
        """The pair's active NIC and the drivers' status, as QMP has them
        now; a tuple in STATUS allows any of its values."""
        got = self.vm.cmd('qom-get', path='/machine/peripheral/pair0',
                          property='active')
        self.assertEqual(got, active)
        have = {i.get('device'): i['status']
                for i in self.vm.cmd('query-driver-status')}
        for dev, want in status.items():
            want = want if isinstance(want, tuple) else (want,)
            self.assertIn(have.get(dev), want,
                          f'query-driver-status of {dev}: {have}')

    def collect_events(self):
        """All events so far, in the order QEMU sent them (get_qmp_events
        gives those that event_wait() passed over after newer ones)."""
        self.events += self.vm.get_qmp_events(wait=False)
        self.events.sort(key=stamp)

    def pair_events(self, last, timeout=5.0):
        """FAILOVER_PAIR_CHANGED as (time, active), once the last one is
        LAST: the monitor may hold an event back (rate limit), keeping its
        time stamp."""
        end = time.monotonic() + timeout
        while True:
            self.collect_events()
            changes = [(stamp(e), e['data']['active']) for e in self.events
                       if e['event'] == 'FAILOVER_PAIR_CHANGED']
            if (changes and changes[-1][1] == last) or \
               time.monotonic() > end:
                return changes
            time.sleep(0.1)

    def status_times(self, device, status):
        """When DRIVER_STATUS_CHANGED said DEVICE's driver had STATUS."""
        self.collect_events()
        return [stamp(e) for e in self.events
                if e['event'] == 'DRIVER_STATUS_CHANGED' and
                e['data'].get('device') == device and
                e['data']['status'] == status]

    def test_virtio_at_boot(self):
        self.launch('virtio_net,8139cp')
        self.wait_traffic('virtio_net', failure='driver=8139cp carrier=1')
        # Long enough for a wrong fallback to show itself
        time.sleep(FALLBACK_DELAY + 1.0)
        self.assert_carrier('8139cp', '0')
        self.assert_carrier('virtio_net', '1')
        self.assert_pair('primary', vnet0='ready', legacy0='ready')
        self.assertEqual([a for _, a in self.pair_events('primary')],
                         ['primary'])

    def check_legacy_only(self, legacy, machine='pc'):
        driver = LEGACY_DRIVERS[legacy]
        self.launch(driver, legacy=legacy, machine=machine)
        self.wait_traffic(driver, failure='driver=virtio_net')
        self.assert_carrier('virtio_net', 'none')
        self.assert_pair('fallback', vnet0='none', legacy0='ready')
        changes = self.pair_events('fallback')
        self.assertIn([a for _, a in changes],
                      (['fallback'], ['none', 'fallback']))
        # The link came the fallback delay after the driver was ready (a
        # tenth of a second for the time stamps taken at different places)
        ready = [t for t in self.status_times('legacy0', 'ready')
                 if t <= changes[-1][0]]
        self.assertTrue(ready, 'no DRIVER_STATUS_CHANGED ready for legacy0')
        self.assertGreaterEqual(changes[-1][0] - ready[-1],
                                FALLBACK_DELAY - 0.1)

    def test_legacy_only_rtl8139(self):
        self.check_legacy_only('rtl8139')

    def test_legacy_only_e1000(self):
        self.check_legacy_only('e1000')

    def load_virtio_late(self, driver):
        """The guest loads virtio_net while DRIVER's NIC has the link:
        virtio-net takes over, the other NIC loses carrier."""
        exec_command_and_wait_for_pattern(
            self, 'modprobe -a virtio_pci virtio_net', 'driver=virtio_net ok')
        self.assert_carrier(driver, '0')
        self.assert_pair('primary', vnet0='ready', legacy0='ready')
        changes = [a for _, a in self.pair_events('primary')]
        self.assertEqual(changes[:1], ['fallback'])
        self.assertEqual(changes[-1:], ['primary'])

    def check_q35_model(self, legacy):
        """The NIC a q35 guest without virtio drivers gets, then virtio-net
        when its driver comes."""
        self.check_legacy_only(legacy, machine='q35')
        self.load_virtio_late(LEGACY_DRIVERS[legacy])

    def test_q35_e1000e(self):
        self.check_q35_model('e1000e')

    def test_q35_igb(self):
        self.check_q35_model('igb')

    def test_q35_vmxnet3(self):
        self.check_q35_model('vmxnet3')

    def test_virtio_loaded_late(self):
        self.launch('8139cp')
        self.wait_traffic('8139cp')
        self.assert_pair('fallback', vnet0='none', legacy0='ready')
        self.load_virtio_late('8139cp')

    def test_virtio_bound(self):
        """virtio_net binds its NIC, and the guest's network configuration
        names only the e1000 interface, as an image made on an e1000 VM;
        later the guest brings the virtio interface up as well."""
        self.launch('virtio_net,e1000', legacy='e1000',
                    extra='e2e.ifup=virtio_net@+2')
        self.wait_traffic('e1000', failure='driver=virtio_net carrier=1')
        self.assert_pair('fallback', vnet0='initializing', legacy0='ready')
        wait_for_console_pattern(self, 'E2E ifup iface=')
        self.wait_traffic('virtio_net')
        # e1000's driver sees its link go in its watchdog, a moment later
        wait_for_console_pattern(self, 'driver=e1000 carrier=0')
        self.assert_pair('primary', vnet0='ready', legacy0='ready')
        changes = [a for _, a in self.pair_events('primary')]
        self.assertEqual(changes[:1], ['fallback'])
        self.assertEqual(changes[-1:], ['primary'])

    def test_virtio_unloaded(self):
        self.launch('virtio_net,8139cp')
        self.wait_traffic('virtio_net')
        self.assert_pair('primary', vnet0='ready', legacy0='ready')
        exec_command_and_wait_for_pattern(self, 'rmmod virtio_net',
                                          'driver=virtio_net carrier=gone')
        self.wait_traffic('8139cp')
        self.assert_pair('fallback', vnet0=('none', 'initializing'),
                         legacy0='ready')
        changes = [a for _, a in self.pair_events('fallback')]
        self.assertEqual(changes[:1], ['primary'])
        self.assertEqual(changes[-1:], ['fallback'])

    def test_reboot(self):
        # The second boot loads the legacy driver only
        self.launch('virtio_net,8139cp', extra='e2e.load2=8139cp')
        self.wait_traffic('virtio_net')
        self.assert_pair('primary', vnet0='ready')
        exec_command(self, 'reboot -f')
        reset = self.vm.event_wait('RESET', timeout=30)
        self.assertIsNotNone(reset, 'no RESET after reboot -f')
        # Before the guest's kernel runs again
        self.assert_pair('none', vnet0='none', legacy0='none')
        wait_for_console_pattern(self, 'E2E boot n=2')
        # The legacy link is down when its driver comes, up after the delay
        wait_for_console_pattern(self, 'driver=8139cp carrier=0',
                                 'driver=8139cp carrier=1')
        self.wait_traffic('8139cp', failure='driver=virtio_net')
        self.assert_pair('fallback', vnet0='none', legacy0='ready')
        changes = self.pair_events('fallback')
        actives = [a for _, a in changes]
        # The guest's reboot may reset virtio-net before the machine reset
        # does, so 'none' may come just before RESET.
        self.assertEqual(actives[:1], ['primary'])
        self.assertIn('none', actives[:-1])
        self.assertEqual(actives[-1:], ['fallback'])
        self.assertGreater(changes[-1][0], stamp(reset))

    def test_no_driver(self):
        self.launch('')
        # Several fallback delays: nothing may come up without a driver
        time.sleep(3 * FALLBACK_DELAY + 1.0)
        self.assert_carrier('virtio_net', 'none')
        self.assert_carrier('8139cp', 'none')
        self.assert_pair('none', vnet0='none', legacy0='none')
        self.assertEqual([a for _, a in self.pair_events('none', 0)
                          if a != 'none'], [])


if __name__ == '__main__':
    QemuSystemTest.main()
