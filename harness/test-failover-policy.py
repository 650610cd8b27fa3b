#!/usr/bin/env python3
#
# Test scripts/qmp/failover-policy.py against the real emulator: QEMU runs
# with the qtest accelerator, this test plays the guest drivers by
# register writes over the qtest socket and reads the link state the
# guest sees from the NICs' registers, while the tool drives the links
# over QMP.
#
# Copyright (c) 2026 The QEMU driver status authors
#
# SPDX-License-Identifier: GPL-2.0-or-later
#
# pylint: disable=invalid-name
# (the file is named like a test, not like a module)
# pylint: enable=invalid-name

"""
End-to-end test of failover-policy.py.

Each test starts its own QEMU with upstream's QEMUQtestMachine
(python/qemu/machine, which adds ``-accel qtest``) with a legacy
virtio-net-pci (``vnet0``, the primary) and an rtl8139 (``legacy0``,
the fallback), maps their I/O BARs through PCI configuration space and
then, through the qtest socket:

- plays the drivers: virtio receive queue 0 (BAR0 + 8), status
  register (BAR0 + 18) ACKNOWLEDGE, DRIVER, DRIVER_OK, then a receive
  buffer and its kick (BAR0 + 16), when Linux opens the interface;
  rtl8139 ChipCmd (BAR0 + 0x37) reset, then RxEnb|TxEnb;
- reads the guest-visible links: virtio-net config space status (BAR0 +
  20 + 6, bit 0 = link up), rtl8139 MediaStatus (BAR0 + 0x58, bit 2 =
  link down) and BasicModeStatus (BAR0 + 0x64, bit 2 = link up).

Under qtest the virtual clock only moves when told, and QEMU's rate
limit of DRIVER_STATUS_CHANGED runs on it: after guest writes the test
steps the clock past the window so that held-back events go out.  The
tool's fallback delay runs on the wall clock, so the test waits in real
time for it.

Prints one line per test and a final ``failover-policy: N passed, M
failed``; exits with status 1 if any test failed.  With
``--without-tool`` the same tests run without the tool, to show that
they fail then.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import struct
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, List, Optional, Tuple


BUILD = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'build')
TOOL = os.path.join(BUILD, 'src', 'scripts', 'qmp', 'failover-policy.py')
DEFAULT_QEMU = os.path.join(BUILD, 'qemu-system-x86_64')
DEFAULT_PYTHON_DIR = os.path.join(BUILD, 'src', 'python')

# The tool's delay in the tests: long against the time the tool and
# QEMU take to react ("at once") even on a loaded 2-core machine, where
# a QMP round trip has been seen to take 0.8 s, short enough for a
# quick test
DELAY = 3.0
# Upper bound of "at once", and of the lateness of the delayed fallback
PROMPT = 2.0

# Under qtest, the rate limit of DRIVER_STATUS_CHANGED runs on the
# virtual clock: two windows of one second let every held event out
SETTLE_NS = 2_200_000_000

PCI_CONFIG_ADDRESS = 0xcf8
PCI_CONFIG_DATA = 0xcfc

RTL_DEVFN = 3 << 3
RTL_IO = 0xc000
RTL_CHIPCMD = 0x37
RTL_CMD_RESET = 0x10
RTL_CMD_RXENB_TXENB = 0x0c
RTL_MEDIA_STATUS = 0x58
RTL_MSR_LINK_DOWN = 0x04
RTL_BMSR = 0x64
RTL_BMSR_LINK_UP = 0x04

VIRTIO_DEVFN = 4 << 3
VIRTIO_IO = 0xc400
VIRTIO_PCI_QUEUE_PFN = 8
VIRTIO_PCI_QUEUE_SEL = 14
VIRTIO_PCI_QUEUE_NOTIFY = 16
VIRTIO_PCI_STATUS = 18
# Receive queue 0: 256 descriptors, the available ring on the next page,
# and a buffer for the device to write
VIRTIO_RX_RING = 0x300000
VIRTIO_RX_AVAIL = VIRTIO_RX_RING + 0x1000
VIRTIO_RX_BUFFER = 0x310000
VRING_DESC_F_WRITE = 2
VIRTIO_NET_CONFIG_STATUS = 20 + 6      # legacy, MSI-X off: after the MAC
VIRTIO_NET_S_LINK_UP = 1
VIRTIO_ACKNOWLEDGE_DRIVER_DRIVER_OK = (1, 3, 7)


class QTest:
    """The port I/O and clock commands of the qtest protocol, on the
    qtest connection of upstream's QEMUQtestMachine."""

    def __init__(self, vm: Any) -> None:
        self.vm = vm

    def cmd(self, line: str) -> str:
        """Send one command; returns the words after ``OK``."""
        reply = self.vm.qtest(line)
        if not reply.startswith('OK'):
            raise RuntimeError(f"qtest: {line!r}: {reply.strip() or 'EOF'}")
        return reply[2:].strip()

    def outb(self, addr: int, val: int) -> None:
        """Write a byte to an I/O port."""
        self.cmd(f'outb 0x{addr:x} 0x{val:x}')

    def outw(self, addr: int, val: int) -> None:
        """Write a word to an I/O port."""
        self.cmd(f'outw 0x{addr:x} 0x{val:x}')

    def outl(self, addr: int, val: int) -> None:
        """Write a long to an I/O port."""
        self.cmd(f'outl 0x{addr:x} 0x{val:x}')

    def write(self, addr: int, data: bytes) -> None:
        """Write bytes to guest memory."""
        self.cmd(f'write 0x{addr:x} 0x{len(data):x} 0x{data.hex()}')

    def inb(self, addr: int) -> int:
        """Read a byte from an I/O port."""
        return int(self.cmd(f'inb 0x{addr:x}'), 0)

    def inw(self, addr: int) -> int:
        """Read a word from an I/O port."""
        return int(self.cmd(f'inw 0x{addr:x}'), 0)

    def inl(self, addr: int) -> int:
        """Read a long from an I/O port."""
        return int(self.cmd(f'inl 0x{addr:x}'), 0)

    def clock_step(self, nsec: int) -> None:
        """Advance the virtual clock."""
        self.cmd(f'clock_step {nsec}')


