/*
 * failover-pair: give the guest the best NIC its drivers can run
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A failover pair holds two NICs the user created, a virtio-net NIC (the
 * primary) and a NIC of an older model that more guests have a driver
 * for (the fallback), and keeps at most one of their links up, chosen
 * from the guest driver status both report (hw/driver-status.h):
 *
 *   - the primary's, as soon as its driver is ready;
 *   - the fallback's, once its driver is ready and the primary's has not
 *     been ready for fallback-delay-ms of virtual time: a guest that
 *     loads both drivers gets the primary, and a paused guest never
 *     falls back;
 *   - none otherwise, at realize and after reset.
 *
 * The links change exactly as set_link changes them
 * (net_client_set_link_down() with NET_LINK_DOWN_POLICY) and combine
 * with it: a link is up only if both the user's set_link state and the
 * pair allow it.
 *
 * Not to be confused with the other "failover"s in QEMU: virtio-net's
 * failover=on with failover_pair_id (and the FAILOVER_NEGOTIATED event)
 * hides a VFIO primary until the guest's virtio-net driver negotiates
 * VIRTIO_NET_F_STANDBY and then relies on the guest's net_failover driver
 * to bond the two; COLO failover switches between VM replicas.  Here
 * both NICs are emulated, the guest sees both all the time, needs no
 * special driver, and QEMU alone decides which link is up.
 *
 * The pair is bus-less and cold-plugged only: -device options are
 * realized in command-line order, so both NICs must come before the pair.
 * The NICs stay hot-unpluggable: the pair forgets a NIC when it is
 * unrealized, and the survivor then takes its link according to its own
 * driver status, as if the other NIC's driver were never ready.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-events-net.h"
#include "qemu/queue.h"
#include "qemu/timer.h"
#include "hw/boards.h"
#include "hw/driver-status.h"
#include "hw/net/failover-pair.h"
#include "hw/qdev-core.h"
#include "hw/qdev-properties.h"
#include "hw/virtio/virtio-net.h"
#include "migration/vmstate.h"
#include "net/net.h"
#include "system/reset.h"
#include "trace.h"

#define FAILOVER_PAIR_MAX_DELAY_MS 60000

OBJECT_DECLARE_SIMPLE_TYPE(FailoverPairState, FAILOVER_PAIR)

struct FailoverPairState {
    DeviceState parent_obj;

    /* Properties: device ids, resolved in realize */
    char *primary_id;
    char *fallback_id;
    uint32_t fallback_delay_ms;

    /* NULL once unplugged: device_listener clears them at unrealize */
    DeviceState *primary;
    DeviceState *fallback;

    Notifier driver_status_listener;
    DeviceListener device_listener;
    /* Armed while the fallback waits for the primary's driver */
    QEMUTimer *fallback_timer;
    /* FailoverPairActive: the NIC whose link the pair lets up */
    uint32_t active;
    /* set_link state of the NICs, saved because link_down is not */
    bool primary_admin_down;
    bool fallback_admin_down;
    /* Between reset phases enter and exit: NICs are half reset */
    bool resetting;

    QTAILQ_ENTRY(FailoverPairState) next;
};

static QTAILQ_HEAD(, FailoverPairState) failover_pairs =
    QTAILQ_HEAD_INITIALIZER(failover_pairs);

/* For traces: the pair's id is optional */
static const char *failover_pair_id(FailoverPairState *s)
{
    return DEVICE(s)->id ?: "";
}

/*
 * The NIC queues of @dev, if it is still realized.  A NIC's net client
 * is named after the id of the device the user created (the proxy, for
 * virtio-net-pci), which is how set_link finds it too.
 */
static int failover_pair_nic_queues(DeviceState *dev, NetClientState **ncs)
{
    NetClientState *all[MAX_QUEUE_NUM];
    int n, i, queues = 0;

    if (!dev || !dev->realized || !dev->id) {
        return 0;
    }
    n = qemu_find_net_clients_except(dev->id, all, NET_CLIENT_DRIVER__MAX,
                                     MAX_QUEUE_NUM);
    for (i = 0; i < n; i++) {
        if (all[i]->info->type == NET_CLIENT_DRIVER_NIC) {
            ncs[queues++] = all[i];
        }
    }
    return queues;
}

static bool failover_pair_nic_ready(DeviceState *dev)
{
    DriverStatusReporter *r;

    if (!dev || !dev->realized) {
        return false;
    }
    r = driver_status_find_reporter(dev);
    return r && driver_status_get(r) == DRIVER_STATUS_READY;
}

