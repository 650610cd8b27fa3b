/*
 * failover-pair: give the guest the best NIC its drivers can run
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * A failover pair holds two NICs the user created, the one the guest
 * should use when it can (the primary, typically virtio-net) and one of a
 * model that more guests have a driver for (the fallback, such as
 * rtl8139, e1000 or e1000e), and keeps at most one of their links up,
 * chosen from the guest driver status both report (hw/driver-status.h).
 * A NIC's driver wants the link when it is ready, or when it is
 * initializing and waits for a link before it enables anything (some
 * firmware's e1000 drivers).  The link goes to:
 *
 *   - the primary, as soon as its driver wants it;
 *   - the fallback, once its driver wants it and the primary's has not
 *     for fallback-delay-ms of virtual time: a guest that loads both
 *     drivers gets the primary, and a paused guest never falls back;
 *   - none otherwise, at realize and after reset.
 *
 * The fallback's delay runs from when its driver first wanted the link.
 * A driver that stops wanting it for less than FAILOVER_PAIR_REGAIN_NS,
 * as when it resets the NIC to try again, keeps that start: drivers that
 * look at the link once, right after they enable the NIC, and give up
 * if it is down (some firmware's rtl8139 driver) find it up at their
 * next try, rather than held by a new delay every time.
 *
 * The pair holds a link down with its own reason (NET_LINK_DOWN_HOLD),
 * on the NIC and on its backend, as set_link on the netdev's id does:
 * no frame crosses a held NIC, and virtio-net stops a vhost backend
 * while it is held.  Every other reason stays in force: the pair never
 * brings up a link that the user set down or whose backend is gone.
 *
 * Not to be confused with the other "failover"s in QEMU: virtio-net's
 * failover=on with failover_pair_id (and the FAILOVER_NEGOTIATED event)
 * hides a VFIO primary until the guest's virtio-net driver negotiates
 * VIRTIO_NET_F_STANDBY and then relies on the guest's net_failover driver
 * to bond the two; COLO failover switches between VM replicas.  Here
 * both NICs are emulated, the guest sees both all the time, needs no
 * special driver, and QEMU alone decides which link is up.
 *
 * The pair is bus-less and cold-plugged only.  It finds its NICs once
 * every -device option is realized, in whatever order and syntax they
 * came (QEMU creates the JSON ones after the others), and an id that
 * names no NIC then stops QEMU.  The NICs stay hot-unpluggable.  When
 * one leaves, the pair dissolves: it lets go of the other, whose link
 * then follows set_link alone, and it sends no migration state.  The
 * destination of an incoming migration is started either without the
 * pair, or with it and without the NIC that left (as libvirt restores a
 * saved domain): a pair whose NIC is missing on an incoming migration
 * starts dissolved, as the source's was.  When NICs with both ids exist
 * again (a NIC plugged in to replace the one that left), the pair forms
 * again.
 *
 * Migration only restores: the pair's section comes while it is formed,
 * and the pair decides again when the VM starts to run, once every
 * device is loaded.  A formed pair that got no section (the source had
 * no pair, or had dissolved its own) first lets go of the holds the
 * source did not have, without telling the NICs, whose registers came
 * from the source: then the pair's decision reaches them as any other.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-failover-pair.h"
#include "qapi/qapi-events-failover-pair.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/queue.h"
#include "qemu/timer.h"
#include "hw/boards.h"
#include "hw/driver-status.h"
#include "hw/qdev-core.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "net/announce.h"
#include "net/eth.h"
#include "net/net.h"
#include "system/reset.h"
#include "system/runstate.h"
#include "system/system.h"
#include "trace.h"

#define TYPE_FAILOVER_PAIR "failover-pair"
#define FAILOVER_PAIR_MAX_DELAY_MS 60000
/* A gap in the fallback driver's wish for the link this short is a retry */
#define FAILOVER_PAIR_REGAIN_NS (2 * NANOSECONDS_PER_SECOND)
/* Announcements start two at once at most, then one in this time */
#define FAILOVER_PAIR_ANNOUNCE_BURST 2
#define FAILOVER_PAIR_ANNOUNCE_GAP_NS (250 * SCALE_MS)
/* The ranges of the migration parameters of the same name */
#define FAILOVER_PAIR_MAX_ANNOUNCE_MS 100000
#define FAILOVER_PAIR_MAX_ANNOUNCE_ROUNDS 1000
#define FAILOVER_PAIR_MAX_ANNOUNCE_STEP_MS 10000

OBJECT_DECLARE_SIMPLE_TYPE(FailoverPairState, FAILOVER_PAIR)

/* One of the two NICs of a pair */
typedef struct FailoverPairNic {
    /* "primary" or "fallback", for errors and traces */
    const char *role;
    /* Property: the NIC's id */
    char *id;
    /* The NIC while the pair is formed, or NULL */
    DeviceState *dev;
    /* Migrated: whether the user set the NIC's link down */
    bool admin_down;
} FailoverPairNic;

