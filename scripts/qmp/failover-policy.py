#!/usr/bin/env python3
#
# Keep a virtio-net NIC and a fallback NIC of a running QEMU in a
# "failover pair" from outside QEMU, over QMP, following the guest
# driver status that QEMU reports (query-driver-status and the
# DRIVER_STATUS_CHANGED event).
#
# Copyright (c) 2026 The QEMU driver status authors
#
# SPDX-License-Identifier: GPL-2.0-or-later

"""
Apply a failover pair NIC policy to a running QEMU over QMP.

The guest sees the link of exactly one of two NICs at a time: the
primary (typically virtio-net) whenever its guest driver is ready,
otherwise the fallback (typically an emulated NIC such as rtl8139 or
e1000 that any guest has a driver for):

- at start-up, and after every guest reset (the RESET event), both
  links go down and the policy starts over;
- when the primary's driver is ready, the primary's link comes up and
  the fallback's goes down at once;
- when only the fallback's driver is ready, the fallback's link comes
  up after the delay (``--delay-ms``, 500 ms by default) if the
  primary's driver is still not ready then; a primary that leaves
  "ready" loses its link at once and the fallback takes over after the
  delay;
- when neither driver is ready, both links are down.

This is the policy of ``-device failover-pair`` inside QEMU for ready
drivers, for users who keep such policy in their management layer.
The differences:

- A driver that waits for a link before it enables its NIC (some boot
  firmware's e1000 driver) gets none: QMP does not show that wait.  And
  the fallback's delay starts again whenever its driver comes back,
  also when the same driver only reset the NIC to try again.

- The delay is measured on this host's monotonic (wall) clock, not on
  the guest's virtual clock, and the network round trips of QMP add to
  it.  While the VM is not running (``query-status``, STOP and RESUME
  events) the delay does not count, and the fallback never comes up.
- The tool owns both links while it runs: it sets them with
  ``set_link`` as the policy says and does not look at, or preserve,
  changes that others make.  When it exits, the links stay as they
  are.
- Driver status events are rate-limited by QEMU, so they are only a
  trigger: after every event the tool asks ``query-driver-status``
  for the current status.

Every decision is logged to stdout as one line::

  <ISO 8601 UTC time> failover-policy: <key>=<value> (<reason>)

with ``active=none|primary|fallback`` when the links change,
``pending=fallback`` when the fallback's delay starts, is held or is
resumed, and ``exit`` when the tool stops.  Warnings go to stderr.

The tool exits with status 0 on SIGINT or SIGTERM, when QEMU shuts
down (SHUTDOWN event; note that under ``-no-shutdown`` QEMU keeps
running, but the tool stops anyway) or closes the connection, and
with ``--once`` after the first decision that leaves nothing pending.
It exits with status 1 when it cannot connect or a command fails.

It needs the ``qemu.qmp`` package: from QEMU's source tree
(``python/``, found automatically when the script runs from the
tree's ``scripts/qmp/`` directory, otherwise set PYTHONPATH) or from PyPI.
"""

import argparse
import asyncio
from datetime import datetime, timezone
import os
import signal
import sys
import time
from typing import Dict, List, Optional, Set, Tuple


sys.path.append(os.path.join(os.path.dirname(__file__), '..', '..', 'python'))
try:
    # pylint: disable=wrong-import-position
    from qemu.qmp import (
        ExecuteError,
        Message,
        QMPClient,
        QMPError,
        Runstate,
    )
except ModuleNotFoundError as exc:
    sys.stderr.write(
        f"failover-policy: cannot import {exc.name}: set PYTHONPATH to "
        "the python/ directory of QEMU's source tree, or install "
        "qemu.qmp\n")
    sys.exit(1)


PROG = 'failover-policy'

# The events the policy follows
EVENTS = ('DRIVER_STATUS_CHANGED', 'RESET', 'STOP', 'RESUME', 'SHUTDOWN')

NONE = 'none'
PRIMARY = 'primary'
FALLBACK = 'fallback'


def log(message: str) -> None:
    """Log one decision as a single timestamped line on stdout."""
    now = datetime.now(timezone.utc).isoformat(timespec='milliseconds')
    print(f"{now} {PROG}: {message}", flush=True)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