/* Hold @dev's link down, or let it follow set_link again. */
static void failover_pair_hold(FailoverPairState *s, DeviceState *dev,
                               bool hold)
{
    NetClientState *ncs[MAX_QUEUE_NUM];
    int queues = failover_pair_nic_queues(dev, ncs);

    if (!queues) {
        return;
    }
    /* Only notify the NIC on a change, like a real cable pull would */
    if (!!(ncs[0]->link_down_reasons & NET_LINK_DOWN_POLICY) == hold) {
        return;
    }
    trace_failover_pair_hold(failover_pair_id(s), dev->id, hold);
    net_client_set_link_down(ncs, queues, NET_LINK_DOWN_POLICY, hold);
}

static void failover_pair_apply(FailoverPairState *s)
{
    /* Take a link away before giving the other: never both up */
    if (s->active != FAILOVER_PAIR_ACTIVE_PRIMARY) {
        failover_pair_hold(s, s->primary, true);
    }
    if (s->active != FAILOVER_PAIR_ACTIVE_FALLBACK) {
        failover_pair_hold(s, s->fallback, true);
    }
    failover_pair_hold(s, s->primary,
                       s->active != FAILOVER_PAIR_ACTIVE_PRIMARY);
    failover_pair_hold(s, s->fallback,
                       s->active != FAILOVER_PAIR_ACTIVE_FALLBACK);
}

static void failover_pair_set_active(FailoverPairState *s,
                                     FailoverPairActive active)
{
    DeviceState *dev = DEVICE(s);
    g_autofree char *path = NULL;

    if (s->active != active) {
        trace_failover_pair_set_active(failover_pair_id(s),
                                       FailoverPairActive_str(s->active),
                                       FailoverPairActive_str(active));
        s->active = active;
        path = object_get_canonical_path(OBJECT(s));
        qapi_event_send_failover_pair_changed(dev->id, path, active);
    }
    failover_pair_apply(s);
}

/* Decide again, after a driver status change or a NIC unplug. */
static void failover_pair_update(FailoverPairState *s)
{
    bool primary_ready = failover_pair_nic_ready(s->primary);
    bool fallback_ready = failover_pair_nic_ready(s->fallback);

    trace_failover_pair_update(failover_pair_id(s), primary_ready,
                               fallback_ready);

    if (primary_ready) {
        timer_del(s->fallback_timer);
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_PRIMARY);
        return;
    }
    if (!fallback_ready) {
        timer_del(s->fallback_timer);
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_NONE);
        return;
    }
    if (s->active == FAILOVER_PAIR_ACTIVE_FALLBACK ||
        timer_pending(s->fallback_timer)) {
        return;
    }
    /* Fallback ready, primary not: give the primary's driver some time */
    failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_NONE);
    if (s->fallback_delay_ms == 0) {
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_FALLBACK);
        return;
    }
    trace_failover_pair_arm(failover_pair_id(s), s->fallback_delay_ms);
    timer_mod(s->fallback_timer, qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
              (int64_t)s->fallback_delay_ms * SCALE_MS);
}

static void failover_pair_timer_expired(void *opaque)
{
    FailoverPairState *s = opaque;
    bool primary_ready = failover_pair_nic_ready(s->primary);
    bool fallback_ready = failover_pair_nic_ready(s->fallback);

    trace_failover_pair_timer_expired(failover_pair_id(s), primary_ready,
                                      fallback_ready);
    /* A status change would have cancelled us; this is belt and braces */
    if (!primary_ready && fallback_ready) {
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_FALLBACK);
    }
}

static void failover_pair_driver_status_changed(Notifier *n, void *data)
{
    FailoverPairState *s = container_of(n, FailoverPairState,
                                        driver_status_listener);
    DriverStatusChange *change = data;

    if (s->resetting ||
        (change->dev != s->primary && change->dev != s->fallback)) {
        return;
    }
    failover_pair_update(s);
}

/* A NIC of the pair is being unplugged: forget it and decide again. */
static void failover_pair_device_unrealize(DeviceListener *listener,
                                           DeviceState *dev)
{
    FailoverPairState *s = container_of(listener, FailoverPairState,
                                        device_listener);

    if (dev == s->primary) {
        s->primary = NULL;
    } else if (dev == s->fallback) {
        s->fallback = NULL;
    } else {
        return;
    }
    trace_failover_pair_unplugged(failover_pair_id(s), dev->id);
    failover_pair_update(s);
}