struct FailoverPairState {
    DeviceState parent_obj;

    FailoverPairNic primary;
    FailoverPairNic fallback;
    /* Properties */
    uint32_t fallback_delay_ms;
    bool announce;
    uint32_t announce_initial_ms;
    uint32_t announce_max_ms;
    uint32_t announce_rounds;
    uint32_t announce_step_ms;

    Notifier driver_status_listener;
    DeviceListener device_listener;
    /* Armed while the fallback waits for the primary's driver */
    QEMUTimer *fallback_timer;
    /*
     * Migrated, -1 for never: when, in virtual ns, the fallback's driver
     * came to want the link, when it last stopped, and when the primary's
     * last stopped
     */
    int64_t fallback_since;
    int64_t fallback_gone;
    int64_t primary_gone;
    /* Tries to form a dissolved pair again once a NIC is plugged */
    QEMUBH *form_bh;
    /*
     * Starts the announcement of the NIC the pair last gave its link,
     * once the guest's write is through; the announcements so far use
     * up the budget until announce_paid
     */
    QEMUTimer *announce_start;
    FailoverPairNic *announce_nic;
    int64_t announce_paid;
    /* Repeats it, on the VM's clock */
    AnnounceTimer announce_timer;
    /* FailoverPairActive: the NIC whose link the pair lets up */
    uint32_t active;
    /* Between reset phases enter and exit: NICs are half reset */
    bool resetting;
    /*
     * The devices' state was loaded (incoming migration, loadvm), and
     * whether the pair's section came with it; the pair decides when
     * the VM runs
     */
    bool loading;
    bool loaded;
    VMChangeStateEntry *vm_state;

    QTAILQ_ENTRY(FailoverPairState) next;
};

static QTAILQ_HEAD(, FailoverPairState) failover_pairs =
    QTAILQ_HEAD_INITIALIZER(failover_pairs);

/* For traces: the pair's id is optional */
static const char *failover_pair_id(FailoverPairState *s)
{
    return DEVICE(s)->id ?: "";
}

static bool failover_pair_formed(FailoverPairState *s)
{
    return s->primary.dev && s->fallback.dev;
}

/* The realized device the user created with @id, or NULL */
static DeviceState *failover_pair_lookup(const char *id)
{
    Object *obj = object_resolve_path_component(
        machine_get_container("peripheral"), id);
    DeviceState *dev = (DeviceState *)object_dynamic_cast(obj, TYPE_DEVICE);

    return dev && dev->realized ? dev : NULL;
}

typedef struct FailoverPairNicFind {
    DeviceState *dev;
    NICState *nic;
    int count;
} FailoverPairNicFind;

static int failover_pair_object_is(Object *child, void *opaque)
{
    return child == opaque;
}

/* A NIC model passes its own state as the opaque, or virtio-net's */
static void failover_pair_match_nic(NICState *nic, void *opaque)
{
    FailoverPairNicFind *find = opaque;

    if (nic->opaque == find->dev ||
        object_child_foreach(OBJECT(find->dev), failover_pair_object_is,
                             nic->opaque)) {
        find->nic = nic;
        find->count++;
    }
}

/*
 * The network interface of @dev: that of the device itself, or of the
 * virtio device it holds (virtio-net-pci); NULL if it has none, or more
 * than one.  Never by name: net client names are not unique (an
 * anonymous e1000's "e1000.0" may be another NIC's id).
 */
static NICState *failover_pair_nic_state(DeviceState *dev)
{
    FailoverPairNicFind find = { .dev = dev };

    qemu_foreach_nic(failover_pair_match_nic, &find);
    return find.count == 1 ? find.nic : NULL;
}

static int failover_pair_nic_queues(NICState *nic)
{
    return MAX(nic->conf->peers.queues, 1);
}

/* Whether @nic's driver is ready, or waits for a link to get ready */
static bool failover_pair_nic_wanted(FailoverPairNic *nic)
{
    DriverStatusReporter *r;

    if (!nic->dev) {
        return false;
    }
    r = driver_status_reporter_of(OBJECT(nic->dev));
    return driver_status_reporter_get_status(r) == DRIVER_STATUS_READY ||
           driver_status_reporter_link_wanted(r);
}

static bool failover_pair_nic_held(FailoverPairNic *nic)
{
    NICState *state = failover_pair_nic_state(nic->dev);

    return net_client_link_reason(qemu_get_queue(state), NET_LINK_DOWN_HOLD);
}

/*
 * The network in front of the backends learned the guest's MAC address
 * on the port of the NIC that had the link: tell it, as after migration,
 * that the guest is now behind the NIC the pair last let up, so that
 * frames for the guest follow it at once rather than when the guest
 * happens to send.  A NIC with an announcement of its own (virtio-net)
 * raises an interrupt in each round, so the rounds run on the VM's
 * clock: none while the VM is stopped.
 */
