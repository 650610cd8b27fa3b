/*
 * qtest for failover-pair: which NIC links the guest sees come up, when
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The "guest" is the test: it brings the NICs up with the register writes
 * the Linux drivers use, steps the virtual clock through the fallback
 * delay, and reads the link state back from the NICs' own registers, as
 * the drivers would, next to what query-failover-pairs says.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci_regs.h"
#include "qemu/sockets.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"

#define DELAY_MS 500
#define DELAY_NS ((int64_t)DELAY_MS * 1000 * 1000)
#define SECOND_NS (1000 * 1000 * 1000LL)
/*
 * A fallback driver back within this time of leaving is the same one
 * trying again: it gets the link without a new delay
 */
#define REGAIN_NS (2 * SECOND_NS)
#define PRIMARY_SLOT 3
#define FALLBACK_SLOT 4
/* The rate limit of the events: a burst, then one a second */
#define BURST 8

/* Legacy virtio-pci I/O BAR (disable-modern=on), MSI-X off */
#define VIRTIO_PCI_QUEUE_PFN 8
#define VIRTIO_PCI_QUEUE_SEL 14
#define VIRTIO_PCI_QUEUE_NOTIFY 16
#define VIRTIO_PCI_STATUS 18
#define VIRTIO_PCI_ISR 19
#define VIRTIO_NET_CONFIG_STATUS (20 + 6)
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_STATUS_READY 0x0f /* ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK */
/*
 * virtio-net's receive queue 0, as a legacy driver lays it out: 256
 * descriptors, the available ring after them, the used ring on the
 * next page; at a place of its own for each slot.  Its first
 * descriptor is a buffer for the device to write.
 */
#define VIRTIO_RX_RING(slot) (0x300000 + (slot) * 0x10000)
#define VIRTIO_RX_AVAIL 0x1000
#define VIRTIO_RX_BUFFER 0x8000
#define VRING_DESC_F_WRITE 2

/* rtl8139 */
#define RTL_TX_STATUS0 0x10
#define RTL_TX_ADDR0 0x20
#define RTL_CHIPCMD 0x37
#define RTL_CHIPCMD_RX_TX 0x0c
#define RTL_CHIPCMD_RESET 0x10
#define RTL_INTR_MASK 0x3c
#define RTL_INTR_STATUS 0x3e
#define RTL_INTR_ALL 0xe1ff
#define RTL_BASIC_MODE_STATUS 0x64
#define RTL_BMS_LINK_UP 0x04

/* e1000 */
#define E1000_CTRL 0x0
#define E1000_CTRL_RST (1u << 26)
#define E1000_STATUS 0x8
#define E1000_STATUS_LU (1u << 1)
#define E1000_ICR 0xc0
#define E1000_IMS 0xd0
#define E1000_RCTL 0x100
#define E1000_TCTL 0x400
#define E1000_EN (1u << 1)
#define E1000_AUTONEG_NS (500 * 1000 * 1000LL)

/* Guest memory the test uses for frames to send */
#define TX_BUFFER 0x100000

/*
 * The other models that report driver status, in either role, with the
 * guest's view of each: a NIC, its driver, and how the guest reads its
 * link.  Registers as Linux's drivers use them (see driver-status-test).
 */
#define E1000_CTRL_EXT 0x18
#define E1000_CTRL_EXT_DRV_LOAD (1u << 28)
#define E1000_MDIC 0x20
#define E1000_MDIC_READ_PHY1 ((2u << 26) | (1u << 21))
#define E1000_MDIC_READY (1u << 28)
/* The PHY's specific status register and its real-time link bit */
#define PHY_SPEC_STATUS 0x11
#define PHY_SPEC_STATUS_LINK 0x0400
#define VMXNET3_REG_VRRS 0x00
#define VMXNET3_REG_DSAL 0x10
#define VMXNET3_REG_DSAH 0x18
#define VMXNET3_REG_CMD 0x20
#define VMXNET3_REG_ECR 0x40
#define VMXNET3_CMD_ACTIVATE_DEV 0xcafe0000
#define VMXNET3_CMD_QUIESCE_DEV 0xcafe0001
#define VMXNET3_CMD_RESET_DEV 0xcafe0002
#define VMXNET3_CMD_GET_LINK 0xf00d0002
#define VMXNET3_SHARED 0x200000
#define VMXNET3_MAGIC 0xbabefee1
#define VMXNET3_SHARED_MTU 56

typedef struct ModelNic {
    const char *model;
    QPCIDevice *dev;
    QPCIBar bar;
} ModelNic;

static bool model_is(ModelNic *n, const char *model)
{
    return !strcmp(n->model, model);
}

/* vmxnet3's registers are in BAR 1, the others' in BAR 0 */
static int model_bar(const char *model)
{
    return !strcmp(model, "vmxnet3");
}

static void model_nic_map(QPCIBus *bus, ModelNic *n, int slot)
{
    n->dev = qpci_device_find(bus, QPCI_DEVFN(slot, 0));
    g_assert_nonnull(n->dev);
    qpci_device_enable(n->dev);
    n->bar = qpci_iomap(n->dev, model_bar(n->model), NULL);
}

/* Let go of the NICs model_nic_map() took, then of the machine */
static void model_stop(QTestState *qts, QPCIBus *bus, ModelNic *primary,
                       ModelNic *fallback)
{
    qpci_iounmap(primary->dev, primary->bar);
    qpci_iounmap(fallback->dev, fallback->bar);
    g_free(primary->dev);
    g_free(fallback->dev);
    qpci_free_pc(bus);
    qtest_quit(qts);
}

/*
 * A virtio-net driver's probe: receive queue 0 set up, empty, and
 * DRIVER_OK.  Linux's virtnet_probe() goes as far as this.
 */
static void virtio_bind(QTestState *qts, QPCIDevice *dev, QPCIBar bar)
{
    uint64_t ring = VIRTIO_RX_RING(dev->devfn >> 3);

    qtest_memset(qts, ring, 0, 3 * 4096);
    qpci_io_writew(dev, bar, VIRTIO_PCI_QUEUE_SEL, 0);
    qpci_io_writel(dev, bar, VIRTIO_PCI_QUEUE_PFN, ring >> 12);
    qpci_io_writeb(dev, bar, VIRTIO_PCI_STATUS, VIRTIO_STATUS_READY);
}

/* Its open (virtnet_open()): a receive buffer, and a kick */
static void virtio_open(QTestState *qts, QPCIDevice *dev, QPCIBar bar)
{
    uint64_t ring = VIRTIO_RX_RING(dev->devfn >> 3);
    uint16_t idx = qtest_readw(qts, ring + VIRTIO_RX_AVAIL + 2);

    qtest_writeq(qts, ring, ring + VIRTIO_RX_BUFFER);
    qtest_writel(qts, ring + 8, 2048);
    qtest_writew(qts, ring + 12, VRING_DESC_F_WRITE);
    qtest_writew(qts, ring + VIRTIO_RX_AVAIL + 4 + 2 * (idx % 256), 0);
    qtest_writew(qts, ring + VIRTIO_RX_AVAIL + 2, idx + 1);
    qpci_io_writew(dev, bar, VIRTIO_PCI_QUEUE_NOTIFY, 0);
}

/*
 * The driver up in one step, as a driver that gives the device its
 * receive buffers before DRIVER_OK (iPXE's); down: it resets the device
 */
static void virtio_driver(QTestState *qts, QPCIDevice *dev, QPCIBar bar,
                          bool up)
{
    uint64_t ring = VIRTIO_RX_RING(dev->devfn >> 3);

    if (!up) {
        qpci_io_writeb(dev, bar, VIRTIO_PCI_STATUS, 0);
        return;
    }
    if (qpci_io_readb(dev, bar, VIRTIO_PCI_STATUS) == VIRTIO_STATUS_READY) {
        virtio_open(qts, dev, bar);
        return;
    }
    qtest_memset(qts, ring, 0, 3 * 4096);
    qtest_writeq(qts, ring, ring + VIRTIO_RX_BUFFER);
    qtest_writel(qts, ring + 8, 2048);
    qtest_writew(qts, ring + 12, VRING_DESC_F_WRITE);
    qtest_writew(qts, ring + VIRTIO_RX_AVAIL + 2, 1);
    qpci_io_writew(dev, bar, VIRTIO_PCI_QUEUE_SEL, 0);
    qpci_io_writel(dev, bar, VIRTIO_PCI_QUEUE_PFN, ring >> 12);
    qpci_io_writeb(dev, bar, VIRTIO_PCI_STATUS, VIRTIO_STATUS_READY);
}

static void model_driver(QTestState *qts, ModelNic *n, bool up)
{
    if (g_str_has_prefix(n->model, "virtio-net")) {
        virtio_driver(qts, n->dev, n->bar, up);
    } else if (model_is(n, "rtl8139")) {
        /* 8139too unmasks its interrupts, link change included */
        qpci_io_writew(n->dev, n->bar, RTL_INTR_MASK, up ? RTL_INTR_ALL : 0);
        qpci_io_writeb(n->dev, n->bar, RTL_CHIPCMD, up ? RTL_CHIPCMD_RX_TX : 0);
    } else if (model_is(n, "vmxnet3")) {
        if (up) {
            qpci_io_writel(n->dev, n->bar, VMXNET3_REG_VRRS, 1);
            qtest_memset(qts, VMXNET3_SHARED, 0, 4096);
            qtest_writel(qts, VMXNET3_SHARED, VMXNET3_MAGIC);
            qtest_writel(qts, VMXNET3_SHARED + VMXNET3_SHARED_MTU, 1500);
            qpci_io_writel(n->dev, n->bar, VMXNET3_REG_DSAL, VMXNET3_SHARED);
            qpci_io_writel(n->dev, n->bar, VMXNET3_REG_DSAH, 0);
        }
        qpci_io_writel(n->dev, n->bar, VMXNET3_REG_CMD,
                       up ? VMXNET3_CMD_ACTIVATE_DEV : VMXNET3_CMD_QUIESCE_DEV);
    } else {
        /* e1000e and igb: reset, take the device, enable the receiver */
        if (up) {
            qpci_io_writel(n->dev, n->bar, E1000_CTRL, E1000_CTRL_RST);
            qpci_io_writel(n->dev, n->bar, E1000_IMS, ~0u);
        }
        qpci_io_writel(n->dev, n->bar, E1000_CTRL_EXT,
                       up ? E1000_CTRL_EXT_DRV_LOAD : 0);
        qpci_io_writel(n->dev, n->bar, E1000_RCTL, up ? E1000_EN : 0);
    }
}

/* The link as the guest's driver reads it, every place it may look */
static bool model_link(ModelNic *n)
{
    uint32_t mdic;
    bool lu, phy;

    if (g_str_has_prefix(n->model, "virtio-net")) {
        return qpci_io_readw(n->dev, n->bar, VIRTIO_NET_CONFIG_STATUS) &
               VIRTIO_NET_S_LINK_UP;
    }
    if (model_is(n, "rtl8139")) {
        return qpci_io_readw(n->dev, n->bar, RTL_BASIC_MODE_STATUS) &
               RTL_BMS_LINK_UP;
    }
    if (model_is(n, "vmxnet3")) {
        qpci_io_writel(n->dev, n->bar, VMXNET3_REG_CMD, VMXNET3_CMD_GET_LINK);
        return qpci_io_readl(n->dev, n->bar, VMXNET3_REG_CMD) & 1;
    }
    lu = qpci_io_readl(n->dev, n->bar, E1000_STATUS) & E1000_STATUS_LU;
    qpci_io_writel(n->dev, n->bar, E1000_MDIC,
                   E1000_MDIC_READ_PHY1 | (PHY_SPEC_STATUS << 16));
    mdic = qpci_io_readl(n->dev, n->bar, E1000_MDIC);
    g_assert_true(mdic & E1000_MDIC_READY);
    phy = mdic & PHY_SPEC_STATUS_LINK;
    /* MAC and PHY must agree, or a guest may see a link that is down */
    g_assert_cmpint(lu, ==, phy);
    return lu;
}

/* The e1000 family's link comes after auto-negotiation */
static bool model_link_settled(QTestState *qts, ModelNic *n)
{
    if (!model_link(n)) {
        qtest_clock_step(qts, E1000_AUTONEG_NS);
    }
    return model_link(n);
}

typedef struct Guest {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *primary;
    QPCIDevice *fallback;
    QPCIBar primary_bar;
    QPCIBar fallback_bar;
    /* The fallback's model: rtl8139, e1000, e1000e, igb or vmxnet3 */
    const char *fallback_model;
    /* The rtl8139 Tx descriptor to send with next: they take turns */
    int tx_desc;
} Guest;

/* What a machine is started with */
typedef struct Config {
    /* The machine type; default pc */
    const char *machine;
    /* The fallback's model; default rtl8139 */
    const char *fallback;
    /* Without the NIC: a destination after that NIC was unplugged */
    bool no_primary;
    bool no_fallback;
    /* Without the failover-pair */
    bool no_pair;
    /* A destination that stays paused after migration (-S) */
    bool paused;
    /* The NICs' -netdev; default: user networking */
    const char *primary_netdev;
    const char *fallback_netdev;
    /* More properties of the failover-pair, after a comma */
    const char *pair_props;
    /* The NICs' and the pair's -device options, instead of the usual */
    const char *devices;
    const char *extra;
} Config;

static char *cmdline(const Config *c)
{
    GString *s = g_string_new(NULL);

    g_string_append_printf(s, "-machine %s -nodefaults ",
                           c->machine ?: "pc");

    g_string_append_printf(s, "-netdev %s -netdev %s ",
                           c->primary_netdev ?: "user,id=hs0",
                           c->fallback_netdev ?: "user,id=hs1");
    if (c->devices) {
        g_string_append_printf(s, "%s ", c->devices);
    } else if (!c->no_primary) {
        g_string_append_printf(s, "-device virtio-net-pci,id=nic0,"
                               "netdev=hs0,disable-modern=on,addr=%d ",
                               PRIMARY_SLOT);
    }
    if (!c->devices && !c->no_fallback) {
        g_string_append_printf(s, "-device %s,id=nic1,netdev=hs1,addr=%d ",
                               c->fallback ?: "rtl8139", FALLBACK_SLOT);
    }
    if (!c->devices && !c->no_pair) {
        g_string_append_printf(s, "-device failover-pair,id=pair0,"
                               "primary=nic0,fallback=nic1,"
                               "fallback-delay-ms=%d%s%s ", DELAY_MS,
                               c->pair_props ? "," : "",
                               c->pair_props ?: "");
    }
    if (c->paused) {
        g_string_append(s, "-S ");
    }
    g_string_append(s, c->extra ?: "");
    return g_string_free(s, false);
}

static QPCIDevice *guest_find(Guest *g, int slot)
{
    QPCIDevice *dev = qpci_device_find(g->bus, QPCI_DEVFN(slot, 0));

    if (dev) {
        /* What firmware would do: enable the NIC and map its BAR 0 */
        qpci_device_enable(dev);
    }
    return dev;
}

static void guest_map(Guest *g)
{
    if (g->primary) {
        qpci_device_enable(g->primary);
        g->primary_bar = qpci_iomap(g->primary, 0, NULL);
    }
    if (g->fallback) {
        qpci_device_enable(g->fallback);
        g->fallback_bar = qpci_iomap(g->fallback,
                                     model_bar(g->fallback_model), NULL);
    }
}

static void guest_start_config(Guest *g, const Config *c)
{
    g_autofree char *args = cmdline(c);

    memset(g, 0, sizeof(*g));
    g->fallback_model = c->fallback ?: "rtl8139";
    g->qts = qtest_init(args);
    g->bus = qpci_new_pc(g->qts, NULL);
    g->primary = c->no_primary ? NULL : guest_find(g, PRIMARY_SLOT);
    g->fallback = c->no_fallback ? NULL : guest_find(g, FALLBACK_SLOT);
    g_assert(c->no_primary || g->primary);
    g_assert(c->no_fallback || g->fallback);
    guest_map(g);
}

static void guest_start(Guest *g, const char *fallback, const char *extra)
{
    Config c = { .fallback = fallback, .extra = extra };

    guest_start_config(g, &c);
}

/*
 * Start @g as @c says, with the primary, the fallback or both on a
 * socket backend: the test's end of each in *@primary_fd, *@fallback_fd
 * (NULL: the usual backend)
 */
static void guest_start_sockets(Guest *g, Config *c, int *primary_fd,
                                int *fallback_fd)
{
    int *fds[2] = { primary_fd, fallback_fd };
    char *netdevs[2] = { NULL, NULL };
    int sv[2][2];
    int i;

    for (i = 0; i < 2; i++) {
        if (fds[i]) {
            g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), ==,
                            0);
            netdevs[i] = g_strdup_printf("socket,id=hs%d,fd=%d", i,
                                         sv[i][1]);
        }
    }
    c->primary_netdev = netdevs[0];
    c->fallback_netdev = netdevs[1];
    guest_start_config(g, c);
    c->primary_netdev = c->fallback_netdev = NULL;
    for (i = 0; i < 2; i++) {
        if (fds[i]) {
            close(sv[i][1]);
            *fds[i] = sv[i][0];
        }
        g_free(netdevs[i]);
    }
}