class Machine:
    """A QEMU under qtest with the two NICs, and the tool (if any)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = tempfile.mkdtemp(prefix='failover-policy-test-')
        self.tool_qmp = os.path.join(self.dir, 'tool.sock')
        # pylint: disable=import-outside-toplevel
        from qemu.machine.qtest import QEMUQtestMachine
        self.vm = QEMUQtestMachine(
            args.qemu, base_temp_dir=self.dir,
            args=['-machine', 'pc', '-nodefaults',
                  '-qmp', f'unix:{self.tool_qmp},server=on,wait=off',
                  '-netdev', 'user,id=u0', '-netdev', 'user,id=u1',
                  '-device', 'virtio-net-pci,id=vnet0,netdev=u0,'
                  f'disable-modern=on,addr=0x{VIRTIO_DEVFN >> 3:x}',
                  '-device', f'rtl8139,id=legacy0,netdev=u1,'
                  f'addr=0x{RTL_DEVFN >> 3:x}'])
        self.vm.launch()
        self.qtest = QTest(self.vm)

        self.tool: Optional['subprocess.Popen[str]'] = None
        self.log: List[Tuple[float, str]] = []
        self._log_lock = threading.Lock()
        self.pci_setup()

    # PCI

    def _cfg(self, devfn: int, reg: int) -> None:
        self.qtest.outl(PCI_CONFIG_ADDRESS,
                        0x80000000 | (devfn << 8) | (reg & 0xfc))

    def cfg_readl(self, devfn: int, reg: int) -> int:
        """Read a long of PCI configuration space on bus 0."""
        self._cfg(devfn, reg)
        return self.qtest.inl(PCI_CONFIG_DATA)

    def cfg_writel(self, devfn: int, reg: int, val: int) -> None:
        """Write a long of PCI configuration space on bus 0."""
        self._cfg(devfn, reg)
        self.qtest.outl(PCI_CONFIG_DATA, val)

    def pci_setup(self) -> None:
        """Map both NICs' I/O BAR0 and enable I/O (again after reset)."""
        assert self.cfg_readl(RTL_DEVFN, 0) == 0x813910ec
        assert self.cfg_readl(VIRTIO_DEVFN, 0) == 0x10001af4
        for devfn, base in ((RTL_DEVFN, RTL_IO), (VIRTIO_DEVFN, VIRTIO_IO)):
            self.cfg_writel(devfn, 0x10, base)
            self.cfg_writel(devfn, 0x04, 0x0007)   # I/O, memory, master
            assert self.cfg_readl(devfn, 0x10) == base | 1

    # Guest drivers

    def rtl_up(self) -> None:
        """8139too's open: ChipCmd reset, then RxEnb|TxEnb."""
        self.qtest.outb(RTL_IO + RTL_CHIPCMD, RTL_CMD_RESET)
        self.qtest.outb(RTL_IO + RTL_CHIPCMD, RTL_CMD_RXENB_TXENB)

    def vnet_up(self) -> None:
        """Legacy virtio probe (receive queue 0, empty; ACKNOWLEDGE,
        DRIVER, DRIVER_OK), then open: a receive buffer, and a kick."""
        self.qtest.write(VIRTIO_RX_RING, bytes(0x2000))
        self.qtest.write(VIRTIO_RX_RING, struct.pack(
            '<QIHH', VIRTIO_RX_BUFFER, 2048, VRING_DESC_F_WRITE, 0))
        self.qtest.outw(VIRTIO_IO + VIRTIO_PCI_QUEUE_SEL, 0)
        self.qtest.outl(VIRTIO_IO + VIRTIO_PCI_QUEUE_PFN,
                        VIRTIO_RX_RING >> 12)
        for status in VIRTIO_ACKNOWLEDGE_DRIVER_DRIVER_OK:
            self.qtest.outb(VIRTIO_IO + VIRTIO_PCI_STATUS, status)
        # avail: flags 0, idx 1, ring[0] = descriptor 0
        self.qtest.write(VIRTIO_RX_AVAIL, struct.pack('<HHH', 0, 1, 0))
        self.qtest.outw(VIRTIO_IO + VIRTIO_PCI_QUEUE_NOTIFY, 0)

    def vnet_reset(self) -> None:
        """The virtio driver goes away: device status 0."""
        self.qtest.outb(VIRTIO_IO + VIRTIO_PCI_STATUS, 0)

    def settle(self) -> None:
        """Let DRIVER_STATUS_CHANGED events held by the rate limit out."""
        self.qtest.clock_step(SETTLE_NS)

    # Guest-visible links

    def rtl_link(self) -> bool:
        """Whether the guest sees the rtl8139 link up."""
        # The tool may change the link between the two reads: retry
        for _ in range(3):
            media_down = bool(self.qtest.inb(RTL_IO + RTL_MEDIA_STATUS) &
                              RTL_MSR_LINK_DOWN)
            bmsr_up = bool(self.qtest.inw(RTL_IO + RTL_BMSR) &
                           RTL_BMSR_LINK_UP)
            if media_down != bmsr_up:
                return bmsr_up
            time.sleep(0.05)
        raise AssertionError("rtl8139 registers disagree")

    def vnet_link(self) -> bool:
        """Whether the guest sees the virtio-net link up."""
        status = self.qtest.inw(VIRTIO_IO + VIRTIO_NET_CONFIG_STATUS)
        return bool(status & VIRTIO_NET_S_LINK_UP)

    def links(self) -> Tuple[bool, bool]:
        """(primary up, fallback up) as the guest sees them."""
        return self.vnet_link(), self.rtl_link()

    def wait_links(self, want: Tuple[bool, bool], timeout: float,
                   since: Optional[float] = None) -> float:
        """
        Wait until the guest sees the links @want.

        :return: the seconds from @since (default: now) until then
        :raise AssertionError: on timeout
        """
        start = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            got = self.links()
            if got == want:
                return time.monotonic() - start
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"links (vnet0, legacy0) are {got}, "
                    f"not {want} after {timeout:.1f} s")
            time.sleep(0.01)

    def assert_links(self, want: Tuple[bool, bool], what: str) -> None:
        """Check the links now."""
        got = self.links()
        assert got == want, f"{what}: links (vnet0, legacy0) {got} != {want}"

    # QMP

    def reset(self) -> None:
        """system_reset, wait for RESET, map the BARs again."""
        self.vm.cmd('system_reset')
        self.vm.event_wait('RESET')
        self.pci_setup()

    # The tool

    def start_tool(self, *extra: str) -> None:
        """Start the tool, unless testing without it."""
        if self.args.without_tool:
            return
        env = dict(os.environ)
        env['PYTHONPATH'] = self.args.python_dir
        # pylint: disable=consider-using-with
        self.tool = subprocess.Popen(
            [sys.executable, self.args.tool, '--qmp', self.tool_qmp,
             '--primary', 'vnet0', '--fallback', 'legacy0',
             '--delay-ms', str(int(DELAY * 1000)), *extra],
            stdout=subprocess.PIPE, env=env, text=True)
        threading.Thread(target=self._read_log, args=(self.tool,),
                         daemon=True).start()

    def _read_log(self, tool: 'subprocess.Popen[str]') -> None:
        assert tool.stdout is not None
        for line in tool.stdout:
            if self.args.verbose:
                sys.stdout.write('    | ' + line)
            with self._log_lock:
                self.log.append((time.monotonic(), line.rstrip('\n')))

    def wait_log(self, pattern: str, timeout: float = 5.0) -> str:
        """Wait for a log line matching @pattern (re.search)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._log_lock:
                for _, line in self.log:
                    if re.search(pattern, line):
                        return line
            time.sleep(0.01)
        raise AssertionError(f"no log line matches {pattern!r}")

    def tool_started(self) -> None:
        """Wait until the tool took over (both links down)."""
        self.wait_links((False, False), timeout=5)
        if self.tool:
            self.wait_log(r'active=none \(start\)')

    def wait_tool_exit(self, timeout: float) -> int:
        """The tool's exit status; AssertionError if it keeps running."""
        assert self.tool is not None, "the tool is not running"
        try:
            return self.tool.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("the tool did not exit") from exc

    def close(self) -> None:
        """Stop the tool and QEMU."""
        if self.tool and self.tool.poll() is None:
            self.tool.send_signal(signal.SIGTERM)
            self.tool.wait(5)
        self.vm.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)


