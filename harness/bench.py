#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""make bench: what the series costs and what it buys, pristine vs patched.

Every figure is measured in this run, on both emulators where both can be
measured, repeated, and reported as median, min and max (and ratios):

datapath  instructions per transmitted packet through rtl8139, e1000,
          e1000e, igb, vmxnet3 and virtio-net (legacy), under valgrind
          --tool=callgrind: pristine lone NIC, patched lone NIC, patched NIC
          in a failover pair.
latency   virtual time from the guest's register write that makes a driver
          ready to the link changes the pair makes (patched only: the
          pristine emulator has no pair, its links are up from power-on).
events    wall-clock time from a driver's register writes to QEMU's
          DRIVER_STATUS_CHANGED events (their QMP timestamps); the events a
          TCG guest that flips its drivers in a loop gets out, and whether
          the last one is the current status; the time
          scripts/qmp/failover-policy.py takes to switch the links (patched
          only).
boot      wall-clock time from QEMU's start to the first successful ping of
          a real Linux guest (build-glue/guest), lone NICs and pairs.

Both emulators are driven byte for byte the same way, through upstream
QEMU's Python machine classes (python/qemu of the QEMU tree: $QEMU_PYTHON,
else build/src/python): the script plays the guest driver with port and
memory writes over QEMUQtestMachine's qtest socket (-accel qtest; TCG for
the guest that floods events) and speaks QMP through its monitor.

    /usr/bin/python3 harness/bench.py --patched QEMU --pristine QEMU \
        --guest DIR [--sections datapath,latency,boot] [--repeat 3] \
        [--boot-repeat 5] [--csv FILE]
"""

import argparse
import asyncio
import base64
import csv
import glob
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Upstream QEMU's Python package, as harness/e2e.py finds it
for _p in (os.environ.get('QEMU_PYTHON'),
           os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        'build', 'src', 'python')):
    if _p and os.path.isdir(os.path.join(_p, 'qemu', 'machine')):
        sys.path.insert(0, os.path.abspath(_p))
        break
from qemu.machine.machine import (  # noqa: E402
    AbnormalShutdown, QEMUMachineError, VMLaunchFailure)
from qemu.machine.qtest import QEMUQtestMachine  # noqa: E402
from qemu.qmp import QMPError  # noqa: E402

SECTIONS = ('datapath', 'latency', 'events', 'boot')
DELAY_MS = 500
DELAY_NS = DELAY_MS * 1000 * 1000
QUIT_TIMEOUT = 120          # QEMU's quit (valgrind writes its last dump)
BOOT_TIMEOUT = 150.0        # QEMU start to the guest's first ping (TCG)

# Guest memory layout of the data path "drivers" (guest RAM is 64 MiB)
BUF = 0x100000              # the frame (all but virtio-net)
VBUF = 0x101000             # virtio-net header + the frame
VSHARED = 0x102000          # vmxnet3 driver-shared area
VQDESC = 0x103000           # vmxnet3 queue descriptor table
RING = 0x200000             # the TX ring, virtio TX vring (page aligned)
RX_RING = 0x300000          # virtio RX vring (page aligned, 3 pages)
RX_BUF = 0x310000           # virtio RX buffer
COMP_RING = 0x201000        # vmxnet3 TX completion ring
IO_RTL = 0xc000             # rtl8139 BAR 0 (I/O, 256 bytes)
IO_VIRTIO = 0xc200          # virtio-net legacy BAR 0 (I/O)
MMIO_E1000 = 0xe0000000     # e1000 BAR 0 (MMIO, 128 KiB)
MMIO_E1000E = 0xe0020000    # e1000e BAR 0 (MMIO, 128 KiB)
MMIO_IGB = 0xe0040000       # igb BAR 0 (MMIO, 128 KiB)
MMIO_VMXNET3 = 0xe0060000   # vmxnet3 BAR 0 (MMIO, 4 KiB)
MMIO_VMXNET3_VD = 0xe0061000    # vmxnet3 BAR 1 (MMIO, 4 KiB)
PRIMARY_SLOT = 3            # virtio-net, as in tests/qtest/failover-pair-test.c
FALLBACK_SLOT = 4           # the other NICs

# The frame every data path case sends: broadcast, local ethertype, 64 bytes
FRAME = (b'\xff' * 6 + bytes.fromhex('525400123456') + b'\x88\xb5' +
         b'qemu-bench').ljust(64, b'\0')


class BenchError(Exception):
    """A measurement could not be made."""


# --------------------------------------------------------------------------
# QEMU driven over qtest (and QMP), optionally under valgrind
# --------------------------------------------------------------------------

class Sink:
    """A unix datagram socket that a -netdev dgram sends frames to: counts
    the frames equal to FRAME (and any other)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.count = 0
        self.other = 0
        self.cond = threading.Condition()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                if data == FRAME:
                    self.count += 1
                else:
                    self.other += 1
                self.cond.notify_all()

    def wait(self, n, timeout=60.0):
        """Wait until N frames have arrived; BenchError if they do not."""
        end = time.monotonic() + timeout
        with self.cond:
            while self.count < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise BenchError(f'only {self.count} of {n} frames arrived '
                                     f'(link down? frame dropped?)')
                self.cond.wait(left)

    def close(self):
        self.stop = True
        self.sock.close()
        self.thread.join(2)


class TcgQtestMachine(QEMUQtestMachine):
    """QEMUQtestMachine with TCG in place of the qtest accelerator: the
    guest's own code runs, and the qtest socket still sets it up and reads
    its memory."""

    @property
    def _base_args(self):
        args = super()._base_args
        # QEMU takes the first -accel that works: appending tcg would not do
        args[args.index('-accel') + 1] = 'tcg'
        return args


class Qemu:
    """One emulator, vm: upstream's QEMUQtestMachine (-accel qtest, or TCG),
    optionally under a wrapper (valgrind).  The qtest commands the guest
    side needs go over its qtest socket, QMP commands through vm.cmd()."""

    def __init__(self, binary, args, workdir, tag, prefix=(), tcg=False):
        machine = TcgQtestMachine if tcg else QEMUQtestMachine
        self.vm = machine(binary, wrapper=prefix, name=tag,
                          base_temp_dir=workdir,
                          args=['-machine', 'pc', '-nodefaults',
                                '-no-user-config', '-m', '64'] + list(args))
        try:
            self.vm.launch()
        except VMLaunchFailure as e:
            raise BenchError(f'QEMU exited with {e.exitcode}: '
                             f'{output_tail(e.output)}') from None

    def _died(self, what):
        """The BenchError of WHAT once QEMU has gone away, with the end of
        its output (which QEMUMachine has once the process is reaped)."""
        self.vm.kill()
        return BenchError(f'{what}: {output_tail(self.vm.get_log())}')

    # -- qtest -------------------------------------------------------------
    def cmd(self, line):
        """Send one qtest command, return the words after OK."""
        try:
            reply = self.vm.qtest(line)
        except OSError as e:
            raise self._died(f'qtest {line!r}: {e}') from None
        if not reply:
            raise self._died(f'QEMU closed the qtest socket at {line!r}')
        words = reply.split()
        if not words or words[0] != 'OK':
            raise BenchError(f'qtest {line!r}: {reply.strip()}')
        return words[1:]

    def out(self, size, addr, val):
        self.cmd(f'out{size} 0x{addr:x} 0x{val:x}')

    def inp(self, size, addr):
        return int(self.cmd(f'in{size} 0x{addr:x}')[0], 0)

    def writel(self, addr, val):
        self.cmd(f'writel 0x{addr:x} 0x{val:x}')

    def readl(self, addr):
        return int(self.cmd(f'readl 0x{addr:x}')[0], 0)

    def write(self, addr, data):
        self.cmd(f'write 0x{addr:x} 0x{len(data):x} 0x{data.hex()}')

    def b64read(self, addr, size):
        return base64.b64decode(self.cmd(f'b64read 0x{addr:x} 0x{size:x}')[0])

    def clock_step(self, ns=None):
        """Step the virtual clock by NS, or to the next timer deadline;
        return the new virtual time in ns."""
        return int(self.cmd('clock_step' if ns is None else f'clock_step {ns}')[0])

    def quit(self):
        """Quit through QMP and wait for the process (valgrind then writes
        its last dump)."""
        try:
            self.vm.shutdown(timeout=QUIT_TIMEOUT)
        except AbnormalShutdown:
            raise BenchError(f'QEMU did not quit: '
                             f'{output_tail(self.vm.get_log())}') from None
        if self.vm.exitcode() != 0:
            raise BenchError(f'QEMU exited with {self.vm.exitcode()}: '
                             f'{output_tail(self.vm.get_log())}')

    def kill(self):
        self.vm.kill()


