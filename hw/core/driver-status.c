/*
 * Guest driver status of devices: the core
 *
 * Devices only say what status the guest's writes imply, and only a
 * change gets here: this file stores it, traces it, emits
 * DRIVER_STATUS_CHANGED (rate-limited by the monitor) and calls the
 * listeners.  Keeping that in one place means no device emits the
 * event itself or forgets a listener.
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "hw/driver-status.h"
#include "hw/qdev-core.h"
#include "migration/vmstate.h"
#include "qapi/qapi-commands-driver-status.h"
#include "qapi/qapi-events-driver-status.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "qdev-prop-internal.h"
#include "trace.h"

static NotifierList driver_status_listeners =
    NOTIFIER_LIST_INITIALIZER(driver_status_listeners);

void driver_status_init(DriverStatusState *ds, DeviceState *dev)
{
    ds->dev = dev;
}

/* Trace the change from @old, send the event and tell the listeners */
static void driver_status_announce(DriverStatusState *ds,
                                   DriverStatus old)
{
    DriverStatusChange change = {
        .dev = ds->dev,
        .old_status = old,
        .new_status = ds->status,
    };
    g_autofree char *path = object_get_canonical_path(OBJECT(ds->dev));

    trace_driver_status_change(path, DriverStatus_str(old),
                               DriverStatus_str(ds->status));
    qapi_event_send_driver_status_changed(ds->dev->id, path, ds->status);
    notifier_list_notify(&driver_status_listeners, &change);
}

/*
 * Devices report "none" from their reset, whose phases run for every
 * device before any device leaves it: a listener told then would act
 * on devices that are half reset.  So a change made while its device
 * is in reset is held, and announced from the main loop.  That is a
 * main loop timer, not a bottom half: bottom halves also run in the
 * nested event loops of block drains, which a reset can run
 * (virtio-blk's).  A held device is referenced until then.
 */
static GPtrArray *driver_status_held;
static QEMUTimer *driver_status_held_timer;

static void driver_status_release_held(void *opaque)
{
    g_autoptr(GPtrArray) held = driver_status_held;
    guint i;

    driver_status_held = NULL;
    for (i = 0; i < held->len; i++) {
        DriverStatusState *ds = g_ptr_array_index(held, i);
        Object *dev = OBJECT(ds->dev);

        ds->held = false;
        /* A reset that found the device where it was is no change */
        if (ds->dev->realized && ds->status != ds->held_from) {
            driver_status_announce(ds, ds->held_from);
        }
        object_unref(dev);
    }
}

static void driver_status_hold(DriverStatusState *ds, DriverStatus old)
{
    if (!driver_status_held_timer) {
        driver_status_held_timer = timer_new_ns(QEMU_CLOCK_REALTIME,
                                                driver_status_release_held,
                                                NULL);
    }
    if (!driver_status_held) {
        driver_status_held = g_ptr_array_new();
    }
    ds->held = true;
    ds->held_from = old;
    object_ref(OBJECT(ds->dev));
    g_ptr_array_add(driver_status_held, ds);
    /* Resets are not held across main loop iterations (resettable.h) */
    timer_mod(driver_status_held_timer,
              qemu_clock_get_ns(QEMU_CLOCK_REALTIME));
}

void driver_status_change(DriverStatusState *ds, DriverStatus status)
{
    DriverStatus old = ds->status;

    ds->status = status;
    /* Whatever the driver waited for, it has moved on */
    ds->link_wanted = false;

    /* Without a place in the QOM tree there is nobody to tell yet */
    if (!ds->dev || !ds->dev->realized) {
        return;
    }
    /* Once held, the changes that follow go out with the held one */
    if (ds->held) {
        return;
    }
    if (device_is_in_reset(ds->dev)) {
        driver_status_hold(ds, old);
        return;
    }
    driver_status_announce(ds, old);
}

void driver_status_report_link_wanted(DriverStatusState *ds)
{
    DriverStatusChange change;
    g_autofree char *path = NULL;

    /* The guest polls: once is enough.  A ready driver has what it needs */
    if (ds->link_wanted || ds->status == DRIVER_STATUS_READY) {
        return;
    }
    /*
     * A driver that waits for a link is bringing the device up, even if
     * the device did not see it start (e1000's reset through its I/O BAR)
     */
    driver_status_report(ds, DRIVER_STATUS_INITIALIZING);
    ds->link_wanted = true;
    if (!ds->dev || !ds->dev->realized || ds->held) {
        return;
    }
    change = (DriverStatusChange) {
        .dev = ds->dev,
        .old_status = ds->status,
        .new_status = ds->status,
    };
    path = object_get_canonical_path(OBJECT(ds->dev));
    trace_driver_status_link_wanted(path);
    notifier_list_notify(&driver_status_listeners, &change);
}