static void guest_stop(Guest *g)
{
    g_free(g->primary);
    g_free(g->fallback);
    qpci_free_pc(g->bus);
    qtest_quit(g->qts);
}

/* Once its NIC is unplugged, a driver has nothing left to write to */
static void primary_driver(Guest *g, bool up)
{
    if (!g->primary) {
        return;
    }
    virtio_driver(g->qts, g->primary, g->primary_bar, up);
}

/* The fallback as a ModelNic, for the helpers all models share */
static ModelNic fallback_nic(Guest *g)
{
    return (ModelNic){ g->fallback_model, g->fallback, g->fallback_bar };
}

static bool fallback_is(Guest *g, const char *model)
{
    return !strcmp(g->fallback_model, model);
}

static void fallback_driver(Guest *g, bool up)
{
    ModelNic n = fallback_nic(g);

    if (!g->fallback) {
        return;
    }
    if (!fallback_is(g, "e1000")) {
        model_driver(g->qts, &n, up);
        return;
    }
    if (up) {
        qpci_io_writel(g->fallback, g->fallback_bar, E1000_CTRL,
                       E1000_CTRL_RST);
        qpci_io_writel(g->fallback, g->fallback_bar, E1000_IMS, ~0u);
    }
    qpci_io_writel(g->fallback, g->fallback_bar, E1000_RCTL,
                   up ? E1000_EN : 0);
    qpci_io_writel(g->fallback, g->fallback_bar, E1000_TCTL,
                   up ? E1000_EN : 0);
}

static void fallback_reset(Guest *g)
{
    if (!g->fallback) {
        return;
    }
    if (fallback_is(g, "rtl8139")) {
        qpci_io_writeb(g->fallback, g->fallback_bar, RTL_CHIPCMD,
                       RTL_CHIPCMD_RESET);
    } else if (fallback_is(g, "vmxnet3")) {
        qpci_io_writel(g->fallback, g->fallback_bar, VMXNET3_REG_CMD,
                       VMXNET3_CMD_RESET_DEV);
    } else {
        qpci_io_writel(g->fallback, g->fallback_bar, E1000_CTRL,
                       E1000_CTRL_RST);
    }
}

static bool primary_link(Guest *g)
{
    return qpci_io_readw(g->primary, g->primary_bar,
                         VIRTIO_NET_CONFIG_STATUS) & VIRTIO_NET_S_LINK_UP;
}

static bool fallback_link(Guest *g)
{
    ModelNic n = fallback_nic(g);

    if (fallback_is(g, "e1000")) {
        return qpci_io_readl(g->fallback, g->fallback_bar, E1000_STATUS) &
               E1000_STATUS_LU;
    }
    return model_link(&n);
}

/* The guest sees the e1000 family's link once auto-negotiation is through */
static bool fallback_link_settled(Guest *g)
{
    if (!fallback_is(g, "rtl8139") && !fallback_is(g, "vmxnet3") &&
        !fallback_link(g)) {
        qtest_clock_step(g->qts, E1000_AUTONEG_NS);
    }
    return fallback_link(g);
}

/* query-failover-pairs: the one pair, or NULL if there is none */
static QDict *query_pair(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-failover-pairs' }");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *pair = NULL;

    g_assert_cmpint(qlist_size(list), <=, 1);
    if (qlist_size(list)) {
        pair = qobject_to(QDict, qlist_peek(list));
        qobject_ref(pair);
    }
    qobject_unref(rsp);
    return pair;
}

static char *pair_active(QTestState *qts)
{
    QDict *pair = query_pair(qts);
    char *active = g_strdup(qdict_get_str(pair, "active"));

    qobject_unref(pair);
    return active;
}

static void assert_active(QTestState *qts, const char *want)
{
    g_autofree char *active = pair_active(qts);

    g_assert_cmpstr(active, ==, want);
}

static void set_link(Guest *g, const char *name, bool up)
{
    qtest_qmp_assert_success(g->qts, "{ 'execute': 'set_link', "
                             "'arguments': { 'name': %s, 'up': %i } }",
                             name, up);
}

static void system_reset(Guest *g)
{
    qtest_qmp_assert_success(g->qts, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(g->qts, "RESET");
    guest_map(g);
}

static void unplug(Guest *g, bool primary)
{
    qpci_unplug_acpi_device_test(g->qts, primary ? "nic0" : "nic1",
                                 primary ? PRIMARY_SLOT : FALLBACK_SLOT);
    if (primary) {
        g_free(g->primary);
        g->primary = NULL;
    } else {
        g_free(g->fallback);
        g->fallback = NULL;
    }
}

/* A NIC with the same id and backend takes the unplugged one's place */
static void replug(Guest *g, bool primary)
{
    if (primary) {
        g_assert_null(g->primary);
        qtest_qmp_device_add(g->qts, "virtio-net-pci", "nic0",
                             "{ 'netdev': 'hs0', 'disable-modern': true,"
                             "  'addr': %s }", stringify(PRIMARY_SLOT));
        g->primary = guest_find(g, PRIMARY_SLOT);
        g->primary_bar = qpci_iomap(g->primary, 0, NULL);
    } else {
        g_assert_null(g->fallback);
        qtest_qmp_device_add(g->qts, g->fallback_model, "nic1",
                             "{ 'netdev': 'hs1', 'addr': %s }",
                             stringify(FALLBACK_SLOT));
        g->fallback = guest_find(g, FALLBACK_SLOT);
        g->fallback_bar = qpci_iomap(g->fallback,
                                     model_bar(g->fallback_model), NULL);
    }
}

typedef enum Op {
    END,
    PRIMARY_UP,     /* virtio: status ACKNOWLEDGE|DRIVER|...|DRIVER_OK */
    PRIMARY_DOWN,   /* virtio: status 0, the driver resets the device */
    FALLBACK_UP,    /* rtl8139 ChipCmd RxEnb|TxEnb, e1000 RCTL/TCTL.EN */
    FALLBACK_DOWN,  /* ... cleared */
    FALLBACK_RESET, /* rtl8139 ChipCmd Reset, e1000 CTRL.RST */
    STEP_NS,        /* @ns of virtual time */
    SET_LINK,       /* set_link @nic @up */
    RESET,          /* system_reset */
    UNPLUG,         /* device_del + guest eject of @nic */
    REPLUG,         /* device_add of @nic again */
    NETDEV_DEL,     /* netdev_del of @nic's backend */
    EXPECT,         /* @active, @formed, and the links the guest sees */
} Op;

typedef struct Step {
    Op op;
    int64_t ns;
    const char *nic;
    bool up;
    const char *active;
    bool dissolved;
    bool primary_up;
    bool fallback_up;
} Step;

#define EXPECT(a, p, f) \
    { .op = EXPECT, .active = (a), .primary_up = (p), .fallback_up = (f) }
/* After an unplug: no choice, the NIC left has its link */
#define DISSOLVED(p, f) \
    { .op = EXPECT, .active = "none", .dissolved = true, \
      .primary_up = (p), .fallback_up = (f) }
#define NONE_UP EXPECT("none", false, false)
#define PRIMARY_ACTIVE EXPECT("primary", true, false)
#define FALLBACK_ACTIVE EXPECT("fallback", false, true)
#define STEP(n) { .op = STEP_NS, .ns = (n) }
#define OP(o) { .op = (o) }
#define LINK(n, u) { .op = SET_LINK, .nic = (n), .up = (u) }
#define UNPLUG_NIC(n) { .op = UNPLUG, .nic = (n) }
#define REPLUG_NIC(n) { .op = REPLUG, .nic = (n) }

#define MAX_STEPS 24

typedef struct Case {
    const char *name;
    const char *fallback;
    Step steps[MAX_STEPS];
} Case;

static const Case cases[] = {
    { "boot-none", NULL, {
        NONE_UP, STEP(10 * DELAY_NS), NONE_UP,
    } },
    { "primary-first", NULL, {
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(FALLBACK_UP), STEP(10 * DELAY_NS), PRIMARY_ACTIVE,
    } },
    { "fallback-after-delay", NULL, {
        OP(FALLBACK_UP), NONE_UP,
        STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
    } },
    { "primary-during-delay", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS / 2), NONE_UP,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        STEP(DELAY_NS), PRIMARY_ACTIVE,
    } },
    { "primary-after-fallback", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
    { "primary-leaves", NULL, {
        OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(PRIMARY_DOWN), NONE_UP,
        STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
    } },
    { "primary-leaves-alone", NULL, {
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(PRIMARY_DOWN), NONE_UP, STEP(10 * DELAY_NS), NONE_UP,
    } },
    { "fallback-leaves", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(FALLBACK_DOWN), NONE_UP,
        OP(FALLBACK_UP), FALLBACK_ACTIVE,
        OP(FALLBACK_DOWN), STEP(REGAIN_NS - 1),
        OP(FALLBACK_UP), FALLBACK_ACTIVE,
        OP(FALLBACK_DOWN), STEP(REGAIN_NS), NONE_UP,
        OP(FALLBACK_UP), NONE_UP, STEP(DELAY_NS), FALLBACK_ACTIVE,
    } },
    { "fallback-leaves-during-delay", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS / 2), OP(FALLBACK_DOWN),
        STEP(DELAY_NS), NONE_UP,
    } },
    { "reset-primary", NULL, {
        OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(RESET), NONE_UP, STEP(10 * DELAY_NS), NONE_UP,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
    { "reset-during-delay", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS / 2),
        OP(RESET), STEP(10 * DELAY_NS), NONE_UP,
    } },
    { "reset-fallback", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(RESET), NONE_UP,
        OP(FALLBACK_UP), STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
    } },
    { "set-link-down-wins", NULL, {
        LINK("nic0", false), OP(PRIMARY_UP),
        EXPECT("primary", false, false),
        LINK("nic0", true), PRIMARY_ACTIVE,
    } },
    { "set-link-up-cannot-override", NULL, {
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        LINK("nic1", true), PRIMARY_ACTIVE,
        LINK("hs1", true), PRIMARY_ACTIVE,
        LINK("nic0", true), PRIMARY_ACTIVE,
    } },
    { "set-link-down-survives-handover", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        LINK("nic0", false), OP(PRIMARY_UP),
        EXPECT("primary", false, false),
        OP(PRIMARY_DOWN), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), EXPECT("primary", false, false),
        LINK("nic0", true), PRIMARY_ACTIVE,
    } },
    { "unplug-primary", NULL, {
        OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE,
        UNPLUG_NIC("nic0"), DISSOLVED(false, true),
        STEP(10 * DELAY_NS), DISSOLVED(false, true),
        OP(RESET), DISSOLVED(false, true),
    } },
    { "unplug-fallback", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        UNPLUG_NIC("nic1"), DISSOLVED(true, false),
        OP(RESET), DISSOLVED(true, false),
    } },
    { "unplug-keeps-set-link", NULL, {
        LINK("nic1", false), OP(PRIMARY_UP), PRIMARY_ACTIVE,
        UNPLUG_NIC("nic0"), DISSOLVED(false, false),
        LINK("nic1", true), DISSOLVED(false, true),
    } },
    { "replug-primary", NULL, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        UNPLUG_NIC("nic0"), DISSOLVED(false, true),
        REPLUG_NIC("nic0"), NONE_UP,
        STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
    { "replug-fallback", NULL, {
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        UNPLUG_NIC("nic1"), DISSOLVED(true, false),
        REPLUG_NIC("nic1"), PRIMARY_ACTIVE,
        OP(FALLBACK_UP), OP(PRIMARY_DOWN), NONE_UP,
        STEP(DELAY_NS), FALLBACK_ACTIVE,
    } },
    { "netdev-del-fallback", NULL, {
        { .op = NETDEV_DEL, .nic = "nic1" },
        OP(FALLBACK_UP), STEP(DELAY_NS), EXPECT("fallback", false, false),
        LINK("nic1", true), EXPECT("fallback", false, false),
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
    { "netdev-del-primary", NULL, {
        { .op = NETDEV_DEL, .nic = "nic0" },
        OP(PRIMARY_UP), EXPECT("primary", false, false),
        OP(PRIMARY_DOWN), OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
    } },
    { "e1000-fallback", "e1000", {
        OP(FALLBACK_UP), STEP(DELAY_NS - 1),
        EXPECT("none", false, false),
        STEP(1), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
};

static void check(Guest *g, const Step *s, int i)
{
    QDict *pair = query_pair(g->qts);
    QDict *primary = qdict_get_qdict(pair, "primary");
    QDict *fallback = qdict_get_qdict(pair, "fallback");

    g_test_message("step %d: expect %s%s", i, s->active,
                   s->dissolved ? ", dissolved" : "");
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, s->active);
    g_assert_cmpint(qdict_get_bool(pair, "formed"), ==, !s->dissolved);
    g_assert_cmpstr(qdict_get_str(primary, "device"), ==, "nic0");
    g_assert_cmpstr(qdict_get_str(fallback, "device"), ==, "nic1");
    if (g->primary) {
        g_assert_cmpint(primary_link(g), ==, s->primary_up);
        g_assert_cmpint(qdict_get_bool(primary, "link-up"), ==,
                        s->primary_up);
    } else {
        g_assert_false(qdict_haskey(primary, "link-up"));
    }
    if (g->fallback) {
        g_assert_cmpint(s->fallback_up ? fallback_link_settled(g) :
                        fallback_link(g), ==, s->fallback_up);
        g_assert_cmpint(qdict_get_bool(fallback, "link-up"), ==,
                        s->fallback_up);
    } else {
        g_assert_false(qdict_haskey(fallback, "link-up"));
    }
    qobject_unref(pair);
}

static void run_steps(Guest *g, const Step *steps)
{
    int i;

    for (i = 0; steps[i].op != END; i++) {
        const Step *s = &steps[i];

        switch (s->op) {
        case PRIMARY_UP:
        case PRIMARY_DOWN:
            primary_driver(g, s->op == PRIMARY_UP);
            break;
        case FALLBACK_UP:
        case FALLBACK_DOWN:
            fallback_driver(g, s->op == FALLBACK_UP);
            break;
        case FALLBACK_RESET:
            fallback_reset(g);
            break;
        case STEP_NS:
            qtest_clock_step(g->qts, s->ns);
            break;
        case SET_LINK:
            set_link(g, s->nic, s->up);
            break;
        case RESET:
            system_reset(g);
            break;
        case UNPLUG:
            unplug(g, !strcmp(s->nic, "nic0"));
            break;
        case REPLUG:
            replug(g, !strcmp(s->nic, "nic0"));
            break;
        case NETDEV_DEL:
            qtest_qmp_assert_success(g->qts, "{ 'execute': 'netdev_del',"
                                     " 'arguments': { 'id': %s } }",
                                     strcmp(s->nic, "nic0") ? "hs1" : "hs0");
            break;
        case EXPECT:
            check(g, s, i);
            break;
        default:
            g_assert_not_reached();
        }
    }
}

static void test_case(gconstpointer opaque)
{
    const Case *c = opaque;
    Guest g;

    guest_start(&g, c->fallback, "");
    run_steps(&g, c->steps);
    guest_stop(&g);
}

/*
 * A hostile or crashing guest, and a host that pulls NICs: every state
 * of the pair meets every kind of reset and unplug.
 */
typedef enum PairState {
    IDLE,           /* no driver ready */
    WAITING,        /* the fallback's, half way through the delay */
    PRIMARY,        /* the primary's alone */
    BOTH,           /* both, so the primary is active */
    FALLBACK,       /* the fallback's alone, past the delay */
    PAIR_STATE__MAX,
} PairState;

typedef enum Disruption {
    SYSTEM_RESET,
    PRIMARY_RESET,  /* the guest resets the virtio device */
    FALLBACK_RESET_BY_GUEST,
    PRIMARY_UNPLUG,
    FALLBACK_UNPLUG,
    DISRUPTION__MAX,
} Disruption;

static const char *const state_names[] = {
    "idle", "waiting", "primary", "both", "fallback",
};

static const char *const disruption_names[] = {
    "system-reset", "primary-reset", "fallback-reset", "primary-unplug",
    "fallback-unplug",
};

/* How to get the pair to each state */
static const Step reach[PAIR_STATE__MAX][4] = {
    [IDLE] = { NONE_UP },
    [WAITING] = { OP(FALLBACK_UP), STEP(DELAY_NS / 2), NONE_UP },
    [PRIMARY] = { OP(PRIMARY_UP), PRIMARY_ACTIVE },
    [BOTH] = { OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE },
    [FALLBACK] = { OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE },
};

static const Step none_up = NONE_UP;
static const Step primary_active = PRIMARY_ACTIVE;
static const Step fallback_active = FALLBACK_ACTIVE;
static const Step primary_left = DISSOLVED(false, true);
static const Step fallback_left = DISSOLVED(true, false);

typedef struct Outcome {
    const Step *now;
    const Step *later;
} Outcome;

/*
 * What the pair shows right after the disruption, and a delay later: the
 * rules of the pair, applied to the drivers left ready.  A reset of a
 * NIC by its guest driver takes that driver away; an unplug dissolves
 * the pair, and the NIC left has its link whatever its driver does.
 */
static Outcome outcome(PairState state, Disruption d)
{
    bool primary_ready = state == PRIMARY || state == BOTH;
    bool fallback_ready = state != IDLE && state != PRIMARY;

    switch (d) {
    case SYSTEM_RESET:
        return (Outcome){ &none_up, &none_up };
    case PRIMARY_UNPLUG:
        return (Outcome){ &primary_left, &primary_left };
    case FALLBACK_UNPLUG:
        return (Outcome){ &fallback_left, &fallback_left };
    case PRIMARY_RESET:
        primary_ready = false;
        break;
    case FALLBACK_RESET_BY_GUEST:
        fallback_ready = false;
        break;
    default:
        g_assert_not_reached();
    }
    if (primary_ready) {
        return (Outcome){ &primary_active, &primary_active };
    }
    if (!fallback_ready) {
        return (Outcome){ &none_up, &none_up };
    }
    /* Only the fallback's driver is left: it had the link, or it waits */
    return (Outcome){ state == FALLBACK ? &fallback_active : &none_up,
                      &fallback_active };
}

/* The models the pair's fallback is tested with */
static const char *const fallback_models[] = {
    "rtl8139", "e1000", "e1000e", "igb", "vmxnet3",
};

typedef struct HostileCase {
    PairState state;
    Disruption disruption;
    const char *fallback;
} HostileCase;

static HostileCase hostile_cases[ARRAY_SIZE(fallback_models) *
                                 PAIR_STATE__MAX * DISRUPTION__MAX];

static void add_steps(Step *steps, int *n, const Step *add, int count)
{
    g_assert_cmpint(*n + count, <, MAX_STEPS);
    memcpy(&steps[*n], add, count * sizeof(*add));
    *n += count;
}

static int count_steps(const Step *steps)
{
    int n = 0;

    while (steps[n].op != END) {
        n++;
    }
    return n;
}

static void test_hostile(gconstpointer opaque)
{
    static const Step disrupt[DISRUPTION__MAX] = {
        [SYSTEM_RESET] = OP(RESET),
        [PRIMARY_RESET] = OP(PRIMARY_DOWN),
        [FALLBACK_RESET_BY_GUEST] = OP(FALLBACK_RESET),
        [PRIMARY_UNPLUG] = UNPLUG_NIC("nic0"),
        [FALLBACK_UNPLUG] = UNPLUG_NIC("nic1"),
    };
    static const Step recover[] = {
        OP(PRIMARY_UP), OP(FALLBACK_UP), STEP(DELAY_NS),
    };
    const HostileCase *c = opaque;
    Outcome o = outcome(c->state, c->disruption);
    Step steps[MAX_STEPS] = { 0 };
    Step after = STEP(DELAY_NS);
    int n = 0;
    Guest g;

    add_steps(steps, &n, reach[c->state], count_steps(reach[c->state]));
    add_steps(steps, &n, &disrupt[c->disruption], 1);
    add_steps(steps, &n, o.now, 1);
    add_steps(steps, &n, &after, 1);
    add_steps(steps, &n, o.later, 1);

    guest_start(&g, c->fallback, "");
    run_steps(&g, steps);
    /* A NIC comes back in place of the one unplugged, and the drivers */
    memset(steps, 0, sizeof(steps));
    n = 0;
    if (!g.primary || !g.fallback) {
        Step back = REPLUG_NIC(g.primary ? "nic1" : "nic0");

        add_steps(steps, &n, &back, 1);
    }
    add_steps(steps, &n, recover, ARRAY_SIZE(recover));
    add_steps(steps, &n, &primary_active, 1);
    run_steps(&g, steps);
    guest_stop(&g);
}

/* FAILOVER_PAIR_CHANGED: once per change, a burst at once, then held */
static void test_event(void)
{
    Guest g;
    QDict *ev, *data;
    int i;

    guest_start(&g, NULL, "");
    primary_driver(&g, true);
    ev = qtest_qmp_eventwait_ref(g.qts, "FAILOVER_PAIR_CHANGED");
    data = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(data, "device"), ==, "pair0");
    g_assert_cmpstr(qdict_get_str(data, "qom-path"), ==,
                    "/machine/peripheral/pair0");
    g_assert_cmpstr(qdict_get_str(data, "active"), ==, "primary");
    qobject_unref(ev);

    /* The rest of the burst goes out at once, in order */
    for (i = 1; i < BURST; i++) {
        primary_driver(&g, !(i % 2));
        ev = qtest_qmp_eventwait_ref(g.qts, "FAILOVER_PAIR_CHANGED");
        data = qdict_get_qdict(ev, "data");
        g_assert_cmpstr(qdict_get_str(data, "active"), ==,
                        i % 2 ? "none" : "primary");
        qobject_unref(ev);
    }

    /* Past the burst: held back, and only the last change is sent */
    primary_driver(&g, true);
    primary_driver(&g, false);
    /* Any event sent would arrive before this reply */
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'query-status' }");
    g_assert_null(qtest_qmp_event_ref(g.qts, "FAILOVER_PAIR_CHANGED"));
    qtest_clock_step(g.qts, SECOND_NS);
    ev = qtest_qmp_eventwait_ref(g.qts, "FAILOVER_PAIR_CHANGED");
    data = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(data, "active"), ==, "none");
    qobject_unref(ev);
    guest_stop(&g);
}