static void failover_pair_announce(void *opaque)
{
    FailoverPairState *s = opaque;
    FailoverPairNic *nic = s->announce_nic;
    NICState *state;
    AnnounceParameters params = {
        .initial = s->announce_initial_ms,
        .max = s->announce_max_ms,
        .rounds = s->announce_rounds,
        .step = s->announce_step_ms,
        .has_interfaces = true,
    };
    strList name = { };
    DeviceState *dev;

    s->announce_nic = NULL;
    /* Dissolved, the pair still announces the NIC it let go */
    dev = nic ? nic->dev ?: failover_pair_lookup(nic->id) : NULL;
    state = dev ? failover_pair_nic_state(dev) : NULL;
    if (!state || qemu_get_queue(state)->link_down) {
        return;
    }
    trace_failover_pair_announce(failover_pair_id(s), nic->id);
    s->announce_paid = MAX(s->announce_paid,
                           qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL)) +
                       FAILOVER_PAIR_ANNOUNCE_GAP_NS;
    name.value = qemu_get_queue(state)->name;
    params.interfaces = &name;
    qemu_announce_self_on(&s->announce_timer, &params, QEMU_CLOCK_VIRTUAL);
}

/*
 * Announce @nic, out of the guest's register write that let its link
 * up: at once, unless announcements came in a burst just before.  A
 * switch before the announcement starts replaces it, so a guest that
 * flips its drivers in a loop gets a few announcements a second, each
 * of the NIC that has the link at the time.
 */
static void failover_pair_schedule_announce(FailoverPairState *s,
                                            FailoverPairNic *nic)
{
    int64_t burst_ns = (FAILOVER_PAIR_ANNOUNCE_BURST - 1) *
                       FAILOVER_PAIR_ANNOUNCE_GAP_NS;

    if (!s->announce) {
        return;
    }
    s->announce_nic = nic;
    timer_mod(s->announce_start,
              MAX(qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL),
                  s->announce_paid - burst_ns));
}

static void failover_pair_cancel_announce(FailoverPairState *s)
{
    s->announce_nic = NULL;
    timer_del(s->announce_start);
    qemu_announce_timer_del(&s->announce_timer, false);
}

/* Hold @nic's link down, or let it follow its other reasons again. */
static void failover_pair_hold(FailoverPairState *s, FailoverPairNic *nic,
                               bool hold)
{
    g_autofree NetClientState **ncs = NULL;
    NICState *state;
    bool peers;
    int queues, i;

    if (!nic->dev || failover_pair_nic_held(nic) == hold) {
        return;
    }
    trace_failover_pair_hold(failover_pair_id(s), nic->id, hold);
    state = failover_pair_nic_state(nic->dev);
    queues = failover_pair_nic_queues(state);
    ncs = g_new(NetClientState *, queues);
    /* From the backend's side, the change reaches the NIC as well */
    peers = qemu_get_queue(state)->peer;
    for (i = 0; i < queues; i++) {
        ncs[i] = qemu_get_subqueue(state, i);
        if (peers) {
            ncs[i] = ncs[i]->peer;
        }
    }
    net_client_set_link(ncs, queues, NET_LINK_DOWN_HOLD, !hold);
    if (hold) {
        /* Whichever NIC was announced, it no longer has the link alone */
        failover_pair_cancel_announce(s);
    } else {
        failover_pair_schedule_announce(s, nic);
    }
}

static void failover_pair_apply(FailoverPairState *s)
{
    bool primary_free = s->active == FAILOVER_PAIR_ACTIVE_PRIMARY;
    bool fallback_free = s->active == FAILOVER_PAIR_ACTIVE_FALLBACK;

    /* Take a link away before giving the other: never both up */
    if (primary_free) {
        failover_pair_hold(s, &s->fallback, true);
        failover_pair_hold(s, &s->primary, false);
    } else {
        failover_pair_hold(s, &s->primary, true);
        failover_pair_hold(s, &s->fallback, !fallback_free);
    }

    /* The pair's promise: one link at most, to a driver that wants it */
    assert(failover_pair_nic_held(&s->primary) ||
           failover_pair_nic_held(&s->fallback));
    assert(failover_pair_nic_held(&s->primary) ||
           failover_pair_nic_wanted(&s->primary));
    assert(failover_pair_nic_held(&s->fallback) ||
           failover_pair_nic_wanted(&s->fallback));
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

/* Forget when the drivers came and went: a new boot starts afresh */
static void failover_pair_clear_times(FailoverPairState *s)
{
    s->fallback_since = -1;
    s->fallback_gone = -1;
    s->primary_gone = -1;
}

/* Decide again, after a driver status change, reset or migration. */
static void failover_pair_update(FailoverPairState *s)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    bool primary_wanted = failover_pair_nic_wanted(&s->primary);
    bool fallback_wanted = failover_pair_nic_wanted(&s->fallback);
    int64_t due;

    trace_failover_pair_update(failover_pair_id(s), primary_wanted,
                               fallback_wanted);

    if (!fallback_wanted) {
        if (s->fallback_since >= 0 && s->fallback_gone < 0) {
            s->fallback_gone = now;
        }
    } else {
        if (s->fallback_since < 0 ||
            (s->fallback_gone >= 0 &&
             now - s->fallback_gone >= FAILOVER_PAIR_REGAIN_NS)) {
            s->fallback_since = now;
        }
        s->fallback_gone = -1;
    }

    if (primary_wanted) {
        timer_del(s->fallback_timer);
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_PRIMARY);
        return;
    }
    /* The primary has the link exactly while its driver wants it */
    if (s->active == FAILOVER_PAIR_ACTIVE_PRIMARY) {
        s->primary_gone = now;
    }
    if (!fallback_wanted) {
        timer_del(s->fallback_timer);
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_NONE);
        return;
    }
    if (s->active == FAILOVER_PAIR_ACTIVE_FALLBACK) {
        /* Its delay is over; and it stays over across a migration */
        failover_pair_apply(s);
        return;
    }
    /* Give the primary's driver some time since either driver came */
    due = MAX(s->fallback_since, s->primary_gone) +
          (int64_t)s->fallback_delay_ms * SCALE_MS;
    if (now >= due) {
        timer_del(s->fallback_timer);
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_FALLBACK);
        return;
    }
    failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_NONE);
    trace_failover_pair_arm(failover_pair_id(s), (due - now) / SCALE_MS);
    timer_mod(s->fallback_timer, due);
}

