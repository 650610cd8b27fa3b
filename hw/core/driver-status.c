/*
 * Guest driver status reporting: the interface and its core
 *
 * Devices only say what status the guest's writes imply; this file
 * decides whether that is a change and, if so, stores it, traces it,
 * emits DRIVER_STATUS_CHANGED (rate-limited by the monitor) and calls
 * the listeners.  Keeping that in one place means no device emits the
 * event itself or forgets a listener.
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "hw/driver-status.h"
#include "hw/qdev-core.h"
#include "qapi/qapi-commands-driver-status.h"
#include "qapi/qapi-events-driver-status.h"
#include "qemu/module.h"
#include "trace.h"

static NotifierList driver_status_listeners =
    NOTIFIER_LIST_INITIALIZER(driver_status_listeners);

static DriverStatus *driver_status_field(DriverStatusReporter *r)
{
    DriverStatusReporterClass *k = DRIVER_STATUS_REPORTER_GET_CLASS(r);

    return k->get_status_field(r);
}

DeviceState *driver_status_get_device(DriverStatusReporter *r)
{
    DriverStatusReporterClass *k = DRIVER_STATUS_REPORTER_GET_CLASS(r);

    if (k->get_device) {
        return k->get_device(r);
    }
    return DEVICE(r);
}

DriverStatus driver_status_get(DriverStatusReporter *r)
{
    return *driver_status_field(r);
}

void driver_status_restore(DriverStatusReporter *r, DriverStatus status)
{
    *driver_status_field(r) = status;
}

void driver_status_report(DriverStatusReporter *r, DriverStatus status)
{
    DriverStatus *field = driver_status_field(r);
    DeviceState *dev = driver_status_get_device(r);
    DriverStatusChange change = {
        .dev = dev,
        .old_status = *field,
        .new_status = status,
    };
    g_autofree char *path = NULL;

    if (*field == status) {
        return;
    }
    *field = status;

    /* Without a place in the QOM tree there is nobody to tell yet */
    if (!dev->realized) {
        return;
    }

    path = object_get_canonical_path(OBJECT(dev));
    trace_driver_status_report(path, DriverStatus_str(change.old_status),
                               DriverStatus_str(status));
    qapi_event_send_driver_status_changed(dev->id, path, status);
    notifier_list_notify(&driver_status_listeners, &change);
}

typedef struct DriverStatusFindState {
    DeviceState *dev;
    DriverStatusReporter *reporter;
} DriverStatusFindState;

static int driver_status_find_child(Object *child, void *opaque)
{
    DriverStatusFindState *state = opaque;
    DriverStatusReporter *r;

    if (!object_dynamic_cast(child, TYPE_DRIVER_STATUS_REPORTER)) {
        return 0;
    }
    r = DRIVER_STATUS_REPORTER(child);
    if (driver_status_get_device(r) != state->dev) {
        return 0;
    }
    state->reporter = r;
    return 1;
}

DriverStatusReporter *driver_status_find_reporter(DeviceState *dev)
{
    DriverStatusFindState state = { .dev = dev };

    if (object_dynamic_cast(OBJECT(dev), TYPE_DRIVER_STATUS_REPORTER)) {
        return DRIVER_STATUS_REPORTER(dev);
    }
    object_child_foreach(OBJECT(dev), driver_status_find_child, &state);
    return state.reporter;
}

void driver_status_add_listener(Notifier *n)
{
    notifier_list_add(&driver_status_listeners, n);
}

void driver_status_remove_listener(Notifier *n)
{
    notifier_remove(n);
}

static int driver_status_query_one(Object *obj, void *opaque)
{
    DriverStatusInfoList ***tail = opaque;
    DriverStatusReporter *r;
    DriverStatusInfo *info;
    DeviceState *dev;

    if (!object_dynamic_cast(obj, TYPE_DRIVER_STATUS_REPORTER)) {
        return 0;
    }
    /* Not yet (or no longer) realized: the guest cannot drive it */
    if (!DEVICE(obj)->realized) {
        return 0;
    }

    r = DRIVER_STATUS_REPORTER(obj);
    dev = driver_status_get_device(r);
    info = g_new0(DriverStatusInfo, 1);
    info->device = g_strdup(dev->id);
    info->qom_path = object_get_canonical_path(OBJECT(dev));
    info->status = driver_status_get(r);
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