def output_tail(output):
    """The end of QEMU's stdout and stderr, for an error message."""
    return (output or '')[-600:].strip()


# --------------------------------------------------------------------------
# The guest side: PCI set-up as firmware does it, then the NIC drivers
# --------------------------------------------------------------------------

def cfg_addr(slot, off):
    return 0x80000000 | (slot << 11) | (off & 0xfc)


def cfg_write(q, slot, off, size, val):
    q.out('l', 0xcf8, cfg_addr(slot, off))
    q.out({4: 'l', 2: 'w', 1: 'b'}[size], 0xcfc + (off & 3), val)


def cfg_read(q, slot, off, size):
    q.out('l', 0xcf8, cfg_addr(slot, off))
    return q.inp({4: 'l', 2: 'w', 1: 'b'}[size], 0xcfc + (off & 3))


def map_bar0(q, slot, addr, vendor_device):
    """Check the device, map its BAR 0 at ADDR, enable I/O, memory and bus
    mastering (the NICs read their TX buffers by DMA)."""
    vd = cfg_read(q, slot, 0, 4)
    if vd != vendor_device:
        raise BenchError(f'PCI slot {slot}: id {vd:08x}, expected {vendor_device:08x}')
    cfg_write(q, slot, 0x10, 4, addr)
    cfg_write(q, slot, 0x04, 2, 0x07)


class Rtl8139:
    """rtl8139 with the 8139too TX path: four TX descriptors, TSAD0-3 hold
    the buffer address, a write of the size to TSD<n> transmits."""
    name = 'rtl8139'
    device = 'rtl8139'
    slot = FALLBACK_SLOT
    legacy = True

    def setup(self, q):
        map_bar0(q, self.slot, IO_RTL, 0x813910ec)
        q.out('b', IO_RTL + 0x37, 0x10)              # ChipCmd: reset
        q.write(BUF, FRAME)
        for i in range(4):
            q.out('l', IO_RTL + 0x20 + 4 * i, BUF)   # TSAD0-3
        self.sent = 0

    def ready(self, q):
        q.out('b', IO_RTL + 0x37, 0x0c)              # ChipCmd: RxEnb|TxEnb

    def link(self, q):
        return bool(q.inp('w', IO_RTL + 0x64) & 0x04)   # BasicModeStatus

    def send(self, q):
        q.out('l', IO_RTL + 0x10 + 4 * (self.sent % 4), len(FRAME))  # TSD<n>
        self.sent += 1


class E1000:
    """e1000 with a legacy TX descriptor ring of 256 descriptors, all on
    the same frame; a write of TDT transmits."""
    name = 'e1000'
    device = 'e1000'
    slot = FALLBACK_SLOT
    legacy = True
    NDESC = 256

    def setup(self, q):
        map_bar0(q, self.slot, MMIO_E1000, 0x100e8086)
        b = MMIO_E1000
        q.writel(b + 0x0, 1 << 26)                   # CTRL.RST
        q.write(BUF, FRAME)
        desc = struct.pack('<QII', BUF, len(FRAME) | (0x0b << 24), 0)  # EOP|IFCS|RS
        q.write(RING, desc * self.NDESC)
        q.writel(b + 0x3800, RING)                   # TDBAL
        q.writel(b + 0x3804, 0)                      # TDBAH
        q.writel(b + 0x3808, 16 * self.NDESC)        # TDLEN
        q.writel(b + 0x3810, 0)                      # TDH
        q.writel(b + 0x3818, 0)                      # TDT
        self.sent = 0

    def ready(self, q):
        q.writel(MMIO_E1000 + 0x100, 1 << 1)             # RCTL.EN
        q.writel(MMIO_E1000 + 0x400, (1 << 1) | (1 << 3))  # TCTL.EN|PSP

    def link(self, q):
        return bool(q.readl(MMIO_E1000 + 0x8) & 2)    # STATUS.LU

    def send(self, q):
        self.sent += 1
        q.writel(MMIO_E1000 + 0x3818, self.sent % self.NDESC)   # TDT


class Intel8257x:
    """e1000e and igb, brought up as their Linux drivers do: CTRL.RST,
    CTRL_EXT.DRV_LOAD, a TX ring of 256 descriptors all on the same frame,
    TCTL.EN, then RCTL.EN (which makes the driver ready); a write of the
    ring's tail register transmits.  Subclasses give the ID, BAR address,
    the ring's registers and the descriptor."""
    slot = FALLBACK_SLOT
    legacy = True
    NDESC = 256

    def setup(self, q):
        map_bar0(q, self.slot, self.mmio, self.pci_id)
        b = self.mmio
        q.writel(b + 0x0, 1 << 26)                   # CTRL.RST
        q.writel(b + 0x18, 1 << 28)                  # CTRL_EXT.DRV_LOAD
        self.prepare(q)
        q.write(BUF, FRAME)
        q.write(RING, self.descriptor() * self.NDESC)
        q.writel(b + self.tdba, RING)                # TDBAL
        q.writel(b + self.tdba + 0x4, 0)             # TDBAH
        q.writel(b + self.tdba + 0x8, 16 * self.NDESC)  # TDLEN
        q.writel(b + self.tdba + 0x10, 0)            # TDH
        q.writel(b + self.tdba + 0x18, 0)            # TDT
        self.enable_queue(q)
        self.sent = 0

    def prepare(self, q):
        """What the model needs after its reset, before the ring."""

    def enable_queue(self, q):
        """What the model needs for the ring to transmit."""

    def ready(self, q):
        # Linux enables TX first and RX last: RCTL.EN makes the driver ready
        q.writel(self.mmio + 0x400, (1 << 1) | (1 << 3))  # TCTL.EN|PSP
        q.writel(self.mmio + 0x100, 1 << 1)              # RCTL.EN

    def link(self, q):
        return bool(q.readl(self.mmio + 0x8) & 2)     # STATUS.LU

    def send(self, q):
        self.sent += 1
        q.writel(self.mmio + self.tdba + 0x18, self.sent % self.NDESC)


class E1000e(Intel8257x):
    """e1000e (82574L) with a legacy TX ring (the model takes legacy
    descriptors as the hardware does)."""
    name = 'e1000e'
    device = 'e1000e'
    pci_id = 0x10d38086
    mmio = MMIO_E1000E
    tdba = 0x3800

    def descriptor(self):
        # legacy: EOP|IFCS|RS
        return struct.pack('<QII', BUF, len(FRAME) | (0x0b << 24), 0)