# The tests

LOG_LINE = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 failover-policy: '
    r'(active=(none|primary|fallback)|pending=fallback|exit) \(.*\)$')


def test_start_both_down(machine: Machine) -> None:
    """At start-up the tool takes both links down; log lines parse."""
    machine.assert_links((True, True), "QEMU's default")
    machine.start_tool()
    machine.wait_links((False, False), timeout=5)
    machine.wait_log(r'active=none \(start\)')
    # Nothing is ready, so nothing comes up
    time.sleep(DELAY + PROMPT)
    machine.assert_links((False, False), "no driver ready")
    for _, line in machine.log:
        assert LOG_LINE.match(line), f"unparseable log line {line!r}"


def test_legacy_only(machine: Machine) -> None:
    """Only the fallback's driver ready: fallback up after the delay."""
    machine.start_tool()
    machine.tool_started()
    start = time.monotonic()
    machine.rtl_up()
    machine.settle()
    time.sleep(DELAY / 2)
    machine.assert_links((False, False), "half-way through the delay")
    took = machine.wait_links((False, True), timeout=DELAY + PROMPT + 1,
                              since=start)
    assert DELAY <= took <= DELAY + PROMPT + 0.5, \
        f"fallback up after {took:.3f} s, delay {DELAY} s"
    machine.wait_log(
        r'active=fallback \(legacy0 ready, vnet0 none for '
        rf'{int(DELAY * 1000)} ms\)')
    time.sleep(PROMPT)
    machine.assert_links((False, True), "later")