static void test_hmp(void)
{
    Guest g;
    g_autofree char *out = NULL;
    g_autofree char *out2 = NULL;

    guest_start(&g, NULL, "");
    primary_driver(&g, true);
    out = qtest_hmp(g.qts, "info failover-pairs");
    g_assert_cmpstr(out, ==,
                    "/machine/peripheral/pair0: formed, active primary, "
                    "fallback-delay-ms 500\r\n"
                    "  primary nic0: driver ready, link up\r\n"
                    "  fallback nic1: driver none, link down\r\n");
    unplug(&g, true);
    out2 = qtest_hmp(g.qts, "info failover-pairs");
    g_assert_cmpstr(out2, ==,
                    "/machine/peripheral/pair0: dissolved, active none, "
                    "fallback-delay-ms 500\r\n"
                    "  primary nic0: not plugged in\r\n"
                    "  fallback nic1: driver none, link up\r\n");
    guest_stop(&g);
}

/* What management sees after it connects: every member of the answer */
static void test_query(void)
{
    Guest g;
    QDict *pair, *primary, *fallback;
    QTestState *none;
    QDict *rsp;

    guest_start(&g, NULL, "");
    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    pair = query_pair(g.qts);
    g_assert_cmpstr(qdict_get_str(pair, "device"), ==, "pair0");
    g_assert_cmpstr(qdict_get_str(pair, "qom-path"), ==,
                    "/machine/peripheral/pair0");
    g_assert_true(qdict_get_bool(pair, "formed"));
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "fallback");
    g_assert_cmpint(qdict_get_int(pair, "fallback-delay-ms"), ==, DELAY_MS);
    primary = qdict_get_qdict(pair, "primary");
    g_assert_cmpstr(qdict_get_str(primary, "device"), ==, "nic0");
    g_assert_cmpstr(qdict_get_str(primary, "qom-path"), ==,
                    "/machine/peripheral/nic0");
    g_assert_cmpstr(qdict_get_str(primary, "driver-status"), ==, "none");
    g_assert_false(qdict_get_bool(primary, "link-up"));
    fallback = qdict_get_qdict(pair, "fallback");
    g_assert_cmpstr(qdict_get_str(fallback, "device"), ==, "nic1");
    g_assert_cmpstr(qdict_get_str(fallback, "qom-path"), ==,
                    "/machine/peripheral/nic1");
    g_assert_cmpstr(qdict_get_str(fallback, "driver-status"), ==, "ready");
    g_assert_true(qdict_get_bool(fallback, "link-up"));
    qobject_unref(pair);

    unplug(&g, false);
    pair = query_pair(g.qts);
    g_assert_false(qdict_get_bool(pair, "formed"));
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "none");
    fallback = qdict_get_qdict(pair, "fallback");
    g_assert_cmpstr(qdict_get_str(fallback, "device"), ==, "nic1");
    g_assert_false(qdict_haskey(fallback, "qom-path"));
    g_assert_false(qdict_haskey(fallback, "driver-status"));
    g_assert_false(qdict_haskey(fallback, "link-up"));
    /* Left alone, the primary's link follows set_link */
    primary = qdict_get_qdict(pair, "primary");
    g_assert_true(qdict_get_bool(primary, "link-up"));
    qobject_unref(pair);
    guest_stop(&g);

    none = qtest_init("-machine none");
    rsp = qtest_qmp(none, "{ 'execute': 'query-failover-pairs' }");
    g_assert_cmpint(qlist_size(qdict_get_qlist(rsp, "return")), ==, 0);
    qobject_unref(rsp);
    qtest_quit(none);
}

/* The pair is cold-plugged only: device_add says so */
static void test_hotplug_refused(void)
{
    Guest g;
    QDict *rsp;

    guest_start(&g, NULL, "");
    rsp = qtest_qmp(g.qts, "{ 'execute': 'device_add', 'arguments': {"
                    " 'driver': 'failover-pair', 'id': 'pair1',"
                    " 'primary': 'nic0', 'fallback': 'nic1' } }");
    g_assert_true(qdict_haskey(rsp, "error"));
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"),
                    ==, "Device 'failover-pair' does not support hotplugging");
    qobject_unref(rsp);
    /* query_pair() fails on a second pair */
    qobject_unref(query_pair(g.qts));
    guest_stop(&g);
}

/*
 * A guest that flips its drivers' state as fast as a CPU can: real-mode
 * firmware (no SeaBIOS) that loops over "write the ready value to port A
 * and to port B, then 0 to both", counting its rounds in RAM.  The test
 * maps the NICs before the CPU starts and leaves the ports, values and
 * count in RAM at STORM_PARAMS.
 */
#define STORM_PARAMS 0x500
#define STORM_SECONDS 3
#define STORM_QMP_MAX_US (5 * G_USEC_PER_SEC)
#define POST_PORT 0x80

static const uint8_t storm_loop[] = {
    0x8b, 0x16, 0x00, 0x05,         /* mov dx, [0x500]  port A */
    0xa0, 0x02, 0x05,               /* mov al, [0x502]  value A */
    0xee,                           /* out dx, al */
    0x8b, 0x16, 0x04, 0x05,         /* mov dx, [0x504]  port B */
    0xa0, 0x06, 0x05,               /* mov al, [0x506]  value B */
    0xee,                           /* out dx, al */
    0x30, 0xc0,                     /* xor al, al */
    0xee,                           /* out dx, al */
    0x8b, 0x16, 0x00, 0x05,         /* mov dx, [0x500] */
    0xee,                           /* out dx, al */
    0x66, 0xff, 0x06, 0x08, 0x05,   /* inc dword [0x508] */
    0xeb, 0xe1,                     /* jmp to the start */
};

/* jmp far f000:0000, at the reset vector */
static const uint8_t storm_reset_vector[] = { 0xea, 0x00, 0x00, 0x00, 0xf0 };

static char *storm_firmware(void)
{
    g_autofree uint8_t *rom = g_malloc0(64 * KiB);
    char *path = NULL;
    int fd;

    memcpy(rom, storm_loop, sizeof(storm_loop));
    memcpy(rom + 64 * KiB - 16, storm_reset_vector,
           sizeof(storm_reset_vector));
    fd = g_file_open_tmp("failover-pair-storm-XXXXXX.rom", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, rom, 64 * KiB), ==, 64 * KiB);
    close(fd);
    return path;
}

/* Count, and drop, the DRIVER_STATUS_CHANGED events of nic0 and nic1 */
static void count_status_events(QTestState *qts, int *nic0, int *nic1)
{
    QDict *ev;

    *nic0 = *nic1 = 0;
    while ((ev = qtest_qmp_event_ref(qts, "DRIVER_STATUS_CHANGED"))) {
        const char *path = qdict_get_str(qdict_get_qdict(ev, "data"),
                                         "qom-path");

        *nic0 += !strcmp(path, "/machine/peripheral/nic0");
        *nic1 += !strcmp(path, "/machine/peripheral/nic1");
        qobject_unref(ev);
    }
}

static int count_pair_events(QTestState *qts)
{
    QDict *ev;
    int n = 0;

    while ((ev = qtest_qmp_event_ref(qts, "FAILOVER_PAIR_CHANGED"))) {
        n++;
        qobject_unref(ev);
    }
    return n;
}

typedef struct Storm {
    const char *name;
    bool fallback_too;
} Storm;

static const Storm storms[] = {
    { "primary", false },
    { "both", true },
};

static void test_storm(gconstpointer opaque)
{
    const Storm *storm = opaque;
    g_autofree char *rom = storm_firmware();
    g_autofree char *extra = g_strdup_printf("-accel tcg -bios %s -S", rom);
    int64_t start, elapsed_s, slowest = 0, t;
    uint32_t rounds;
    int nic0, nic1, bound;
    Guest g;

    guest_start(&g, NULL, extra);
    qtest_writew(g.qts, STORM_PARAMS,
                 g.primary_bar.addr + VIRTIO_PCI_STATUS);
    qtest_writeb(g.qts, STORM_PARAMS + 2, VIRTIO_STATUS_READY);
    qtest_writew(g.qts, STORM_PARAMS + 4, storm->fallback_too ?
                 g.fallback_bar.addr + RTL_CHIPCMD : POST_PORT);
    qtest_writeb(g.qts, STORM_PARAMS + 6, RTL_CHIPCMD_RX_TX);
    qtest_writel(g.qts, STORM_PARAMS + 8, 0);

    start = g_get_monotonic_time();
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'cont' }");
    /* The monitor must keep answering while the guest storms */
    do {
        g_autofree char *active = NULL;

        t = g_get_monotonic_time();
        active = pair_active(g.qts);
        t = g_get_monotonic_time() - t;
        slowest = MAX(slowest, t);
        g_usleep(100 * 1000);
    } while (g_get_monotonic_time() - start < STORM_SECONDS * G_USEC_PER_SEC);
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'stop' }");
    elapsed_s = (g_get_monotonic_time() - start) / G_USEC_PER_SEC + 1;

    rounds = qtest_readl(g.qts, STORM_PARAMS + 8);
    g_test_message("%u rounds in %" PRId64 " s, slowest qom-get %" PRId64
                   " us", rounds, elapsed_s, slowest);
    g_assert_cmpint(rounds, >, 0);
    g_assert_cmpint(slowest, <, STORM_QMP_MAX_US);

    /* Throttled per device: a burst at once, then one a second */
    bound = BURST + elapsed_s + 1;
    count_status_events(g.qts, &nic0, &nic1);
    g_test_message("events: nic0 %d, nic1 %d", nic0, nic1);
    g_assert_cmpint(nic0, >=, 1);
    g_assert_cmpint(nic0, <=, bound);
    g_assert_cmpint(nic1, >=, storm->fallback_too);
    g_assert_cmpint(nic1, <=, bound);
    g_assert_cmpint(count_pair_events(g.qts), <=, bound);
    guest_stop(&g);
    unlink(rom);
}

/*
 * The pair cannot be hot-plugged, but management creates and deletes
 * instances of it all the time to list its properties: under
 * LeakSanitizer this shows whether they leave anything behind, and
 * everywhere, that the properties are what the documentation says.
 */
static void test_introspect_cycle(void)
{
    static const char *const props[][2] = {
        { "primary", "str" },
        { "fallback", "str" },
        { "fallback-delay-ms", "uint32" },
    };
    QTestState *qts = qtest_init("-machine none");
    int i, j;

    for (i = 0; i < 16; i++) {
        QDict *rsp = qtest_qmp(qts, "{ 'execute': 'device-list-properties',"
                               " 'arguments': { 'typename': 'failover-pair' } }");
        QList *list = qdict_get_qlist(rsp, "return");
        const QListEntry *e;
        int found = 0;

        QLIST_FOREACH_ENTRY(list, e) {
            QDict *prop = qobject_to(QDict, qlist_entry_obj(e));
            const char *name = qdict_get_str(prop, "name");

            for (j = 0; j < ARRAY_SIZE(props); j++) {
                if (!strcmp(name, props[j][0])) {
                    g_assert_cmpstr(qdict_get_str(prop, "type"), ==,
                                    props[j][1]);
                    found++;
                }
            }
            if (!strcmp(name, "fallback-delay-ms")) {
                g_assert_cmpint(qdict_get_int(prop, "default-value"), ==,
                                500);
            }
        }
        g_assert_cmpint(found, ==, ARRAY_SIZE(props));
        qobject_unref(rsp);
    }
    /* Listing its properties made no pair */
    g_assert_null(query_pair(qts));
    qtest_quit(qts);
}

/* BAR 0 where the migrated config space puts it */
static QPCIBar migrated_bar(QPCIDevice *dev, int index)
{
    uint32_t addr = qpci_config_readl(dev, PCI_BASE_ADDRESS_0 + 4 * index);
    QPCIBar bar = { .is_io = addr & PCI_BASE_ADDRESS_SPACE_IO };

    bar.addr = addr & (bar.is_io ? PCI_BASE_ADDRESS_IO_MASK :
                       PCI_BASE_ADDRESS_MEM_MASK);
    return bar;
}

