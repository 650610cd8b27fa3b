/*
 * QTest for guest driver status reporting (DRIVER_STATUS_CHANGED,
 * query-driver-status, info driver-status)
 *
 * Each test plays the register writes of a device's Linux driver and
 * checks every event and the query answer after every step.  The event
 * is rate-limited per device, on the virtual clock under qtest: a burst
 * of up to eight goes out at once, then one a second.  So every event
 * of a driver that loads must arrive at once, without a clock step; the
 * tests step the clock after each check to give the burst back.
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "libqos/malloc-pc.h"
#include "libqos/pci-pc.h"
#include "libqos/virtio.h"
#include "libqos/virtio-pci.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "standard-headers/linux/virtio_config.h"

/* The rate limit: a burst, then one event a second */
#define BURST 8
#define SECOND_NS (1000 * 1000 * 1000LL)
/* Long enough for the burst to be whole again after a step's events */
#define SETTLE_NS (3 * SECOND_NS)

#define RTL8139_CHIPCMD     0x37
#define RTL8139_CMD_RESET   0x10
#define RTL8139_CMD_RXENB   0x08
#define RTL8139_CMD_TXENB   0x04
#define RTL8139_CPCMD       0xe0
#define RTL8139_CFG9346     0x50
#define RTL8139_CFG9346_AUTOLOAD 0x40
#define RTL8139_CP_RXON     0x0002
#define RTL8139_CP_TXON     0x0001
#define RTL8139_CP_MULRW    0x0008
#define RTL8139_CP_RXCSUM   0x0020

#define E1000_CTRL          0x0000
#define E1000_CTRL_RST      0x04000000
#define E1000_CTRL_EXT      0x0018
/* The I/O BAR's indirect access to the registers */
#define E1000_IOADDR        0x00
#define E1000_IODATA        0x04
#define E1000_CTRL_EXT_DRV_LOAD 0x10000000
#define E1000_RCTL          0x0100
#define E1000_RCTL_EN       0x00000002
#define E1000_RCTL_BAM      0x00008000
#define E1000_TCTL          0x0400
#define E1000_TCTL_EN       0x00000002
#define E1000_TCTL_PSP      0x00000008

/* The legacy virtio-pci I/O BAR */
#define VIRTIO_PCI_QUEUE_PFN  8
#define VIRTIO_PCI_QUEUE_SEL  14
#define VIRTIO_PCI_STATUS     18

#define VMXNET3_REG_VRRS    0x00
#define VMXNET3_REG_UVRS    0x08
#define VMXNET3_REG_DSAL    0x10
#define VMXNET3_REG_DSAH    0x18
#define VMXNET3_REG_CMD     0x20
#define VMXNET3_CMD_ACTIVATE_DEV 0xcafe0000
#define VMXNET3_CMD_QUIESCE_DEV  0xcafe0001
#define VMXNET3_CMD_RESET_DEV    0xcafe0002
#define VMXNET3_CMD_GET_LINK     0xf00d0002
/* The driver's shared memory in guest RAM: magic, and the MTU it uses */
#define VMXNET3_SHARED      0x100000
#define VMXNET3_MAGIC       0xbabefee1
#define VMXNET3_SHARED_MTU  56

#define RTL_ARGS   "-device rtl8139,id=rtl0,addr=0x3 "
#define E1000_ARGS "-device e1000,id=e1k0,addr=0x4 "
#define VIO_ARGS   "-device virtio-net-pci,id=vio0,addr=0x5"
#define RTL_PATH   "/machine/peripheral/rtl0"
#define E1000_PATH "/machine/peripheral/e1k0"
#define VIO_PATH   "/machine/peripheral/vio0"

typedef struct TestMachine {
    QTestState *qts;
    /* DRIVER_STATUS_CHANGED events, oldest first */
    GQueue events;
    QPCIBus *pcibus;
    QPCIDevice *pdev;
    QPCIBar bar;
    /* A virtio-net driver's receive queue, and where it lives */
    QGuestAllocator alloc;
    QVirtQueue *rx;
    const QVirtioBus *rx_bus;
} TestMachine;

/*
 * libqtest drops events while it waits for another one: keep ours aside
 * so that every single one is checked.
 */
static bool collect_event(QTestState *qts, const char *name, QDict *event,
                          void *opaque)
{
    GQueue *events = opaque;

    if (strcmp(name, "DRIVER_STATUS_CHANGED")) {
        return false;
    }
    g_queue_push_tail(events, qobject_ref(event));
    return true;
}

static void machine_start(TestMachine *m, const char *args)
{
    g_queue_init(&m->events);
    m->qts = qtest_initf("-M pc -nodefaults %s", args);
    pc_alloc_init(&m->alloc, m->qts, ALLOC_NO_FLAGS);
    qtest_qmp_set_event_callback(m->qts, collect_event, &m->events);
}

/* Enables the PCI device at @slot and maps its BAR @bar */
static void machine_start_pci(TestMachine *m, const char *args, int slot,
                              int bar)
{
    machine_start(m, args);
    m->pcibus = qpci_new_pc(m->qts, NULL);
    m->pdev = qpci_device_find(m->pcibus, QPCI_DEVFN(slot, 0));
    g_assert_nonnull(m->pdev);
    qpci_device_enable(m->pdev);
    m->bar = qpci_iomap(m->pdev, bar, NULL);
}

static void machine_stop(TestMachine *m)
{
    if (m->rx) {
        qvirtqueue_cleanup(m->rx_bus, m->rx, &m->alloc);
    }
    alloc_destroy(&m->alloc);
    if (m->pdev) {
        qpci_iounmap(m->pdev, m->bar);
        g_free(m->pdev);
    }
    if (m->pcibus) {
        qpci_free_pc(m->pcibus);
    }
    qtest_quit(m->qts);
    g_assert_true(g_queue_is_empty(&m->events));
}

static QList *query_driver_status(QTestState *qts)
{
    QDict *resp = qtest_qmp(qts, "{ 'execute': 'query-driver-status' }");
    QList *list;

    g_assert(qdict_haskey(resp, "return"));
    list = qdict_get_qlist(resp, "return");
    qobject_ref(list);
    qobject_unref(resp);
    return list;
}

/* Checks an event's or a query entry's members; @id NULL: no id */
static void check_status_dict(QDict *d, const char *id, const char *path,
                              const char *status)
{
    if (id) {
        g_assert_cmpstr(qdict_get_try_str(d, "device"), ==, id);
    } else {
        g_assert_false(qdict_haskey(d, "device"));
    }
    g_assert_cmpstr(qdict_get_try_str(d, "qom-path"), ==, path);
    g_assert_cmpstr(qdict_get_try_str(d, "status"), ==, status);
}

/* The device's read-only "driver-status" property */
static char *qom_get_status(QTestState *qts, const char *path)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments': {"
                           " 'path': %s, 'property': 'driver-status' } }",
                           path);
    char *status = g_strdup(qdict_get_try_str(rsp, "return"));

    g_assert_nonnull(status);
    qobject_unref(rsp);
    return status;
}

/*
 * The query answer of a machine with exactly one reporting device, and
 * that device's property
 */
