/*
 * Guest driver status of devices
 *
 * A device that can tell from the guest's register writes how far a
 * guest driver has brought it up keeps a DriverStatusState and says
 * what each such write implies with driver_status_report().  That is
 * a compare on the device's own state; only a change goes to the core
 * (hw/core/driver-status.c), which traces it, sends
 * DRIVER_STATUS_CHANGED and calls the listeners, so no device does
 * that itself.
 *
 * The device's type also implements the driver-status-reporter QOM
 * interface, through which query-driver-status, management
 * (qom-list-types, the read-only "driver-status" property) and other
 * devices (a failover pair) read the status; reporting does not go
 * through QOM.
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_DRIVER_STATUS_H
#define HW_DRIVER_STATUS_H

#include "qemu/notify.h"
#include "hw/qdev-properties.h"
#include "qom/object.h"
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
 * @get_status: mandatory; the guest driver status of the device
 * @get_link_wanted: whether the device's driver waits for a link (see
 *     driver_status_report_link_wanted()); %NULL on devices that cannot
 *     tell
 *
 * Implemented by the device the user creates.  A transport proxy
 * (virtio-net-pci) answers for the device it holds; a reporter that is
 * a QOM child of another reporter is not listed on its own.
 */
struct DriverStatusReporterClass {
    InterfaceClass parent_class;

    DriverStatus (*get_status)(DriverStatusReporter *reporter);
    bool (*get_link_wanted)(DriverStatusReporter *reporter);
};

/**
 * driver_status_reporter_of:
 * @obj: any object
 *
 * Returns: @obj as a #DriverStatusReporter, or %NULL if it does not
 * report guest driver status.
 *
 * Use this rather than DRIVER_STATUS_REPORTER() on a device from
 * outside it: with QOM cast debugging, each type a device is checked
 * against takes one of the few entries of its class's cast cache, and
 * one more type can evict the cast its data path makes for every frame.
 */
DriverStatusReporter *driver_status_reporter_of(Object *obj);

/**
 * driver_status_reporter_get_status:
 * @reporter: a device that reports guest driver status
 *
 * Returns: the guest driver status of @reporter.
 */
DriverStatus driver_status_reporter_get_status(
    DriverStatusReporter *reporter);

/**
 * driver_status_reporter_link_wanted:
 * @reporter: a device that reports guest driver status
 *
 * Returns: whether the driver of @reporter waits for a link before it
 * enables anything.
 */
bool driver_status_reporter_link_wanted(DriverStatusReporter *reporter);

/**
 * DriverStatusState:
 * @status: the #DriverStatus; always a valid one
 * @dev: the device the user created, which events and queries name;
 *     set by driver_status_init() at realize
 * @migrate: the device's x-migrate-driver-status property: whether
 *     the status may travel in a subsection of its own (off on the
 *     machine types of releases without it)
 * @link_wanted: whether the driver, initializing, waits for a link
 *     before it enables anything (driver_status_report_link_wanted())
 * @held: whether a change waits for the device's reset to be over
 *     before it is announced
 * @held_from: the status announced last, while @held
 * @loaded: whether an incoming migration stream carried the status
 * @stream_status: the status as the stream carries it
 * @stream_link_wanted: @link_wanted as the stream carries it
 *
 * What a reporting device keeps, as a member of its own state.
 * Zero-initialised, it holds %DRIVER_STATUS_NONE.
 */
typedef struct DriverStatusState {
    DriverStatus status;
    DeviceState *dev;
    bool migrate;
    bool link_wanted;
    bool held;
    DriverStatus held_from;
    bool loaded;
    uint8_t stream_status;
    bool stream_link_wanted;
} DriverStatusState;

extern const PropertyInfo qdev_prop_driver_status;

/* A reporting device's read-only "driver-status" property */
#define DEFINE_PROP_DRIVER_STATUS(_state, _field)                          \
    DEFINE_PROP("driver-status", _state, _field.status,                   \
                qdev_prop_driver_status, DriverStatus)

/*
 * The property of a reporting device that lets its status migrate on
 * its own: on by default, off in hw_compat_10_2, so that a VM on an
 * older machine type migrates to and from QEMU without driver status.
 */
#define DEFINE_PROP_DRIVER_STATUS_MIGRATE(_state, _field)                  \
    DEFINE_PROP_BOOL("x-migrate-driver-status", _state, _field.migrate, true)