/* The status of the migration on @qts once it is over; its error in @error */
static char *migration_end(QTestState *qts, char **error)
{
    QDict *rsp;
    char *status;

    for (;;) {
        rsp = qtest_qmp_assert_success_ref(qts,
                                           "{ 'execute': 'query-migrate' }");
        status = g_strdup(qdict_get_try_str(rsp, "status"));
        if (status &&
            (!strcmp(status, "completed") || !strcmp(status, "failed"))) {
            break;
        }
        g_free(status);
        qobject_unref(rsp);
        g_usleep(1000);
    }
    if (error) {
        *error = g_strdup(qdict_get_try_str(rsp, "error-desc"));
    }
    qobject_unref(rsp);
    return status;
}

/*
 * Migrate @src to a new @dst started as @to says; the migration fails
 * with an error that contains @error, or completes if @error is NULL.
 */
static void migrate_expect(Guest *src, Guest *dst, const Config *to,
                           const char *error)
{
    g_autofree char *tmpdir = g_dir_make_tmp("failover-pair-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/migsock", tmpdir);
    g_autofree char *sock = g_strdup_printf("%s/migsock", tmpdir);
    Config c = *to;
    g_autofree char *extra = g_strdup_printf("-incoming defer %s",
                                             to->extra ?: "");
    g_autofree char *status = NULL;
    g_autofree char *desc = NULL;

    c.extra = extra;
    guest_start_config(dst, &c);
    qtest_qmp_assert_success(dst->qts, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "                 'exit-on-error': false } }",
                             uri);
    qtest_qmp_assert_success(src->qts, "{ 'execute': 'migrate',"
                             "  'arguments': { 'uri': %s } }", uri);
    status = migration_end(dst->qts, &desc);
    if (error) {
        g_test_message("error-desc: %s", desc);
        g_assert_cmpstr(status, ==, "failed");
        g_assert_nonnull(strstr(desc ?: "", error));
    } else {
        g_assert_cmpstr(status, ==, "completed");
        if (!to->paused) {
            qtest_qmp_eventwait(dst->qts, "RESUME");
        }
        /* The destination may run before the source has seen the end */
        g_free(status);
        status = migration_end(src->qts, NULL);
        g_assert_cmpstr(status, ==, "completed");
        if (dst->primary) {
            dst->primary_bar = migrated_bar(dst->primary, 0);
        }
        if (dst->fallback) {
            dst->fallback_bar = migrated_bar(dst->fallback,
                                             model_bar(dst->fallback_model));
        }
    }
    unlink(sock);
    rmdir(tmpdir);
}

static void migrate(Guest *src, Guest *dst, const Config *to)
{
    migrate_expect(src, dst, to, NULL);
}

/*
 * Migrate in the middle of the fallback delay, with the primary's link
 * set down by the user: the delay goes on where it stopped, and the
 * user's set_link survives.
 */
static void test_migrate_during_delay(void)
{
    Config to = { };
    Guest src, dst;
    int64_t armed, now;
    g_autofree char *active = NULL;

    guest_start(&src, NULL, "");
    set_link(&src, "nic0", false);
    /* clock_step refuses 0: read the clock with the smallest step */
    armed = qtest_clock_step(src.qts, 1);
    fallback_driver(&src, true);
    qtest_clock_step(src.qts, DELAY_NS / 2);
    migrate(&src, &dst, &to);
    guest_stop(&src);

    active = pair_active(dst.qts);
    g_assert_cmpstr(active, ==, "none");
    g_assert_false(fallback_link(&dst));
    now = qtest_clock_step(dst.qts, 1);
    /* The timer deadline is absolute: whatever the clock says here */
    g_assert_cmpint(armed + DELAY_NS, >, now);
    qtest_clock_step(dst.qts, armed + DELAY_NS - now - 1);
    g_free(active);
    active = pair_active(dst.qts);
    g_assert_cmpstr(active, ==, "none");
    qtest_clock_step(dst.qts, 1);
    g_free(active);
    active = pair_active(dst.qts);
    g_assert_cmpstr(active, ==, "fallback");
    g_assert_true(fallback_link(&dst));

    /* The user's set_link off on the primary was migrated too */
    primary_driver(&dst, true);
    g_free(active);
    active = pair_active(dst.qts);
    g_assert_cmpstr(active, ==, "primary");
    g_assert_false(primary_link(&dst));
    g_assert_false(fallback_link(&dst));
    set_link(&dst, "nic0", true);
    g_assert_true(primary_link(&dst));
    guest_stop(&dst);
}

/*
 * What the guest can read of a NIC without changing it: the registers
 * with the link state, the ones an interrupt shows in, and the level of
 * the NIC's interrupt line (PCI status).
 */
typedef struct GuestView {
    uint32_t primary[3];
    uint32_t fallback[3];
} GuestView;

static void guest_view(Guest *g, GuestView *v)
{
    memset(v, 0, sizeof(*v));
    if (g->primary) {
        v->primary[0] = qpci_io_readw(g->primary, g->primary_bar,
                                      VIRTIO_NET_CONFIG_STATUS);
        v->primary[1] = qpci_io_readb(g->primary, g->primary_bar,
                                      VIRTIO_PCI_STATUS);
        v->primary[2] = qpci_config_readw(g->primary, PCI_STATUS) &
                        PCI_STATUS_INTERRUPT;
    }
    if (!g->fallback) {
        return;
    }
    if (fallback_is(g, "rtl8139")) {
        v->fallback[0] = qpci_io_readw(g->fallback, g->fallback_bar,
                                       RTL_BASIC_MODE_STATUS);
        v->fallback[1] = qpci_io_readw(g->fallback, g->fallback_bar,
                                       RTL_INTR_STATUS);
    } else if (fallback_is(g, "vmxnet3")) {
        v->fallback[0] = fallback_link(g);
        v->fallback[1] = qpci_io_readl(g->fallback, g->fallback_bar,
                                       VMXNET3_REG_ECR);
    } else {
        v->fallback[0] = qpci_io_readl(g->fallback, g->fallback_bar,
                                       E1000_STATUS);
        v->fallback[1] = qpci_io_readl(g->fallback, g->fallback_bar,
                                       E1000_IMS);
    }
    v->fallback[2] = qpci_config_readw(g->fallback, PCI_STATUS) &
                     PCI_STATUS_INTERRUPT;
}

static void check_guest_view(const GuestView *a, const GuestView *b)
{
    int i;

    for (i = 0; i < ARRAY_SIZE(a->primary); i++) {
        g_assert_cmphex(a->primary[i], ==, b->primary[i]);
        g_assert_cmphex(a->fallback[i], ==, b->fallback[i]);
    }
}

/*
 * Read (and so clear) the interrupt causes, as the guest's handler would,
 * so that they show a link change that comes later
 */
static void guest_ack_interrupts(Guest *g)
{
    if (g->primary) {
        qpci_io_readb(g->primary, g->primary_bar, VIRTIO_PCI_ISR);
    }
    if (!g->fallback) {
        return;
    }
    if (fallback_is(g, "rtl8139")) {
        qpci_io_writew(g->fallback, g->fallback_bar, RTL_INTR_STATUS,
                       RTL_INTR_ALL);
    } else if (fallback_is(g, "vmxnet3")) {
        qpci_io_writel(g->fallback, g->fallback_bar, VMXNET3_REG_ECR, ~0u);
    } else {
        qpci_io_readl(g->fallback, g->fallback_bar, E1000_ICR);
    }
}

typedef struct StateCase {
    PairState state;
    const char *fallback;
} StateCase;

static StateCase state_cases[ARRAY_SIZE(fallback_models) * PAIR_STATE__MAX];

/*
 * Migration changes nothing the guest sees, in any state of the pair:
 * no register, no interrupt, and the pair goes on where it was.
 */
static void test_migrate_state(gconstpointer opaque)
{
    const StateCase *c = opaque;
    Config to = { .fallback = c->fallback };
    static const Step settled[PAIR_STATE__MAX][2] = {
        [IDLE] = { NONE_UP },
        [WAITING] = { FALLBACK_ACTIVE },
        [PRIMARY] = { PRIMARY_ACTIVE },
        [BOTH] = { PRIMARY_ACTIVE },
        [FALLBACK] = { FALLBACK_ACTIVE },
    };
    GuestView before, after;
    Guest src, dst;

    guest_start(&src, c->fallback, "");
    run_steps(&src, reach[c->state]);
    guest_ack_interrupts(&src);
    guest_view(&src, &before);
    migrate(&src, &dst, &to);
    guest_stop(&src);

    guest_view(&dst, &after);
    check_guest_view(&before, &after);
    /* Past the rest of any delay, the pair is where the rules say */
    qtest_clock_step(dst.qts, DELAY_NS);
    run_steps(&dst, settled[c->state]);
    guest_stop(&dst);
}

typedef struct DissolveCase {
    PairState state;
    const char *fallback;
    bool primary;   /* unplug the primary, else the fallback */
    /* The destination has the pair, as libvirt restores a saved domain */
    bool keep_pair;
} DissolveCase;

static DissolveCase dissolve_cases[2 * 2 * PAIR_STATE__MAX];
static DissolveCase restore_cases[2 * PAIR_STATE__MAX];

/*
 * After one NIC of the pair is unplugged, the VM migrates to a QEMU
 * started with what is left: the NIC that stayed, with or without the
 * pair, which then starts dissolved.
 */
static void test_dissolve_migrate(gconstpointer opaque)
{
    const DissolveCase *c = opaque;
    Config to = {
        .fallback = c->fallback,
        .no_pair = !c->keep_pair,
        .no_primary = c->primary,
        .no_fallback = !c->primary,
    };
    static const Step left[2][2] = {
        { DISSOLVED(true, false) },
        { DISSOLVED(false, true) },
    };
    GuestView before, after;
    Guest src, dst;

    guest_start(&src, c->fallback, "");
    run_steps(&src, reach[c->state]);
    unplug(&src, c->primary);
    run_steps(&src, left[c->primary]);
    guest_ack_interrupts(&src);
    guest_view(&src, &before);
    migrate(&src, &dst, &to);
    guest_stop(&src);

    if (c->keep_pair) {
        QDict *pair = query_pair(dst.qts);
        QDict *gone = qdict_get_qdict(pair, c->primary ? "primary"
                                                       : "fallback");

        g_assert_false(qdict_get_bool(pair, "formed"));
        g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "none");
        g_assert_false(qdict_haskey(gone, "qom-path"));
        qobject_unref(pair);
    } else {
        g_assert_null(query_pair(dst.qts));
    }
    guest_view(&dst, &after);
    check_guest_view(&before, &after);
    /* The NIC left keeps its link, whatever its driver does */
    if (c->primary) {
        g_assert_true(fallback_link(&dst));
        fallback_driver(&dst, false);
        g_assert_true(fallback_link(&dst));
    } else {
        g_assert_true(primary_link(&dst));
        primary_driver(&dst, false);
        g_assert_true(primary_link(&dst));
    }
    guest_stop(&dst);
}

#define JSON_NIC0 "-device '{\"driver\": \"virtio-net-pci\", " \
    "\"id\": \"nic0\", \"netdev\": \"hs0\", \"disable-modern\": true, " \
    "\"addr\": \"3\"}' "
#define JSON_NIC1 "-device '{\"driver\": \"rtl8139\", \"id\": \"nic1\", " \
    "\"netdev\": \"hs1\", \"addr\": \"4\"}' "
#define JSON_PAIR "-device '{\"driver\": \"failover-pair\", " \
    "\"id\": \"pair0\", \"primary\": \"nic0\", \"fallback\": \"nic1\"}' "
#define KV_NIC0 "-device virtio-net-pci,id=nic0,netdev=hs0," \
    "disable-modern=on,addr=3 "
#define KV_NIC1 "-device rtl8139,id=nic1,netdev=hs1,addr=4 "
#define KV_PAIR "-device failover-pair,id=pair0,primary=nic0,fallback=nic1 "

static const char *pair_member_status(QTestState *qts, const char *member)
{
    static char status[16];
    QDict *pair = query_pair(qts);

    g_strlcpy(status, qdict_get_str(qdict_get_qdict(pair, member),
                                    "driver-status"), sizeof(status));
    qobject_unref(pair);
    return status;
}

#define TWO_PAIRS_NICS "-netdev user,id=hs2 -netdev user,id=hs3 " \
    KV_NIC0 KV_NIC1 "-device virtio-net-pci,id=nic2,netdev=hs2," \
    "disable-modern=on,addr=5 -device rtl8139,id=nic3,netdev=hs3,addr=6 "
#define KV_PAIR1 "-device failover-pair,id=pair1,primary=nic2,fallback=nic3 "

static char *pair_active_of(QTestState *qts, const char *id)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments': {"
                           " 'path': %s, 'property': 'active' } }", id);
    char *active = g_strdup(qdict_get_try_str(rsp, "return"));

    g_assert_nonnull(active);
    qobject_unref(rsp);
    return active;
}

/*
 * Two pairs, given in the other order on the destination: each takes
 * its own state, found by its id.  pair0's primary runs with the link
 * the user set down, pair1 has no driver.
 */
static void test_migrate_two_pairs(void)
{
    Config from = { .devices = TWO_PAIRS_NICS KV_PAIR KV_PAIR1 };
    Config to = { .devices = TWO_PAIRS_NICS KV_PAIR1 KV_PAIR };
    g_autofree char *active0 = NULL;
    g_autofree char *active1 = NULL;
    Guest src, dst;

    guest_start_config(&src, &from);
    set_link(&src, "nic0", false);
    primary_driver(&src, true);
    g_assert_false(primary_link(&src));
    migrate(&src, &dst, &to);
    guest_stop(&src);

    active0 = pair_active_of(dst.qts, "/machine/peripheral/pair0");
    active1 = pair_active_of(dst.qts, "/machine/peripheral/pair1");
    g_assert_cmpstr(active0, ==, "primary");
    g_assert_cmpstr(active1, ==, "none");
    g_assert_false(primary_link(&dst));
    set_link(&dst, "nic0", true);
    g_assert_true(primary_link(&dst));
    guest_stop(&dst);
}

/*
 * A guest whose network configuration names only the fallback's
 * interface, as an image made on a VM with that NIC: virtio_net binds
 * at probe and sets DRIVER_OK, and nothing opens its interface.  The
 * fallback keeps the link; the primary takes it the moment the guest
 * opens virtio-net, and loses it when its driver resets the device.
 */
static void test_virtio_bound(void)
{
    Guest g;
    g_autofree char *active = NULL;

    guest_start(&g, NULL, "");
    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    g_assert_true(fallback_link(&g));

    virtio_bind(g.qts, g.primary, g.primary_bar);
    g_assert_cmpstr(pair_member_status(g.qts, "primary"), ==,
                    "initializing");
    qtest_clock_step(g.qts, 10 * DELAY_NS);
    active = pair_active(g.qts);
    g_assert_cmpstr(active, ==, "fallback");
    g_assert_true(fallback_link(&g));
    g_assert_false(primary_link(&g));

    virtio_open(g.qts, g.primary, g.primary_bar);
    g_assert_cmpstr(pair_member_status(g.qts, "primary"), ==, "ready");
    g_free(active);
    active = pair_active(g.qts);
    g_assert_cmpstr(active, ==, "primary");
    g_assert_true(primary_link(&g));
    g_assert_false(fallback_link(&g));

    /* Unloaded, or reset by its own driver: bound again, not opened */
    primary_driver(&g, false);
    g_assert_false(primary_link(&g));
    virtio_bind(g.qts, g.primary, g.primary_bar);
    qtest_clock_step(g.qts, DELAY_NS);
    g_free(active);
    active = pair_active(g.qts);
    g_assert_cmpstr(active, ==, "fallback");
    g_assert_true(fallback_link(&g));
    g_assert_false(primary_link(&g));
    virtio_open(g.qts, g.primary, g.primary_bar);
    g_assert_true(primary_link(&g));
    g_assert_false(fallback_link(&g));
    guest_stop(&g);
}

/*
 * A whole pair does not migrate to a QEMU that lacks one of its NICs.
 * Here the NIC is there under another id, so that what the guest has
 * loads, and only the pair can tell: the migration fails, naming the
 * pair and its NICs, and the pair stays dissolved.
 */
static void test_restore_missing(gconstpointer opaque)
{
    bool primary = GPOINTER_TO_INT(opaque);
    Config to = {
        .devices = primary ?
            "-device virtio-net-pci,id=other,netdev=hs0,disable-modern=on,"
            "addr=3 " KV_NIC1 KV_PAIR :
            KV_NIC0 "-device rtl8139,id=other,netdev=hs1,addr=4 " KV_PAIR,
    };
    Guest src, dst;
    QDict *pair;

    /* The fallback waits for the primary: a delay is pending */
    guest_start(&src, NULL, "");
    fallback_driver(&src, true);
    qtest_clock_step(src.qts, DELAY_NS / 2);
    migrate_expect(&src, &dst, &to,
                   "failover-pair 'pair0': the source's pair has both NICs, "
                   "'nic0' and 'nic1', and this one has not");

    /* Nor does the delay that came with it go on */
    qtest_clock_step(dst.qts, DELAY_NS);
    pair = query_pair(dst.qts);
    g_assert_false(qdict_get_bool(pair, "formed"));
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "none");
    qobject_unref(pair);
    guest_stop(&dst);
    guest_stop(&src);
}