DriverStatusReporter *driver_status_reporter_of(Object *obj)
{
    return (DriverStatusReporter *)object_dynamic_cast(
        obj, TYPE_DRIVER_STATUS_REPORTER);
}

DriverStatus driver_status_reporter_get_status(
    DriverStatusReporter *reporter)
{
    DriverStatusReporterClass *k = DRIVER_STATUS_REPORTER_GET_CLASS(reporter);

    return k->get_status(reporter);
}

bool driver_status_reporter_link_wanted(DriverStatusReporter *reporter)
{
    DriverStatusReporterClass *k = DRIVER_STATUS_REPORTER_GET_CLASS(reporter);

    return k->get_link_wanted && k->get_link_wanted(reporter);
}

const PropertyInfo qdev_prop_driver_status = {
    .type = "DriverStatus",
    .description = "guest driver status (read-only)",
    .enum_table = &DriverStatus_lookup,
    .get = qdev_propinfo_get_enum,
};

void driver_status_add_listener(Notifier *n)
{
    notifier_list_add(&driver_status_listeners, n);
}

void driver_status_remove_listener(Notifier *n)
{
    notifier_remove(n);
}

bool driver_status_needed(const DriverStatusState *ds,
                          DriverStatus from_registers)
{
    return ds->migrate && (ds->status != from_registers || ds->link_wanted);
}

void driver_status_pre_load(DriverStatusState *ds)
{
    ds->loaded = false;
}

void driver_status_post_load(DriverStatusState *ds,
                             DriverStatus from_registers)
{
    ds->status = ds->loaded ? ds->stream_status : from_registers;
    ds->link_wanted = ds->loaded && ds->stream_link_wanted;
    ds->loaded = false;
}

static int driver_status_state_pre_save(void *opaque)
{
    DriverStatusState *ds = opaque;

    ds->stream_status = ds->status;
    ds->stream_link_wanted = ds->link_wanted;
    return 0;
}

static int driver_status_state_post_load(void *opaque, int version_id)
{
    DriverStatusState *ds = opaque;

    if (ds->stream_status >= DRIVER_STATUS__MAX ||
        (ds->stream_link_wanted &&
         ds->stream_status != DRIVER_STATUS_INITIALIZING)) {
        return -EINVAL;
    }
    ds->loaded = true;
    return 0;
}

/*
 * The status is a byte on the wire, followed by whether the driver
 * waits for a link.  Both are loaded aside and taken only in the
 * device's post_load, once the whole device state has arrived.
 */
const VMStateDescription vmstate_driver_status = {
    .name = "driver-status",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = driver_status_state_pre_save,
    .post_load = driver_status_state_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(stream_status, DriverStatusState),
        VMSTATE_BOOL(stream_link_wanted, DriverStatusState),
        VMSTATE_END_OF_LIST()
    },
};

static int driver_status_query_one(Object *obj, void *opaque)
{
    DriverStatusInfoList ***tail = opaque;
    DriverStatusReporter *reporter = driver_status_reporter_of(obj);
    DriverStatusInfo *info;

    if (!reporter ||
        /* Not yet (or no longer) realized: the guest cannot drive it */
        !DEVICE(obj)->realized ||
        /* Its parent (a transport proxy) answers for it */
        driver_status_reporter_of(obj->parent)) {
        return 0;
    }

    info = g_new0(DriverStatusInfo, 1);
    info->device = g_strdup(DEVICE(obj)->id);
    info->qom_path = object_get_canonical_path(obj);
    info->status = driver_status_reporter_get_status(reporter);
    QAPI_LIST_APPEND(*tail, info);
    return 0;
}

DriverStatusInfoList *qmp_query_driver_status(Error **errp)
{
    DriverStatusInfoList *list = NULL;
    DriverStatusInfoList **tail = &list;

    object_child_foreach_recursive(object_get_root(),
                                   driver_status_query_one, &tail);
    return list;
}

static const TypeInfo driver_status_reporter_info = {
    .name          = TYPE_DRIVER_STATUS_REPORTER,
    .parent        = TYPE_INTERFACE,
    .class_size    = sizeof(DriverStatusReporterClass),
};

static void driver_status_register_types(void)
{
    type_register_static(&driver_status_reporter_info);
}

type_init(driver_status_register_types)