static void check_query(QTestState *qts, const char *id, const char *path,
                        const char *status)
{
    QList *list = query_driver_status(qts);
    g_autofree char *prop = qom_get_status(qts, path);

    g_assert_cmpint(qlist_size(list), ==, 1);
    check_status_dict(qobject_to(QDict, qlist_peek(list)), id, path, status);
    g_assert_cmpstr(prop, ==, status);
    qobject_unref(list);
}

/*
 * Takes the next DRIVER_STATUS_CHANGED event that has already arrived.
 * A query is a round trip: any event emitted before it has arrived when
 * it returns, so a missing event fails here instead of hanging.
 */
static void check_event(TestMachine *m, const char *id, const char *path,
                        const char *status)
{
    QDict *ev;

    qobject_unref(query_driver_status(m->qts));
    ev = g_queue_pop_head(&m->events);
    g_assert_nonnull(ev);
    check_status_dict(qdict_get_qdict(ev, "data"), id, path, status);
    qobject_unref(ev);
}

static void check_no_event(TestMachine *m)
{
    qobject_unref(query_driver_status(m->qts));
    g_assert_true(g_queue_is_empty(&m->events));
}

/*
 * After a guest write: check that exactly the events @statuses
 * (NULL-terminated) arrived, in order and at once, and that the query
 * answers the last of them.  Then let the burst come back.
 */
static void check_step(TestMachine *m, const char *id, const char *path,
                       const char *const *statuses)
{
    const char *last = NULL;
    int i;

    for (i = 0; statuses[i]; i++) {
        check_event(m, id, path, statuses[i]);
        last = statuses[i];
    }
    check_no_event(m);
    g_assert_nonnull(last);
    check_query(m->qts, id, path, last);
    qtest_clock_step(m->qts, SETTLE_NS);
    check_no_event(m);
}

#define CHECK_STEP(m, id, path, ...) \
    check_step(m, id, path, (const char *const[]) { __VA_ARGS__, NULL })

/* A guest write that must not change the status */
static void check_unchanged(TestMachine *m, const char *id,
                            const char *path, const char *status)
{
    check_no_event(m);
    check_query(m->qts, id, path, status);
    qtest_clock_step(m->qts, SETTLE_NS);
    check_no_event(m);
}

/* Unlike qtest_qmp_eventwait(), leaves our events to collect_event() */
static void wait_event(QTestState *qts, const char *name)
{
    QDict *ev;

    while (!(ev = qtest_qmp_event_ref(qts, name))) {
        qobject_unref(qtest_qmp(qts, "{ 'execute': 'query-status' }"));
    }
    qobject_unref(ev);
}

/*
 * A system reset of a machine whose device is not at "none".  The
 * device's change is held until every device is reset: it comes after
 * the RESET event, from a later main loop iteration.
 */
static void system_reset(TestMachine *m)
{
    int i;

    qtest_qmp_assert_success(m->qts, "{ 'execute': 'system_reset' }");
    wait_event(m->qts, "RESET");
    g_assert_true(g_queue_is_empty(&m->events));
    for (i = 0; i < 100 && g_queue_is_empty(&m->events); i++) {
        qobject_unref(qtest_qmp(m->qts, "{ 'execute': 'query-status' }"));
    }
}

static void rtl8139_chipcmd(TestMachine *m, uint8_t val)
{
    qpci_io_writeb(m->pdev, m->bar, RTL8139_CHIPCMD, val);
}

static void rtl8139_cpcmd(TestMachine *m, uint16_t val)
{
    qpci_io_writew(m->pdev, m->bar, RTL8139_CPCMD, val);
}

/* 8139too: reset through ChipCmd, then enable rx and tx there */
static void test_rtl8139_8139too(void)
{
    TestMachine m = { };

    machine_start_pci(&m, RTL_ARGS, 3, 0);
    check_query(m.qts, "rtl0", RTL_PATH, "none");

    /* rtl8139_chip_reset() */
    rtl8139_chipcmd(&m, RTL8139_CMD_RESET);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "initializing");

    /* rtl8139_hw_start(): "Must enable Tx/Rx before setting ..." */
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "ready");

    /* Only one direction left on */
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "initializing");
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "ready");

    /* rtl8139_close(): "Stop the chip's Tx and Rx DMA processes" */
    rtl8139_chipcmd(&m, 0);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "none");

    /* Up again, then the machine resets under the driver */
    rtl8139_chipcmd(&m, RTL8139_CMD_RESET);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "initializing");
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "ready");
    system_reset(&m);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "none");

    machine_stop(&m);
}

/*
 * The chip's two resets a driver can use, ChipCmd's and Cfg9346's
 * EEPROM autoload, say the same: a driver has started.
 */
static void test_rtl8139_resets(void)
{
    TestMachine m = { };

    machine_start_pci(&m, RTL_ARGS, 3, 0);
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "ready");
    rtl8139_chipcmd(&m, RTL8139_CMD_RESET);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "initializing");
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "ready");
    qpci_io_writeb(m.pdev, m.bar, RTL8139_CFG9346, RTL8139_CFG9346_AUTOLOAD);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "initializing");
    machine_stop(&m);
}

/* 8139cp: reset through ChipCmd, enable rx and tx in the C+ CpCmd */
static void test_rtl8139_8139cp(void)
{
    TestMachine m = { };

    machine_start_pci(&m, RTL_ARGS, 3, 0);

    /* cp_reset_hw() */
    rtl8139_chipcmd(&m, RTL8139_CMD_RESET);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "initializing");

    /* cp_start_hw(): CpCmd first, then Cmd */
    rtl8139_cpcmd(&m, RTL8139_CP_MULRW | RTL8139_CP_RXCSUM |
                  RTL8139_CP_RXON | RTL8139_CP_TXON);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "ready");
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    check_unchanged(&m, "rtl0", RTL_PATH, "ready");

    /* cp_stop_hw(): Cmd off first; CpCmd still runs the chip */
    rtl8139_chipcmd(&m, 0);
    check_unchanged(&m, "rtl0", RTL_PATH, "ready");
    rtl8139_cpcmd(&m, 0);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "none");

    /* Receiver only */
    rtl8139_cpcmd(&m, RTL8139_CP_RXON);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "initializing");
    rtl8139_cpcmd(&m, RTL8139_CP_RXON | RTL8139_CP_TXON);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "ready");

    system_reset(&m);
    CHECK_STEP(&m, "rtl0", RTL_PATH, "none");

    machine_stop(&m);
}

static const char *find_status(QList *list, const char *path)
{
    const QListEntry *e;

    QLIST_FOREACH_ENTRY(list, e) {
        QDict *d = qobject_to(QDict, qlist_entry_obj(e));

        if (!strcmp(qdict_get_str(d, "qom-path"), path)) {
            return qdict_get_str(d, "status");
        }
    }
    g_assert_not_reached();
    return NULL;
}

/*
 * A guest toggling as fast as it can gets a burst out at once, then one
 * event a second, the newest: not one per toggle, and always the last.
 */