/* A formed pair's state has nowhere to go on a QEMU without the pair */
static void test_migrate_to_no_pair(void)
{
    Config to = { .no_pair = true };
    Guest src, dst;

    guest_start(&src, NULL, "");
    primary_driver(&src, true);
    migrate_expect(&src, &dst, &to, "pair0/failover-pair");
    guest_stop(&dst);
    guest_stop(&src);
}

/* The drivers a source without a pair had up */
typedef struct NoPairCase {
    const char *name;
    bool primary;
    bool fallback;
    /* The destination stays paused (-S) until cont */
    bool paused;
} NoPairCase;

static const NoPairCase no_pair_cases[] = {
    { "none", false, false },
    { "fallback", false, true },
    { "primary", true, false },
    { "both", true, true },
    { "both-paused", true, true, true },
};

/*
 * The source had no pair, so no section comes: the NICs' registers say
 * their links are up.  The destination's pair gives them back to the
 * NICs without telling them, then decides, once the VM runs, from the
 * drivers that came: the guest sees one link at most, and its registers
 * say which.
 */
static void test_migrate_from_no_pair(gconstpointer opaque)
{
    const NoPairCase *c = opaque;
    Config from = { .no_pair = true };
    Config to = { .paused = c->paused };
    Guest src, dst;
    QDict *ev;

    guest_start_config(&src, &from);
    primary_driver(&src, c->primary);
    fallback_driver(&src, c->fallback);
    g_assert_true(primary_link(&src));
    g_assert_true(fallback_link(&src));
    migrate(&src, &dst, &to);
    guest_stop(&src);

    if (c->paused) {
        /* Nothing is decided while the VM does not run */
        assert_active(dst.qts, "none");
        g_assert_null(qtest_qmp_event_ref(dst.qts, "FAILOVER_PAIR_CHANGED"));
        qtest_qmp_assert_success(dst.qts, "{ 'execute': 'cont' }");
        /* cont decides, and its event comes before its answer */
        ev = qtest_qmp_event_ref(dst.qts, "FAILOVER_PAIR_CHANGED");
        g_assert_nonnull(ev);
        g_assert_cmpstr(qdict_get_str(qdict_get_qdict(ev, "data"), "active"),
                        ==, "primary");
        qobject_unref(ev);
    }
    if (c->primary) {
        assert_active(dst.qts, "primary");
        g_assert_true(primary_link(&dst));
        g_assert_false(fallback_link(&dst));
    } else if (c->fallback) {
        assert_active(dst.qts, "none");
        g_assert_false(fallback_link(&dst));
        qtest_clock_step(dst.qts, DELAY_NS);
        assert_active(dst.qts, "fallback");
        g_assert_false(primary_link(&dst));
        g_assert_true(fallback_link(&dst));
    } else {
        assert_active(dst.qts, "none");
        g_assert_false(primary_link(&dst));
        g_assert_false(fallback_link(&dst));
    }
    guest_stop(&dst);
}

/*
 * The source's pair dissolved when its fallback was unplugged; the
 * destination has both NICs, so its pair is formed and gets no section:
 * it decides from the drivers, as if the NIC had been plugged again.
 */
static void test_migrate_dissolved_to_formed(void)
{
    Config to = { };
    Guest src, dst;

    guest_start(&src, NULL, "");
    primary_driver(&src, true);
    unplug(&src, false);
    g_assert_true(primary_link(&src));
    migrate(&src, &dst, &to);
    guest_stop(&src);

    assert_active(dst.qts, "primary");
    g_assert_true(primary_link(&dst));
    g_assert_false(fallback_link(&dst));
    primary_driver(&dst, false);
    g_assert_false(primary_link(&dst));
    guest_stop(&dst);
}

/*
 * A driver that reset its NIC and has not brought it up again is not
 * ready on the destination either, even when the NIC's registers would
 * say so (QEMU's e1000 keeps RCTL.EN across CTRL.RST).
 */
static void test_migrate_driver_reset(void)
{
    Config to = { .fallback = "e1000" };
    Guest src, dst;
    QDict *pair;

    guest_start(&src, "e1000", "");
    fallback_driver(&src, true);
    qtest_clock_step(src.qts, DELAY_NS);
    g_assert_true(fallback_link_settled(&src));
    fallback_reset(&src);
    pair = query_pair(src.qts);
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "none");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(pair, "fallback"),
                                  "driver-status"), ==, "initializing");
    qobject_unref(pair);
    migrate(&src, &dst, &to);
    guest_stop(&src);

    pair = query_pair(dst.qts);
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "none");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(pair, "fallback"),
                                  "driver-status"), ==, "initializing");
    qobject_unref(pair);
    qtest_clock_step(dst.qts, 10 * DELAY_NS);
    g_assert_false(fallback_link(&dst));
    /* Up again: the fallback gets the link a delay later */
    fallback_driver(&dst, true);
    qtest_clock_step(dst.qts, DELAY_NS - 1);
    g_assert_false(fallback_link(&dst));
    qtest_clock_step(dst.qts, 1);
    g_assert_true(fallback_link_settled(&dst));
    guest_stop(&dst);
}

/* rtl8139 sends one frame from guest memory */
static void rtl8139_send(Guest *g, const char *payload)
{
    uint8_t frame[60] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        0x08, 0x00,
    };

    memcpy(frame + 14, payload, MIN(strlen(payload), sizeof(frame) - 14));
    qtest_memwrite(g->qts, TX_BUFFER, frame, sizeof(frame));
    qpci_io_writel(g->fallback, g->fallback_bar,
                   RTL_TX_ADDR0 + 4 * g->tx_desc, TX_BUFFER);
    qpci_io_writel(g->fallback, g->fallback_bar,
                   RTL_TX_STATUS0 + 4 * g->tx_desc, sizeof(frame));
    g->tx_desc = (g->tx_desc + 1) % 4;
}

/* Whether a frame holding @data comes out of @fd within a while */
static bool bytes_arrive(int fd, const void *data, size_t size)
{
    g_autofree uint8_t *buf = g_malloc(4096);
    size_t len = 0;
    int64_t end = g_get_monotonic_time() + G_USEC_PER_SEC / 2;

    while (g_get_monotonic_time() < end) {
        ssize_t n = recv(fd, buf + len, 4096 - len, MSG_DONTWAIT);

        if (n > 0) {
            len += n;
            if (memmem(buf, len, data, size)) {
                return true;
            }
        }
        if (len == 4096) {
            /* Keep what a frame cut in two may still need */
            memmove(buf, buf + len - size, size);
            len = size;
        }
        g_usleep(10 * 1000);
    }
    return false;
}

static bool frame_arrives(int fd, const char *payload)
{
    return bytes_arrive(fd, payload, strlen(payload));
}

/*
 * Check why the link of @name is down, as query-net-links and info
 * network show it: @reasons comma-separated, "" for a link that is up
 */
static void check_link_reasons(QTestState *qts, const char *name,
                               const char *reasons)
{
    QDict *resp = qtest_qmp(qts, "{ 'execute': 'query-net-links',"
                            "  'arguments': { 'name': %s } }", name);
    QList *list = qdict_get_qlist(resp, "return");
    g_autoptr(GString) found = g_string_new("");
    g_autofree char *hmp = qtest_hmp(qts, "info network");
    g_autofree char *client = g_strdup_printf("%s: index=0,", name);
    g_auto(GStrv) words = g_strsplit(reasons, ",", -1);
    g_autofree char *joined = g_strjoinv(", ", words);
    g_autofree char *line = g_strdup_printf("  link down: %s\r\n", joined);
    QDict *link;
    QListEntry *entry;
    const char *next;

    g_assert_cmpint(qlist_size(list), ==, 1);
    link = qobject_to(QDict, qlist_peek(list));
    QLIST_FOREACH_ENTRY(qdict_get_qlist(link, "down-reasons"), entry) {
        QString *reason = qobject_to(QString, qlist_entry_obj(entry));

        g_string_append_printf(found, "%s%s", found->len ? "," : "",
                               qstring_get_str(reason));
    }
    g_assert_cmpstr(found->str, ==, reasons);
    g_assert_cmpint(qdict_get_bool(link, "up"), ==, !*reasons);
    qobject_unref(resp);

    /* The line under the client's own */
    next = strstr(hmp, client);
    g_assert_nonnull(next);
    next = strstr(next, "\r\n") + 2;
    if (*reasons) {
        g_autofree char *shown = g_strndup(next, strlen(line));

        g_assert_cmpstr(shown, ==, line);
    } else {
        g_assert_false(g_str_has_prefix(next, "  link down:"));
    }
}

/*
 * The user's set_link off and the pair's hold are reasons of their own:
 * set_link on does not lift a hold, and the pair letting go of a NIC,
 * as when the other NIC is unplugged, does not lift the user's off.
 */
static void test_link_reasons(void)
{
    g_autofree char *active = NULL;
    Guest g;

    guest_start(&g, "rtl8139", NULL);
    primary_driver(&g, true);
    active = pair_active(g.qts);
    g_assert_cmpstr(active, ==, "primary");
    check_link_reasons(g.qts, "nic0", "");
    check_link_reasons(g.qts, "hs0", "");
    check_link_reasons(g.qts, "nic1", "hold");
    check_link_reasons(g.qts, "hs1", "hold");

    set_link(&g, "nic1", false);
    check_link_reasons(g.qts, "nic1", "admin,hold");
    check_link_reasons(g.qts, "hs1", "hold");
    set_link(&g, "nic1", true);
    check_link_reasons(g.qts, "nic1", "hold");
    set_link(&g, "nic1", false);

    unplug(&g, true);
    check_link_reasons(g.qts, "nic1", "admin");
    check_link_reasons(g.qts, "hs1", "");
    set_link(&g, "nic1", true);
    check_link_reasons(g.qts, "nic1", "");
    guest_stop(&g);
}

/*
 * The fallback's backend is a stream socket that nobody has connected
 * to yet: its link is down for a reason of its own, which neither the
 * pair nor set_link may lift.  Before, set_link on lifted it and the
 * next frame from the guest went to a socket that was not there.
 */
static void test_stream_backend(void)
{
    g_autofree char *tmpdir = g_dir_make_tmp("failover-pair-XXXXXX", NULL);
    g_autofree char *path = g_strdup_printf("%s/stream", tmpdir);
    g_autofree char *netdev = g_strdup_printf(
        "stream,id=hs1,server=on,addr.type=unix,addr.path=%s", path);
    Config c = { .fallback_netdev = netdev };
    g_autofree char *fallback = NULL;
    g_autofree char *primary = NULL;
    Guest g;
    int fd;

    guest_start_config(&g, &c);
    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    fallback = pair_active(g.qts);
    g_assert_cmpstr(fallback, ==, "fallback");

    /* The user's word does not connect the socket */
    set_link(&g, "hs1", false);
    check_link_reasons(g.qts, "hs1", "admin,disconnected");
    set_link(&g, "hs1", true);
    set_link(&g, "nic1", true);
    check_link_reasons(g.qts, "hs1", "disconnected");
    check_link_reasons(g.qts, "nic1", "");
    rtl8139_send(&g, "nobody-listens");
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'query-status' }");

    /* Once a peer connects, frames go through */
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(fd, >=, 0);
    {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };

        g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
        g_assert_cmpint(connect(fd, (struct sockaddr *)&addr,
                                sizeof(addr)), ==, 0);
    }
    /* Let QEMU accept the connection */
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'query-status' }");
    rtl8139_send(&g, "peer-listens");
    g_assert_true(frame_arrives(fd, "peer-listens"));

    /* A held fallback sends nothing, connected or not */
    primary_driver(&g, true);
    primary = pair_active(g.qts);
    g_assert_cmpstr(primary, ==, "primary");
    check_link_reasons(g.qts, "nic1", "hold");
    check_link_reasons(g.qts, "hs1", "hold");
    rtl8139_send(&g, "held-down");
    g_assert_false(frame_arrives(fd, "held-down"));

    close(fd);
    guest_stop(&g);
    unlink(path);
    rmdir(tmpdir);
}

/* The fallback reaches its backend through a hub: the pair works alike */
static void test_hub_backend(void)
{
    Config c = {
        .fallback_netdev = "hubport,id=hs1,hubid=1 "
                           "-netdev user,id=hs2 "
                           "-netdev hubport,id=hp2,hubid=1,netdev=hs2",
    };
    static const Step steps[] = {
        NONE_UP,
        OP(FALLBACK_UP), STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
        LINK("hs1", false), EXPECT("fallback", false, false),
        LINK("hs1", true), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        LINK("hs1", true), PRIMARY_ACTIVE,
        OP(PRIMARY_DOWN), STEP(DELAY_NS), FALLBACK_ACTIVE,
        { 0 },
    };
    Guest g;

    guest_start_config(&g, &c);
    run_steps(&g, steps);
    guest_stop(&g);
}

/*
 * The self-announcement of @nic's MAC address: a broadcast RARP request
 * for itself, as a switch sees it after migration.
 */
static void announce_frame(Guest *g, const char *nic, uint8_t *frame)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", nic);
    QDict *rsp = qtest_qmp(g->qts, "{ 'execute': 'qom-get', 'arguments': "
                           "{ 'path': %s, 'property': 'mac' } }", path);
    static const uint8_t rarp[] = {
        0x80, 0x35,         /* ethertype RARP */
        0x00, 0x01,         /* hardware: Ethernet */
        0x08, 0x00,         /* protocol: IPv4 */
        6, 4,               /* address lengths */
        0x00, 0x03,         /* reverse request */
    };
    uint8_t mac[6];

    g_assert_cmpint(sscanf(qdict_get_str(rsp, "return"),
                           "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1],
                           &mac[2], &mac[3], &mac[4], &mac[5]), ==, 6);
    qobject_unref(rsp);
    memset(frame, 0, 60);
    memset(frame, 0xff, 6);
    memcpy(frame + 6, mac, 6);
    memcpy(frame + 12, rarp, sizeof(rarp));
    memcpy(frame + 22, mac, 6);
    memcpy(frame + 32, mac, 6);
}

/*
 * When the pair gives a NIC the link, it announces that NIC's MAC on the
 * NIC's backend, so that a switch in front of both backends forwards to
 * the new port at once; with announce=off it sends nothing.
 */
static void test_announce(gconstpointer opaque)
{
    bool announce = GPOINTER_TO_INT(opaque);
    int primary_fd, fallback_fd;
    uint8_t primary_frame[60], fallback_frame[60];
    g_autofree char *active = NULL;
    Config c = { .pair_props = announce ? NULL : "announce=off" };
    Guest g;

    guest_start_sockets(&g, &c, &primary_fd, &fallback_fd);
    announce_frame(&g, "nic0", primary_frame);
    announce_frame(&g, "nic1", fallback_frame);

    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    active = pair_active(g.qts);
    g_assert_cmpstr(active, ==, "fallback");
    g_assert_cmpint(bytes_arrive(fallback_fd, fallback_frame, 60), ==,
                    announce);
    g_assert_false(bytes_arrive(primary_fd, primary_frame, 60));

    primary_driver(&g, true);
    g_free(active);
    active = pair_active(g.qts);
    g_assert_cmpstr(active, ==, "primary");
    g_assert_cmpint(bytes_arrive(primary_fd, primary_frame, 60), ==,
                    announce);

    close(primary_fd);
    close(fallback_fd);
    guest_stop(&g);
}

/*
 * A guest keeps the MTU of the driver it started with: the pair warns
 * when the link would move between two different ones, and only then.
 */
static void test_mtu(gconstpointer opaque)
{
    bool differ = GPOINTER_TO_INT(opaque);
    static const char warning[] = "*warning: failover-pair 'pair0': the "
        "guest's MTU changes when the link moves between primary 'nic0' "
        "(MTU 9000) and fallback 'nic1' (MTU 1500)*";
    Config c = { .extra = differ ? "-global virtio-net-pci.host_mtu=9000" :
                                   "-global virtio-net-pci.host_mtu=1500" };
    Guest g;

    /* In a child, whose stderr QEMU shares */
    if (g_test_subprocess()) {
        guest_start_config(&g, &c);
        guest_stop(&g);
        return;
    }
    g_test_trap_subprocess(NULL, 0, 0);
    g_test_trap_assert_passed();
    if (differ) {
        g_test_trap_assert_stderr(warning);
    } else {
        g_test_trap_assert_stderr_unmatched("*MTU*");
    }
}

typedef struct ModelCase {
    const char *name;
    const char *machine;
    const char *primary;
    const char *fallback;
} ModelCase;

static const ModelCase model_cases[] = {
    { "q35/virtio-net+e1000e", "q35", "virtio-net-pci", "e1000e" },
    { "q35/virtio-net+igb", "q35", "virtio-net-pci", "igb" },
    { "q35/virtio-net+vmxnet3", "q35", "virtio-net-pci", "vmxnet3" },
    { "pc/e1000e+rtl8139", "pc", "e1000e", "rtl8139" },
    { "q35/vmxnet3+e1000e", "q35", "vmxnet3", "e1000e" },
};

/*
 * Both links down from power-on as the guest reads them; the fallback
 * after the delay; the primary at once, taking the fallback's link; none
 * after a reset.
 */