static void failover_pair_timer_expired(void *opaque)
{
    FailoverPairState *s = opaque;

    trace_failover_pair_timer_expired(failover_pair_id(s));
    failover_pair_update(s);
}

static void failover_pair_driver_status_changed(Notifier *n, void *data)
{
    FailoverPairState *s = container_of(n, FailoverPairState,
                                        driver_status_listener);
    DriverStatusChange *change = data;

    if (s->resetting || !failover_pair_formed(s) ||
        (change->dev != s->primary.dev && change->dev != s->fallback.dev)) {
        return;
    }
    failover_pair_update(s);
}

static bool failover_pair_uses(DeviceState *dev)
{
    FailoverPairState *s;

    QTAILQ_FOREACH(s, &failover_pairs, next) {
        if (s->primary.dev == dev || s->fallback.dev == dev) {
            return true;
        }
    }
    return false;
}

typedef struct FailoverPairNameFind {
    NICState *self;
    NICState *other;
} FailoverPairNameFind;

static void failover_pair_match_name(NICState *nic, void *opaque)
{
    FailoverPairNameFind *find = opaque;

    if (nic != find->self &&
        !strcmp(qemu_get_queue(nic)->name, qemu_get_queue(find->self)->name)) {
        find->other = nic;
    }
}

/* Resolve @nic's id to a NIC that reports driver status, or fail. */
static bool failover_pair_find_nic(FailoverPairNic *nic, Error **errp)
{
    DeviceState *dev = failover_pair_lookup(nic->id);
    FailoverPairNameFind names = { };

    if (!dev) {
        error_setg(errp, "%s '%s' not found", nic->role, nic->id);
        return false;
    }
    names.self = failover_pair_nic_state(dev);
    if (!names.self) {
        error_setg(errp, "%s '%s' is not a NIC", nic->role, nic->id);
        return false;
    }
    /*
     * set_link, info network and the announcements name a NIC by its net
     * client name: a NIC that shares it cannot be told apart
     */
    qemu_foreach_nic(failover_pair_match_name, &names);
    if (names.other) {
        error_setg(errp, "%s '%s': another NIC (%s) has the same network "
                   "name; give each NIC an id of its own", nic->role,
                   nic->id, qemu_get_queue(names.other)->model);
        return false;
    }
    if (!driver_status_reporter_of(OBJECT(dev))) {
        error_setg(errp, "%s '%s' (%s) does not report guest driver status",
                   nic->role, nic->id, object_get_typename(OBJECT(dev)));
        return false;
    }
    if (failover_pair_uses(dev)) {
        error_setg(errp, "%s '%s' is already in another failover-pair",
                   nic->role, nic->id);
        return false;
    }
    /*
     * virtio-net's failover=on hides its partner and lets the guest's
     * net_failover driver bond the two: the two failovers would fight
     * over the same link
     */
    if (object_property_find(OBJECT(dev), "failover") &&
        object_property_get_bool(OBJECT(dev), "failover", &error_abort)) {
        error_setg(errp, "%s '%s' has failover=on, which a failover-pair "
                   "cannot combine with", nic->role, nic->id);
        return false;
    }
    nic->dev = dev;
    return true;
}

static void failover_pair_forget(FailoverPairNic *nic)
{
    nic->dev = NULL;
}

/* The MTU @nic's guest driver starts with */
static uint64_t failover_pair_nic_mtu(FailoverPairNic *nic)
{
    uint64_t mtu = 0;

    /* Only virtio-net tells the guest one; other NICs' drivers pick 1500 */
    if (object_property_find(OBJECT(nic->dev), "host_mtu")) {
        mtu = object_property_get_uint(OBJECT(nic->dev), "host_mtu",
                                       &error_abort);
    }
    return mtu ?: ETH_MTU;
}

