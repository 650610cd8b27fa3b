/*
 * Guest driver status reporting: the interface devices implement
 *
 * A device that can tell from the guest's register writes whether a
 * guest driver has brought it up implements driver-status-reporter.
 * The interface stores nothing itself: the device provides a
 * DriverStatus member, and the core in hw/core/driver-status.c is the
 * only code that writes it, so that every change is traced, announced
 * with DRIVER_STATUS_CHANGED and passed to the listeners in one place.
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DRIVER_STATUS_H
#define HW_DRIVER_STATUS_H

#include "qemu/notify.h"
#include "qom/object.h"
/* enum DriverStatus, from qapi/driver-status.json */
#include "qapi/qapi-types-driver-status.h"

#define TYPE_DRIVER_STATUS_REPORTER "driver-status-reporter"

typedef struct DriverStatusReporterClass DriverStatusReporterClass;
DECLARE_CLASS_CHECKERS(DriverStatusReporterClass, DRIVER_STATUS_REPORTER,
                       TYPE_DRIVER_STATUS_REPORTER)
#define DRIVER_STATUS_REPORTER(obj) \
    INTERFACE_CHECK(DriverStatusReporter, (obj), TYPE_DRIVER_STATUS_REPORTER)

typedef struct DriverStatusReporter DriverStatusReporter;

/**
 * DriverStatusReporterClass:
 * @parent_class: the interface class
 * @get_status_field: mandatory; where the device stores the status the
 *     core keeps for it (a DriverStatus member of the device's state,
 *     zero-initialised = DRIVER_STATUS_NONE).  Only the core writes it.
 * @get_device: optional; the device the user created, when the reporter
 *     is an internal part of it (a virtio backend inside its transport
 *     proxy).  Default: the reporter itself.
 */
struct DriverStatusReporterClass {
    InterfaceClass parent_class;

    DriverStatus *(*get_status_field)(DriverStatusReporter *r);
    DeviceState *(*get_device)(DriverStatusReporter *r);
};

/**
 * DriverStatusChange:
 * @dev: the user-visible device (see @get_device)
 * @old_status: the status before the change
 * @new_status: the status after the change
 *
 * The data passed to driver status listeners.
 */
typedef struct DriverStatusChange {
    DeviceState *dev;
    DriverStatus old_status;
    DriverStatus new_status;
} DriverStatusChange;

/**
 * driver_status_report:
 * @r: the reporting device
 * @status: the status the guest's last register write implies
 *
 * Called by a device model when a guest write may have changed the
 * driver status.  Does nothing if @status equals the stored status;
 * otherwise stores it, traces it, emits DRIVER_STATUS_CHANGED and
 * notifies the listeners.  A device that is not realized has no QOM
 * path yet: its status is only stored.
 */
void driver_status_report(DriverStatusReporter *r, DriverStatus status);

/**
 * driver_status_restore:
 * @r: the reporting device
 * @status: the status recomputed from migrated registers
 *
 * Stores @status without event or notification.  For post_load: the
 * status is not migrated but rebuilt from device state on the
 * destination, and the guest did not change anything.
 */
void driver_status_restore(DriverStatusReporter *r, DriverStatus status);

/**
 * driver_status_get:
 * @r: the reporting device
 *
 * Returns: the stored driver status of @r.
 */
DriverStatus driver_status_get(DriverStatusReporter *r);

/**
 * driver_status_get_device:
 * @r: the reporting device
 *
 * Returns: the user-visible device @r reports for; @r itself unless
 * its class implements @get_device.
 */
DeviceState *driver_status_get_device(DriverStatusReporter *r);

/**
 * driver_status_find_reporter:
 * @dev: a user-visible device
 *
 * Returns: the reporter for @dev: @dev itself, or the direct QOM child
 * that reports on its behalf (virtio-net-pci -> its virtio-backend).
 * NULL if @dev does not report driver status.
 */
DriverStatusReporter *driver_status_find_reporter(DeviceState *dev);

/**
 * driver_status_add_listener:
 * @n: the notifier; its data argument is a DriverStatusChange *
 *
 * Calls @n after every change of any device's driver status (not for
 * driver_status_restore()).
 */
void driver_status_add_listener(Notifier *n);

/**
 * driver_status_remove_listener:
 * @n: a notifier passed to driver_status_add_listener()
 */
void driver_status_remove_listener(Notifier *n);

#endif