static void test_model(gconstpointer opaque)
{
    const ModelCase *c = opaque;
    ModelNic primary = { .model = c->primary };
    ModelNic fallback = { .model = c->fallback };
    g_autofree char *active = NULL;
    QTestState *qts;
    QPCIBus *bus;

    qts = qtest_initf("-machine %s -nodefaults "
                      "-netdev user,id=hs0 -netdev user,id=hs1 "
                      "-device %s%s,id=nic0,netdev=hs0,addr=%d "
                      "-device %s%s,id=nic1,netdev=hs1,addr=%d "
                      "-device failover-pair,id=pair0,primary=nic0,"
                      "fallback=nic1,fallback-delay-ms=%d",
                      c->machine,
                      c->primary, g_str_has_prefix(c->primary, "virtio")
                      ? ",disable-modern=on" : "", PRIMARY_SLOT,
                      c->fallback, g_str_has_prefix(c->fallback, "virtio")
                      ? ",disable-modern=on" : "", FALLBACK_SLOT, DELAY_MS);
    bus = qpci_new_pc(qts, NULL);
    model_nic_map(bus, &primary, PRIMARY_SLOT);
    model_nic_map(bus, &fallback, FALLBACK_SLOT);

    g_assert_false(model_link(&primary));
    g_assert_false(model_link(&fallback));

    model_driver(qts, &fallback, true);
    qtest_clock_step(qts, DELAY_NS - 1);
    g_assert_false(model_link(&fallback));
    qtest_clock_step(qts, 1);
    active = pair_active(qts);
    g_assert_cmpstr(active, ==, "fallback");
    g_assert_true(model_link_settled(qts, &fallback));
    g_assert_false(model_link(&primary));

    model_driver(qts, &primary, true);
    g_free(active);
    active = pair_active(qts);
    g_assert_cmpstr(active, ==, "primary");
    g_assert_false(model_link(&fallback));
    g_assert_true(model_link_settled(qts, &primary));

    /* The primary's driver goes: the fallback gets the link back */
    model_driver(qts, &primary, false);
    qtest_clock_step(qts, DELAY_NS);
    g_free(active);
    active = pair_active(qts);
    g_assert_cmpstr(active, ==, "fallback");
    g_assert_false(model_link(&primary));
    g_assert_true(model_link_settled(qts, &fallback));

    qtest_qmp_assert_success(qts, "{ 'execute': 'system_reset' }");
    qtest_qmp_eventwait(qts, "RESET");
    g_free(active);
    active = pair_active(qts);
    g_assert_cmpstr(active, ==, "none");
    /* The reset unmapped the BARs: map them again, as firmware would */
    primary.bar = qpci_iomap(primary.dev, model_bar(primary.model), NULL);
    fallback.bar = qpci_iomap(fallback.dev, model_bar(fallback.model), NULL);
    qpci_device_enable(primary.dev);
    qpci_device_enable(fallback.dev);
    g_assert_false(model_link(&primary));
    g_assert_false(model_link(&fallback));

    model_stop(qts, bus, &primary, &fallback);
}

/* The NICs and the pair in some order and syntax of -device options */
typedef struct OrderCase {
    const char *name;
    const char *devices;
} OrderCase;

/*
 * QEMU creates the JSON -device options after the key=value ones, so
 * most of these put the pair before its NICs
 */
static const OrderCase order_cases[] = {
    { "kv/pair-first", KV_PAIR KV_NIC0 KV_NIC1 },
    { "kv/pair-between", KV_NIC0 KV_PAIR KV_NIC1 },
    { "json/pair-first", JSON_PAIR JSON_NIC0 JSON_NIC1 },
    { "json/pair-last", JSON_NIC0 JSON_NIC1 JSON_PAIR },
    { "json-nics/kv-pair-last", JSON_NIC0 JSON_NIC1 KV_PAIR },
    { "json-nics/kv-pair-first", KV_PAIR JSON_NIC0 JSON_NIC1 },
    { "mixed-nics/kv-pair-last", JSON_NIC0 KV_NIC1 KV_PAIR },
    { "mixed-nics/json-pair-first", JSON_PAIR KV_NIC0 JSON_NIC1 },
};

/* Whatever the order, the pair forms and works */
static void test_order(gconstpointer opaque)
{
    const OrderCase *c = opaque;
    Config conf = { .devices = c->devices };
    Guest g;
    QDict *pair;

    guest_start_config(&g, &conf);
    pair = query_pair(g.qts);
    g_assert_true(qdict_get_bool(pair, "formed"));
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "none");
    qobject_unref(pair);
    g_assert_false(primary_link(&g));
    g_assert_false(fallback_link(&g));
    primary_driver(&g, true);
    g_assert_true(primary_link(&g));
    g_assert_false(fallback_link(&g));
    guest_stop(&g);
}

/* A bad -device line, and the text its error must contain */
typedef struct BadCase {
    const char *name;
    const char *device;
    const char *error;
} BadCase;

static const BadCase bad_cases[] = {
    { "no-id", "primary=nic0,fallback=nic1", "a failover-pair needs an id" },
    { "no-primary", "id=pair0,fallback=nic1", "'primary' is required" },
    { "no-fallback", "id=pair0,primary=nic0", "'fallback' is required" },
    { "unknown-primary", "id=pair0,primary=nope,fallback=nic1",
      "primary 'nope' not found" },
    { "unknown-fallback", "id=pair0,primary=nic0,fallback=nope",
      "fallback 'nope' not found" },
    { "same", "id=pair0,primary=nic0,fallback=nic0",
      "primary and fallback are both 'nic0'" },
    { "not-a-nic", "id=pair0,primary=nic0,fallback=ser0",
      "fallback 'ser0' is not a NIC" },
    { "fallback-no-status", "id=pair0,primary=nic0,fallback=nic2",
      "fallback 'nic2' (ne2k_pci) does not report guest driver status" },
    { "name-shared", "id=pair0,primary=nic0,fallback=e1000.0 "
      "-device rtl8139,id=e1000.0 -device e1000",
      "fallback 'e1000.0': another NIC (e1000) has the same network name" },
    { "virtio-failover", "id=pair0,primary=nic4,fallback=nic1 "
      "-device virtio-net-pci,id=nic4,failover=on",
      "primary 'nic4' has failover=on, which a failover-pair cannot "
      "combine with" },
    { "already-paired", "id=pair0,primary=nic0,fallback=nic1 "
      "-device failover-pair,id=pair1,primary=nic3,fallback=nic1",
      "fallback 'nic1' is already in another failover-pair" },
    { "delay-range",
      "id=pair0,primary=nic0,fallback=nic1,fallback-delay-ms=60001",
      "fallback-delay-ms 60001 out of range (0 to 60000)" },
    { "announce-initial-range",
      "id=pair0,primary=nic0,fallback=nic1,announce-initial-ms=100001",
      "announce-initial-ms 100001 out of range (0 to 100000)" },
    { "announce-max-range",
      "id=pair0,primary=nic0,fallback=nic1,announce-max-ms=100001",
      "announce-max-ms 100001 out of range (0 to 100000)" },
    { "announce-rounds-range",
      "id=pair0,primary=nic0,fallback=nic1,announce-rounds=0",
      "announce-rounds 0 out of range (1 to 1000)" },
    { "announce-step-range",
      "id=pair0,primary=nic0,fallback=nic1,announce-step-ms=10001",
      "announce-step-ms 10001 out of range (1 to 10000)" },
};

typedef struct BadTest {
    const BadCase *c;
    /* The pair before the other devices, else after them */
    bool pair_first;
} BadTest;

/* The devices test_bad starts next to the pair */
static const char *const bad_devices[] = {
    "virtio-net-pci", "rtl8139", "ne2k_pci", "virtio-serial-pci",
};

/*
 * The pair is cold-plug only, so a bad one stops QEMU from starting:
 * run it directly and read the error from stderr.
 */
static void test_bad(gconstpointer opaque)
{
    const BadTest *t = opaque;
    const BadCase *c = t->c;
    g_autofree char *pair = g_strdup_printf("-device failover-pair,%s ",
                                            c->device);
    g_autofree char *cmd = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) gerr = NULL;
    int status;

    cmd = g_strdup_printf("%s -machine pc -nodefaults -display none "
                          "-accel qtest -net none %s"
                          "-device virtio-net-pci,id=nic0 "
                          "-device rtl8139,id=nic1 "
                          "-device ne2k_pci,id=nic2 "
                          "-device virtio-net-pci,id=nic3 "
                          "-device virtio-serial-pci,id=ser0 %s",
                          g_getenv("QTEST_QEMU_BINARY"),
                          t->pair_first ? pair : "",
                          t->pair_first ? "" : pair);
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, &err, &status,
                                            &gerr));
    g_assert_cmpint(status, !=, 0);
    g_test_message("stderr: %s", err);
    g_assert_nonnull(strstr(err, c->error));
}

/*
 * Net client names are not unique: an anonymous e1000 plugged later is
 * "e1000.0", as the pair's fallback is.  The pair holds and lets go of
 * its own NIC only.
 */
static void test_name_shared(void)
{
    Config c = {
        .devices = "-netdev user,id=hs2 "
                   "-device virtio-net-pci,id=nic0,netdev=hs0,"
                   "disable-modern=on,addr=3 "
                   "-device rtl8139,id=e1000.0,netdev=hs1,addr=4 "
                   "-device failover-pair,id=pair0,primary=nic0,"
                   "fallback=e1000.0,fallback-delay-ms=500",
    };
    ModelNic other = { .model = "e1000" };
    Guest g;

    guest_start_config(&g, &c);
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'device_add', "
                             "'arguments': { 'driver': 'e1000', "
                             "'netdev': 'hs2', 'addr': '5' } }");
    model_nic_map(g.bus, &other, 5);
    g_assert_true(model_link_settled(g.qts, &other));

    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    assert_active(g.qts, "fallback");
    primary_driver(&g, true);
    assert_active(g.qts, "primary");
    g_assert_false(fallback_link(&g));
    g_assert_true(model_link_settled(g.qts, &other));
    /* A reset takes the link from its net client, which the pair left be */
    system_reset(&g);
    qpci_iounmap(other.dev, other.bar);
    g_free(other.dev);
    model_nic_map(g.bus, &other, 5);
    g_assert_true(model_link_settled(g.qts, &other));

    qpci_iounmap(other.dev, other.bar);
    g_free(other.dev);
    guest_stop(&g);
}

/* What the pair says, once the changes a reset held back are out */
static void assert_active_soon(QTestState *qts, const char *want)
{
    int i;

    for (i = 0; i < 100; i++) {
        g_autofree char *active = pair_active(qts);

        if (!strcmp(active, want)) {
            return;
        }
        g_usleep(1000);
    }
    assert_active(qts, want);
}

/*
 * A function level reset of the NIC that has the link: the pair holds
 * it once the reset is over, and the driver that brings it up again
 * right away has it back at once.
 */
static void test_nic_flr(void)
{
    Config c = { .machine = "q35", .fallback = "igb" };
    uint8_t cap;
    Guest g;

    guest_start_config(&g, &c);
    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    assert_active(g.qts, "fallback");
    g_assert_true(fallback_link_settled(&g));

    cap = qpci_find_capability(g.fallback, PCI_CAP_ID_EXP, 0);
    g_assert_cmpint(cap, !=, 0);
    qpci_config_writew(g.fallback, cap + PCI_EXP_DEVCTL,
                       PCI_EXP_DEVCTL_BCR_FLR);
    assert_active_soon(g.qts, "none");
    /* The reset cleared the command register and the BARs */
    guest_map(&g);
    g_assert_false(fallback_link(&g));
    g_assert_false(primary_link(&g));

    fallback_driver(&g, true);
    assert_active(g.qts, "fallback");
    g_assert_true(fallback_link_settled(&g));
    guest_stop(&g);
}

/* PIIX4 PM: where firmware puts its I/O ports, and how it enables them */
#define PIIX4_PM_DEVFN QPCI_DEVFN(1, 3)
#define PIIX4_PM_BASE 0xb000
#define PIIX4_PMBA 0x40
#define PIIX4_PMREGMISC 0x80
#define ACPI_PM1_CNT 4
#define ACPI_PM1_CNT_SLP_S3 ((1 << 13) | (1 << 10))

/*
 * A guest that suspends to RAM and wakes up: its NICs are reset, and
 * their drivers bring them up again.  The pair is not: it keeps when
 * the drivers came, so the fallback's driver has its link back at
 * once, without a new delay.
 */
static void test_wakeup(void)
{
    QPCIDevice *pm;
    Guest g;

    guest_start(&g, NULL, "");
    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    assert_active(g.qts, "fallback");

    pm = qpci_device_find(g.bus, PIIX4_PM_DEVFN);
    g_assert_nonnull(pm);
    qpci_config_writel(pm, PIIX4_PMBA, PIIX4_PM_BASE | 1);
    qpci_config_writeb(pm, PIIX4_PMREGMISC, 1);
    qtest_outw(g.qts, PIIX4_PM_BASE + ACPI_PM1_CNT, ACPI_PM1_CNT_SLP_S3);
    qtest_qmp_eventwait(g.qts, "SUSPEND");
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'system_wakeup' }");
    qtest_qmp_eventwait(g.qts, "WAKEUP");
    assert_active_soon(g.qts, "none");

    guest_map(&g);
    fallback_driver(&g, true);
    assert_active(g.qts, "fallback");
    g_assert_true(fallback_link(&g));
    g_free(pm);
    guest_stop(&g);
}

/* rtl8139's receiver, as 8139too sets it up: ring, broadcasts accepted */
#define RTL_RX_BUF_START 0x30
#define RTL_RX_CONFIG 0x44
#define RTL_RCR_ACCEPT_BROADCAST 0x08
#define RTL_RX_RING 0x500000
#define RTL_RX_RING_SIZE (8 * KiB + 16)

/* A NIC the user plugs on a backend the pair's NIC left behind */
static QPCIDevice *plug_other(Guest *g, const char *id, const char *netdev,
                              const char *mac, int slot, QPCIBar *bar)
{
    g_autofree char *addr = g_strdup_printf("%d", slot);
    QPCIDevice *dev;

    qtest_qmp_device_add(g->qts, "rtl8139", id,
                         "{ 'netdev': %s, 'mac': %s, 'addr': %s }",
                         netdev, mac, addr);
    dev = guest_find(g, slot);
    g_assert_nonnull(dev);
    *bar = qpci_iomap(dev, 0, NULL);
    return dev;
}

/* A frame from @fd's backend, received in the rtl8139's ring */
static bool rtl8139_receives(Guest *g, int fd, const char *payload)
{
    uint8_t frame[4 + 60] = {
        0, 0, 0, 60,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x99,
        0x08, 0x00,
    };
    g_autofree uint8_t *ring = g_malloc(RTL_RX_RING_SIZE);
    int i;

    memcpy(frame + 18, payload, MIN(strlen(payload), sizeof(frame) - 18));
    g_assert_cmpint(send(fd, frame, sizeof(frame), 0), ==, sizeof(frame));
    for (i = 0; i < 50; i++) {
        qtest_memread(g->qts, RTL_RX_RING, ring, RTL_RX_RING_SIZE);
        if (memmem(ring, RTL_RX_RING_SIZE, payload, strlen(payload))) {
            return true;
        }
        g_usleep(10 * 1000);
    }
    return false;
}

/*
 * The pair held the fallback's link down when the fallback was
 * unplugged.  A NIC the user then plugs on that backend, under an id of
 * its own, is none of the pair's business: frames cross it both ways.
 */
static void test_replug_other_id(void)
{
    int fd;
    Config c = { };
    Guest g;

    guest_start_sockets(&g, &c, NULL, &fd);
    run_steps(&g, reach[BOTH]);
    unplug(&g, false);

    g.fallback = plug_other(&g, "other1", "hs1", "52:54:00:00:00:a1",
                            FALLBACK_SLOT, &g.fallback_bar);
    qtest_memset(g.qts, RTL_RX_RING, 0, RTL_RX_RING_SIZE);
    qpci_io_writel(g.fallback, g.fallback_bar, RTL_RX_BUF_START, RTL_RX_RING);
    qpci_io_writel(g.fallback, g.fallback_bar, RTL_RX_CONFIG,
                   RTL_RCR_ACCEPT_BROADCAST);
    fallback_driver(&g, true);
    rtl8139_send(&g, "to-the-backend");
    g_assert_true(frame_arrives(fd, "to-the-backend"));
    g_assert_true(rtl8139_receives(&g, fd, "to-the-guest"));

    close(fd);
    guest_stop(&g);
}

/* Which NICs leave, in which state of the pair */
typedef struct UnplugCase {
    PairState state;
    bool primary;
    bool fallback;
} UnplugCase;

static UnplugCase unplug_cases[PAIR_STATE__MAX * 3];

/*
 * Unplug one NIC of the pair, or both, in each state: nothing the pair
 * held stays held, on the NIC left or on the backends of those gone;
 * nothing the pair had pending (a delay, an announcement) comes later;
 * and query-failover-pairs shows what is left.
 */