/**
 * DriverStatusChange:
 * @dev: the user-visible device (see #DriverStatusState)
 * @old_status: the status before the change
 * @new_status: the status after the change
 *
 * The data passed to driver status listeners.  When the driver only
 * came to want a link, @old_status and @new_status are the same.
 */
typedef struct DriverStatusChange {
    DeviceState *dev;
    DriverStatus old_status;
    DriverStatus new_status;
} DriverStatusChange;

/**
 * driver_status_init:
 * @ds: a device's driver status
 * @dev: the device the user created: the device itself, or the
 *     transport proxy that holds it
 *
 * Called at realize.  Until then, changes are stored but not announced.
 */
void driver_status_init(DriverStatusState *ds, DeviceState *dev);

/* Out of line half of driver_status_report() */
void driver_status_change(DriverStatusState *ds, DriverStatus status);

/**
 * driver_status_report:
 * @ds: a device's driver status
 * @status: the status the guest's last register write implies
 *
 * Called by a device model when a guest write may have changed the
 * driver status.  Does nothing if @status is the stored status;
 * otherwise stores it, traces it, emits DRIVER_STATUS_CHANGED and
 * notifies the listeners: at once, or, while the device is in reset,
 * once the reset is over.
 */
static inline void driver_status_report(DriverStatusState *ds,
                                        DriverStatus status)
{
    if (ds->status != status) {
        driver_status_change(ds, status);
    }
}

/**
 * driver_status_report_link_wanted:
 * @ds: a device's driver status
 *
 * Called by a device model when a driver that is not ready shows that
 * it waits for a link before it enables anything; it is initializing,
 * whatever the device saw of it before.  Most drivers
 * enable the device first and wait for the link once they are ready;
 * a few firmware drivers of the e1000 family wait for autonegotiation
 * to complete first, which QEMU completes only with the link up.  A
 * failover pair treats such a driver as a ready one
 * (docs/devel/driver-status.rst).
 *
 * The mark lasts until the status changes.  Setting it is traced and
 * told to the listeners; it sends no event.
 */
void driver_status_report_link_wanted(DriverStatusState *ds);

/**
 * driver_status_link_wanted:
 * @ds: a device's driver status
 *
 * Returns: whether the driver waits for a link before it goes on.
 */
static inline bool driver_status_link_wanted(const DriverStatusState *ds)
{
    return ds->link_wanted;
}

/**
 * driver_status_get:
 * @ds: a device's driver status
 *
 * Returns: the stored status.
 */
static inline DriverStatus driver_status_get(const DriverStatusState *ds)
{
    return ds->status;
}

/**
 * driver_status_add_listener:
 * @n: the notifier; its data argument is a DriverStatusChange *
 *
 * Calls @n after every announced change of any device's driver status.
 */
void driver_status_add_listener(Notifier *n);

/**
 * driver_status_remove_listener:
 * @n: a notifier passed to driver_status_add_listener()
 */
void driver_status_remove_listener(Notifier *n);

/*
 * Migration.  Most of the time a device's registers say what its
 * driver status is, and the destination rebuilds it from them, so
 * that streams from and to QEMU without driver status stay the same.
 * When they cannot (a driver that reset the device and has not
 * enabled anything yet), the device sends the status in a subsection
 * of its own made of VMSTATE_DRIVER_STATUS(), whose .needed is
 * driver_status_needed().
 *
 * driver_status_pre_load() and driver_status_post_load() go into the
 * device's pre_load and post_load: the status comes from the
 * subsection if it was sent, from @from_registers otherwise, and no
 * event is sent either way.  Until post_load, the status stays what
 * it was, so that a failed incoming migration leaves a valid one.
 */
extern const VMStateDescription vmstate_driver_status;

#define VMSTATE_DRIVER_STATUS(_field, _state)                              \
    VMSTATE_STRUCT(_field, _state, 1, vmstate_driver_status,              \
                   DriverStatusState)

/**
 * driver_status_needed:
 * @ds: a device's driver status
 * @from_registers: the status the device's registers imply
 *
 * Returns: whether the device's driver status subsection must be
 * sent: the registers do not tell the status, or the driver waits for
 * a link, and the machine type lets it migrate
 * (x-migrate-driver-status).
 */
bool driver_status_needed(const DriverStatusState *ds,
                          DriverStatus from_registers);

void driver_status_pre_load(DriverStatusState *ds);
void driver_status_post_load(DriverStatusState *ds,
                             DriverStatus from_registers);

#endif