/* Take both NICs, hold both links down, then decide. */
static bool failover_pair_form(FailoverPairState *s, Error **errp)
{
    if (!failover_pair_find_nic(&s->primary, errp) ||
        !failover_pair_find_nic(&s->fallback, errp)) {
        goto fail;
    }
    if (failover_pair_nic_mtu(&s->primary) !=
        failover_pair_nic_mtu(&s->fallback)) {
        warn_report("failover-pair '%s': the guest's MTU changes when the "
                    "link moves between primary '%s' (MTU %" PRIu64 ") and "
                    "fallback '%s' (MTU %" PRIu64 ")", failover_pair_id(s),
                    s->primary.id, failover_pair_nic_mtu(&s->primary),
                    s->fallback.id, failover_pair_nic_mtu(&s->fallback));
    }
    trace_failover_pair_form(failover_pair_id(s), s->primary.id,
                             s->fallback.id);
    s->active = FAILOVER_PAIR_ACTIVE_NONE;
    failover_pair_clear_times(s);
    failover_pair_apply(s);
    failover_pair_update(s);
    return true;

fail:
    failover_pair_forget(&s->primary);
    failover_pair_forget(&s->fallback);
    return false;
}

/*
 * A NIC of the pair left: let go of the other, whose link then follows
 * its other reasons alone.
 */
static void failover_pair_dissolve(FailoverPairState *s)
{
    trace_failover_pair_dissolve(failover_pair_id(s));
    timer_del(s->fallback_timer);
    failover_pair_hold(s, &s->primary, false);
    failover_pair_hold(s, &s->fallback, false);
    failover_pair_forget(&s->primary);
    failover_pair_forget(&s->fallback);
    if (s->active != FAILOVER_PAIR_ACTIVE_NONE) {
        g_autofree char *path = object_get_canonical_path(OBJECT(s));

        s->active = FAILOVER_PAIR_ACTIVE_NONE;
        qapi_event_send_failover_pair_changed(DEVICE(s)->id, path,
                                              s->active);
    }
}

static void failover_pair_device_unrealize(DeviceListener *listener,
                                           DeviceState *dev)
{
    FailoverPairState *s = container_of(listener, FailoverPairState,
                                        device_listener);

    if (dev == s->primary.dev) {
        /* Its net clients are gone already: do not touch them */
        failover_pair_forget(&s->primary);
    } else if (dev == s->fallback.dev) {
        failover_pair_forget(&s->fallback);
    } else {
        return;
    }
    trace_failover_pair_unplugged(failover_pair_id(s), dev->id);
    /* Nothing the pair started may name the NIC once it is gone */
    failover_pair_cancel_announce(s);
    failover_pair_dissolve(s);
}

/*
 * Listeners run before the device is fully plugged in: look again once
 * device_add is through.
 */
static void failover_pair_device_realize(DeviceListener *listener,
                                         DeviceState *dev)
{
    FailoverPairState *s = container_of(listener, FailoverPairState,
                                        device_listener);

    if (!failover_pair_formed(s) && dev->id &&
        (!g_strcmp0(dev->id, s->primary.id) ||
         !g_strcmp0(dev->id, s->fallback.id))) {
        qemu_bh_schedule(s->form_bh);
    }
}

static void failover_pair_form_again(void *opaque)
{
    FailoverPairState *s = opaque;
    Error *err = NULL;

    if (failover_pair_formed(s)) {
        return;
    }
    if (!failover_pair_form(s, &err)) {
        /* Not both there yet is not worth a word */
        trace_failover_pair_not_formed(failover_pair_id(s),
                                       error_get_pretty(err));
        error_free(err);
    }
}

/*
 * Hold @nic's link down, on the NIC and its backend, or let go of it,
 * without telling the NIC: its registers came from the source
 */
static void failover_pair_hold_quietly(FailoverPairNic *nic, bool hold)
{
    NICState *state = failover_pair_nic_state(nic->dev);
    int i;

    for (i = 0; i < failover_pair_nic_queues(state); i++) {
        NetClientState *nc = qemu_get_subqueue(state, i);

        net_client_set_link_reason(nc, NET_LINK_DOWN_HOLD, hold);
        if (nc->peer) {
            net_client_set_link_reason(nc->peer, NET_LINK_DOWN_HOLD, hold);
        }
    }
}

static void failover_pair_vm_state_change(void *opaque, bool running,
                                          RunState state)
{
    FailoverPairState *s = opaque;

    if (!running) {
        s->loading |= state == RUN_STATE_RESTORE_VM;
        return;
    }
    if (s->loading && !s->loaded && failover_pair_formed(s)) {
        trace_failover_pair_reconcile(failover_pair_id(s));
        failover_pair_hold_quietly(&s->primary, false);
        failover_pair_hold_quietly(&s->fallback, false);
        s->active = FAILOVER_PAIR_ACTIVE_NONE;
        failover_pair_clear_times(s);
    }
    s->loading = s->loaded = false;
    if (failover_pair_formed(s)) {
        failover_pair_update(s);
    }
}