class FailoverPolicy:  # pylint: disable=too-few-public-methods
    """
    The failover pair policy of two NICs of a connected QEMU.

    :param qmp: a connected QMP client
    :param primary: ID of the primary NIC (virtio-net-pci device)
    :param fallback: ID of the fallback NIC
    :param delay: seconds the fallback waits for the primary
    :param once: return after the first decision that leaves nothing
        pending, instead of following events
    """

    def __init__(self, qmp: QMPClient, primary: str, fallback: str,
                 delay: float, once: bool = False) -> None:
        self.qmp = qmp
        self.primary = primary
        self.fallback = fallback
        self.delay = delay
        self.once = once

        #: Driver status per NIC ID, as last queried
        self.status: Dict[str, str] = {primary: NONE, fallback: NONE}
        #: Whether the VM runs, as last queried
        self.running = False
        #: The NIC whose link is up: NONE, PRIMARY or FALLBACK
        self.active = NONE
        #: Seconds of the fallback's delay still to run, None if no
        #: fallback is pending
        self._pending_left: Optional[float] = None
        #: Monotonic time from which @_pending_left counts down, None
        #: while the VM is not running
        self._pending_since: Optional[float] = None

    # Links

    async def _set_link(self, name: str, link_up: bool) -> None:
        await self.qmp.execute('set_link', {'name': name, 'up': link_up})

    async def _activate(self, active: str, reason: str) -> None:
        """Bring the link of @active up and the other one(s) down."""
        # Down first: the guest never sees both links up
        if active != PRIMARY:
            await self._set_link(self.primary, False)
        if active != FALLBACK:
            await self._set_link(self.fallback, False)
        if active == PRIMARY:
            await self._set_link(self.primary, True)
        elif active == FALLBACK:
            await self._set_link(self.fallback, True)
        self.active = active
        log(f"active={active} ({reason})")

    # State

    async def _query(self) -> None:
        """Update the driver status of both NICs and the run state."""
        infos = await self.qmp.execute('query-driver-status')
        assert isinstance(infos, list)
        seen: Set[str] = set()
        for info in infos:
            device = info.get('device')
            if device in self.status:
                self.status[device] = info['status']
                seen.add(device)
        for device in self.status:
            if device not in seen:
                # Gone (unplugged), or never reported
                self.status[device] = NONE

        status = await self.qmp.execute('query-status')
        assert isinstance(status, dict)
        self._set_running(bool(status['running']))

    def _set_running(self, running: bool) -> None:
        """Stop or restart the fallback's delay with the VM."""
        if running == self.running:
            return
        self.running = running
        if self._pending_left is None:
            return
        now = time.monotonic()
        if running:
            self._pending_since = now
            log(f"pending={FALLBACK} "
                f"({self.fallback} in {self._pending_left * 1000:.0f} ms, "
                "VM running)")
        else:
            if self._pending_since is not None:
                self._pending_left = max(
                    0.0, self._pending_left - (now - self._pending_since))
            self._pending_since = None
            log(f"pending={FALLBACK} ({self.fallback} held, VM not running)")

    def _cancel_pending(self) -> None:
        self._pending_left = None
        self._pending_since = None

    def _deadline(self) -> Optional[float]:
        """Monotonic time at which the fallback is due, if counting."""
        if self._pending_left is None or self._pending_since is None:
            return None
        return self._pending_since + self._pending_left

    def _describe(self, device: str) -> str:
        return f"{device} {self.status[device]}"

    def _ready(self, device: str) -> bool:
        return self.status[device] == 'ready'

    # Policy

    async def _decide(self) -> None:
        """Apply the policy to the last queried state."""
        if self._ready(self.primary):
            self._cancel_pending()
            if self.active != PRIMARY:
                await self._activate(PRIMARY, f"{self.primary} ready")
            return

        if not self._ready(self.fallback):
            self._cancel_pending()
            if self.active != NONE:
                await self._activate(
                    NONE, f"{self._describe(self.primary)}, "
                    f"{self._describe(self.fallback)}")
            return

        # Only the fallback is ready
        if self.active == FALLBACK:
            return
        if self.active == PRIMARY:
            await self._activate(NONE, self._describe(self.primary))
        if self._pending_left is None:
            self._pending_left = self.delay
            self._pending_since = time.monotonic() if self.running else None
            held = '' if self.running else ', held while VM not running'
            log(f"pending={FALLBACK} ({self.fallback} ready, "
                f"{self._describe(self.primary)}, "
                f"in {self.delay * 1000:.0f} ms{held})")

    async def _fallback_due(self) -> None:
        """The fallback's delay ran out: check again and bring it up."""
        await self._query()
        if not self.running:
            # A STOP that we have not heard yet: _set_running() held it
            return
        if self._ready(self.primary) or not self._ready(self.fallback):
            await self._decide()
            return
        self._cancel_pending()
        await self._activate(
            FALLBACK, f"{self.fallback} ready, "
            f"{self._describe(self.primary)} for {self.delay * 1000:.0f} ms")

    async def _start_over(self, reason: str) -> None:
        """Both links down, then decide from the current state."""
        self._cancel_pending()
        await self._activate(NONE, reason)
        await self._query()
        await self._decide()

    # Main loop

    async def run(self) -> None:
        """
        Apply the policy until QEMU shuts down.

        Also returns early with ``once``.  Raises `QMPError` when a
        command fails, e.g. when a NIC does not exist.
        """
        with self.qmp.listener(EVENTS) as listener:
            await self._start_over('start')
            await self._check_reporting()
            while True:
                deadline = self._deadline()
                if self.once and self._pending_left is None:
                    log(f"exit (once, active={self.active})")
                    return
                timeout = None
                if deadline is not None:
                    timeout = max(0.0, deadline - time.monotonic())
                try:
                    event = await asyncio.wait_for(listener.get(), timeout)
                except asyncio.TimeoutError:
                    await self._fallback_due()
                    continue
                if not await self._handle(event):
                    return

    async def _handle(self, event: Message) -> bool:
        """React to @event; False when the tool should stop."""
        name = event['event']
        if name == 'SHUTDOWN':
            log(f"exit (QEMU shutdown, active={self.active})")
            return False
        if name == 'RESET':
            await self._start_over('guest reset')
            return True
        # DRIVER_STATUS_CHANGED, STOP, RESUME: events are only a hint
        # (rate-limited, may be stale), the query is the truth
        await self._query()
        await self._decide()
        return True

    async def _check_reporting(self) -> None:
        infos = await self.qmp.execute('query-driver-status')
        assert isinstance(infos, list)
        reporting = {info.get('device') for info in infos}
        for device in (self.primary, self.fallback):
            if device not in reporting:
                warn(f"{device} reports no guest driver status, it is "
                     "never considered ready")