static void test_throttle(void)
{
    TestMachine m = { };
    QPCIDevice *e1k;
    QPCIBar e1k_bar;
    QList *list;
    int i;

    machine_start_pci(&m, RTL_ARGS E1000_ARGS, 3, 0);
    e1k = qpci_device_find(m.pcibus, QPCI_DEVFN(4, 0));
    g_assert_nonnull(e1k);
    qpci_device_enable(e1k);
    e1k_bar = qpci_iomap(e1k, 0, NULL);

    for (i = 0; i < 100; i++) {
        rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
        rtl8139_chipcmd(&m, 0);
    }
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);

    /* The burst went out at once, and nothing more */
    for (i = 0; i < BURST; i++) {
        check_event(&m, "rtl0", RTL_PATH, i % 2 ? "none" : "ready");
    }
    check_no_event(&m);

    /* The limit is per device: another device is not held back */
    qpci_io_writel(e1k, e1k_bar, E1000_CTRL, E1000_CTRL_RST);
    check_event(&m, "e1k0", E1000_PATH, "initializing");
    check_no_event(&m);

    /* Nothing until the second is over, then only the newest */
    qtest_clock_step(m.qts, SECOND_NS - 1);
    check_no_event(&m);
    qtest_clock_step(m.qts, 1);
    check_event(&m, "rtl0", RTL_PATH, "ready");
    check_no_event(&m);

    /* Still no credit: a change waits for the end of the next second */
    rtl8139_chipcmd(&m, 0);
    check_no_event(&m);
    qtest_clock_step(m.qts, SECOND_NS);
    check_event(&m, "rtl0", RTL_PATH, "none");
    check_no_event(&m);

    /* A second without events gives one back */
    qtest_clock_step(m.qts, SECOND_NS);
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    check_event(&m, "rtl0", RTL_PATH, "ready");
    rtl8139_chipcmd(&m, 0);
    check_no_event(&m);
    qtest_clock_step(m.qts, SECOND_NS);
    check_event(&m, "rtl0", RTL_PATH, "none");

    /* Once quiet for a burst's worth of seconds, a whole burst again */
    qtest_clock_step(m.qts, (BURST + 1) * SECOND_NS);
    for (i = 0; i < BURST; i++) {
        rtl8139_chipcmd(&m, i % 2 ? 0 : RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
        check_event(&m, "rtl0", RTL_PATH, i % 2 ? "none" : "ready");
    }
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    check_no_event(&m);
    qtest_clock_step(m.qts, SECOND_NS);
    check_event(&m, "rtl0", RTL_PATH, "ready");
    check_no_event(&m);

    list = query_driver_status(m.qts);
    g_assert_cmpint(qlist_size(list), ==, 2);
    g_assert_cmpstr(find_status(list, RTL_PATH), ==, "ready");
    g_assert_cmpstr(find_status(list, E1000_PATH), ==, "initializing");
    qobject_unref(list);

    qpci_iounmap(e1k, e1k_bar);
    g_free(e1k);
    machine_stop(&m);
}

static void e1000_write(TestMachine *m, uint32_t reg, uint32_t val)
{
    qpci_io_writel(m->pdev, m->bar, reg, val);
}

/*
 * Linux's e1000_reset_hw() issues CTRL.RST on the 82540 through the I/O
 * BAR (IOADDR, then IODATA), which QEMU's e1000 does not implement: the
 * write reaches nothing, and the device does not see the reset.
 */
static void e1000_io_reset(TestMachine *m)
{
    QPCIBar io = qpci_iomap(m->pdev, 1, NULL);

    qpci_io_writel(m->pdev, io, E1000_IOADDR, E1000_CTRL);
    qpci_io_writel(m->pdev, io, E1000_IODATA, E1000_CTRL_RST);
    qpci_iounmap(m->pdev, io);
}

/* The Linux e1000 driver's e1000_reset_hw(), e1000_configure(), down */
static void test_e1000(void)
{
    TestMachine m = { };

    machine_start_pci(&m, E1000_ARGS, 4, 0);
    check_query(m.qts, "e1k0", E1000_PATH, "none");

    /* e1000_reset_hw(): quiesce, then global reset */
    e1000_write(&m, E1000_RCTL, 0);
    e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP);
    e1000_io_reset(&m);
    check_unchanged(&m, "e1k0", E1000_PATH, "none");

    /*
     * e1000_configure_tx() leaves the transmitter off, then
     * e1000_configure_rx() turns the receiver on: the driver is up
     */
    e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP);
    check_unchanged(&m, "e1k0", E1000_PATH, "none");
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM);
    check_unchanged(&m, "e1k0", E1000_PATH, "none");
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM | E1000_RCTL_EN);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "ready");

    /* e1000_watchdog() sees the link and turns the transmitter on */
    e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP | E1000_TCTL_EN);
    check_unchanged(&m, "e1k0", E1000_PATH, "ready");

    /* e1000_down(): receives off, then transmits off, then e1000_reset() */
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "initializing");
    e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "none");
    e1000_io_reset(&m);
    check_unchanged(&m, "e1k0", E1000_PATH, "none");

    /* Drivers that reset through MMIO (iPXE's, firmware's) are seen */
    e1000_write(&m, E1000_CTRL, E1000_CTRL_RST);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "initializing");
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM | E1000_RCTL_EN);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "ready");
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "none");

    /* Two changes in a row: both arrive at once */
    e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP | E1000_TCTL_EN);
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM | E1000_RCTL_EN);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "initializing", "ready");

    system_reset(&m);
    CHECK_STEP(&m, "e1k0", E1000_PATH, "none");

    machine_stop(&m);
}

/*
 * The register sequences of Linux's e1000e (82574L) and igb (82576)
 * drivers.  Both take the device over with CTRL_EXT.DRV_LOAD and give
 * it back by clearing it; e1000e turns the transmitter on only once it
 * sees the link, igb at open.
 */
typedef struct E1000xCase {
    const char *model;
    /* e1000e's 82574 keeps receiving until the reset of its close */
    bool rx_off_at_close;
    /* igb enables the transmitter at open, e1000e in its watchdog */
    bool tx_on_at_open;
} E1000xCase;

static const E1000xCase e1000x_cases[] = {
    { "e1000e", false, false },
    { "igb", true, true },
};

static void e1000x_reset_hw(TestMachine *m, const char *id, const char *path,
                            const char *before)
{
    e1000_write(m, E1000_RCTL, 0);
    e1000_write(m, E1000_TCTL, E1000_TCTL_PSP);
    check_unchanged(m, id, path, before);
    e1000_write(m, E1000_CTRL, E1000_CTRL_RST);
}