/*
 * Every -device option is realized now.  On an incoming migration, a
 * NIC that is not there was unplugged on the source, whose pair was
 * dissolved then: start dissolved too, and form once it is plugged.
 */
static void failover_pair_start(FailoverPairState *s)
{
    FailoverPairNic *missing = NULL;
    Error *err = NULL;

    s->loading = runstate_check(RUN_STATE_INMIGRATE);
    if (!failover_pair_lookup(s->primary.id)) {
        missing = &s->primary;
    } else if (!failover_pair_lookup(s->fallback.id)) {
        missing = &s->fallback;
    }
    if (missing && runstate_check(RUN_STATE_INMIGRATE)) {
        warn_report("failover-pair '%s': %s '%s' not found; the pair "
                    "starts dissolved", failover_pair_id(s), missing->role,
                    missing->id);
        return;
    }
    if (!failover_pair_form(s, &err)) {
        error_prepend(&err, "failover-pair '%s': ", failover_pair_id(s));
        error_report_err(err);
        exit(1);
    }
}

/* The pairs form in command-line order: the first one takes a NIC */
static void failover_pairs_machine_done(Notifier *notifier, void *data)
{
    FailoverPairState *s;

    QTAILQ_FOREACH(s, &failover_pairs, next) {
        failover_pair_start(s);
    }
}

static Notifier failover_pairs_machine_done_notifier = {
    .notify = failover_pairs_machine_done,
};

static bool failover_pair_check_range(const char *name, uint32_t value,
                                      uint32_t min, uint32_t max,
                                      Error **errp)
{
    if (value < min || value > max) {
        error_setg(errp, "%s %" PRIu32 " out of range (%" PRIu32 " to %"
                   PRIu32 ")", name, value, min, max);
        return false;
    }
    return true;
}

static void failover_pair_realize(DeviceState *dev, Error **errp)
{
    FailoverPairState *s = FAILOVER_PAIR(dev);

    if (!dev->id) {
        /* It names the pair's migration state, see the class's get_id */
        error_setg(errp, "a failover-pair needs an id");
        return;
    }
    if (!s->primary.id || !s->fallback.id) {
        error_setg(errp, "property '%s' is required",
                   s->primary.id ? "fallback" : "primary");
        return;
    }
    if (!strcmp(s->primary.id, s->fallback.id)) {
        error_setg(errp, "primary and fallback are both '%s'", s->primary.id);
        return;
    }
    if (!failover_pair_check_range("fallback-delay-ms", s->fallback_delay_ms,
                                   0, FAILOVER_PAIR_MAX_DELAY_MS, errp) ||
        !failover_pair_check_range("announce-initial-ms",
                                   s->announce_initial_ms, 0,
                                   FAILOVER_PAIR_MAX_ANNOUNCE_MS, errp) ||
        !failover_pair_check_range("announce-max-ms", s->announce_max_ms, 0,
                                   FAILOVER_PAIR_MAX_ANNOUNCE_MS, errp) ||
        !failover_pair_check_range("announce-rounds", s->announce_rounds, 1,
                                   FAILOVER_PAIR_MAX_ANNOUNCE_ROUNDS, errp) ||
        !failover_pair_check_range("announce-step-ms", s->announce_step_ms,
                                   1, FAILOVER_PAIR_MAX_ANNOUNCE_STEP_MS,
                                   errp)) {
        return;
    }
    /* Cold-plugged only (not hotpluggable): the NICs may come after us */
    assert(!phase_check(PHASE_MACHINE_READY));
    s->fallback_timer = timer_new_ns(QEMU_CLOCK_VIRTUAL,
                                     failover_pair_timer_expired, s);
    s->announce_start = timer_new_ns(QEMU_CLOCK_VIRTUAL,
                                     failover_pair_announce, s);
    s->form_bh = qemu_bh_new(failover_pair_form_again, s);
    if (QTAILQ_EMPTY(&failover_pairs)) {
        qemu_add_machine_init_done_notifier(
            &failover_pairs_machine_done_notifier);
    }
    QTAILQ_INSERT_TAIL(&failover_pairs, s, next);
    s->driver_status_listener.notify = failover_pair_driver_status_changed;
    driver_status_add_listener(&s->driver_status_listener);
    s->device_listener.realize = failover_pair_device_realize;
    s->device_listener.unrealize = failover_pair_device_unrealize;
    device_listener_register(&s->device_listener);
    /* Bus-less devices are reset by no one else (docs/devel/reset.rst) */
    qemu_register_resettable(OBJECT(s));
    /* After every device's own handler: the NICs run when the pair acts */
    s->vm_state = qemu_add_vm_change_state_handler_prio(
        failover_pair_vm_state_change, s, INT_MAX);
}