def vnet_up_at_once(machine: Machine, what: str) -> None:
    """The primary's driver gets ready: its link up, the fallback's down,
    within PROMPT."""
    start = time.monotonic()
    machine.vnet_up()
    machine.settle()
    took = machine.wait_links((True, False), timeout=DELAY, since=start)
    assert took <= PROMPT, f"{what} after {took:.3f} s"


def test_primary_ready(machine: Machine) -> None:
    """Primary driver ready: primary up, fallback down, at once."""
    machine.start_tool()
    machine.tool_started()
    machine.rtl_up()
    machine.settle()
    machine.wait_links((False, True), timeout=DELAY + PROMPT + 1)
    vnet_up_at_once(machine, "primary took over")
    machine.wait_log(r'active=primary \(vnet0 ready\)')
    time.sleep(DELAY + PROMPT)
    machine.assert_links((True, False), "later")


def test_primary_ready_first(machine: Machine) -> None:
    """Primary ready before the fallback: the fallback never comes up."""
    machine.start_tool()
    machine.tool_started()
    vnet_up_at_once(machine, "primary up")
    machine.rtl_up()
    machine.settle()
    time.sleep(DELAY + PROMPT)
    machine.assert_links((True, False), "fallback ready too")


def both_drivers_up(machine: Machine) -> None:
    """The tool runs and both drivers are ready: the primary has the link."""
    machine.start_tool()
    machine.tool_started()
    machine.rtl_up()
    machine.vnet_up()
    machine.settle()
    machine.wait_links((True, False), timeout=PROMPT + 1)