class Igb(Intel8257x):
    """igb (82576), TX queue 0 on a ring of advanced data descriptors
    (igb_core.c leaves legacy TX descriptors a TODO; Linux uses advanced
    ones).  The write-back sets DD in the olinfo word, among bits the
    model does not read, so the ring is reused as it is."""
    name = 'igb'
    device = 'igb'
    pci_id = 0x10c98086
    mmio = MMIO_IGB
    tdba = 0xe000

    def prepare(self, q):
        # The reset leaves the link down until an autonegotiation, which
        # Linux starts through the PHY: MDIC write (PHY 1) of BMCR with
        # its reset value (1000 Mb/s, full duplex, autoneg) | ANRESTART
        q.writel(self.mmio + 0x20, (1 << 26) | (1 << 21) | 0x1140 | 0x0200)

    def descriptor(self):
        # DTYP=data, DEXT, EOP|IFCS|RS; PAYLEN in olinfo_status
        cmd = len(FRAME) | (0x3 << 20) | (0x2b << 24)
        return struct.pack('<QII', BUF, cmd, len(FRAME) << 14)

    def enable_queue(self, q):
        # The queue transmits only while enabled here and in TCTL (the
        # model's reset value has the bit set; Linux writes it all the same)
        q.writel(self.mmio + 0xe028, 1 << 25)        # TXDCTL(0).QUEUE_ENABLE