static void test_unplug_release(gconstpointer opaque)
{
    const UnplugCase *c = opaque;
    static const char *const ids[2] = { "nic0", "nic1" };
    static const char *const others[2] = { "other0", "other1" };
    static const char *const macs[2] = {
        "52:54:00:00:00:a0", "52:54:00:00:00:a1",
    };
    static const char *const roles[2] = { "primary", "fallback" };
    static const int slots[2] = { PRIMARY_SLOT, FALLBACK_SLOT };
    bool gone[2] = { c->primary, c->fallback };
    QPCIDevice *plugged[2] = { NULL, NULL };
    QPCIBar bar;
    int fd[2];
    Config conf = { };
    QDict *pair, *ev;
    Guest g;
    int i;

    guest_start_sockets(&g, &conf, &fd[0], &fd[1]);
    run_steps(&g, reach[c->state]);
    count_pair_events(g.qts);

    for (i = 0; i < 2; i++) {
        if (gone[i]) {
            unplug(&g, i == 0);
        }
    }
    /* Past any delay and announcement rounds that were pending */
    qtest_clock_step(g.qts, 10 * DELAY_NS);
    while ((ev = qtest_qmp_event_ref(g.qts, "FAILOVER_PAIR_CHANGED"))) {
        g_assert_cmpstr(qdict_get_str(qdict_get_qdict(ev, "data"), "active"),
                        ==, "none");
        qobject_unref(ev);
    }

    pair = query_pair(g.qts);
    g_assert_false(qdict_get_bool(pair, "formed"));
    g_assert_cmpstr(qdict_get_str(pair, "active"), ==, "none");
    for (i = 0; i < 2; i++) {
        QDict *m = qdict_get_qdict(pair, roles[i]);

        g_assert_cmpstr(qdict_get_str(m, "device"), ==, ids[i]);
        g_assert_cmpint(qdict_haskey(m, "qom-path"), ==, !gone[i]);
        if (gone[i]) {
            g_assert_false(qdict_haskey(m, "link-up"));
        } else {
            g_assert_true(qdict_get_bool(m, "link-up"));
        }
    }
    qobject_unref(pair);

    /* Every backend carries frames again, for the NIC now on it */
    for (i = 0; i < 2; i++) {
        if (gone[i]) {
            g_autofree char *netdev = g_strdup_printf("hs%d", i);

            plugged[i] = plug_other(&g, others[i], netdev, macs[i], slots[i],
                                    &bar);
        }
    }
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'announce-self',"
                             "  'arguments': { 'initial': 50, 'max': 550,"
                             "                 'rounds': 1, 'step': 50 } }");
    for (i = 0; i < 2; i++) {
        uint8_t frame[60];

        announce_frame(&g, gone[i] ? others[i] : ids[i], frame);
        g_assert_true(bytes_arrive(fd[i], frame, sizeof(frame)));
        g_free(plugged[i]);
        close(fd[i]);
    }
    guest_stop(&g);
}

/*
 * The announcements the pair may start in a second: two at once, then
 * one every 250 ms (FAILOVER_PAIR_ANNOUNCE_BURST and _GAP_NS)
 */
#define ANNOUNCES_PER_SECOND (2 + 4)

/* How many times @frame comes out of @fd within a while */
static int frames_arriving(int fd, const uint8_t *frame, size_t size)
{
    g_autofree uint8_t *buf = g_malloc(64 * KiB);
    int64_t end = g_get_monotonic_time() + G_USEC_PER_SEC / 2;
    size_t len = 0;
    const uint8_t *at;
    int n = 0;

    while (g_get_monotonic_time() < end && len < 64 * KiB) {
        ssize_t got = recv(fd, buf + len, 64 * KiB - len, MSG_DONTWAIT);

        if (got > 0) {
            len += got;
        }
        g_usleep(10 * 1000);
    }
    for (at = buf; (at = memmem(at, len - (at - buf), frame, size));
         at += size) {
        n++;
    }
    return n;
}

/*
 * A guest flips its virtio-net driver a hundred times in a second while
 * its fallback driver is ready.  The announcements leave the guest's
 * writes and are bounded: a few on the primary's backend, not one per
 * switch; the pair ends on the primary, and announces it.  A switch
 * after a quiet while is announced at once.
 */
static void test_announce_storm(void)
{
    int primary_fd, fallback_fd;
    uint8_t frame[60];
    Config c = { };
    Guest g;
    int i, n;

    guest_start_sockets(&g, &c, &primary_fd, &fallback_fd);
    announce_frame(&g, "nic0", frame);
    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    assert_active(g.qts, "fallback");

    /*
     * A quiet while, then a switch: announced with no time passing, and
     * only once: the next rounds wait for the VM's clock to move
     */
    qtest_clock_step(g.qts, SECOND_NS);
    primary_driver(&g, true);
    assert_active(g.qts, "primary");
    g_assert_cmpint(frames_arriving(primary_fd, frame, sizeof(frame)), ==,
                    1);

    for (i = 0; i < 100; i++) {
        primary_driver(&g, i % 2);
        qtest_clock_step(g.qts, SECOND_NS / 100);
    }
    n = frames_arriving(primary_fd, frame, sizeof(frame));
    g_test_message("%d announcements in the storm's second", n);
    g_assert_cmpint(n, >=, 1);
    g_assert_cmpint(n, <=, ANNOUNCES_PER_SECOND);

    /* The last switch gave the primary the link; its announcement comes */
    assert_active(g.qts, "primary");
    g_assert_true(primary_link(&g));
    qtest_clock_step(g.qts, SECOND_NS);
    g_assert_cmpint(frames_arriving(primary_fd, frame, sizeof(frame)), >=,
                    1);

    close(primary_fd);
    close(fallback_fd);
    guest_stop(&g);
}

/*
 * The pair's own announce-* properties say how many announcements a
 * switch makes, on the VM's clock: the migration parameters do not.
 */
static void test_announce_rounds(void)
{
    int fd;
    uint8_t frame[60];
    Config c = {
        .pair_props = "announce-rounds=3,announce-initial-ms=10,"
                      "announce-step-ms=10,announce-max-ms=20",
        .extra = "-global migration.announce-rounds=10",
    };
    Guest g;

    guest_start_sockets(&g, &c, NULL, &fd);
    announce_frame(&g, "nic1", frame);
    fallback_driver(&g, true);
    qtest_clock_step(g.qts, DELAY_NS);
    assert_active(g.qts, "fallback");
    g_assert_cmpint(frames_arriving(fd, frame, sizeof(frame)), ==, 1);
    qtest_clock_step(g.qts, SECOND_NS);
    g_assert_cmpint(frames_arriving(fd, frame, sizeof(frame)), ==, 2);
    close(fd);
    guest_stop(&g);
}

/*
 * The guest breaks its virtio-net NIC: it offers a transmit buffer
 * whose descriptor index is out of the queue (virtio_error()).  The
 * driver status is failed, and the pair falls back as for any driver
 * that left.
 */
static void test_primary_breaks(void)
{
    uint64_t ring = VIRTIO_RX_RING(PRIMARY_SLOT) + 0x4000;
    g_autofree char *status = NULL;
    Guest g;
    int i;

    guest_start(&g, NULL, "");
    fallback_driver(&g, true);
    primary_driver(&g, true);
    assert_active(g.qts, "primary");

    /* Transmit queue 1: its one offered buffer has index 999 of 256 */
    qtest_memset(g.qts, ring, 0, 3 * 4096);
    qtest_writew(g.qts, ring + VIRTIO_RX_AVAIL + 4, 999);
    qtest_writew(g.qts, ring + VIRTIO_RX_AVAIL + 2, 1);
    qpci_io_writew(g.primary, g.primary_bar, VIRTIO_PCI_QUEUE_SEL, 1);
    qpci_io_writel(g.primary, g.primary_bar, VIRTIO_PCI_QUEUE_PFN,
                   ring >> 12);
    qpci_io_writew(g.primary, g.primary_bar, VIRTIO_PCI_QUEUE_NOTIFY, 1);

    /* The transmit bottom half runs in the main loop: wait for it */
    for (i = 0; i < 500 && g_strcmp0(status, "failed"); i++) {
        QDict *pair = query_pair(g.qts);

        g_free(status);
        status = g_strdup(qdict_get_str(qdict_get_qdict(pair, "primary"),
                                        "driver-status"));
        qobject_unref(pair);
        g_usleep(10 * 1000);
    }
    g_assert_cmpstr(status, ==, "failed");
    assert_active(g.qts, "none");
    qtest_clock_step(g.qts, DELAY_NS);
    assert_active(g.qts, "fallback");
    g_assert_false(primary_link(&g));
    g_assert_true(fallback_link_settled(&g));

    /* A reset by its driver mends it: it is the primary again */
    primary_driver(&g, false);
    primary_driver(&g, true);
    assert_active(g.qts, "primary");
    guest_stop(&g);
}

/*
 * Drivers that want a link before they go on, as some boot firmware
 * has them (docs/devel/driver-status.rst): each must get the network
 * through a pair whose primary has no driver, within the tries it makes.
 */
typedef enum LinkFirstDriver {
    /* e1000 family: autonegotiation through, or no receive at all */
    AUTONEG_FIRST,
    /* rtl8139: one look at the link right after enabling, then retry */
    READ_ONCE,
    /* the same, and the NIC stopped when the look finds no link */
    READ_ONCE_HALT,
    /* a boot loader that moves to another NIC and comes back */
    GIVE_BACK,
} LinkFirstDriver;

typedef struct LinkFirstCase {
    const char *name;
    const char *machine;
    const char *fallback;
    LinkFirstDriver driver;
    /* The primary's driver is ready during the first tries */
    bool primary_ready;
    /*
     * The driver resets the NIC through its I/O BAR, as Linux's e1000
     * does, which QEMU's e1000 does not implement: the device does not
     * see the driver start
     */
    bool io_reset;
} LinkFirstCase;

static const LinkFirstCase link_first_cases[] = {
    { "autoneg-first/e1000", "pc", "e1000", AUTONEG_FIRST },
    { "autoneg-first/e1000e", "q35", "e1000e", AUTONEG_FIRST },
    { "autoneg-first/igb", "q35", "igb", AUTONEG_FIRST },
    { "autoneg-first/e1000/primary-ready", "pc", "e1000", AUTONEG_FIRST,
      true },
    { "autoneg-first/e1000e/primary-ready", "q35", "e1000e", AUTONEG_FIRST,
      true },
    { "autoneg-first/igb/primary-ready", "q35", "igb", AUTONEG_FIRST, true },
    { "autoneg-first/e1000/io-reset", "pc", "e1000", AUTONEG_FIRST,
      .io_reset = true },
    { "read-once/rtl8139", "pc", "rtl8139", READ_ONCE },
    { "read-once/rtl8139/halt", "pc", "rtl8139", READ_ONCE_HALT },
    { "read-once/rtl8139/primary-ready", "pc", "rtl8139", READ_ONCE, true },
    { "give-back/rtl8139", "pc", "rtl8139", GIVE_BACK },
    { "give-back/e1000", "pc", "e1000", GIVE_BACK },
    { "give-back/e1000e", "q35", "e1000e", GIVE_BACK },
    { "give-back/igb", "q35", "igb", GIVE_BACK },
    { "give-back/vmxnet3", "q35", "vmxnet3", GIVE_BACK },
};

/* The e1000 family's PHY, through MDIC */
#define E1000_CTRL_SLU (1u << 6)
#define E1000_MDIC_WRITE_PHY1 ((1u << 26) | (1u << 21))
#define MII_BMCR 0x00
#define MII_BMCR_RESET 0x8000
#define MII_BMCR_ANENABLE 0x1000
#define MII_BMCR_ANRESTART 0x0200
#define MII_BMSR 0x01
#define MII_BMSR_AN_COMP 0x0020
/* How long, and how often, the firmware waits for autonegotiation */
#define AUTONEG_WAIT_NS (8 * SECOND_NS)
#define AUTONEG_POLL_NS (SECOND_NS / 10)
/* rtl8139 */
#define RTL_MEDIA_STATUS 0x58
#define RTL_MSR_LINKB 0x04
/* Receive queue 0, as e1000, e1000e (legacy descriptors) and igb have it */
#define E1000_RCTL_BAM (1u << 15)
#define E1000_RDBAL 0x2800
#define IGB_RDBAL0 0xc000
#define RDBAH 0x04
#define RDLEN 0x08
#define IGB_SRRCTL 0x0c
#define RDH 0x10
#define RDT 0x18
#define IGB_SRRCTL_ADV_ONEBUF (1u << 25)
#define IGB_SRRCTL_BSIZE_2K 2
#define RX_RING 0x400000
#define RX_BUFFER 0x410000
#define RX_BUFFER_SIZE 2048

static uint16_t phy_read(ModelNic *n, int reg)
{
    uint32_t mdic;

    qpci_io_writel(n->dev, n->bar, E1000_MDIC,
                   E1000_MDIC_READ_PHY1 | (reg << 16));
    mdic = qpci_io_readl(n->dev, n->bar, E1000_MDIC);
    g_assert_true(mdic & E1000_MDIC_READY);
    return mdic;
}

static void phy_write(ModelNic *n, int reg, uint16_t val)
{
    qpci_io_writel(n->dev, n->bar, E1000_MDIC,
                   E1000_MDIC_WRITE_PHY1 | (reg << 16) | val);
}

/*
 * The start of a network command of a boot firmware's e1000 driver:
 * reset, link up, PHY reset, autonegotiation restarted
 */
static void autoneg_first_start(ModelNic *n, bool io_reset)
{
    if (!io_reset) {
        qpci_io_writel(n->dev, n->bar, E1000_CTRL, E1000_CTRL_RST);
    }
    qpci_io_writel(n->dev, n->bar, E1000_CTRL, E1000_CTRL_SLU);
    phy_write(n, MII_BMCR, MII_BMCR_RESET);
    phy_write(n, MII_BMCR, MII_BMCR_ANENABLE | MII_BMCR_ANRESTART);
}

/*
 * Then it polls the BMSR, here for @ns more: the time it waited, or
 * @ns or more if autonegotiation did not complete
 */
static int64_t autoneg_first_wait(QTestState *qts, ModelNic *n, int64_t ns)
{
    int64_t waited;

    for (waited = 0; waited < ns; waited += AUTONEG_POLL_NS) {
        if (phy_read(n, MII_BMSR) & MII_BMSR_AN_COMP) {
            break;
        }
        qtest_clock_step(qts, AUTONEG_POLL_NS);
    }
    return waited;
}

/*
 * One such network command up to where it enables anything: whether
 * autonegotiation completed in the 8 seconds it waits.  If not, "no
 * valid link": it returns without enabling anything.
 */
static bool autoneg_first_try(QTestState *qts, ModelNic *n, bool io_reset)
{
    autoneg_first_start(n, io_reset);
    return autoneg_first_wait(qts, n, AUTONEG_WAIT_NS) < AUTONEG_WAIT_NS;
}

/* What the firmware does once the link is there: a receive ring, RX on */
static void autoneg_first_open(QTestState *qts, ModelNic *n)
{
    uint64_t rdbal = model_is(n, "igb") ? IGB_RDBAL0 : E1000_RDBAL;

    qtest_memset(qts, RX_RING, 0, 4096);
    qtest_memset(qts, RX_BUFFER, 0, RX_BUFFER_SIZE);
    qtest_writeq(qts, RX_RING, RX_BUFFER);
    if (model_is(n, "igb")) {
        qpci_io_writel(n->dev, n->bar, rdbal + IGB_SRRCTL,
                       IGB_SRRCTL_ADV_ONEBUF | IGB_SRRCTL_BSIZE_2K);
    }
    qpci_io_writel(n->dev, n->bar, rdbal, RX_RING);
    qpci_io_writel(n->dev, n->bar, rdbal + RDBAH, 0);
    qpci_io_writel(n->dev, n->bar, rdbal + RDLEN, 8 * 16);
    qpci_io_writel(n->dev, n->bar, rdbal + RDH, 0);
    qpci_io_writel(n->dev, n->bar, rdbal + RDT, 1);
    qpci_io_writel(n->dev, n->bar, E1000_TCTL, E1000_EN);
    qpci_io_writel(n->dev, n->bar, E1000_RCTL, E1000_EN | E1000_RCTL_BAM);
}

/* The backend sends a broadcast frame: whether the guest receives it */
static bool autoneg_first_receives(QTestState *qts, int sock)
{
    uint8_t frame[4 + 60] = {
        0, 0, 0, 60,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x99,
        0x08, 0x00,
        'l', 'i', 'n', 'k', '-', 'f', 'i', 'r', 's', 't',
    };
    g_autofree uint8_t *buf = g_malloc(RX_BUFFER_SIZE);
    int i;

    g_assert_cmpint(send(sock, frame, sizeof(frame), 0), ==, sizeof(frame));
    for (i = 0; i < 100; i++) {
        qtest_memread(qts, RX_BUFFER, buf, RX_BUFFER_SIZE);
        if (memmem(buf, RX_BUFFER_SIZE, "link-first", 10)) {
            return true;
        }
        g_usleep(20 * 1000);
        /* e1000 queues what arrives in the second after RCTL is written */
        qtest_clock_step(qts, SECOND_NS / 10);
    }
    return false;
}