def test_primary_leaves(machine: Machine) -> None:
    """Primary driver gone: primary down at once, fallback after delay."""
    both_drivers_up(machine)
    start = time.monotonic()
    machine.vnet_reset()
    machine.settle()
    took = machine.wait_links((False, False), timeout=DELAY, since=start)
    assert took <= PROMPT, f"primary down after {took:.3f} s"
    took = machine.wait_links((False, True), timeout=DELAY + PROMPT + 1,
                              since=start)
    assert DELAY <= took <= DELAY + PROMPT + 0.5, \
        f"fallback up after {took:.3f} s, delay {DELAY} s"


def test_reset(machine: Machine) -> None:
    """system_reset: both links down, and they stay down."""
    both_drivers_up(machine)
    start = time.monotonic()
    machine.reset()
    took = machine.wait_links((False, False), timeout=DELAY, since=start)
    assert took <= PROMPT, f"links down after {took:.3f} s"
    machine.wait_log(r'active=none \(guest reset\)')
    time.sleep(DELAY + PROMPT)
    machine.assert_links((False, False), "after reset, no driver ready")
    # And the policy starts over
    machine.rtl_up()
    machine.settle()
    machine.wait_links((False, True), timeout=DELAY + PROMPT + 1)


def test_reset_cancels_fallback(machine: Machine) -> None:
    """A reset during the delay cancels the pending fallback."""
    machine.start_tool()
    machine.tool_started()
    machine.rtl_up()
    machine.settle()
    time.sleep(DELAY / 2)
    machine.reset()
    time.sleep(DELAY + PROMPT)
    machine.assert_links((False, False), "reset during the delay")