class Vmxnet3:
    """vmxnet3 brought up as Linux's vmxnet3 does: revisions selected
    (BAR 1), the driver-shared area and one TX queue (a ring of 256
    descriptors on the same frame, and its completion ring) in guest RAM,
    then ACTIVATE_DEV, which makes the driver ready.  No RX queue: the
    device accepts none, and nothing is received here.  A packet is one
    descriptor handed to the device by its generation bit (guest RAM) and
    one write of TXPROD (the only device write)."""
    name = 'vmxnet3'
    device = 'vmxnet3'
    slot = FALLBACK_SLOT
    legacy = True
    NDESC = 256
    CMD_ACTIVATE_DEV = 0xcafe0000
    CMD_GET_LINK = 0xf00d0002
    TXD_EOP_CQ = (1 << 12) | (1 << 13)       # Vmxnet3_TxDesc dword 3
    TXD_GEN_SHIFT = 14                       # in dword 2, by the length

    def setup(self, q):
        map_bar0(q, self.slot, MMIO_VMXNET3, 0x07b015ad)
        cfg_write(q, self.slot, 0x14, 4, MMIO_VMXNET3_VD)   # BAR 1
        vd = MMIO_VMXNET3_VD
        q.writel(vd + 0x0, 1)                        # VRRS: revision 1
        q.writel(vd + 0x8, 1)                        # UVRS: UPT version 1
        q.write(BUF, FRAME)
        # The device owns a descriptor whose generation bit is the ring's,
        # 1 after activation: none yet.
        q.write(RING, struct.pack('<QII', BUF, len(FRAME), self.TXD_EOP_CQ) *
                self.NDESC)
        # Vmxnet3_TxQueueDesc: ctrl, then conf: txRingBasePA,
        # dataRingBasePA, compRingBasePA, ddPA, reserved, txRingSize,
        # dataRingSize, compRingSize, ddLen, intrIdx (INTx: 0); 256 bytes
        conf = struct.pack('<QQQQQIIIIB', RING, 0, COMP_RING, 0, 0,
                           self.NDESC, 0, self.NDESC, 0, 0)
        q.write(VQDESC, bytes(16) + conf.ljust(240, b'\0'))
        # Vmxnet3_DriverShared: magic, devRead.misc (queueDescPA at 40,
        # queueDescLen at 52, mtu at 56, numTxQueues and numRxQueues at
        # 62 and 63); the rest (features, events on INTx line 0, RX
        # filters, ecr) zero.  720 bytes
        shared = bytearray(720)
        struct.pack_into('<I', shared, 0, 0xbabefee1)
        struct.pack_into('<Q', shared, 40, VQDESC)
        struct.pack_into('<IIHBB', shared, 52, 256, 1500, 0, 1, 0)
        q.write(VSHARED, bytes(shared))
        q.writel(vd + 0x10, VSHARED)                 # DSAL
        q.writel(vd + 0x18, 0)                       # DSAH
        self.sent = 0

    def ready(self, q):
        q.writel(MMIO_VMXNET3_VD + 0x20, self.CMD_ACTIVATE_DEV)
        if q.readl(MMIO_VMXNET3_VD + 0x20):          # the command's status
            raise BenchError('vmxnet3: ACTIVATE_DEV refused the configuration')

    def link(self, q):
        q.writel(MMIO_VMXNET3_VD + 0x20, self.CMD_GET_LINK)
        return bool(q.readl(MMIO_VMXNET3_VD + 0x20) & 1)

    def send(self, q):
        i = self.sent % self.NDESC
        gen = (self.sent // self.NDESC + 1) & 1      # flips at each wrap
        q.write(RING + 16 * i + 8,
                struct.pack('<I', len(FRAME) | gen << self.TXD_GEN_SHIFT))
        self.sent += 1
        q.writel(MMIO_VMXNET3 + 0x600, self.sent % self.NDESC)  # TXPROD


class VirtioNet:
    """virtio-net-pci, legacy interface (disable-modern=on), no features:
    the TX queue (1) set up through the I/O BAR, every descriptor and
    avail ring slot on the same header + frame; a packet is one avail
    index write (guest RAM) and one notify (the only device write)."""
    name = 'virtio-net'
    device = 'virtio-net-pci'
    slot = PRIMARY_SLOT
    legacy = False

    def setup(self, q):
        map_bar0(q, self.slot, IO_VIRTIO, 0x10001af4)
        io = IO_VIRTIO
        q.out('b', io + 18, 0)                       # status: reset
        q.out('b', io + 18, 1)                       # ACKNOWLEDGE
        q.out('b', io + 18, 3)                       # DRIVER
        q.inp('l', io + 0)                           # host features
        q.out('l', io + 4, 0)                        # guest features: none
        q.out('w', io + 14, 1)                       # queue select: TX
        num = q.inp('w', io + 12)
        if not num:
            raise BenchError('virtio-net: TX queue size 0')
        q.write(VBUF, bytes(10) + FRAME)             # virtio_net_hdr + frame
        q.write(RING, struct.pack('<QIHH', VBUF, 10 + len(FRAME), 0, 0) * num)
        self.avail = RING + 16 * num
        q.write(self.avail, struct.pack('<HH', 0, 0) +
                struct.pack(f'<{num}H', *range(num)))
        q.out('l', io + 8, RING >> 12)               # queue PFN
        self.sent = 0

    def ready(self, q):
        # virtnet_probe(): receive queue 0, empty, and DRIVER_OK ...
        q.out('w', IO_VIRTIO + 14, 0)                # queue select: RX
        q.write(RX_RING, bytes(0x2000))
        q.write(RX_RING, struct.pack('<QIHH', RX_BUF, 2048, 2, 0))
        q.out('l', IO_VIRTIO + 8, RX_RING >> 12)     # queue PFN
        q.out('b', IO_VIRTIO + 18, 0x07)             # ... | DRIVER_OK
        # ... then virtnet_open(): a receive buffer, and the kick that
        # makes the driver ready, the signal the latencies count from
        q.write(RX_RING + 0x1000, struct.pack('<HHH', 0, 1, 0))
        q.out('w', IO_VIRTIO + 16, 0)                # notify queue 0

    def link(self, q):
        return bool(q.inp('w', IO_VIRTIO + 20 + 6) & 1)   # config status

    def send(self, q):
        self.sent += 1
        q.write(self.avail + 2, struct.pack('<H', self.sent & 0xffff))
        q.out('w', IO_VIRTIO + 16, 1)                # notify queue 1


NICS = {'rtl8139': Rtl8139, 'e1000': E1000, 'e1000e': E1000e, 'igb': Igb,
        'vmxnet3': Vmxnet3, 'virtio-net': VirtioNet}


def nic_args(nic, netdev, extra=''):
    """-device options of NIC class NIC on -netdev NETDEV."""
    opts = f'{nic.device},id={"nic0" if nic is VirtioNet else "nic1"},' \
           f'netdev={netdev},addr={nic.slot},romfile='
    if nic is VirtioNet:
        opts += ',disable-modern=on'
    return ['-device', opts + extra]


def pair_args(legacy):
    """Both NICs and the pair, the legacy one being LEGACY's class."""
    return (['-netdev', 'hubport,id=hp0,hubid=0',
             '-netdev', 'hubport,id=hp1,hubid=1'] +
            nic_args(VirtioNet, 'hp0') + nic_args(legacy, 'hp1') +
            ['-device', 'failover-pair,id=pair0,primary=nic0,fallback=nic1,'
             f'fallback-delay-ms={DELAY_MS}'])


# --------------------------------------------------------------------------
# 1. Data path: instructions per packet under callgrind
# --------------------------------------------------------------------------

# Collection is on only inside these functions: a guest register write
# (every port and MMIO write reaches the device through
# memory_region_dispatch_write; all NICs but virtio-net transmit right
# inside it) and virtio-net's TX bottom half, which transmits what the
# notify write queued.  Everything the series could add per packet
# (register write hooks, link checks, the net layer below the NIC) is
# inside; the qtest protocol, guest RAM writes and the main loop, the same
# on both builds, are not, so they cannot dilute the ratio.
TOGGLE = ('memory_region_dispatch_write', 'virtio_net_tx_bh')
# A marker: callgrind dumps its counters each time the b64read qtest
# command enters g_base64_encode, which nothing else calls here.  The
# dumps split the run into set-up | N packets | 2N packets | quit, so the
# per-packet figure excludes set-up (PCI, driver start, the pair's delay)
# and every run checks that the cost scales with the number of packets.
MARKER = 'g_base64_encode'
LINEARITY_TOLERANCE = 0.01


def callgrind_totals(prefix):
    """Ir of each dump of a callgrind run, in dump order."""
    files = glob.glob(prefix + '.*')
    parts = []
    for f in files:
        suffix = f[len(prefix) + 1:]
        if suffix.isdigit():
            parts.append((int(suffix), f))
    parts.sort()
    totals = []
    for _, f in parts:
        ir = None
        with open(f, encoding='utf-8', errors='replace') as fh:
            for line in fh:
                if line.startswith('totals:') or line.startswith('summary:'):
                    ir = int(line.split()[1])
        if ir is None:
            raise BenchError(f'no totals in {f}')
        totals.append(ir)
    return totals


def datapath_run(qemu_bin, nic_cls, pair, n, workdir, tag):
    """One callgrind run of NIC_CLS, alone or in a pair (PAIR), sending N
    then 2N packets; returns (instructions per packet over both phases,
    per packet in the first phase, in the second)."""
    d = os.path.join(workdir, tag)
    os.makedirs(d)
    out = os.path.join(d, 'callgrind.out')
    sinks = [Sink(os.path.join(d, 'sink0')), Sink(os.path.join(d, 'sink1'))]
    nic = nic_cls()
    args = []
    netdev = f'dgram,id=n%d,local.type=unix,local.path={d}/q%d,' \
             f'remote.type=unix,remote.path={d}/sink%d'
    args += ['-netdev', netdev % (0, 0, 0)]
    if pair:
        other = E1000 if nic_cls is E1000 else Rtl8139
        legacy = nic_cls if nic_cls.legacy else other
        args += ['-netdev', netdev % (1, 1, 1)]
        args += nic_args(nic_cls, 'n0')
        args += nic_args(VirtioNet if nic_cls.legacy else legacy, 'n1')
        # Without the announcement the pair makes when it gives the link:
        # its frames are not the data path, and the sinks count only ours.
        args += ['-device', 'failover-pair,id=pair0,primary=nic0,fallback=nic1,'
                 f'fallback-delay-ms={DELAY_MS},announce=off']
    else:
        args += nic_args(nic_cls, 'n0')
    prefix = ['nice', '-n', '5', 'valgrind', '--tool=callgrind',
              f'--callgrind-out-file={out}', f'--log-file={d}/valgrind.log',
              '--collect-atstart=no', f'--dump-before={MARKER}']
    prefix += [f'--toggle-collect={f}' for f in TOGGLE]
    q = Qemu(qemu_bin, args, d, 'q', prefix)
    try:
        nic.setup(q)
        nic.ready(q)
        # Past the fallback delay and the e1000 family's autonegotiation
        # (500 ms): the legacy NIC's link is up in a pair with only its
        # driver ready.
        # The same steps on every build.
        q.clock_step(DELAY_NS + 700 * 1000 * 1000)
        if not nic.link(q):
            raise BenchError(f'{nic.name}: link down after its driver is ready')
        if pair:
            active = q.vm.cmd('qom-get', path='/machine/peripheral/pair0',
                              property='active')
            want = 'fallback' if nic_cls.legacy else 'primary'
            if active != want:
                raise BenchError(f'pair0 active={active}, expected {want}')
        # One packet at a time: each is out before the next is queued.
        # virtio-net transmits from a bottom half; packets that found the
        # bottom half still pending would share its run (and its fixed
        # cost, two virtqueue_pop calls that find the ring empty), so the
        # figure would depend on the host's timing.
        for _ in range(8):                    # warm-up, outside the figures
            nic.send(q)
            sinks[0].wait(nic.sent)
        counts = []
        for count in (n, 2 * n):
            q.b64read(BUF, 4)                 # marker: dump
            for _ in range(count):
                nic.send(q)
                sinks[0].wait(nic.sent)       # out, none lost
            counts.append(count)
        q.b64read(BUF, 4)                     # marker: dump
        q.quit()
    except BaseException:
        q.kill()
        raise
    finally:
        for s in sinks:
            s.close()
    if sinks[0].count != nic.sent or sinks[0].other or sinks[1].count:
        raise BenchError(f'{nic.name}: sent {nic.sent}, received '
                         f'{sinks[0].count} (+{sinks[0].other} other, '
                         f'{sinks[1].count} on the other NIC)')
    totals = callgrind_totals(out)
    # numbered dumps: .1 set-up, .2 N packets, .3 2N packets (the final
    # dump, of the quit, is the file without a number)
    if len(totals) != 3:
        raise BenchError(f'callgrind wrote {len(totals)} numbered dumps, expected 3')
    ir1, ir2 = totals[1], totals[2]
    per1, per2 = ir1 / counts[0], ir2 / counts[1]
    if abs(per2 - per1) > LINEARITY_TOLERANCE * per1:
        raise BenchError(f'{nic.name}: cost does not scale with packets: '
                         f'{per1:.1f} vs {per2:.1f} instructions per packet')
    if not os.environ.get('BENCH_KEEP'):          # keep: for callgrind_annotate
        shutil.rmtree(d, ignore_errors=True)
    return (ir1 + ir2) / (counts[0] + counts[1]), per1, per2


# --------------------------------------------------------------------------
# 2. Decision latency, in virtual time (patched build only)
# --------------------------------------------------------------------------

def watch(q, conds, what):
    """Virtual ns until each of CONDS (name -> callable) first holds,
    checking at once, then after 1 ns steps for the first 1000 ns, then
    at each timer deadline (the pair's delay is a virtual-clock timer)."""
    t0 = q.clock_step(1)                          # the virtual time now
    what()                                        # the guest's write
    t = t0
    seen = {}
    while True:
        for name, cond in conds.items():
            if name not in seen and cond():
                seen[name] = t - t0
        if len(seen) == len(conds):
            return seen
        if t - t0 > 20 * DELAY_NS:
            raise BenchError('not seen within 20 delays: ' +
                             ', '.join(n for n in conds if n not in seen))
        t = q.clock_step(1 if t - t0 < 1000 else None)


def latency_run(qemu_bin, legacy_cls, workdir, tag):
    """Fallback ready -> the pair's decision and the fallback's link; then
    primary ready -> decision, primary link up, fallback link down.
    Returns {metric: virtual ns}."""
    d = os.path.join(workdir, tag)
    os.makedirs(d)
    q = Qemu(qemu_bin, pair_args(legacy_cls), d, 'q')
    primary, fallback = VirtioNet(), legacy_cls()

    def active():
        return q.vm.cmd('qom-get', path='/machine/peripheral/pair0',
                        property='active')
    try:
        map_bar0(q, PRIMARY_SLOT, IO_VIRTIO, 0x10001af4)
        if legacy_cls is E1000:
            map_bar0(q, FALLBACK_SLOT, MMIO_E1000, 0x100e8086)
            q.writel(MMIO_E1000 + 0x0, 1 << 26)      # CTRL.RST, as Linux does
        else:
            map_bar0(q, FALLBACK_SLOT, IO_RTL, 0x813910ec)
        if primary.link(q) or fallback.link(q) or active() != 'none':
            raise BenchError('a link is up before any driver is ready')
        out = {}
        seen = watch(q, {'decision': lambda: active() == 'fallback',
                         'link': lambda: fallback.link(q)},
                     lambda: fallback.ready(q))
        out['fallback decision'] = seen['decision']
        out['fallback link'] = seen['link']
        seen = watch(q, {'decision': lambda: active() == 'primary',
                         'up': lambda: primary.link(q),
                         'down': lambda: not fallback.link(q)},
                     lambda: primary.ready(q))
        out['primary decision'] = seen['decision']
        out['primary link up'] = seen['up']
        out['fallback link down'] = seen['down']
        q.quit()
    except BaseException:
        q.kill()
        raise
    shutil.rmtree(d, ignore_errors=True)
    return out


# --------------------------------------------------------------------------
# 3. Events and the management layer, on the wall clock (patched build)
# --------------------------------------------------------------------------

BURST = 8                   # DRIVER_STATUS_CHANGED goes out at once up to this
EVENT_GOAL_S = 0.010        # a normal driver load: each event within this
POLICY_GOAL_S = 0.010       # failover-policy.py: switch within event + delay


# Each driver's bring-up, as Linux does it: (label, write, status it
# leads to, or None when it changes nothing)
def rtl8139_load(q):
    return [('ChipCmd reset', lambda: q.out('b', IO_RTL + 0x37, 0x10),
             'initializing'),
            ('ChipCmd RxEnb|TxEnb', lambda: q.out('b', IO_RTL + 0x37, 0x0c),
             'ready')]


def e1000_load(q):
    return [('CTRL.RST', lambda: q.writel(MMIO_E1000, 1 << 26),
             'initializing'),
            ('TCTL', lambda: q.writel(MMIO_E1000 + 0x400, 1 << 3), None),
            ('RCTL.EN', lambda: q.writel(MMIO_E1000 + 0x100, 1 << 1), 'ready')]


def virtio_load(q):
    return [('ACKNOWLEDGE', lambda: q.out('b', IO_VIRTIO + 18, 1),
             'initializing'),
            ('DRIVER', lambda: q.out('b', IO_VIRTIO + 18, 3), None),
            ('RX queue', lambda: (q.out('w', IO_VIRTIO + 14, 0),
                                  q.write(RX_RING, bytes(0x2000)),
                                  q.write(RX_RING, struct.pack(
                                      '<QIHH', RX_BUF, 2048, 2, 0)),
                                  q.out('l', IO_VIRTIO + 8, RX_RING >> 12)),
             None),
            ('DRIVER_OK', lambda: q.out('b', IO_VIRTIO + 18, 7), None),
            ('RX buffer kick',
             lambda: (q.write(RX_RING + 0x1000, struct.pack('<HHH', 0, 1, 0)),
                      q.out('w', IO_VIRTIO + 16, 0)), 'ready')]


LOADS = {
    # name: (device class, its bring-up, the write that unloads the driver)
    'rtl8139': (Rtl8139, rtl8139_load,
                lambda q: q.out('b', IO_RTL + 0x37, 0)),
    'e1000': (E1000, e1000_load,
              lambda q: (q.writel(MMIO_E1000 + 0x100, 0),
                         q.writel(MMIO_E1000 + 0x400, 0))),
    'virtio-net': (VirtioNet, virtio_load,
                   lambda q: q.out('b', IO_VIRTIO + 18, 0)),
}
BARS = {Rtl8139: (IO_RTL, 0x813910ec), E1000: (MMIO_E1000, 0x100e8086),
        VirtioNet: (IO_VIRTIO, 0x10001af4)}


def event_latency_run(qemu_bin, name, rounds, workdir, tag):
    """The driver of NAME loads ROUNDS times; returns the seconds from
    each guest write to the QMP timestamp of its DRIVER_STATUS_CHANGED."""
    cls, load, unload = LOADS[name]
    d = os.path.join(workdir, tag)
    os.makedirs(d)
    path = '/machine/peripheral/' + ('nic0' if cls is VirtioNet else 'nic1')
    q = Qemu(qemu_bin, ['-netdev', 'hubport,id=hp0,hubid=0'] +
             nic_args(cls, 'hp0'), d, 'q')
    out = []
    # The events are timed by their QMP timestamps, which QEMU takes on the
    # wall clock as it raises them.  Their arrival here would be when the
    # script next reads QMP, after the qtest reply (QEMUMachine's connection
    # reads only when called into), and a QMPClient listening in a thread
    # adds some 0.2 ms of asyncio to a path of some 0.05 ms.  An event the
    # rate limit held back would keep an early timestamp, but it cannot
    # come before the next clock step: the wait fails instead.
    try:
        map_bar0(q, cls.slot, *BARS[cls])
        for _ in range(rounds):
            unload(q)
            for label, write, status in load(q):
                t0 = time.time()
                write()
                if not status:
                    continue
                try:
                    event = q.vm.event_wait(
                        'DRIVER_STATUS_CHANGED', timeout=5.0,
                        match={'data': {'qom-path': path, 'status': status}})
                except asyncio.TimeoutError:
                    raise BenchError(f'no event for {name} {label} within '
                                     '5 s') from None
                stamp = event['timestamp']
                out.append(stamp['seconds'] + stamp['microseconds'] / 1e6 -
                           t0)
            # A quiet spell gives the whole burst back (the monitor rates
            # events on the virtual clock under qtest)
            q.clock_step((BURST + 2) * 1000 * 1000 * 1000)
        q.quit()
    except BaseException:
        q.kill()
        raise
    shutil.rmtree(d, ignore_errors=True)
    return out


# A guest that flips both drivers in a tight loop (the firmware of
# failover-pair-test's storm): port A (virtio status) and port B
# (rtl8139 ChipCmd) get their ready values, then 0, counting rounds
STORM_PARAMS = 0x500
STORM_LOOP = bytes.fromhex('8b160005a00205ee8b160405a00605ee30c0ee8b160005ee'
                           '66ff060805ebe1')


def event_flood_run(qemu_bin, seconds, workdir, tag):
    """A TCG guest floods for SECONDS; returns (seconds it ran,
    {qom-path: events}, {qom-path: (last event's status, queried status)})
    once the events held back have had a second to arrive."""
    d = os.path.join(workdir, tag)
    os.makedirs(d)
    rom = os.path.join(d, 'storm.rom')
    with open(rom, 'wb') as f:
        image = bytearray(64 * 1024)
        image[:len(STORM_LOOP)] = STORM_LOOP
        image[-16:-11] = bytes.fromhex('ea000000f0')   # jmp far f000:0000
        f.write(image)
    q = Qemu(qemu_bin, pair_args(Rtl8139) + ['-bios', rom, '-S'], d, 'q',
             tcg=True)
    try:
        map_bar0(q, PRIMARY_SLOT, IO_VIRTIO, 0x10001af4)
        map_bar0(q, FALLBACK_SLOT, IO_RTL, 0x813910ec)
        q.write(STORM_PARAMS, struct.pack('<HBxHBxI', IO_VIRTIO + 18, 0x0f,
                                          IO_RTL + 0x37, 0x0c, 0))
        t0 = time.monotonic()
        q.vm.cmd('cont')
        time.sleep(seconds)
        q.vm.cmd('stop')
        ran = time.monotonic() - t0
        rounds = struct.unpack('<I', q.b64read(STORM_PARAMS + 8, 4))[0]
        if not rounds:
            raise BenchError('the storm guest did not run')
        time.sleep(1.5)
        now = {i['qom-path']: i['status']
               for i in q.vm.cmd('query-driver-status')}
        # Only counted, not timed: QEMUMachine's QMP connection will do.
        # It reads only when called, but the reply above came after every
        # event sent before it, so these are all the events until then.
        counts, last = {}, {}
        for msg in q.vm.get_qmp_events():
            if msg['event'] == 'DRIVER_STATUS_CHANGED':
                p = msg['data']['qom-path']
                counts[p] = counts.get(p, 0) + 1
                last[p] = msg['data']['status']
        q.quit()
    except BaseException:
        q.kill()
        raise
    shutil.rmtree(d, ignore_errors=True)
    return ran, counts, {p: (last.get(p), s) for p, s in now.items()}


def wait_link(q, link, up, timeout=5.0):
    """Poll LINK until it is UP; the monotonic time it was seen."""
    end = time.monotonic() + timeout
    while link(q) != up:
        if time.monotonic() > end:
            raise BenchError(f'link not {"up" if up else "down"} within '
                             f'{timeout:g} s')
    return time.monotonic()


def policy_run(qemu_bin, tool, workdir, tag):
    """scripts/qmp/failover-policy.py keeps the links of virtio-net and
    rtl8139 (no pair in QEMU): seconds from the guest's write to the
    tool's switch, for the fallback (minus the delay) and the primary."""
    d = os.path.join(workdir, tag)
    os.makedirs(d)
    ev_path = os.path.join(d, 'tool.qmp')
    q = Qemu(qemu_bin, ['-netdev', 'hubport,id=hp0,hubid=0',
                        '-netdev', 'hubport,id=hp1,hubid=1'] +
             nic_args(VirtioNet, 'hp0') + nic_args(Rtl8139, 'hp1') +
             ['-qmp', f'unix:{ev_path},server=on,wait=off'], d, 'q')
    primary, fallback = VirtioNet(), Rtl8139()
    proc = None
    try:
        map_bar0(q, PRIMARY_SLOT, IO_VIRTIO, 0x10001af4)
        map_bar0(q, FALLBACK_SLOT, IO_RTL, 0x813910ec)
        proc = subprocess.Popen([sys.executable, tool, '--qmp', ev_path,
                                 '--primary', 'nic0', '--fallback', 'nic1',
                                 '--delay-ms', str(DELAY_MS)],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        line = proc.stdout.readline()
        if 'active=none' not in line:
            raise BenchError(f'failover-policy.py did not start: {line!r}')
        wait_link(q, fallback.link, False)
        t0 = time.monotonic()
        fallback.ready(q)
        fallback_s = wait_link(q, fallback.link, True) - t0 - DELAY_MS / 1000
        t0 = time.monotonic()
        primary.ready(q)
        primary_s = wait_link(q, primary.link, True) - t0
        wait_link(q, fallback.link, False)
        q.quit()
    except BaseException:
        q.kill()
        raise
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)
    return fallback_s, primary_s


# --------------------------------------------------------------------------
# 4. Time to network of a real Linux guest
# --------------------------------------------------------------------------

MAC = '52:54:00:12:34:56'

# Each lone NIC boot loads the modules of the pair boot it is compared
# with (8139cp finds no device in a lone virtio-net guest), so that the
# comparison is between devices, not between amounts of modprobe.
BOOTS = {
    # name: (devices, modules the guest loads, driver the ping must use,
    #        needs the series)
    'lone virtio-net': ('virtio', 'virtio_net,8139cp', 'virtio_net', False),
    'lone rtl8139': ('rtl8139', '8139cp', '8139cp', False),
    # References: the pair's two NICs without the pair (both links up from
    # power-on), to tell what the second NIC costs from what the pair does.
    'both NICs, no pair, both drivers': ('both', 'virtio_net,8139cp', None, False),
    'both NICs, no pair, legacy driver only': ('both', '8139cp', '8139cp', False),
    'pair, virtio driver present': ('pair', 'virtio_net,8139cp', 'virtio_net', True),
    'pair, legacy driver only': ('pair', '8139cp', '8139cp', True),
}


def parse_e2e(line):
    """'E2E iface=eth0 driver=8139cp carrier=1 t=6.9' -> ('', {...})."""
    i = line.find('E2E ')
    if i < 0:
        return None
    words = line[i + 4:].split()
    what = words.pop(0) if words and '=' not in words[0] else ''
    return what, dict(w.partition('=')[::2] for w in words)


def boot_run(qemu_bin, guest, config, workdir, tag):
    """Seconds from QEMU's start to the guest's first successful ping."""
    devices, load, want_driver, _ = BOOTS[config]
    kernel = os.path.join(guest, 'vmlinux')
    if not os.path.isfile(kernel):
        kernel = os.path.join(guest, 'vmlinuz')
    argv = [qemu_bin, '-machine', 'pc', '-accel', 'tcg', '-m', '256',
            '-nodefaults', '-no-user-config', '-display', 'none',
            '-serial', 'stdio', '-monitor', 'none',
            '-kernel', kernel, '-initrd', os.path.join(guest, 'initramfs.gz'),
            '-append', f'console=ttyS0 quiet loglevel=1 e2e.load={load} e2e.off=60',
            '-netdev', 'user,id=user0',
            '-netdev', 'hubport,id=hp0,hubid=0,netdev=user0',
            '-netdev', 'hubport,id=hp1,hubid=0',
            '-netdev', 'hubport,id=hp2,hubid=0']
    if devices in ('virtio', 'pair', 'both'):
        argv += ['-device', f'virtio-net-pci,id=vnet0,netdev=hp1,mac={MAC},romfile=']
    if devices in ('rtl8139', 'pair', 'both'):
        argv += ['-device', f'rtl8139,id=legacy0,netdev=hp2,mac={MAC},romfile=']
    if devices == 'pair':
        argv += ['-device', 'failover-pair,id=pair0,primary=vnet0,'
                 f'fallback=legacy0,fallback-delay-ms={DELAY_MS}']
    errpath = os.path.join(workdir, f'{tag}.stderr')
    console = []
    with open(errpath, 'wb') as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
    drivers = {}
    result = None
    timer = threading.Timer(BOOT_TIMEOUT, proc.kill)
    timer.start()
    try:
        for raw in proc.stdout:
            line = raw.decode(errors='replace').rstrip()
            console.append(line)
            rec = parse_e2e(line)
            if rec is None:
                continue
            what, kv = rec
            if 'driver' in kv and 'iface' in kv:
                drivers[kv['iface']] = kv['driver']
            if what == 'ping' and 'ok' in kv:
                result = time.monotonic() - t0
                via = drivers.get(kv.get('iface'), '?')
                if want_driver and via != want_driver:
                    raise BenchError(f'{config}: first ping through {via}, '
                                     f'expected {want_driver}')
                break
            if what in ('ping', 'dhcp') and 'fail' in kv:
                raise BenchError(f'{config}: guest says {line.strip()}')
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
    if result is None:
        with open(errpath, 'rb') as f:
            err = f.read()[-400:].decode(errors='replace')
        raise BenchError(f'{config}: no ping within {BOOT_TIMEOUT:.0f} s '
                         f'(last console: {console[-3:]}; stderr: {err})')
    os.unlink(errpath)
    return result


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

class Results:
    FIELDS = ('section', 'case', 'build', 'metric', 'unit', 'runs', 'median',
              'min', 'max', 'stdev', 'ratio_vs_pristine', 'goal', 'goal_met')

    def __init__(self):
        self.rows = []
        self.errors = []

    def add(self, section, case, build, metric, unit, values, fmt,
            ratio=None, goal='', met=''):
        row = {'section': section, 'case': case, 'build': build,
               'metric': metric, 'unit': unit, 'runs': len(values),
               'median': '', 'min': '', 'max': '', 'stdev': '',
               'ratio_vs_pristine': '' if ratio is None else f'{ratio:.4f}',
               'goal': goal, 'goal_met': met, 'fmt': fmt}
        if values:
            row['median'] = statistics.median(values)
            row['min'] = min(values)
            row['max'] = max(values)
            row['stdev'] = statistics.stdev(values) if len(values) > 1 else 0.0
        self.rows.append(row)

    def write_csv(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w', newline='', encoding='utf-8') as f:
            w = csv.DictWriter(f, fieldnames=self.FIELDS, extrasaction='ignore')
            w.writeheader()
            for r in self.rows:
                out = dict(r)
                for k in ('median', 'min', 'max', 'stdev'):
                    if isinstance(out[k], float):
                        out[k] = f'{out[k]:.6g}' if r['unit'] != 'ns' else f'{out[k]:.0f}'
                w.writerow(out)

    def table(self):
        head = ('section', 'case', 'build', 'metric', 'runs', 'median',
                'min-max', 'vs pristine', 'goal', 'met')
        lines = []
        for r in self.rows:
            f = r['fmt']
            if r['median'] == '':
                med = spread = 'n/a'
            else:
                med = f'{r["median"]:{f}} {r["unit"]}'
                spread = f'{r["min"]:{f}}-{r["max"]:{f}}'
            ratio = r['ratio_vs_pristine']
            lines.append((r['section'], r['case'], r['build'], r['metric'],
                          str(r['runs']), med, spread,
                          f'{float(ratio):.4f}' if ratio else '', r['goal'],
                          r['goal_met']))
        widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h)
                  for i, h in enumerate(head)]
        out = ['| ' + ' | '.join(h.ljust(w) for h, w in zip(head, widths)) + ' |',
               '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
        for row in lines:
            out.append('| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + ' |')
        return '\n'.join(out)


def log(msg):
    print(f'bench: {msg}', flush=True)


def measure(results, what, fn, *args):
    """Run one measurement; on failure note it and return None."""
    try:
        return fn(*args)
    except (BenchError, OSError, ValueError, QEMUMachineError, QMPError) as e:
        results.errors.append(f'{what}: {e}')
        log(f'FAILED {what}: {e}')
        return None


DATAPATH_GOAL = 1.005      # patched / pristine
E1000_GOAL_IR = 5           # and e1000 within that many instructions


def section_datapath(res, builds, repeat, n, workdir):
    # case -> list of per-packet figures
    cases = []
    for name, cls in NICS.items():
        for flavour in ('', '-nocast'):
            if 'patched' + flavour not in builds:
                continue
            cases.append((name, 'lone NIC', 'pristine' + flavour, cls, False))
            cases.append((name, 'lone NIC', 'patched' + flavour, cls, False))
            cases.append((name, 'in a failover pair', 'patched' + flavour,
                          cls, True))
    vals = {c[:3]: [] for c in cases}
    for r in range(repeat):
        for c in cases:
            nic, how, build, cls, pair = c
            t = time.monotonic()
            v = measure(res, f'datapath {nic} {how} {build} run {r + 1}',
                        datapath_run, builds[build], cls, pair, n, workdir,
                        f'dp-{nic}-{build}-{int(pair)}-{r}')
            if v is not None:
                v, per1, per2 = v
                vals[c[:3]].append(v)
                log(f'datapath {nic:10} {how:18} {build:8} run {r + 1}/{repeat}: '
                    f'{v:.1f} instructions/packet ({n} packets: {per1:.1f}, '
                    f'{2 * n}: {per2:.1f}; {time.monotonic() - t:.0f} s)')
    for c in cases:
        nic, how, build = c[:3]
        v = vals[c[:3]]
        pristine = build.replace('patched', 'pristine')
        base = vals[(nic, 'lone NIC', pristine)]
        goal = met = ''
        ratio = None
        if v and base:
            ratio = statistics.median(v) / statistics.median(base)
        if build.startswith('patched'):
            goal = f'< {DATAPATH_GOAL} x {pristine}'
            ok = ratio is not None and ratio < DATAPATH_GOAL
            if nic == 'e1000':
                goal += f', <= +{E1000_GOAL_IR} Ir'
                ok = ok and (statistics.median(v) - statistics.median(base)
                             <= E1000_GOAL_IR)
            met = '' if ratio is None else ('yes' if ok else 'MISSED')
        res.add('datapath', f'{nic}, {how}', build, 'instructions/packet',
                'Ir', v, '.1f', ratio, goal, met)


def section_latency(res, builds, repeat, workdir):
    vals = {}
    for r in range(repeat):
        for lname, cls in (('rtl8139', Rtl8139), ('e1000', E1000)):
            v = measure(res, f'latency {lname} run {r + 1}', latency_run,
                        builds['patched'], cls, workdir, f'lat-{lname}-{r}')
            if v is None:
                continue
            log(f'latency virtio-net + {lname} run {r + 1}/{repeat}: ' +
                ', '.join(f'{k} {x} ns' for k, x in v.items()))
            for k, x in v.items():
                vals.setdefault((lname, k), []).append(x)
    # The pristine emulator has no failover-pair: its links are up from
    # power-on whatever the guest does, so there is no decision to time.
    res.add('latency', 'every case below', 'pristine', 'virtual time', 'ns',
            [], '.0f', None, 'n/a: no failover-pair, links up at power-on', '')
    same = ('= 0 ns (the same write)', lambda x: x == 0)
    delay = (f'= {DELAY_NS} ns (the delay)', lambda x: x == DELAY_NS)
    # e1000 itself (upstream) reports link up only after its PHY's
    # autonegotiation, a 500 ms timer in ms units once the backend's link
    # is up: its register shows the link one autonegotiation later.
    autoneg = ('= delay + 500 ms autoneg (+-1 ms)',
               lambda x: abs(x - DELAY_NS - 500000000) <= 1000000)
    for lname in ('rtl8139', 'e1000'):
        rows = (
            ('fallback decision', f'{lname} ready -> pair active=fallback', delay),
            ('fallback link', f'{lname} ready -> {lname} link up (register)',
             autoneg if lname == 'e1000' else delay),
            ('primary decision', f'virtio ready -> pair active=primary ({lname})',
             same),
            ('primary link up', f'virtio ready -> virtio link up ({lname})', same),
            ('fallback link down', f'virtio ready -> {lname} link down', same),
        )
        for key, case, (goal, ok) in rows:
            v = vals.get((lname, key), [])
            met = ('yes' if all(ok(x) for x in v) else 'MISSED') if v else ''
            res.add('latency', case, 'patched', 'virtual time', 'ns', v, '.0f',
                    None, goal + ' in every run', met)


def section_events(res, builds, repeat, tool, workdir):
    qemu = builds['patched']
    rounds = 10 * repeat
    for name in LOADS:
        v = measure(res, f'events {name}', event_latency_run, qemu, name,
                    rounds, workdir, f'ev-{name}')
        if v is None:
            continue
        v = [x * 1000 for x in v]
        log(f'events {name}: {len(v)} events, median {statistics.median(v):.3f} ms, '
            f'max {max(v):.3f} ms')
        res.add('events', f'{name} driver loads: write -> DRIVER_STATUS_CHANGED',
                'patched', 'wall clock', 'ms', v, '.3f', None,
                f'every one <= {EVENT_GOAL_S * 1000:g} ms',
                'yes' if max(v) <= EVENT_GOAL_S * 1000 else 'MISSED')

    seconds = 5
    v = measure(res, 'events flood', event_flood_run, qemu, seconds, workdir,
                'ev-flood')
    if v is not None:
        ran, counts, last = v
        bound = BURST + int(ran) + 1
        for path in sorted(last):
            n = counts.get(path, 0)
            got, now = last[path]
            log(f'events flood {path}: {n} events in {ran:.1f} s, last {got}, '
                f'now {now}')
            res.add('events', f'flood, {path.rsplit("/", 1)[1]}: events',
                    'patched', f'in {ran:.1f} s', 'events', [n], '.0f', None,
                    f'<= {BURST} + 1 a second ({bound})',
                    'yes' if 0 < n <= bound else 'MISSED')
            res.add('events', f'flood, {path.rsplit("/", 1)[1]}: last event',
                    'patched', 'status', '', [], '', None,
                    f'= the current status ({now})',
                    'yes' if got == now else f'MISSED (last event: {got})')

    fallback, primary = [], []
    for r in range(repeat):
        v = measure(res, f'policy run {r + 1}', policy_run, qemu, tool,
                    workdir, f'policy-{r}')
        if v is not None:
            fallback.append(v[0] * 1000)
            primary.append(v[1] * 1000)
            log(f'policy run {r + 1}/{repeat}: fallback {v[0] * 1000:.1f} ms '
                f'after the delay, primary {v[1] * 1000:.1f} ms')
    for case, v in (('rtl8139 ready -> its link up, minus the delay', fallback),
                    ('virtio ready -> its link up', primary)):
        res.add('events', f'failover-policy.py: {case}', 'patched',
                'wall clock', 'ms', v, '.1f', None,
                f'<= {POLICY_GOAL_S * 1000:g} ms',
                ('yes' if max(v) <= POLICY_GOAL_S * 1000 else 'MISSED')
                if v else '')


def section_boot(res, builds, repeat, guest, workdir):
    plan = []
    for config, (_, _, _, series) in BOOTS.items():
        for build in ('pristine', 'patched'):
            if series and build == 'pristine':
                continue
            plan.append((config, build))
    vals = {p: [] for p in plan}
    for r in range(repeat):
        for config, build in plan:
            v = measure(res, f'boot {config} {build} run {r + 1}', boot_run,
                        builds[build], guest, config, workdir,
                        f'boot-{build}-{r}')
            if v is not None:
                vals[(config, build)].append(v)
                log(f'boot {config:38} {build:8} run {r + 1}/{repeat}: {v:.2f} s')

    def med(config, build):
        v = vals.get((config, build))
        return statistics.median(v) if v else None

    for config, build in [(c, b) for c in BOOTS for b in ('pristine', 'patched')]:
        if (config, build) not in vals:
            res.add('boot', config, build, 'power-on to first ping', 's',
                    [], '.2f', None, 'n/a: no failover-pair in pristine QEMU', '')
            continue
        v = vals[(config, build)]
        devices = BOOTS[config][0]
        # ratio: to the pristine lone NIC the goal names for a pair, to the
        # same configuration on the pristine build otherwise
        if devices == 'pair':
            ref_config = 'lone virtio-net' if 'virtio_net' in BOOTS[config][1] \
                else 'lone rtl8139'
        else:
            ref_config = config
        base = med(ref_config, 'pristine')
        ratio = statistics.median(v) / base if v and base else None
        goal = met = ''
        if devices == 'pair':
            lone = med(ref_config, 'patched')
            m = statistics.median(v) if v else None
            if ref_config == 'lone virtio-net':
                goal = '<= 1.05 x lone virtio-net'
                check = lambda ref: m <= 1.05 * ref       # noqa: E731
            else:
                goal = f'<= lone rtl8139 + {DELAY_MS / 1000:g} s + 5 %'
                check = lambda ref: m <= 1.05 * ref + DELAY_MS / 1000  # noqa: E731
            parts = []
            for label, ref in (('patched', lone), ('pristine', base)):
                if m is not None and ref is not None:
                    parts.append(f'{"yes" if check(ref) else "MISSED"} vs {label}')
            met = ', '.join(parts)
            # what the pair itself adds to the same two NICs
            both = med('both NICs, no pair, ' + ('both drivers' if ref_config ==
                       'lone virtio-net' else 'legacy driver only'), 'patched')
            if m is not None and both:
                met += f' (x{m / both:.3f} of both NICs without the pair)'
        res.add('boot', config, build, 'power-on to first ping', 's', v, '.2f',
                ratio, goal, met)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--patched', required=True)
    ap.add_argument('--pristine', required=True)
    ap.add_argument('--patched-nocast', default='',
                    help='the patched emulator built --disable-qom-cast-debug')
    ap.add_argument('--pristine-nocast', default='',
                    help='the pristine one built the same way')
    ap.add_argument('--guest', required=True, help='folder of vmlinux/vmlinuz, initramfs.gz')
    ap.add_argument('--policy-tool', default='build/src/scripts/qmp/failover-policy.py',
                    help="the tree's scripts/qmp/failover-policy.py")
    ap.add_argument('--sections', default='', help=','.join(SECTIONS) + ' (default: all)')
    ap.add_argument('--repeat', default='', help='runs per data path and latency case (3)')
    ap.add_argument('--boot-repeat', default='', help='boots per configuration (5)')
    ap.add_argument('--packets', type=int, default=200,
                    help='N: each data path run sends N, then 2N packets (200)')
    ap.add_argument('--csv', default='build/bench/bench.csv')
    args = ap.parse_args()
    sections = [s.strip() for s in (args.sections or ','.join(SECTIONS)).split(',')
                if s.strip()]
    for s in sections:
        if s not in SECTIONS:
            ap.error(f'unknown section {s!r} (known: {", ".join(SECTIONS)})')
    repeat = int(args.repeat or 3)
    boot_repeat = int(args.boot_repeat or 5)
    builds = {'pristine': os.path.abspath(args.pristine),
              'patched': os.path.abspath(args.patched)}
    if args.patched_nocast and args.pristine_nocast:
        builds['pristine-nocast'] = os.path.abspath(args.pristine_nocast)
        builds['patched-nocast'] = os.path.abspath(args.patched_nocast)
    for b, path in builds.items():
        if not os.access(path, os.X_OK):
            raise SystemExit(f'bench: no {b} emulator at {path}')
    if 'datapath' in sections and not shutil.which('valgrind'):
        raise SystemExit('bench: valgrind is needed for the data path section')
    guest = args.guest
    if 'boot' in sections:
        for sub in ('', 'guest'):
            if os.path.isfile(os.path.join(guest, sub, 'initramfs.gz')):
                guest = os.path.join(guest, sub)
                break
        else:
            raise SystemExit(f'bench: no guest in {args.guest} (make guest)')

    res = Results()
    workdir = tempfile.mkdtemp(prefix='qemu-bench-')
    started = time.time()
    log(f'{time.strftime("%Y-%m-%d %H:%M:%S")}: sections {",".join(sections)}, '
        f'{repeat} runs per case, {boot_repeat} boots per configuration')
    try:
        if 'datapath' in sections:
            section_datapath(res, builds, repeat, args.packets, workdir)
        if 'latency' in sections:
            section_latency(res, builds, repeat, workdir)
        if 'events' in sections:
            section_events(res, builds, repeat, args.policy_tool, workdir)
        if 'boot' in sections:
            section_boot(res, builds, boot_repeat, guest, workdir)
    finally:
        if os.environ.get('BENCH_KEEP'):
            log(f'BENCH_KEEP: callgrind files of each data path run kept in {workdir}')
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    order = {s: i for i, s in enumerate(SECTIONS)}
    res.rows.sort(key=lambda r: order[r['section']])
    print()
    print(res.table())
    res.write_csv(args.csv)
    missed = [r for r in res.rows if 'MISSED' in r['goal_met']]
    print(f'\nbench: {time.strftime("%Y-%m-%d")}, {time.time() - started:.0f} s; '
          f'CSV in {args.csv}; goals missed: {len(missed)}'
          + (''.join(f'\n  missed: {r["section"]} {r["case"]} ({r["build"]})'
                     for r in missed)))
    if res.errors:
        print(f'bench: {len(res.errors)} measurement(s) could not be made:')
        for e in res.errors:
            print(f'  {e}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