/*
 * One network command of a boot firmware's rtl8139 driver: reset,
 * receive and transmit on, one look at the link.  Whether it was up.
 */
static bool read_once_try(ModelNic *n, bool halt)
{
    bool up;

    qpci_io_writeb(n->dev, n->bar, RTL_CHIPCMD, RTL_CHIPCMD_RESET);
    qpci_io_writeb(n->dev, n->bar, RTL_CHIPCMD, RTL_CHIPCMD_RX_TX);
    up = !(qpci_io_readb(n->dev, n->bar, RTL_MEDIA_STATUS) & RTL_MSR_LINKB);
    if (!up && halt) {
        qpci_io_writeb(n->dev, n->bar, RTL_CHIPCMD, 0);
    }
    return up;
}

/* A boot loader leaves the NIC as iPXE does, for another one */
static void give_back(ModelNic *n)
{
    if (model_is(n, "rtl8139")) {
        qpci_io_writeb(n->dev, n->bar, RTL_CHIPCMD, 0);
        qpci_io_writeb(n->dev, n->bar, RTL_CHIPCMD, RTL_CHIPCMD_RESET);
    } else if (model_is(n, "vmxnet3")) {
        qpci_io_writel(n->dev, n->bar, VMXNET3_REG_CMD,
                       VMXNET3_CMD_QUIESCE_DEV);
        qpci_io_writel(n->dev, n->bar, VMXNET3_REG_CMD,
                       VMXNET3_CMD_RESET_DEV);
    } else {
        qpci_io_writel(n->dev, n->bar, E1000_RCTL, 0);
        qpci_io_writel(n->dev, n->bar, E1000_TCTL, 0);
        qpci_io_writel(n->dev, n->bar, E1000_CTRL, E1000_CTRL_RST);
    }
}

static void test_autoneg_first(QTestState *qts, const LinkFirstCase *c,
                               ModelNic *primary, ModelNic *fallback,
                               int sock)
{
    bool done;

    done = autoneg_first_try(qts, fallback, c->io_reset);
    if (c->primary_ready) {
        /* It polled in vain: the primary kept the only link */
        g_assert_false(done);
        assert_active(qts, "primary");
        g_assert_false(model_link(fallback));
        g_assert_true(model_link_settled(qts, primary));
        /* The guest moves on from the primary, as firmware that rotates */
        model_driver(qts, primary, false);
    }
    if (!done) {
        qtest_clock_step(qts, SECOND_NS);
        done = autoneg_first_try(qts, fallback, c->io_reset);
    }
    g_assert_true(done);
    autoneg_first_open(qts, fallback);
    assert_active(qts, "fallback");
    g_assert_true(model_link(fallback));
    g_assert_false(model_link(primary));
    g_assert_true(autoneg_first_receives(qts, sock));
}

static void test_read_once(QTestState *qts, const LinkFirstCase *c,
                           ModelNic *primary, ModelNic *fallback)
{
    bool halt = c->driver == READ_ONCE_HALT;

    /* Right after the first enable, the primary's driver has its delay */
    g_assert_false(read_once_try(fallback, halt));
    if (c->primary_ready) {
        qtest_clock_step(qts, SECOND_NS);
        g_assert_false(read_once_try(fallback, halt));
        assert_active(qts, "primary");
        g_assert_true(model_link(primary));
        model_driver(qts, primary, false);
    }
    /* The user retries a second later: its own reset does not hold it */
    qtest_clock_step(qts, SECOND_NS);
    g_assert_true(read_once_try(fallback, halt));
    assert_active(qts, "fallback");
    g_assert_false(model_link(primary));
}

static void test_give_back(QTestState *qts, ModelNic *primary,
                           ModelNic *fallback)
{
    model_driver(qts, fallback, true);
    qtest_clock_step(qts, DELAY_NS);
    assert_active(qts, "fallback");
    g_assert_true(model_link_settled(qts, fallback));

    /* Given back, the link goes, and nothing comes up without a driver */
    give_back(fallback);
    assert_active(qts, "none");
    g_assert_false(model_link(fallback));
    qtest_clock_step(qts, 10 * SECOND_NS);
    assert_active(qts, "none");
    g_assert_false(model_link(fallback));
    g_assert_false(model_link(primary));

    /* Taken again long after: the primary's driver gets its delay again */
    model_driver(qts, fallback, true);
    qtest_clock_step(qts, DELAY_NS - 1);
    assert_active(qts, "none");
    qtest_clock_step(qts, 1);
    assert_active(qts, "fallback");
    g_assert_true(model_link_settled(qts, fallback));

    /* Given back and taken again at once: the link is there at once */
    give_back(fallback);
    model_driver(qts, fallback, true);
    assert_active(qts, "fallback");
    g_assert_true(model_link_settled(qts, fallback));
    g_assert_false(model_link(primary));
}

/* When the VM migrates while an autoneg-first driver waits */
typedef struct LinkFirstMigration {
    const char *machine;
    /* How long the driver has been polling */
    int64_t polled;
} LinkFirstMigration;

/*
 * In the fallback delay, past QEMU's autonegotiation; and with the link
 * given and autonegotiation under way, on the latest machine type and
 * on the last one without driver status (nor the driver's wish).
 */
static const LinkFirstMigration link_first_migrations[] = {
    { "pc", 6 * AUTONEG_POLL_NS },
    { "pc", 12 * AUTONEG_POLL_NS },
    { "pc-i440fx-10.2", 6 * AUTONEG_POLL_NS },
    { "pc-i440fx-10.2", 12 * AUTONEG_POLL_NS },
};

/*
 * The VM migrates while an autoneg-first driver waits for its link: the
 * driver still sees autonegotiation complete within its 8 seconds, and
 * the pair gives it the link.
 */
static void test_link_first_migrate(gconstpointer opaque)
{
    const LinkFirstMigration *m = opaque;
    Config c = { .machine = m->machine, .fallback = "e1000" };
    int64_t left = AUTONEG_WAIT_NS - m->polled;
    int64_t waited;
    Guest src, dst;
    ModelNic n;

    guest_start_config(&src, &c);
    n = fallback_nic(&src);
    autoneg_first_start(&n, false);
    g_assert_cmpint(autoneg_first_wait(src.qts, &n, m->polled), ==,
                    m->polled);
    migrate(&src, &dst, &c);
    guest_stop(&src);

    n = fallback_nic(&dst);
    waited = autoneg_first_wait(dst.qts, &n, left);
    g_assert_cmpint(waited, <, left);
    autoneg_first_open(dst.qts, &n);
    /* With what is left of the delay, if any */
    while (!fallback_link(&dst) && waited < left) {
        qtest_clock_step(dst.qts, AUTONEG_POLL_NS);
        waited += AUTONEG_POLL_NS;
    }
    assert_active(dst.qts, "fallback");
    g_assert_true(fallback_link(&dst));
    guest_stop(&dst);
}

static void test_link_first(gconstpointer opaque)
{
    const LinkFirstCase *c = opaque;
    ModelNic primary = { .model = "virtio-net-pci" };
    ModelNic fallback = { .model = c->fallback };
    QTestState *qts;
    QPCIBus *bus;
    int sock[2];

    g_assert_cmpint(socketpair(PF_UNIX, SOCK_STREAM, 0, sock), ==, 0);
    qts = qtest_initf("-machine %s -nodefaults "
                      "-netdev user,id=hs0 -netdev socket,id=hs1,fd=%d "
                      "-device virtio-net-pci,id=nic0,netdev=hs0,"
                      "disable-modern=on,addr=%d "
                      "-device %s,id=nic1,netdev=hs1,addr=%d "
                      "-device failover-pair,id=pair0,primary=nic0,"
                      "fallback=nic1,fallback-delay-ms=%d",
                      c->machine, sock[1], PRIMARY_SLOT, c->fallback,
                      FALLBACK_SLOT, DELAY_MS);
    close(sock[1]);
    bus = qpci_new_pc(qts, NULL);
    model_nic_map(bus, &primary, PRIMARY_SLOT);
    model_nic_map(bus, &fallback, FALLBACK_SLOT);
    if (c->primary_ready) {
        model_driver(qts, &primary, true);
        assert_active(qts, "primary");
    }

    switch (c->driver) {
    case AUTONEG_FIRST:
        test_autoneg_first(qts, c, &primary, &fallback, sock[0]);
        break;
    case READ_ONCE:
    case READ_ONCE_HALT:
        test_read_once(qts, c, &primary, &fallback);
        break;
    case GIVE_BACK:
        test_give_back(qts, &primary, &fallback);
        break;
    }

    model_stop(qts, bus, &primary, &fallback);
    close(sock[0]);
}

static bool have_devices(const char *const *devices, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (!qtest_has_device(devices[i])) {
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    static const char *const devices[] = {
        "failover-pair", "virtio-net-pci", "rtl8139", "e1000",
    };
    int i;

    g_test_init(&argc, &argv, NULL);

    if (!have_devices(devices, ARRAY_SIZE(devices))) {
        g_test_skip("failover-pair, virtio-net-pci, rtl8139 or e1000 "
                    "not built");
        return g_test_run();
    }
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = g_strdup_printf("/failover-pair/%s",
                                                cases[i].name);
        qtest_add_data_func(path, &cases[i], test_case);
    }
    for (i = 0; i < ARRAY_SIZE(model_cases); i++) {
        const ModelCase *c = &model_cases[i];
        g_autofree char *path = g_strdup_printf("/failover-pair/model/%s",
                                                c->name);

        if (qtest_has_machine(c->machine) && qtest_has_device(c->primary) &&
            qtest_has_device(c->fallback)) {
            qtest_add_data_func(path, c, test_model);
        }
    }
    qtest_add_func("/failover-pair/event", test_event);
    qtest_add_func("/failover-pair/hmp", test_hmp);
    qtest_add_func("/failover-pair/query", test_query);
    qtest_add_func("/failover-pair/hotplug-refused", test_hotplug_refused);
    qtest_add_func("/failover-pair/introspect-cycle", test_introspect_cycle);
    if (qtest_has_accel("tcg")) {
        for (i = 0; i < ARRAY_SIZE(storms); i++) {
            g_autofree char *path = g_strdup_printf("/failover-pair/storm/%s",
                                                    storms[i].name);
            qtest_add_data_func(path, &storms[i], test_storm);
        }
    }
    qtest_add_func("/failover-pair/migrate-during-delay",
                   test_migrate_during_delay);
    qtest_add_func("/failover-pair/migrate-driver-reset",
                   test_migrate_driver_reset);
    qtest_add_func("/failover-pair/link-reasons", test_link_reasons);
    qtest_add_func("/failover-pair/backend/stream", test_stream_backend);
    qtest_add_func("/failover-pair/backend/hub", test_hub_backend);
    qtest_add_data_func("/failover-pair/announce/on", GINT_TO_POINTER(true),
                        test_announce);
    qtest_add_data_func("/failover-pair/announce/off", GINT_TO_POINTER(false),
                        test_announce);
    qtest_add_data_func("/failover-pair/mtu/differ", GINT_TO_POINTER(true),
                        test_mtu);
    qtest_add_data_func("/failover-pair/mtu/same", GINT_TO_POINTER(false),
                        test_mtu);
    for (i = 0; i < ARRAY_SIZE(state_cases); i++) {
        StateCase *c = &state_cases[i];
        g_autofree char *path = NULL;

        c->fallback = fallback_models[i / PAIR_STATE__MAX];
        c->state = i % PAIR_STATE__MAX;
        path = g_strdup_printf("/failover-pair/migrate/%s/%s",
                               c->fallback, state_names[c->state]);
        qtest_add_data_func(path, c, test_migrate_state);
    }
    for (i = 0; i < ARRAY_SIZE(dissolve_cases); i++) {
        DissolveCase *c = &dissolve_cases[i];
        g_autofree char *path = NULL;

        c->fallback = fallback_models[i / (2 * PAIR_STATE__MAX)];
        c->primary = i / PAIR_STATE__MAX % 2;
        c->state = i % PAIR_STATE__MAX;
        path = g_strdup_printf("/failover-pair/dissolve/%s/%s/%s-unplug",
                               c->fallback,
                               state_names[c->state],
                               c->primary ? "primary" : "fallback");
        qtest_add_data_func(path, c, test_dissolve_migrate);
    }
    for (i = 0; i < ARRAY_SIZE(hostile_cases); i++) {
        HostileCase *c = &hostile_cases[i];
        g_autofree char *path = NULL;

        c->fallback = fallback_models[i / (PAIR_STATE__MAX * DISRUPTION__MAX)];
        c->state = i / DISRUPTION__MAX % PAIR_STATE__MAX;
        c->disruption = i % DISRUPTION__MAX;
        path = g_strdup_printf("/failover-pair/hostile/%s/%s/%s",
                               c->fallback,
                               state_names[c->state],
                               disruption_names[c->disruption]);
        qtest_add_data_func(path, c, test_hostile);
    }
    if (have_devices(bad_devices, ARRAY_SIZE(bad_devices))) {
        for (i = 0; i < ARRAY_SIZE(bad_cases) * 2; i++) {
            BadTest *t = g_new0(BadTest, 1);
            g_autofree char *path = NULL;

            t->c = &bad_cases[i / 2];
            t->pair_first = i % 2;
            path = g_strdup_printf("/failover-pair/bad/%s/%s", t->c->name,
                                   t->pair_first ? "pair-first"
                                                 : "pair-last");
            qtest_add_data_func_full(path, t, test_bad, g_free);
        }
    }
    for (i = 0; i < ARRAY_SIZE(order_cases); i++) {
        g_autofree char *path = g_strdup_printf("/failover-pair/order/%s",
                                                order_cases[i].name);

        qtest_add_data_func(path, &order_cases[i], test_order);
    }
    for (i = 0; i < ARRAY_SIZE(restore_cases); i++) {
        DissolveCase *c = &restore_cases[i];
        g_autofree char *path = NULL;

        c->fallback = "rtl8139";
        c->primary = i / PAIR_STATE__MAX;
        c->state = i % PAIR_STATE__MAX;
        c->keep_pair = true;
        path = g_strdup_printf("/failover-pair/dissolve/with-pair/%s/%s-unplug",
                               state_names[c->state],
                               c->primary ? "primary" : "fallback");
        qtest_add_data_func(path, c, test_dissolve_migrate);
    }
    qtest_add_func("/failover-pair/virtio-bound", test_virtio_bound);
    qtest_add_func("/failover-pair/unplug/replug-other-id",
                   test_replug_other_id);
    qtest_add_func("/failover-pair/announce/storm", test_announce_storm);
    qtest_add_func("/failover-pair/announce/rounds", test_announce_rounds);
    qtest_add_func("/failover-pair/primary-breaks", test_primary_breaks);
    qtest_add_func("/failover-pair/name-shared", test_name_shared);
    qtest_add_func("/failover-pair/reset/flr", test_nic_flr);
    qtest_add_func("/failover-pair/reset/wakeup", test_wakeup);
    qtest_add_func("/failover-pair/migrate-two-pairs", test_migrate_two_pairs);
    qtest_add_func("/failover-pair/migrate-to-no-pair",
                   test_migrate_to_no_pair);
    qtest_add_func("/failover-pair/migrate-dissolved-to-formed",
                   test_migrate_dissolved_to_formed);
    for (i = 0; i < ARRAY_SIZE(no_pair_cases); i++) {
        g_autofree char *path = g_strdup_printf(
            "/failover-pair/migrate-from-no-pair/%s", no_pair_cases[i].name);

        qtest_add_data_func(path, &no_pair_cases[i],
                            test_migrate_from_no_pair);
    }
    for (i = 0; i < ARRAY_SIZE(unplug_cases); i++) {
        UnplugCase *c = &unplug_cases[i];
        g_autofree char *path = NULL;

        c->state = i / 3;
        c->primary = i % 3 != 1;
        c->fallback = i % 3 != 0;
        path = g_strdup_printf("/failover-pair/unplug/%s/%s",
                               state_names[c->state],
                               !c->fallback ? "primary" :
                               !c->primary ? "fallback" : "both");
        qtest_add_data_func(path, c, test_unplug_release);
    }
    for (i = 0; i < ARRAY_SIZE(link_first_cases); i++) {
        const LinkFirstCase *c = &link_first_cases[i];
        g_autofree char *path = g_strdup_printf("/failover-pair/link-first/%s",
                                                c->name);

        if (qtest_has_machine(c->machine) && qtest_has_device(c->fallback)) {
            qtest_add_data_func(path, c, test_link_first);
        }
    }
    for (i = 0; i < ARRAY_SIZE(link_first_migrations); i++) {
        const LinkFirstMigration *m = &link_first_migrations[i];
        g_autofree char *path = g_strdup_printf(
            "/failover-pair/link-first/migrate/%s/%" PRId64 "ms",
            m->machine, m->polled / 1000000);

        if (qtest_has_machine(m->machine)) {
            qtest_add_data_func(path, m, test_link_first_migrate);
        }
    }
    qtest_add_data_func("/failover-pair/restore-missing/primary",
                        GINT_TO_POINTER(true), test_restore_missing);
    qtest_add_data_func("/failover-pair/restore-missing/fallback",
                        GINT_TO_POINTER(false), test_restore_missing);
    return g_test_run();
}