static bool failover_pair_uses(DeviceState *dev)
{
    FailoverPairState *s;

    QTAILQ_FOREACH(s, &failover_pairs, next) {
        if (s->primary == dev || s->fallback == dev) {
            return true;
        }
    }
    return false;
}

/* Resolve property @prop = @id to a NIC with driver status, or fail. */
static DeviceState *failover_pair_find_nic(const char *prop, const char *id,
                                           Error **errp)
{
    NetClientState *ncs[MAX_QUEUE_NUM];
    Object *obj;
    DeviceState *dev;

    if (!id) {
        error_setg(errp, "property '%s' is required", prop);
        return NULL;
    }
    obj = object_resolve_path_component(machine_get_container("peripheral"),
                                        id);
    dev = (DeviceState *)object_dynamic_cast(obj, TYPE_DEVICE);
    if (!dev || !dev->realized) {
        error_setg(errp, "%s '%s' not found (the NICs must come before "
                   "the failover-pair on the command line)", prop, id);
        return NULL;
    }
    if (!failover_pair_nic_queues(dev, ncs)) {
        error_setg(errp, "%s '%s' is not a NIC", prop, id);
        return NULL;
    }
    if (!driver_status_find_reporter(dev)) {
        error_setg(errp, "%s '%s' (%s) does not report guest driver status",
                   prop, id, object_get_typename(OBJECT(dev)));
        return NULL;
    }
    if (failover_pair_uses(dev)) {
        error_setg(errp, "%s '%s' is already in another failover-pair",
                   prop, id);
        return NULL;
    }
    return dev;
}

static void failover_pair_realize(DeviceState *dev, Error **errp)
{
    FailoverPairState *s = FAILOVER_PAIR(dev);
    DeviceState *primary, *fallback;

    if (s->fallback_delay_ms > FAILOVER_PAIR_MAX_DELAY_MS) {
        error_setg(errp, "fallback-delay-ms %" PRIu32 " out of range "
                   "(0 to %d)", s->fallback_delay_ms,
                   FAILOVER_PAIR_MAX_DELAY_MS);
        return;
    }
    primary = failover_pair_find_nic("primary", s->primary_id, errp);
    if (!primary) {
        return;
    }
    fallback = failover_pair_find_nic("fallback", s->fallback_id, errp);
    if (!fallback) {
        return;
    }
    if (primary == fallback) {
        error_setg(errp, "primary and fallback are both '%s'",
                   s->primary_id);
        return;
    }
    /* virtio-net-pci reports through its virtio-backend child */
    if (!object_dynamic_cast(OBJECT(driver_status_find_reporter(primary)),
                             TYPE_VIRTIO_NET)) {
        error_setg(errp, "primary '%s' (%s) is not a virtio-net NIC",
                   s->primary_id, object_get_typename(OBJECT(primary)));
        return;
    }

    s->primary = primary;
    s->fallback = fallback;
    s->fallback_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL,
                                     failover_pair_timer_expired, s);
    s->active = FAILOVER_PAIR_ACTIVE_NONE;
    QTAILQ_INSERT_TAIL(&failover_pairs, s, next);
    s->driver_status_listener.notify = failover_pair_driver_status_changed;
    driver_status_add_listener(&s->driver_status_listener);
    s->device_listener.unrealize = failover_pair_device_unrealize;
    device_listener_register(&s->device_listener);
    /* Bus-less devices are reset by no one else (docs/devel/reset.rst) */
    qemu_register_resettable(OBJECT(s));

    failover_pair_apply(s);
}

static void failover_pair_unrealize(DeviceState *dev)
{
    FailoverPairState *s = FAILOVER_PAIR(dev);

    qemu_unregister_resettable(OBJECT(s));
    device_listener_unregister(&s->device_listener);
    driver_status_remove_listener(&s->driver_status_listener);
    QTAILQ_REMOVE(&failover_pairs, s, next);
    timer_free(s->fallback_timer);

    /* Hand the links back to set_link alone */
    failover_pair_hold(s, s->primary, false);
    failover_pair_hold(s, s->fallback, false);
    s->primary = NULL;
    s->fallback = NULL;
}

/*
 * During a system reset the NICs report their driver status going away
 * one by one, in no particular order: ignore that, keep both links down
 * and decide once everything is reset.
 */