static void test_e1000x(const void *data)
{
    const E1000xCase *c = data;
    g_autofree char *args = g_strdup_printf("-device %s,id=nic0,addr=0x4",
                                            c->model);
    const char *path = "/machine/peripheral/nic0";
    TestMachine m = { };

    machine_start_pci(&m, args, 4, 0);
    check_query(m.qts, "nic0", path, "none");

    /* Probe: reset_hw(), then the driver takes the device */
    e1000x_reset_hw(&m, "nic0", path, "none");
    CHECK_STEP(&m, "nic0", path, "initializing");
    e1000_write(&m, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
    check_unchanged(&m, "nic0", path, "initializing");

    /* Open: the device is reset again, then configured */
    e1000x_reset_hw(&m, "nic0", path, "initializing");
    e1000_write(&m, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
    check_unchanged(&m, "nic0", path, "initializing");
    e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP |
                (c->tx_on_at_open ? E1000_TCTL_EN : 0));
    check_unchanged(&m, "nic0", path, "initializing");
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM | E1000_RCTL_EN);
    CHECK_STEP(&m, "nic0", path, "ready");
    e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP | E1000_TCTL_EN);
    check_unchanged(&m, "nic0", path, "ready");

    /* Close: receiver and transmitter off, then a reset; still owned */
    if (c->rx_off_at_close) {
        e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM);
        CHECK_STEP(&m, "nic0", path, "initializing");
        e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP);
        check_unchanged(&m, "nic0", path, "initializing");
        e1000x_reset_hw(&m, "nic0", path, "initializing");
    } else {
        e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP);
        check_unchanged(&m, "nic0", path, "ready");
        e1000_write(&m, E1000_RCTL, 0);
        CHECK_STEP(&m, "nic0", path, "initializing");
        e1000_write(&m, E1000_TCTL, E1000_TCTL_PSP);
        e1000_write(&m, E1000_CTRL, E1000_CTRL_RST);
    }
    e1000_write(&m, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
    check_unchanged(&m, "nic0", path, "initializing");

    /* Remove: the driver gives the device back */
    e1000_write(&m, E1000_CTRL_EXT, 0);
    CHECK_STEP(&m, "nic0", path, "none");

    /* Up again, then a system reset */
    e1000_write(&m, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
    e1000_write(&m, E1000_RCTL, E1000_RCTL_BAM | E1000_RCTL_EN);
    CHECK_STEP(&m, "nic0", path, "initializing", "ready");
    system_reset(&m);
    CHECK_STEP(&m, "nic0", path, "none");

    machine_stop(&m);
}

static void vmxnet3_cmd(TestMachine *m, uint32_t cmd)
{
    qpci_io_writel(m->pdev, m->bar, VMXNET3_REG_CMD, cmd);
}

/* Hands the device the driver's shared memory at VMXNET3_SHARED */
static void vmxnet3_shared(TestMachine *m, bool valid)
{
    qtest_memset(m->qts, VMXNET3_SHARED, 0, 4096);
    if (valid) {
        qtest_writel(m->qts, VMXNET3_SHARED, VMXNET3_MAGIC);
        qtest_writel(m->qts, VMXNET3_SHARED + VMXNET3_SHARED_MTU, 1500);
    }
    qpci_io_writel(m->pdev, m->bar, VMXNET3_REG_DSAL, VMXNET3_SHARED);
    qpci_io_writel(m->pdev, m->bar, VMXNET3_REG_DSAH, 0);
}

/* The register and command writes of Linux's vmxnet3 driver */
static void test_vmxnet3(void)
{
    const char *path = "/machine/peripheral/nic0";
    TestMachine m = { };

    machine_start_pci(&m, "-device vmxnet3,id=nic0,addr=0x4", 4, 1);
    check_query(m.qts, "nic0", path, "none");

    /* vmxnet3_probe_device(): revision selection first, then queries */
    qpci_io_writel(m.pdev, m.bar, VMXNET3_REG_VRRS, 1);
    CHECK_STEP(&m, "nic0", path, "initializing");
    qpci_io_writel(m.pdev, m.bar, VMXNET3_REG_UVRS, 1);
    vmxnet3_cmd(&m, VMXNET3_CMD_GET_LINK);
    check_unchanged(&m, "nic0", path, "initializing");

    /* vmxnet3_activate_dev() with a configuration the device refuses */
    vmxnet3_shared(&m, false);
    vmxnet3_cmd(&m, VMXNET3_CMD_ACTIVATE_DEV);
    g_assert_cmpuint(qpci_io_readl(m.pdev, m.bar, VMXNET3_REG_CMD), ==, 1);
    CHECK_STEP(&m, "nic0", path, "failed");

    /* ... and with one it takes: the driver's open succeeds */
    vmxnet3_shared(&m, true);
    vmxnet3_cmd(&m, VMXNET3_CMD_ACTIVATE_DEV);
    g_assert_cmpuint(qpci_io_readl(m.pdev, m.bar, VMXNET3_REG_CMD), ==, 0);
    CHECK_STEP(&m, "nic0", path, "ready");
    vmxnet3_cmd(&m, VMXNET3_CMD_GET_LINK);
    check_unchanged(&m, "nic0", path, "ready");

    /* vmxnet3_reset_work(): quiesce, reset, activate again */
    vmxnet3_cmd(&m, VMXNET3_CMD_QUIESCE_DEV);
    vmxnet3_cmd(&m, VMXNET3_CMD_RESET_DEV);
    vmxnet3_shared(&m, true);
    vmxnet3_cmd(&m, VMXNET3_CMD_ACTIVATE_DEV);
    CHECK_STEP(&m, "nic0", path, "none", "initializing", "ready");

    /* vmxnet3_close(), on the way to its removal too */
    vmxnet3_cmd(&m, VMXNET3_CMD_QUIESCE_DEV);
    CHECK_STEP(&m, "nic0", path, "none");

    vmxnet3_shared(&m, true);
    vmxnet3_cmd(&m, VMXNET3_CMD_ACTIVATE_DEV);
    CHECK_STEP(&m, "nic0", path, "ready");
    system_reset(&m);
    CHECK_STEP(&m, "nic0", path, "none");

    machine_stop(&m);
}

/* virtio_dev_probe() up to DRIVER_OK, as libqos drives it */
static void virtio_bring_up(QVirtioPCIDevice *dev)
{
    uint64_t features;

    qvirtio_start_device(&dev->vdev);
    features = qvirtio_get_features(&dev->vdev) &
               (1ull << VIRTIO_F_VERSION_1);
    qvirtio_set_features(&dev->vdev, features);
    qvirtio_set_driver_ok(&dev->vdev);
}

/*
 * virtio-net's probe (Linux's virtnet_probe()): receive queue 0 set up
 * and empty, DRIVER_OK
 */
static void virtio_net_probe(TestMachine *m, QVirtioPCIDevice *dev)
{
    QVirtioDevice *vdev = &dev->vdev;

    if (m->rx) {
        qvirtqueue_cleanup(m->rx_bus, m->rx, &m->alloc);
    }
    qvirtio_start_device(vdev);
    qvirtio_set_features(vdev, qvirtio_get_features(vdev) &
                         (1ull << VIRTIO_F_VERSION_1));
    m->rx = qvirtqueue_setup(vdev, &m->alloc, 0);
    m->rx_bus = vdev->bus;
    qvirtio_set_driver_ok(vdev);
}

/* Its open (virtnet_open()): a receive buffer, and a kick */
static void virtio_net_open(TestMachine *m, QVirtioPCIDevice *dev)
{
    uint64_t buf = guest_alloc(&m->alloc, 2048);
    uint32_t head = qvirtqueue_add(m->qts, m->rx, buf, 2048, true, false);

    qvirtqueue_kick(m->qts, &dev->vdev, m->rx, head);
}

static void virtio_net_bring_up(TestMachine *m, QVirtioPCIDevice *dev)
{
    virtio_net_probe(m, dev);
    virtio_net_open(m, dev);
}

static void test_virtio_net(const void *data)
{
    const char *transport = data;
    g_autofree char *args = g_strdup_printf(VIO_ARGS ",%s", transport);
    QVirtioPCIDevice *dev;
    QPCIAddress addr = { .devfn = QPCI_DEVFN(5, 0) };
    TestMachine m = { };
    uint8_t status;

    machine_start(&m, args);
    m.pcibus = qpci_new_pc(m.qts, NULL);
    dev = virtio_pci_new(m.pcibus, &addr);
    g_assert_nonnull(dev);
    qvirtio_pci_device_enable(dev);
    check_query(m.qts, "vio0", VIO_PATH, "none");

    /*
     * Bound: ACKNOWLEDGE goes out at once, DRIVER, FEATURES_OK and
     * DRIVER_OK with no receive buffer change nothing
     */
    virtio_net_probe(&m, dev);
    CHECK_STEP(&m, "vio0", VIO_PATH, "initializing");

    /* Opened: the first receive buffers */
    virtio_net_open(&m, dev);
    CHECK_STEP(&m, "vio0", VIO_PATH, "ready");
    virtio_net_open(&m, dev);
    check_unchanged(&m, "vio0", VIO_PATH, "ready");

    /* Driver unloaded: virtio_reset_device() */
    qvirtio_reset(&dev->vdev);
    CHECK_STEP(&m, "vio0", VIO_PATH, "none");

    /* A driver that gives up */
    qvirtio_start_device(&dev->vdev);
    CHECK_STEP(&m, "vio0", VIO_PATH, "initializing");
    status = dev->vdev.bus->get_status(&dev->vdev);
    dev->vdev.bus->set_status(&dev->vdev, status | VIRTIO_CONFIG_S_FAILED);
    CHECK_STEP(&m, "vio0", VIO_PATH, "failed");
    qvirtio_reset(&dev->vdev);
    CHECK_STEP(&m, "vio0", VIO_PATH, "none");

    /* Up again; stopping and continuing the VM is not the guest's doing */
    virtio_net_bring_up(&m, dev);
    CHECK_STEP(&m, "vio0", VIO_PATH, "initializing", "ready");
    qtest_qmp_assert_success(m.qts, "{ 'execute': 'stop' }");
    qtest_qmp_assert_success(m.qts, "{ 'execute': 'cont' }");
    check_unchanged(&m, "vio0", VIO_PATH, "ready");

    system_reset(&m);
    CHECK_STEP(&m, "vio0", VIO_PATH, "none");

    qvirtio_pci_device_disable(dev);
    g_free(dev->pdev);
    g_free(dev);
    machine_stop(&m);
}

/*
 * NICs come and go while their drivers run: each is plugged, brought up
 * by its driver, then unplugged, many times over.  Under LeakSanitizer
 * this shows whether a device's reporting leaves anything behind.
 */
#define HOTPLUG_SLOT 6
#define HOTPLUG_ROUNDS 8

static void hotplug_bring_up(TestMachine *m, const char *model)
{
    if (!strcmp(model, "rtl8139")) {
        rtl8139_chipcmd(m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    } else if (!strcmp(model, "e1000")) {
        e1000_write(m, E1000_RCTL, E1000_RCTL_EN);
    } else {
        /*
         * Through the legacy virtio I/O BAR, as iPXE does it: receive
         * queue 0 (descriptors, then the available ring on the next
         * page) with a buffer in it, then the device status byte
         */
        uint64_t ring = 0x400000;

        qtest_memset(m->qts, ring, 0, 3 * 4096);
        qtest_writeq(m->qts, ring, ring + 0x8000);
        qtest_writel(m->qts, ring + 8, 2048);
        qtest_writew(m->qts, ring + 12, VRING_DESC_F_WRITE);
        qtest_writew(m->qts, ring + 0x1000 + 2, 1);
        qpci_io_writew(m->pdev, m->bar, VIRTIO_PCI_QUEUE_SEL, 0);
        qpci_io_writel(m->pdev, m->bar, VIRTIO_PCI_QUEUE_PFN, ring >> 12);
        qpci_io_writeb(m->pdev, m->bar, VIRTIO_PCI_STATUS,
                       VIRTIO_CONFIG_S_ACKNOWLEDGE |
                       VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
    }
}

static void test_hotplug_cycle(void)
{
    static const char *const models[] = {
        "rtl8139", "e1000", "virtio-net-pci",
    };
    TestMachine m = { };
    QList *list;
    int i;

    machine_start(&m, "");
    m.pcibus = qpci_new_pc(m.qts, NULL);
    for (i = 0; i < HOTPLUG_ROUNDS * ARRAY_SIZE(models); i++) {
        const char *model = models[i % ARRAY_SIZE(models)];
        g_autofree char *addr = g_strdup_printf("0x%x", HOTPLUG_SLOT);

        if (strcmp(model, "virtio-net-pci")) {
            qtest_qmp_device_add(m.qts, model, "nic", "{ 'addr': %s }",
                                 addr);
        } else {
            qtest_qmp_device_add(m.qts, model, "nic", "{ 'addr': %s, "
                                 "'disable-modern': true }", addr);
        }
        m.pdev = qpci_device_find(m.pcibus, QPCI_DEVFN(HOTPLUG_SLOT, 0));
        g_assert_nonnull(m.pdev);
        qpci_device_enable(m.pdev);
        m.bar = qpci_iomap(m.pdev, 0, NULL);
        hotplug_bring_up(&m, model);
        /* Every NIC has the one path: past the burst, they wait */
        if (i < BURST) {
            check_event(&m, "nic", "/machine/peripheral/nic", "ready");
        } else {
            check_no_event(&m);
        }
        check_query(m.qts, "nic", "/machine/peripheral/nic", "ready");

        qpci_iounmap(m.pdev, m.bar);
        g_free(m.pdev);
        m.pdev = NULL;
        qpci_unplug_acpi_device_test(m.qts, "nic", HOTPLUG_SLOT);
        list = query_driver_status(m.qts);
        g_assert_cmpint(qlist_size(list), ==, 0);
        qobject_unref(list);
    }
    /* The last of those held back comes out at the end of the second */
    qtest_clock_step(m.qts, SECOND_NS);
    check_event(&m, "nic", "/machine/peripheral/nic", "ready");
    check_no_event(&m);
    machine_stop(&m);
}

/* Devices that cannot tell are not listed; no id means no "device" */
static void test_non_reporting(void)
{
    TestMachine m = { };
    TestMachine m2 = { };
    QList *list;
    g_autofree char *out = NULL;
    g_autofree char *out2 = NULL;

    machine_start(&m, "-device pci-testdev,id=testdev");
    list = query_driver_status(m.qts);
    g_assert_cmpint(qlist_size(list), ==, 0);
    qobject_unref(list);
    out = qtest_hmp(m.qts, "info driver-status");
    g_assert_cmpstr(g_strchomp(out), ==,
                    "No device reports a guest driver status");
    machine_stop(&m);

    machine_start(&m2, "-device pci-testdev,id=testdev -device e1000");
    check_query(m2.qts, NULL, "/machine/peripheral-anon/device[0]", "none");
    out2 = qtest_hmp(m2.qts, "info driver-status");
    g_assert_cmpstr(g_strchomp(out2), ==,
                    "/machine/peripheral-anon/device[0]: none");
    machine_stop(&m2);
}

static void test_hmp(void)
{
    TestMachine m = { };
    g_autofree char *out = NULL;
    QDict *rsp;

    machine_start_pci(&m, RTL_ARGS, 3, 0);
    rtl8139_chipcmd(&m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    check_event(&m, "rtl0", RTL_PATH, "ready");
    out = qtest_hmp(m.qts, "info driver-status");
    g_assert_cmpstr(g_strchomp(out), ==, "rtl0 (" RTL_PATH "): ready");
    /* The guest's to set, not the user's */
    rsp = qtest_qmp(m.qts, "{ 'execute': 'qom-set', 'arguments': {"
                    " 'path': %s, 'property': 'driver-status',"
                    " 'value': 'none' } }", RTL_PATH);
    g_assert_true(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    check_query(m.qts, "rtl0", RTL_PATH, "ready");
    machine_stop(&m);
}

typedef struct MigrateCase {
    const char *name;
    /* Three NICs at slots 3, 4 and 5, the last one virtio-net or not */
    const char *args;
    const char *paths[3];
    bool virtio;
    /* Brings the NICs to their states: the one at slot 3 is mapped in @m */
    void (*setup)(TestMachine *m, QVirtioPCIDevice *vio);
    const char *expected[3];
} MigrateCase;

/* Maps BAR @bar of the device at @slot in @m instead of the one it had */
static void map_slot(TestMachine *m, int slot, int bar)
{
    qpci_iounmap(m->pdev, m->bar);
    g_free(m->pdev);
    m->pdev = qpci_device_find(m->pcibus, QPCI_DEVFN(slot, 0));
    qpci_device_enable(m->pdev);
    m->bar = qpci_iomap(m->pdev, bar, NULL);
}

static void e1000_map(TestMachine *m)
{
    map_slot(m, 4, 0);
}

/* The registers say it all */
static void migrate_setup_registers(TestMachine *m, QVirtioPCIDevice *vio)
{
    rtl8139_chipcmd(m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
    e1000_map(m);
    e1000_write(m, E1000_TCTL, E1000_TCTL_EN);
    virtio_net_bring_up(m, vio);
}

/*
 * Each driver has just reset its device: rtl8139's registers say none,
 * e1000's still say ready (QEMU's e1000 keeps RCTL on CTRL.RST)
 */
static void migrate_setup_reset(TestMachine *m, QVirtioPCIDevice *vio)
{
    rtl8139_chipcmd(m, RTL8139_CMD_RESET);
    e1000_map(m);
    e1000_write(m, E1000_RCTL, E1000_RCTL_EN);
    e1000_write(m, E1000_CTRL, E1000_CTRL_RST);
    qvirtio_reset(&vio->vdev);
    qvirtio_set_acknowledge(&vio->vdev);
}

#define MODELS_ARGS "-device e1000e,id=e1000e0,addr=0x3 " \
                    "-device igb,id=igb0,addr=0x4 " \
                    "-device vmxnet3,id=vmx0,addr=0x5"
#define MODELS_PATHS { "/machine/peripheral/e1000e0", \
                       "/machine/peripheral/igb0", \
                       "/machine/peripheral/vmx0" }

/*
 * e1000e's driver has just reset its device (its registers say none),
 * igb's is up (they say ready), vmxnet3's open failed (they say none)
 */
static void migrate_setup_models(TestMachine *m, QVirtioPCIDevice *vio)
{
    e1000_write(m, E1000_CTRL, E1000_CTRL_RST);
    map_slot(m, 4, 0);
    e1000_write(m, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
    e1000_write(m, E1000_RCTL, E1000_RCTL_EN);
    map_slot(m, 5, 1);
    vmxnet3_shared(m, false);
    vmxnet3_cmd(m, VMXNET3_CMD_ACTIVATE_DEV);
}

/* The other way round: the registers say it all */
static void migrate_setup_models_up(TestMachine *m, QVirtioPCIDevice *vio)
{
    e1000_write(m, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
    e1000_write(m, E1000_RCTL, E1000_RCTL_EN);
    map_slot(m, 4, 0);
    e1000_write(m, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
    map_slot(m, 5, 1);
    vmxnet3_shared(m, true);
    vmxnet3_cmd(m, VMXNET3_CMD_ACTIVATE_DEV);
}

static const MigrateCase migrate_cases[] = {
    { "registers", RTL_ARGS E1000_ARGS VIO_ARGS,
      { RTL_PATH, E1000_PATH, VIO_PATH }, true, migrate_setup_registers,
      { "ready", "initializing", "ready" } },
    { "driver-reset", RTL_ARGS E1000_ARGS VIO_ARGS,
      { RTL_PATH, E1000_PATH, VIO_PATH }, true, migrate_setup_reset,
      { "initializing", "initializing", "initializing" } },
    { "models", MODELS_ARGS, MODELS_PATHS, false, migrate_setup_models,
      { "initializing", "ready", "failed" } },
    { "models-up", MODELS_ARGS, MODELS_PATHS, false, migrate_setup_models_up,
      { "ready", "initializing", "ready" } },
};

/* The status arrives as it was, without an event */
static void test_migrate(const void *data)
{
    const MigrateCase *c = data;
    const char *const *paths = c->paths;
    g_autofree char *incoming = g_strdup_printf("-incoming defer %s",
                                                c->args);
    g_autofree char *tmpdir = g_dir_make_tmp("driver-status-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/migsock", tmpdir);
    g_autofree char *sock = g_strdup_printf("%s/migsock", tmpdir);
    QPCIAddress addr = { .devfn = QPCI_DEVFN(5, 0) };
    QVirtioPCIDevice *dev = NULL;
    TestMachine m = { };
    TestMachine to = { };
    QList *src, *dst;
    int i;

    g_assert_nonnull(tmpdir);
    machine_start_pci(&m, c->args, 3, 0);
    if (c->virtio) {
        dev = virtio_pci_new(m.pcibus, &addr);
        g_assert_nonnull(dev);
        qvirtio_pci_device_enable(dev);
    }
    c->setup(&m, dev);

    /* The events of the bring-up are checked by the other tests */
    src = query_driver_status(m.qts);
    while (!g_queue_is_empty(&m.events)) {
        QDict *ev = g_queue_pop_head(&m.events);

        qobject_unref(ev);
    }
    g_assert_cmpint(qlist_size(src), ==, 3);
    for (i = 0; i < ARRAY_SIZE(c->paths); i++) {
        g_assert_cmpstr(find_status(src, paths[i]), ==, c->expected[i]);
    }

    machine_start(&to, incoming);
    qtest_qmp_assert_success(to.qts, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s } }", uri);
    qtest_qmp_assert_success(m.qts, "{ 'execute': 'migrate',"
                             "  'arguments': { 'uri': %s } }", uri);
    wait_event(to.qts, "RESUME");

    dst = query_driver_status(to.qts);
    g_assert_cmpint(qlist_size(dst), ==, 3);
    for (i = 0; i < ARRAY_SIZE(c->paths); i++) {
        g_assert_cmpstr(find_status(dst, paths[i]), ==, c->expected[i]);
    }
    check_no_event(&to);

    qobject_unref(src);
    qobject_unref(dst);
    machine_stop(&to);
    if (dev) {
        qvirtio_pci_device_disable(dev);
        g_free(dev->pdev);
        g_free(dev);
    }
    machine_stop(&m);
    unlink(sock);
    rmdir(tmpdir);
}

static char *migration_status(QTestState *qts)
{
    QDict *rsp = qtest_qmp_assert_success_ref(qts,
                                              "{ 'execute': 'query-migrate' }");
    char *status = g_strdup(qdict_get_try_str(rsp, "status"));

    qobject_unref(rsp);
    return status;
}

static void wait_migration(QTestState *qts, const char *expected)
{
    for (;;) {
        g_autofree char *status = migration_status(qts);

        if (status && (g_str_equal(status, "completed") ||
                       g_str_equal(status, "failed"))) {
            g_assert_cmpstr(status, ==, expected);
            return;
        }
        g_usleep(10 * 1000);
    }
}

#define NIC_PATH "/machine/peripheral/nic0"

typedef struct FailedCase {
    /* The NIC, as nic0 at slot 4, the BAR to map, its section's name */
    const char *args;
    int bar;
    const char *section;
    /* The guest's driver resets the NIC, then opens it */
    void (*reset)(TestMachine *m, QVirtioPCIDevice *vio);
    void (*open)(TestMachine *m, QVirtioPCIDevice *vio);
    /* The events of the open on a NIC whose status is none */
    const char *open_events[3];
    /* Whether the reset's status travels in a subsection of its own */
    bool subsection;
} FailedCase;

static void failed_reset_rtl8139(TestMachine *m, QVirtioPCIDevice *vio)
{
    rtl8139_chipcmd(m, RTL8139_CMD_RESET);
}

static void failed_open_rtl8139(TestMachine *m, QVirtioPCIDevice *vio)
{
    rtl8139_chipcmd(m, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
}

/* Boot firmware's reset: no DRV_LOAD on e1000e and igb */
static void failed_reset_e1000(TestMachine *m, QVirtioPCIDevice *vio)
{
    e1000_write(m, E1000_CTRL, E1000_CTRL_RST);
}

static void failed_open_e1000(TestMachine *m, QVirtioPCIDevice *vio)
{
    e1000_write(m, E1000_RCTL, E1000_RCTL_EN);
}

static void failed_reset_vmxnet3(TestMachine *m, QVirtioPCIDevice *vio)
{
    qpci_io_writel(m->pdev, m->bar, VMXNET3_REG_VRRS, 1);
}

static void failed_open_vmxnet3(TestMachine *m, QVirtioPCIDevice *vio)
{
    vmxnet3_shared(m, true);
    vmxnet3_cmd(m, VMXNET3_CMD_ACTIVATE_DEV);
}

static void failed_reset_virtio(TestMachine *m, QVirtioPCIDevice *vio)
{
    qvirtio_reset(&vio->vdev);
    qvirtio_set_acknowledge(&vio->vdev);
}

static void failed_open_virtio(TestMachine *m, QVirtioPCIDevice *vio)
{
    virtio_net_bring_up(m, vio);
}

static const FailedCase failed_cases[] = {
    { "-device rtl8139,id=nic0,addr=0x4", 0, "rtl8139",
      failed_reset_rtl8139, failed_open_rtl8139, { "ready" }, true },
    { "-device e1000,id=nic0,addr=0x4", 0, "e1000",
      failed_reset_e1000, failed_open_e1000, { "ready" }, true },
    { "-device e1000e,id=nic0,addr=0x4", 0, "e1000e",
      failed_reset_e1000, failed_open_e1000, { "ready" }, true },
    { "-device igb,id=nic0,addr=0x4", 0, "igb",
      failed_reset_e1000, failed_open_e1000, { "ready" }, true },
    { "-device vmxnet3,id=nic0,addr=0x4", 1, "vmxnet3",
      failed_reset_vmxnet3, failed_open_vmxnet3, { "ready" }, true },
    { "-device virtio-net-pci,id=nic0,addr=0x4", -1, "virtio-net",
      failed_reset_virtio, failed_open_virtio, { "initializing", "ready" },
      false },
};

typedef struct FailedTest {
    const FailedCase *c;
    /*
     * Where the stream stops: a few bytes into the NIC's section, or
     * after its driver status subsection, at a subsection that does not
     * exist; either way before the NIC's post_load
     */
    bool after_status;
} FailedTest;

/* Starts @m with @c's NIC enabled; returns it if it is virtio-net */
static QVirtioPCIDevice *failed_start(TestMachine *m, const FailedCase *c,
                                      const char *extra)
{
    g_autofree char *args = g_strdup_printf("%s %s", c->args, extra);
    QPCIAddress addr = { .devfn = QPCI_DEVFN(4, 0) };
    QVirtioPCIDevice *vio;

    if (c->bar >= 0) {
        machine_start_pci(m, args, 4, c->bar);
        return NULL;
    }
    machine_start(m, args);
    m->pcibus = qpci_new_pc(m->qts, NULL);
    vio = virtio_pci_new(m->pcibus, &addr);
    g_assert_nonnull(vio);
    qvirtio_pci_device_enable(vio);
    return vio;
}

static void failed_stop(TestMachine *m, QVirtioPCIDevice *vio)
{
    if (vio) {
        qvirtio_pci_device_disable(vio);
        g_free(vio->pdev);
        g_free(vio);
    }
    machine_stop(m);
}

/*
 * The stream @whole, cut where @t says, to @cut: the NIC's section
 * header has the length of its name, the name and instance 0 (a RAM
 * block's name, such as the NIC's ROM's, has more after it); its status
 * subsection has the length of its name, the name, the version, then
 * the status byte and whether the driver waits for a link.
 */
static void failed_cut_stream(const FailedTest *t, const char *whole,
                              const char *cut)
{
    g_autofree char *stream = NULL;
    g_autofree char *needle = NULL;
    g_autofree char *subsection = NULL;
    g_autofree char *gone = NULL;
    const char *section = t->c->section;
    g_autofree char *idstr = g_strdup_printf("0000:00:04.0/%s", section);
    const char *at;
    GString *out;
    gsize len;

    g_assert_true(g_file_get_contents(whole, &stream, &len, NULL));
    needle = g_malloc0(strlen(idstr) + 5);
    needle[0] = strlen(idstr);
    memcpy(needle + 1, idstr, strlen(idstr));
    at = memmem(stream, len, needle, strlen(idstr) + 5);
    g_assert_nonnull(at);
    if (!t->after_status) {
        g_assert_true(g_file_set_contents(cut, stream,
                                          at - stream + strlen(idstr) + 16,
                                          NULL));
        return;
    }
    subsection = g_strdup_printf("%s/driver_status", section);
    at = memmem(at, len - (at - stream), subsection, strlen(subsection));
    g_assert_nonnull(at);
    out = g_string_new_len(stream, at - stream + strlen(subsection) + 6);
    gone = g_strdup_printf("%s/gone", section);
    g_string_append_c(out, 0x05); /* QEMU_VM_SUBSECTION */
    g_string_append_c(out, strlen(gone));
    g_string_append(out, gone);
    g_assert_true(g_file_set_contents(cut, out->str, out->len, NULL));
    g_string_free(out, true);
}

/*
 * An incoming migration that fails in a NIC's state, after its pre_load
 * and before its post_load, leaves the NIC's status as it was, even
 * where the stream carried a status: the query and the HMP command
 * answer, QEMU keeps running, and the guest's driver changes the status
 * as on any NIC, with its events.
 */
static void test_migrate_failed(const void *data)
{
    const FailedTest *t = data;
    const FailedCase *c = t->c;
    g_autofree char *tmpdir = g_dir_make_tmp("driver-status-XXXXXX", NULL);
    g_autofree char *whole = g_strdup_printf("%s/whole", tmpdir);
    g_autofree char *cut = g_strdup_printf("%s/cut", tmpdir);
    g_autofree char *uri = g_strdup_printf("file:%s", whole);
    g_autofree char *cut_uri = g_strdup_printf("file:%s", cut);
    g_autofree char *hmp = NULL;
    QVirtioPCIDevice *vio, *to_vio;
    TestMachine m = { };
    TestMachine to = { };

    g_assert_nonnull(tmpdir);
    vio = failed_start(&m, c, "");
    c->reset(&m, vio);
    CHECK_STEP(&m, "nic0", NIC_PATH, "initializing");
    qtest_qmp_assert_success(m.qts, "{ 'execute': 'migrate',"
                             "  'arguments': { 'uri': %s } }", uri);
    wait_migration(m.qts, "completed");
    failed_cut_stream(t, whole, cut);

    to_vio = failed_start(&to, c, "-incoming defer");
    qtest_qmp_assert_success(to.qts, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "                 'exit-on-error': false } }",
                             cut_uri);
    wait_migration(to.qts, "failed");
    if (t->after_status) {
        /* Where the stream said, after the status */
        QDict *rsp = qtest_qmp_assert_success_ref(
            to.qts, "{ 'execute': 'query-migrate' }");
        g_autofree char *gone = g_strdup_printf("'%s/gone'", c->section);

        g_assert_nonnull(strstr(qdict_get_str(rsp, "error-desc"), gone));
        qobject_unref(rsp);
    }

    check_query(to.qts, "nic0", NIC_PATH, "none");
    hmp = qtest_hmp(to.qts, "info driver-status");
    g_assert_cmpstr(g_strchomp(hmp), ==, "nic0 (" NIC_PATH "): none");
    check_no_event(&to);

    c->open(&to, to_vio);
    check_step(&to, "nic0", NIC_PATH, c->open_events);
    g_free(hmp);
    hmp = qtest_hmp(to.qts, "info driver-status");
    g_assert_cmpstr(g_strchomp(hmp), ==, "nic0 (" NIC_PATH "): ready");

    failed_stop(&to, to_vio);
    failed_stop(&m, vio);
    unlink(whole);
    unlink(cut);
    rmdir(tmpdir);
}

/*
 * A virtio device type reports only if it opts in, as virtio-net does:
 * virtio-rng, brought up and reset, is not heard of.
 */
static void test_virtio_rng(void)
{
    QPCIAddress addr = { .devfn = QPCI_DEVFN(6, 0) };
    QVirtioPCIDevice *dev;
    TestMachine m = { };
    QList *list;
    QDict *rsp;

    machine_start(&m, "-device virtio-rng-pci,id=rng0,addr=0x6");
    m.pcibus = qpci_new_pc(m.qts, NULL);
    dev = virtio_pci_new(m.pcibus, &addr);
    g_assert_nonnull(dev);
    qvirtio_pci_device_enable(dev);

    virtio_bring_up(dev);
    check_no_event(&m);
    list = query_driver_status(m.qts);
    g_assert_cmpint(qlist_size(list), ==, 0);
    qobject_unref(list);
    rsp = qtest_qmp(m.qts, "{ 'execute': 'qom-get', 'arguments': {"
                    " 'path': '/machine/peripheral/rng0',"
                    " 'property': 'driver-status' } }");
    g_assert_true(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    qvirtio_reset(&dev->vdev);
    check_no_event(&m);

    qvirtio_pci_device_disable(dev);
    g_free(dev->pdev);
    g_free(dev);
    machine_stop(&m);
}

static bool type_listed(QList *types, const char *name)
{
    const QListEntry *e;

    QLIST_FOREACH_ENTRY(types, e) {
        QDict *d = qobject_to(QDict, qlist_entry_obj(e));

        if (!strcmp(qdict_get_str(d, "name"), name)) {
            return true;
        }
    }
    return false;
}

/* Management finds the device types that report through the interface */
static void test_reporting_types(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *rsp;
    QList *types;

    rsp = qtest_qmp(qts, "{ 'execute': 'qom-list-types', 'arguments': {"
                    " 'implements': 'driver-status-reporter' } }");
    types = qdict_get_qlist(rsp, "return");
    g_assert_true(type_listed(types, "rtl8139"));
    g_assert_true(type_listed(types, "e1000"));
    g_assert_true(type_listed(types, "e1000-82545em"));
    g_assert_true(type_listed(types, "e1000e"));
    g_assert_true(type_listed(types, "igb"));
    g_assert_true(type_listed(types, "vmxnet3"));
    /* What users create: the transports, and the device for virtio-mmio */
    g_assert_true(type_listed(types, "virtio-net-pci"));
    g_assert_true(type_listed(types, "virtio-net-pci-transitional"));
    g_assert_true(type_listed(types, "virtio-net-pci-non-transitional"));
    g_assert_true(type_listed(types, "virtio-net-device"));
    g_assert_false(type_listed(types, "ne2k_pci"));
    /* Virtio device types opt in */
    g_assert_false(type_listed(types, "virtio-rng-pci"));
    g_assert_false(type_listed(types, "virtio-rng-device"));
    qobject_unref(rsp);
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    int i;

    g_test_init(&argc, &argv, NULL);

    qtest_add_func("driver-status/rtl8139/8139too", test_rtl8139_8139too);
    qtest_add_func("driver-status/rtl8139/8139cp", test_rtl8139_8139cp);
    qtest_add_func("driver-status/rtl8139/resets", test_rtl8139_resets);
    qtest_add_func("driver-status/e1000", test_e1000);
    for (i = 0; i < ARRAY_SIZE(e1000x_cases); i++) {
        g_autofree char *path = g_strdup_printf("driver-status/%s",
                                                e1000x_cases[i].model);

        qtest_add_data_func(path, &e1000x_cases[i], test_e1000x);
    }
    qtest_add_func("driver-status/vmxnet3", test_vmxnet3);
    qtest_add_data_func("driver-status/virtio-net/legacy",
                        "disable-modern=on", test_virtio_net);
    qtest_add_data_func("driver-status/virtio-net/modern",
                        "disable-legacy=on", test_virtio_net);
    qtest_add_func("driver-status/throttle", test_throttle);
    qtest_add_func("driver-status/non-reporting", test_non_reporting);
    qtest_add_func("driver-status/hotplug-cycle", test_hotplug_cycle);
    qtest_add_func("driver-status/hmp", test_hmp);
    for (i = 0; i < ARRAY_SIZE(migrate_cases); i++) {
        g_autofree char *path = g_strdup_printf("driver-status/migrate/%s",
                                                migrate_cases[i].name);

        qtest_add_data_func(path, &migrate_cases[i], test_migrate);
    }
    for (i = 0; i < ARRAY_SIZE(failed_cases) * 2; i++) {
        FailedTest *t = g_new0(FailedTest, 1);
        g_autofree char *path = NULL;

        t->c = &failed_cases[i / 2];
        t->after_status = i % 2;
        if (t->after_status && !t->c->subsection) {
            g_free(t);
            continue;
        }
        path = g_strdup_printf("driver-status/migrate/failed-incoming/%s/%s",
                               t->c->section,
                               t->after_status ? "after-status" : "start");
        qtest_add_data_func_full(path, t, test_migrate_failed, g_free);
    }
    if (qtest_has_device("virtio-rng-pci")) {
        qtest_add_func("driver-status/virtio-rng", test_virtio_rng);
    }
    qtest_add_func("driver-status/reporting-types", test_reporting_types);

    return g_test_run();
}