async def _wait_closed(qmp: QMPClient) -> None:
    """Return when the QMP connection is gone."""
    while qmp.runstate == Runstate.RUNNING:
        await qmp.runstate_changed()


def _catch_signals() -> Tuple[asyncio.Event, List[str]]:
    """
    Catch SIGINT and SIGTERM.

    :return: an event set on the first signal, and the list of the names
        of the signals received
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    names = {signal.SIGINT: 'SIGINT', signal.SIGTERM: 'SIGTERM'}
    received: List[str] = []

    def _on_signal(signum: signal.Signals) -> None:
        received.append(names[signum])
        stop.set()

    for signum in names:
        loop.add_signal_handler(signum, _on_signal, signum)
    return stop, received


async def _run(args: argparse.Namespace) -> int:
    """Connect and run the policy; returns the exit status."""
    qmp = QMPClient(PROG)
    try:
        await qmp.connect(args.qmp)
    except QMPError as err:
        print(f"{PROG}: cannot connect to {args.qmp}: {err}",
              file=sys.stderr)
        return 1

    policy = FailoverPolicy(qmp, args.primary, args.fallback,
                            args.delay_ms / 1000, args.once)

    stop, received = _catch_signals()

    policy_task = asyncio.create_task(policy.run())
    closed_task = asyncio.create_task(_wait_closed(qmp))
    stop_task = asyncio.create_task(stop.wait())
    tasks = {policy_task, closed_task, stop_task}
    # Whichever comes first: the policy returns, QEMU hangs up, signal
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    ret = 0
    finished = not policy_task.cancelled()
    failure = policy_task.exception() if finished else None
    if received:
        log(f"exit ({received[0]}, active={policy.active})")
    elif finished and failure is None:
        pass  # logged its reason to exit
    elif qmp.runstate != Runstate.RUNNING:
        # Also when a command was interrupted by the hang-up
        log(f"exit (QEMU closed the connection, active={policy.active})")
    else:
        if isinstance(failure, ExecuteError):
            what = f"{failure.sent['execute']}: {failure.error_class}: "
        else:
            what = f"{type(failure).__name__}: "
        print(f"{PROG}: {what}{failure}", file=sys.stderr)
        ret = 1

    try:
        await qmp.disconnect()
    except (QMPError, OSError, EOFError):
        # QEMU went away first; nothing to clean up
        pass
    return ret


def main() -> int:
    """Parse the command line and run the policy; returns exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--qmp', required=True, metavar='SOCKET',
                        help="QMP UNIX socket (QEMU: -qmp "
                        "unix:SOCKET,server=on,wait=off)")
    parser.add_argument('--primary', required=True, metavar='VNET_ID',
                        help="ID of the primary NIC (-device "
                        "virtio-net-pci,id=VNET_ID)")
    parser.add_argument('--fallback', required=True, metavar='LEGACY_ID',
                        help="ID of the fallback NIC (e.g. -device "
                        "rtl8139,id=LEGACY_ID)")
    parser.add_argument('--delay-ms', type=int, default=500, metavar='MS',
                        help="how long the fallback waits for the primary "
                        "(wall clock, while the VM runs; default: "
                        "%(default)s)")
    parser.add_argument('--once', action='store_true',
                        help="apply the policy to the current state and "
                        "exit (after the delay if the fallback is due)")
    args = parser.parse_args()
    if args.primary == args.fallback:
        parser.error("--primary and --fallback must differ")
    if args.delay_ms < 0:
        parser.error("--delay-ms must not be negative")

    return asyncio.run(_run(args))


if __name__ == '__main__':
    sys.exit(main())