def test_paused(machine: Machine) -> None:
    """While the VM is paused, the fallback does not come up."""
    machine.start_tool()
    machine.tool_started()
    machine.vm.cmd('stop')
    # One write, so one event that goes out at once: the virtual clock,
    # which rate-limits events under qtest, cannot be stepped while
    # the VM is stopped
    machine.qtest.outb(RTL_IO + RTL_CHIPCMD, RTL_CMD_RXENB_TXENB)
    time.sleep(DELAY + PROMPT)
    machine.assert_links((False, False), "VM paused")
    if machine.tool:
        machine.wait_log(r'pending=fallback \(legacy0 ready.*held')
    start = time.monotonic()
    machine.vm.cmd('cont')
    took = machine.wait_links((False, True), timeout=DELAY + PROMPT + 1,
                              since=start)
    assert DELAY - 0.05 <= took <= DELAY + PROMPT, \
        f"fallback up {took:.3f} s after cont, delay {DELAY} s"


def test_once(machine: Machine) -> None:
    """--once: decides, waits for a due fallback, and exits."""
    machine.rtl_up()
    machine.settle()
    start = time.monotonic()
    machine.start_tool('--once')
    # The links start up: the tool first takes both down, one at a time
    machine.wait_links((False, False), timeout=PROMPT + 3, since=start)
    took = machine.wait_links((False, True), timeout=DELAY + PROMPT + 3,
                              since=start)
    assert took >= DELAY, f"fallback up after {took:.3f} s"
    assert machine.wait_tool_exit(PROMPT + 1) == 0
    machine.wait_log(r'exit \(once, active=fallback\)')


def test_exit_on_quit(machine: Machine) -> None:
    """QEMU quits: the tool exits with status 0."""
    machine.start_tool()
    machine.tool_started()
    machine.vm.cmd('quit')
    assert machine.wait_tool_exit(5) == 0
    machine.wait_log(r'exit \(QEMU (shutdown|closed the connection)')


def test_exit_on_sigterm(machine: Machine) -> None:
    """SIGTERM: the tool exits with status 0, QEMU keeps running."""
    machine.start_tool()
    machine.tool_started()
    assert machine.tool is not None, "the tool is not running"
    machine.tool.send_signal(signal.SIGTERM)
    assert machine.wait_tool_exit(5) == 0
    machine.wait_log(r'exit \(SIGTERM, active=none\)')
    assert machine.vm.is_running()
    machine.vm.cmd('query-status')


TESTS: List[Callable[[Machine], None]] = [
    test_start_both_down,
    test_legacy_only,
    test_primary_ready,
    test_primary_ready_first,
    test_primary_leaves,
    test_reset,
    test_reset_cancels_fallback,
    test_paused,
    test_once,
    test_exit_on_quit,
    test_exit_on_sigterm,
]


def main() -> int:
    """Run the tests; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--qemu', default=DEFAULT_QEMU,
                        help="QEMU binary (default: %(default)s)")
    parser.add_argument('--python-dir', default=DEFAULT_PYTHON_DIR,
                        help="QEMU source tree's python/ directory "
                        "(default: %(default)s)")
    parser.add_argument('--tool', default=TOOL,
                        help="the tool to test (default: %(default)s)")
    parser.add_argument('--without-tool', action='store_true',
                        help="do not start the tool: the tests must fail")
    parser.add_argument('-v', '--verbose', action='store_true',
                        help="show the tool's log")
    parser.add_argument('tests', nargs='*', metavar='TEST',
                        help="run only these tests (names without test_)")
    args = parser.parse_args()
    sys.path.append(args.python_dir)

    passed = failed = 0
    for test in TESTS:
        name = test.__name__[len('test_'):]
        if args.tests and name not in args.tests:
            continue
        machine = Machine(args)
        try:
            test(machine)
        except Exception:  # pylint: disable=broad-except
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(limit=-1, file=sys.stdout)
        else:
            passed += 1
            print(f"ok   {name}")
        finally:
            machine.close()
        sys.stdout.flush()

    print(f"failover-policy: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