static void failover_pair_reset_enter(Object *obj, ResetType type)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    s->resetting = true;
    timer_del(s->fallback_timer);
}

static void failover_pair_reset_hold(Object *obj, ResetType type)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_NONE);
}

static void failover_pair_reset_exit(Object *obj, ResetType type)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    s->resetting = false;
    failover_pair_update(s);
}

static char *failover_pair_get_active(Object *obj, Error **errp)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    return g_strdup(FailoverPairActive_str(s->active));
}

static bool failover_pair_admin_down(DeviceState *dev)
{
    NetClientState *ncs[MAX_QUEUE_NUM];

    return failover_pair_nic_queues(dev, ncs) &&
           (ncs[0]->link_down_reasons & NET_LINK_DOWN_ADMIN);
}

/* Rebuild both reasons for @dev's link to be down, and notify the NIC. */
static void failover_pair_restore_link(DeviceState *dev, bool admin_down,
                                       bool hold)
{
    NetClientState *ncs[MAX_QUEUE_NUM];
    int queues = failover_pair_nic_queues(dev, ncs);
    int i;

    if (!queues) {
        return;
    }
    for (i = 0; i < queues; i++) {
        ncs[i]->link_down_reasons = admin_down ? NET_LINK_DOWN_ADMIN : 0;
    }
    net_client_set_link_down(ncs, queues, NET_LINK_DOWN_POLICY, hold);
}

static int failover_pair_pre_save(void *opaque)
{
    FailoverPairState *s = opaque;

    s->primary_admin_down = failover_pair_admin_down(s->primary);
    s->fallback_admin_down = failover_pair_admin_down(s->fallback);
    return 0;
}

/*
 * The NICs rebuild link_down from their registers in their own post_load,
 * which runs before ours because they were realized first.  Re-assert the
 * set_link state and the pair's choice on top of it.
 */
static int failover_pair_post_load(void *opaque, int version_id)
{
    FailoverPairState *s = opaque;

    if (s->active >= FAILOVER_PAIR_ACTIVE__MAX) {
        return -EINVAL;
    }
    failover_pair_restore_link(s->primary, s->primary_admin_down,
                               s->active != FAILOVER_PAIR_ACTIVE_PRIMARY);
    failover_pair_restore_link(s->fallback, s->fallback_admin_down,
                               s->active != FAILOVER_PAIR_ACTIVE_FALLBACK);
    return 0;
}

static const VMStateDescription vmstate_failover_pair = {
    .name = "failover-pair",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = failover_pair_pre_save,
    .post_load = failover_pair_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(active, FailoverPairState),
        VMSTATE_TIMER_PTR(fallback_timer, FailoverPairState),
        VMSTATE_BOOL(primary_admin_down, FailoverPairState),
        VMSTATE_BOOL(fallback_admin_down, FailoverPairState),
        VMSTATE_END_OF_LIST()
    },
};

static const Property failover_pair_properties[] = {
    DEFINE_PROP_STRING("primary", FailoverPairState, primary_id),
    DEFINE_PROP_STRING("fallback", FailoverPairState, fallback_id),
    DEFINE_PROP_UINT32("fallback-delay-ms", FailoverPairState,
                       fallback_delay_ms, 500),
};

static void failover_pair_class_init(ObjectClass *klass, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);

    dc->desc = "Links up the best NIC of a pair the guest has a driver for";
    dc->realize = failover_pair_realize;
    dc->unrealize = failover_pair_unrealize;
    dc->vmsd = &vmstate_failover_pair;
    /* Bus-less: the machine has no hotplug handler for it */
    dc->hotpluggable = false;
    set_bit(DEVICE_CATEGORY_NETWORK, dc->categories);
    device_class_set_props(dc, failover_pair_properties);
    rc->phases.enter = failover_pair_reset_enter;
    rc->phases.hold = failover_pair_reset_hold;
    rc->phases.exit = failover_pair_reset_exit;
    object_class_property_add_str(klass, "active", failover_pair_get_active,
                                  NULL);
    object_class_property_set_description(klass, "active",
        "The NIC whose link is up: none, primary or fallback");
}

static const TypeInfo failover_pair_types[] = {
    {
        .name           = TYPE_FAILOVER_PAIR,
        .parent         = TYPE_DEVICE,
        .instance_size  = sizeof(FailoverPairState),
        .class_init     = failover_pair_class_init,
    },
};

DEFINE_TYPES(failover_pair_types)