static void failover_pair_unrealize(DeviceState *dev)
{
    FailoverPairState *s = FAILOVER_PAIR(dev);

    qemu_del_vm_change_state_handler(s->vm_state);
    qemu_unregister_resettable(OBJECT(s));
    device_listener_unregister(&s->device_listener);
    driver_status_remove_listener(&s->driver_status_listener);
    QTAILQ_REMOVE(&failover_pairs, s, next);
    if (QTAILQ_EMPTY(&failover_pairs)) {
        qemu_remove_machine_init_done_notifier(
            &failover_pairs_machine_done_notifier);
    }
    qemu_bh_delete(s->form_bh);
    failover_pair_dissolve(s);
    failover_pair_cancel_announce(s);
    timer_free(s->announce_start);
    timer_free(s->fallback_timer);
}

/*
 * During a system reset the NICs report their driver status going away
 * one by one, in no particular order: ignore that, keep both links down
 * and decide once everything is reset.
 */
static void failover_pair_reset_enter(Object *obj, ResetType type)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    /*
     * A guest that wakes up from suspend to RAM goes on where it was:
     * its drivers bring their NICs up again, and the pair decides from
     * them as usual, without a new boot's delays and announcements
     */
    if (type == RESET_TYPE_WAKEUP) {
        return;
    }
    s->resetting = true;
    timer_del(s->fallback_timer);
    failover_pair_clear_times(s);
    failover_pair_cancel_announce(s);
    s->announce_paid = 0;
}

static void failover_pair_reset_hold(Object *obj, ResetType type)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    if (type != RESET_TYPE_WAKEUP && failover_pair_formed(s)) {
        failover_pair_set_active(s, FAILOVER_PAIR_ACTIVE_NONE);
    }
}

static void failover_pair_reset_exit(Object *obj, ResetType type)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    if (type == RESET_TYPE_WAKEUP) {
        return;
    }
    s->resetting = false;
    if (failover_pair_formed(s)) {
        failover_pair_update(s);
    }
}

static char *failover_pair_get_active(Object *obj, Error **errp)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    return g_strdup(FailoverPairActive_str(s->active));
}

static FailoverPairMember *failover_pair_member(FailoverPairNic *nic)
{
    FailoverPairMember *m = g_new0(FailoverPairMember, 1);
    DriverStatusReporter *reporter;
    NICState *state;
    DeviceState *dev;

    m->device = g_strdup(nic->id);
    /* A dissolved pair still shows the NIC that is left */
    dev = nic->dev ?: failover_pair_lookup(nic->id);
    state = dev ? failover_pair_nic_state(dev) : NULL;
    if (!state) {
        return m;
    }
    m->qom_path = object_get_canonical_path(OBJECT(dev));
    reporter = driver_status_reporter_of(OBJECT(dev));
    if (reporter) {
        m->has_driver_status = true;
        m->driver_status = driver_status_reporter_get_status(reporter);
    }
    m->has_link_up = true;
    m->link_up = !qemu_get_queue(state)->link_down;
    return m;
}

FailoverPairInfoList *qmp_query_failover_pairs(Error **errp)
{
    FailoverPairInfoList *list = NULL;
    FailoverPairInfoList **tail = &list;
    FailoverPairState *s;

    QTAILQ_FOREACH(s, &failover_pairs, next) {
        FailoverPairInfo *info = g_new0(FailoverPairInfo, 1);

        info->device = g_strdup(DEVICE(s)->id);
        info->qom_path = object_get_canonical_path(OBJECT(s));
        info->formed = failover_pair_formed(s);
        info->active = s->active;
        info->fallback_delay_ms = s->fallback_delay_ms;
        info->primary = failover_pair_member(&s->primary);
        info->fallback = failover_pair_member(&s->fallback);
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}

static int failover_pair_pre_save(void *opaque)
{
    FailoverPairState *s = opaque;
    NICState *primary, *fallback;

    /* Only a formed pair sends its state (failover_pair_vmstate_needed) */
    assert(failover_pair_formed(s));
    primary = failover_pair_nic_state(s->primary.dev);
    fallback = failover_pair_nic_state(s->fallback.dev);
    s->primary.admin_down = net_client_link_reason(qemu_get_queue(primary),
                                                   NET_LINK_DOWN_ADMIN);
    s->fallback.admin_down = net_client_link_reason(qemu_get_queue(fallback),
                                                    NET_LINK_DOWN_ADMIN);
    return 0;
}

/*
 * The reasons for @nic's link to be down as they were on the source:
 * the NIC's registers already show the guest that link, so nobody is
 * told.  The reasons of this side's own backend stay as they are.
 */
static void failover_pair_restore_link(FailoverPairNic *nic, bool hold)
{
    NICState *state = failover_pair_nic_state(nic->dev);
    int i;

    for (i = 0; i < failover_pair_nic_queues(state); i++) {
        net_client_set_link_reason(qemu_get_subqueue(state, i),
                                   NET_LINK_DOWN_ADMIN, nic->admin_down);
    }
    failover_pair_hold_quietly(nic, hold);
}

/*
 * A time the source recorded: never (-1), or a time of the virtual
 * clock, which migrates too, far enough from the end of its range to
 * add a delay to
 */
static bool failover_pair_time_valid(int64_t ns)
{
    return ns >= -1 && ns <= INT64_MAX / 2;
}

/*
 * Loaded after the NICs (MIG_PRI_LOW), whose driver status and link
 * registers are in place by now.  Restores only: links without telling
 * the NICs, no event, no announcement.
 */
static bool failover_pair_post_load(void *opaque, int version_id,
                                    Error **errp)
{
    FailoverPairState *s = opaque;

    if (s->active >= FAILOVER_PAIR_ACTIVE__MAX) {
        error_setg(errp, "failover-pair '%s': invalid active NIC %" PRIu32,
                   failover_pair_id(s), s->active);
        goto fail;
    }
    if (!failover_pair_time_valid(s->fallback_since) ||
        !failover_pair_time_valid(s->fallback_gone) ||
        !failover_pair_time_valid(s->primary_gone)) {
        error_setg(errp, "failover-pair '%s': invalid driver times",
                   failover_pair_id(s));
        goto fail;
    }
    if (!failover_pair_formed(s)) {
        /* Only a whole pair sends its state */
        error_setg(errp, "failover-pair '%s': the source's pair has both "
                   "NICs, '%s' and '%s', and this one has not",
                   failover_pair_id(s), s->primary.id, s->fallback.id);
        goto fail;
    }
    failover_pair_restore_link(&s->primary,
                               s->active != FAILOVER_PAIR_ACTIVE_PRIMARY);
    failover_pair_restore_link(&s->fallback,
                               s->active != FAILOVER_PAIR_ACTIVE_FALLBACK);
    /*
     * The delay the source had armed goes on from when the VM runs:
     * whatever the source decided, the drivers here are what counts
     * (failover_pair_vm_state_change())
     */
    timer_del(s->fallback_timer);
    s->loaded = true;
    return true;

fail:
    /* Drop what was loaded: the VM does not run on a failed load */
    timer_del(s->fallback_timer);
    s->active = FAILOVER_PAIR_ACTIVE_NONE;
    failover_pair_clear_times(s);
    return false;
}

static bool failover_pair_vmstate_needed(void *opaque)
{
    return failover_pair_formed(opaque);
}

static const VMStateDescription vmstate_failover_pair = {
    .name = "failover-pair",
    .version_id = 1,
    .minimum_version_id = 1,
    .priority = MIG_PRI_LOW,
    .needed = failover_pair_vmstate_needed,
    .pre_save = failover_pair_pre_save,
    .post_load_errp = failover_pair_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(active, FailoverPairState),
        VMSTATE_INT64(fallback_since, FailoverPairState),
        VMSTATE_INT64(fallback_gone, FailoverPairState),
        VMSTATE_INT64(primary_gone, FailoverPairState),
        VMSTATE_BOOL(primary.admin_down, FailoverPairState),
        VMSTATE_BOOL(fallback.admin_down, FailoverPairState),
        VMSTATE_END_OF_LIST()
    },
};

static const Property failover_pair_properties[] = {
    DEFINE_PROP_STRING("primary", FailoverPairState, primary.id),
    DEFINE_PROP_STRING("fallback", FailoverPairState, fallback.id),
    DEFINE_PROP_UINT32("fallback-delay-ms", FailoverPairState,
                       fallback_delay_ms, 500),
    DEFINE_PROP_BOOL("announce", FailoverPairState, announce, true),
    /* The defaults of the migration parameters of the same name */
    DEFINE_PROP_UINT32("announce-initial-ms", FailoverPairState,
                       announce_initial_ms, 50),
    DEFINE_PROP_UINT32("announce-max-ms", FailoverPairState,
                       announce_max_ms, 550),
    DEFINE_PROP_UINT32("announce-rounds", FailoverPairState,
                       announce_rounds, 5),
    DEFINE_PROP_UINT32("announce-step-ms", FailoverPairState,
                       announce_step_ms, 100),
};

static void failover_pair_instance_init(Object *obj)
{
    FailoverPairState *s = FAILOVER_PAIR(obj);

    s->primary.role = "primary";
    s->fallback.role = "fallback";
    failover_pair_clear_times(s);
}

/*
 * A bus-less device's migration state is told apart by its order of
 * creation: two pairs given in another order on the destination would
 * swap their states.  The pair's id says which is which.
 */
static char *failover_pair_vmstate_get_id(VMStateIf *obj)
{
    return g_strdup(DEVICE(obj)->id);
}

static void failover_pair_class_init(ObjectClass *klass, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);
    VMStateIfClass *vc = VMSTATE_IF_CLASS(klass);

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
    vc->get_id = failover_pair_vmstate_get_id;
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
        .instance_init  = failover_pair_instance_init,
        .class_init     = failover_pair_class_init,
    },
};

DEFINE_TYPES(failover_pair_types)
