/*
 * QTest: NICs migrate to and from QEMU without guest driver status
 *
 * Guest driver status adds migration state to rtl8139, e1000, e1000e,
 * igb and vmxnet3, and changes what e1000, e1000e and igb show in a PHY
 * register; both are off on the machine types of released versions.
 * Each test plays a NIC's driver into a state it can leave the NIC in,
 * migrates, and compares what the guest reads on both sides.
 *
 * Run it with QTEST_QEMU_BINARY_SRC and QTEST_QEMU_BINARY_DST naming an
 * emulator with driver status and one without, each way, as upstream's
 * migration-compat job runs migration-test; unset, both sides are
 * QTEST_QEMU_BINARY.
 *
 * - On the machine types of the last release, migration completes, the
 *   guest reads the same registers on both sides, a destination with
 *   driver status rebuilds the status its registers say, and, where the
 *   two emulators differ, the destination's emulator shows the guest the
 *   same registers when the same driver runs on it without migrating.
 * - On the newest machine types, where both emulators have driver
 *   status, the status arrives as well, also where the registers say
 *   less.
 *
 * The states include one for each compat property to guard: one whose
 * status the registers do not tell, for each model with a driver status
 * subsection, and one whose PHY link bit differs.  A machine type or a
 * driver status that one of the emulators lacks fails the run, instead
 * of leaving cases out.
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
#include "standard-headers/linux/virtio_net.h"

#define ENV_SRC "QTEST_QEMU_BINARY_SRC"
#define ENV_DST "QTEST_QEMU_BINARY_DST"

#define NIC_SLOT 4
#define FRAME_LEN 60
#define VIRTIO_NET_TIMEOUT_US (30 * 1000 * 1000)
#define NIC_PATH "/machine/peripheral/nic0"

#define RTL8139_TXCONFIG    0x40
#define RTL8139_RXCONFIG    0x44
#define RTL8139_CHIPCMD     0x37
#define RTL8139_CMD_RESET   0x10
#define RTL8139_CMD_RXENB   0x08
#define RTL8139_CMD_TXENB   0x04
#define RTL8139_MEDIASTATUS 0x58
#define RTL8139_BMSR        0x64
#define RTL8139_CPCMD       0xe0

#define E1000_CTRL          0x0000
#define E1000_CTRL_RST      0x04000000
#define E1000_STATUS        0x0008
#define E1000_CTRL_EXT      0x0018
#define E1000_CTRL_EXT_DRV_LOAD 0x10000000
#define E1000_MDIC          0x0020
#define E1000_MDIC_PHY_1    (1 << 21)
#define E1000_MDIC_OP_READ  0x08000000
#define E1000_MDIC_READY    0x10000000
#define E1000_RCTL          0x0100
#define E1000_RCTL_EN       0x00000002
#define E1000_RCTL_BAM      0x00008000
#define E1000_TCTL          0x0400
#define E1000_TCTL_EN       0x00000002
#define E1000_TCTL_PSP      0x00000008
/* BMCR, BMSR and the real-time link bit's specific status register */
#define PHY_BMCR            0x00
#define PHY_BMSR            0x01
#define PHY_SPEC_STATUS     0x11

#define VMXNET3_REG_VRRS    0x00
#define VMXNET3_REG_UVRS    0x08
#define VMXNET3_REG_DSAL    0x10
#define VMXNET3_REG_DSAH    0x18
#define VMXNET3_REG_CMD     0x20
#define VMXNET3_CMD_ACTIVATE_DEV 0xcafe0000
#define VMXNET3_CMD_QUIESCE_DEV  0xcafe0001
#define VMXNET3_CMD_GET_LINK     0xf00d0002
#define VMXNET3_SHARED      0x100000
#define VMXNET3_MAGIC       0xbabefee1
#define VMXNET3_SHARED_MTU  56

/* virtio-net's config space: mac[6], then the link status */
#define VIRTIO_NET_CONFIG_STATUS 6

typedef enum NicState {
    STATE_POWER_ON,
    /* The driver reset the NIC and did not open it */
    STATE_PROBED,
    /*
     * The driver reset the NIC and did not take it with DRV_LOAD, as
     * boot firmware does (e1000e and igb)
     */
    STATE_RESET,
    /* The driver bound the NIC (DRIVER_OK) and did not open it (virtio) */
    STATE_BOUND,
    STATE_OPENED,
    /* Opened, then a frame took every receive buffer it had (virtio) */
    STATE_DRAINED,
    /* Opened, then closed */
    STATE_CLOSED,
    /* The NIC refused the configuration of the driver's open */
    STATE_REFUSED,
    /* Opened, then set_link off */
    STATE_LINK_OFF,
    STATE__MAX
} NicState;

static const char *const state_names[STATE__MAX] = {
    [STATE_POWER_ON] = "power-on",
    [STATE_PROBED] = "probed",
    [STATE_RESET] = "reset",
    [STATE_BOUND] = "bound",
    [STATE_OPENED] = "opened",
    [STATE_DRAINED] = "drained",
    [STATE_CLOSED] = "closed",
    [STATE_REFUSED] = "refused",
    [STATE_LINK_OFF] = "link-off",
};

typedef struct Nic {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *pdev;
    QPCIBar bar;
    QVirtioPCIDevice *vio;
    /* The backend: frames written to sock[0] reach the NIC */
    int sock[2];
    /* virtio-net's receive queue 0, its buffer and where they live */
    QGuestAllocator alloc;
    QVirtQueue *rx;
    uint32_t rx_head;
} Nic;

typedef struct NicModel {
    const char *name;
    /* The -device option, without id, netdev and addr */
    const char *device;
    int bar;
    void (*probe)(Nic *n);
    void (*open)(Nic *n);
    void (*close)(Nic *n);
    /* NULL where the model has no such state */
    void (*reset)(Nic *n);
    void (*bind)(Nic *n);
    void (*drain)(Nic *n);
    void (*refuse)(Nic *n);
    /* Appends what the guest reads, as text */
    void (*read)(Nic *n, GString *regs);
    /*
     * The driver status each state gives, and the one its registers
     * alone say, which a destination that gets no status rebuilds; NULL
     * where the model has no such state
     */
    const char *status[STATE__MAX];
    const char *from_registers[STATE__MAX];
} NicModel;

typedef struct TestCase {
    const char *machine;
    const NicModel *model;
    NicState state;
    /* Both emulators report driver status: it must arrive */
    bool status_arrives;
} TestCase;


static void rtl8139_chipcmd(Nic *n, uint8_t cmd)
{
    qpci_io_writeb(n->pdev, n->bar, RTL8139_CHIPCMD, cmd);
}

static void rtl8139_probe(Nic *n)
{
    rtl8139_chipcmd(n, RTL8139_CMD_RESET);
}

static void rtl8139_open(Nic *n)
{
    rtl8139_chipcmd(n, RTL8139_CMD_RXENB | RTL8139_CMD_TXENB);
}

static void rtl8139_close(Nic *n)
{
    rtl8139_chipcmd(n, 0);
}

static void rtl8139_read(Nic *n, GString *regs)
{
    g_string_append_printf(regs, "ChipCmd=0x%x CpCmd=0x%x MediaStatus=0x%x "
                           "BMSR=0x%x TxConfig=0x%x RxConfig=0x%x",
                           qpci_io_readb(n->pdev, n->bar, RTL8139_CHIPCMD),
                           qpci_io_readw(n->pdev, n->bar, RTL8139_CPCMD),
                           qpci_io_readb(n->pdev, n->bar,
                                         RTL8139_MEDIASTATUS),
                           qpci_io_readw(n->pdev, n->bar, RTL8139_BMSR),
                           qpci_io_readl(n->pdev, n->bar, RTL8139_TXCONFIG),
                           qpci_io_readl(n->pdev, n->bar, RTL8139_RXCONFIG));
}

static void e1000_write(Nic *n, uint32_t reg, uint32_t val)
{
    qpci_io_writel(n->pdev, n->bar, reg, val);
}

/* e1000_reset_hw() of Linux's e1000, e1000e and igb drivers */
static void e1000_reset_hw(Nic *n)
{
    e1000_write(n, E1000_RCTL, 0);
    e1000_write(n, E1000_TCTL, E1000_TCTL_PSP);
    e1000_write(n, E1000_CTRL, E1000_CTRL_RST);
}

static void e1000_probe(Nic *n)
{
    e1000_reset_hw(n);
}

/* Boot firmware resets e1000e and igb without ever setting DRV_LOAD */
static void e1000x_reset(Nic *n)
{
    e1000_reset_hw(n);
}

static void e1000_open(Nic *n)
{
    e1000_write(n, E1000_TCTL, E1000_TCTL_PSP);
    e1000_write(n, E1000_RCTL, E1000_RCTL_BAM | E1000_RCTL_EN);
    e1000_write(n, E1000_TCTL, E1000_TCTL_PSP | E1000_TCTL_EN);
}

static void e1000_close(Nic *n)
{
    e1000_write(n, E1000_RCTL, E1000_RCTL_BAM);
    e1000_write(n, E1000_TCTL, E1000_TCTL_PSP);
}

/* e1000e and igb: the driver takes the device with DRV_LOAD, and keeps it */
static void e1000x_probe(Nic *n)
{
    e1000_reset_hw(n);
    e1000_write(n, E1000_CTRL_EXT, E1000_CTRL_EXT_DRV_LOAD);
}

static void e1000x_open(Nic *n)
{
    e1000x_probe(n);
    e1000_open(n);
}

static void e1000x_close(Nic *n)
{
    e1000_write(n, E1000_TCTL, E1000_TCTL_PSP);
    e1000_write(n, E1000_RCTL, 0);
    e1000x_probe(n);
}

static uint16_t e1000_phy_read(Nic *n, uint32_t reg)
{
    uint32_t mdic;

    e1000_write(n, E1000_MDIC, (reg << 16) | E1000_MDIC_PHY_1 |
                E1000_MDIC_OP_READ);
    mdic = qpci_io_readl(n->pdev, n->bar, E1000_MDIC);
    g_assert_true(mdic & E1000_MDIC_READY);
    return mdic;
}

static void e1000_read(Nic *n, GString *regs)
{
    static const struct {
        const char *name;
        uint32_t reg;
    } mac[] = {
        { "CTRL", E1000_CTRL }, { "STATUS", E1000_STATUS },
        { "CTRL_EXT", E1000_CTRL_EXT }, { "RCTL", E1000_RCTL },
        { "TCTL", E1000_TCTL },
    };
    int i;

    for (i = 0; i < ARRAY_SIZE(mac); i++) {
        g_string_append_printf(regs, "%s=0x%x ", mac[i].name,
                               qpci_io_readl(n->pdev, n->bar, mac[i].reg));
    }
    g_string_append_printf(regs, "PHY[BMCR]=0x%x PHY[BMSR]=0x%x "
                           "PHY[0x11]=0x%x", e1000_phy_read(n, PHY_BMCR),
                           e1000_phy_read(n, PHY_BMSR),
                           e1000_phy_read(n, PHY_SPEC_STATUS));
}

static void vmxnet3_cmd(Nic *n, uint32_t cmd)
{
    qpci_io_writel(n->pdev, n->bar, VMXNET3_REG_CMD, cmd);
}

/* The driver's shared area in guest RAM, which migrates with it */
static void vmxnet3_activate(Nic *n, bool valid)
{
    qtest_memset(n->qts, VMXNET3_SHARED, 0, 4096);
    if (valid) {
        qtest_writel(n->qts, VMXNET3_SHARED, VMXNET3_MAGIC);
        qtest_writel(n->qts, VMXNET3_SHARED + VMXNET3_SHARED_MTU, 1500);
    }
    qpci_io_writel(n->pdev, n->bar, VMXNET3_REG_DSAL, VMXNET3_SHARED);
    qpci_io_writel(n->pdev, n->bar, VMXNET3_REG_DSAH, 0);
    vmxnet3_cmd(n, VMXNET3_CMD_ACTIVATE_DEV);
}

static void vmxnet3_probe(Nic *n)
{
    qpci_io_writel(n->pdev, n->bar, VMXNET3_REG_VRRS, 1);
    qpci_io_writel(n->pdev, n->bar, VMXNET3_REG_UVRS, 1);
    vmxnet3_cmd(n, VMXNET3_CMD_GET_LINK);
}

static void vmxnet3_open(Nic *n)
{
    vmxnet3_probe(n);
    vmxnet3_activate(n, true);
}

static void vmxnet3_close(Nic *n)
{
    vmxnet3_cmd(n, VMXNET3_CMD_QUIESCE_DEV);
}

static void vmxnet3_refuse(Nic *n)
{
    vmxnet3_probe(n);
    vmxnet3_activate(n, false);
}

static void vmxnet3_read(Nic *n, GString *regs)
{
    /* The last command's result first: a new command replaces it */
    g_string_append_printf(regs, "CMD=0x%x ",
                           qpci_io_readl(n->pdev, n->bar, VMXNET3_REG_CMD));
    vmxnet3_cmd(n, VMXNET3_CMD_GET_LINK);
    g_string_append_printf(regs, "link=0x%x",
                           qpci_io_readl(n->pdev, n->bar, VMXNET3_REG_CMD));
}

static void virtio_net_probe(Nic *n)
{
    qvirtio_reset(&n->vio->vdev);
    qvirtio_set_acknowledge(&n->vio->vdev);
    qvirtio_set_driver(&n->vio->vdev);
    qvirtio_set_features(&n->vio->vdev,
                         qvirtio_get_features(&n->vio->vdev) &
                         ~QVIRTIO_F_BAD_FEATURE);
}

/* Linux's virtnet_probe(): receive queue 0 set up, empty, DRIVER_OK */
static void virtio_net_bind(Nic *n)
{
    virtio_net_probe(n);
    n->rx = qvirtqueue_setup(&n->vio->vdev, &n->alloc, 0);
    qvirtio_set_driver_ok(&n->vio->vdev);
}

/* virtnet_open(): a receive buffer, and a kick */
static void virtio_net_open(Nic *n)
{
    uint64_t buf = guest_alloc(&n->alloc, 2048);

    virtio_net_bind(n);
    n->rx_head = qvirtqueue_add(n->qts, n->rx, buf, 2048, true, false);
    qvirtqueue_kick(n->qts, &n->vio->vdev, n->rx, n->rx_head);
}

/* A broadcast frame arrives and takes the only buffer */
static void virtio_net_drain(Nic *n)
{
    uint8_t frame[FRAME_LEN];
    uint32_t len = htonl(FRAME_LEN);

    virtio_net_open(n);
    /* To the broadcast address, from 00:00:00:00:00:00 */
    memset(frame, 0, FRAME_LEN);
    memset(frame, 0xff, 6);
    g_assert_cmpint(send(n->sock[0], &len, sizeof(len), 0), ==, sizeof(len));
    g_assert_cmpint(send(n->sock[0], frame, FRAME_LEN, 0), ==, FRAME_LEN);
    qvirtio_wait_used_elem(n->qts, &n->vio->vdev, n->rx, n->rx_head, NULL,
                           VIRTIO_NET_TIMEOUT_US);
}

static void virtio_net_close(Nic *n)
{
    qvirtio_reset(&n->vio->vdev);
}

/*
 * Through the bus: libqos's accessors want a driver that negotiated.
 * Without the announce bit, which a destination sets for a driver that
 * negotiated GUEST_ANNOUNCE, with or without driver status.
 */
static void virtio_net_read(Nic *n, GString *regs)
{
    QVirtioDevice *vdev = &n->vio->vdev;
    uint16_t status = vdev->bus->config_readw(vdev,
                                              VIRTIO_NET_CONFIG_STATUS);

    g_string_append_printf(regs, "status=0x%x features=0x%" PRIx64
                           " config.status=0x%x",
                           vdev->bus->get_status(vdev),
                           vdev->bus->get_features(vdev),
                           status & ~VIRTIO_NET_S_ANNOUNCE);
}

/*
 * rtl8139 and e1000: the driver's reset leaves registers that say none,
 * and only the status says a driver is there
 */
#define RESET_ONLY_IN_STATUS                                                \
        .status = {                                                         \
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "initializing",     \
            [STATE_OPENED] = "ready", [STATE_CLOSED] = "none",              \
            [STATE_LINK_OFF] = "ready",                                     \
        },                                                                  \
        .from_registers = {                                                 \
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "none",             \
            [STATE_OPENED] = "ready", [STATE_CLOSED] = "none",              \
            [STATE_LINK_OFF] = "ready",                                     \
        }

/* e1000e and igb: DRV_LOAD says a driver owns the NIC; its close keeps it */
#define E1000X_MODEL(_name) {                                               \
        .name = _name, .device = _name, .bar = 0,                           \
        .probe = e1000x_probe, .open = e1000x_open, .close = e1000x_close,  \
        .reset = e1000x_reset, .read = e1000_read,                          \
        .status = {                                                         \
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "initializing",     \
            [STATE_RESET] = "initializing", [STATE_OPENED] = "ready",       \
            [STATE_CLOSED] = "initializing", [STATE_LINK_OFF] = "ready",    \
        },                                                                  \
        .from_registers = {                                                 \
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "initializing",     \
            [STATE_RESET] = "none", [STATE_OPENED] = "ready",               \
            [STATE_CLOSED] = "initializing", [STATE_LINK_OFF] = "ready",    \
        },                                                                  \
    }

static const NicModel models[] = {
    {
        .name = "rtl8139", .device = "rtl8139", .bar = 0,
        .probe = rtl8139_probe, .open = rtl8139_open,
        .close = rtl8139_close, .read = rtl8139_read,
        /* The reset clears ChipCmd */
        RESET_ONLY_IN_STATUS,
    }, {
        .name = "e1000", .device = "e1000", .bar = 0,
        .probe = e1000_probe, .open = e1000_open, .close = e1000_close,
        .read = e1000_read,
        /* The driver clears RCTL and TCTL before the reset */
        RESET_ONLY_IN_STATUS,
    },
    E1000X_MODEL("e1000e"),
    E1000X_MODEL("igb"),
    {
        .name = "vmxnet3", .device = "vmxnet3", .bar = 1,
        .probe = vmxnet3_probe, .open = vmxnet3_open,
        .close = vmxnet3_close, .refuse = vmxnet3_refuse,
        .read = vmxnet3_read,
        /* Only whether the device is active migrates */
        .status = {
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "initializing",
            [STATE_OPENED] = "ready", [STATE_CLOSED] = "none",
            [STATE_REFUSED] = "failed", [STATE_LINK_OFF] = "ready",
        },
        .from_registers = {
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "none",
            [STATE_OPENED] = "ready", [STATE_CLOSED] = "none",
            [STATE_REFUSED] = "none", [STATE_LINK_OFF] = "ready",
        },
    }, {
        .name = "virtio-net", .device = "virtio-net-pci,disable-modern=on",
        .bar = 0, .probe = virtio_net_probe, .open = virtio_net_open,
        .close = virtio_net_close, .bind = virtio_net_bind,
        .drain = virtio_net_drain, .read = virtio_net_read,
        /*
         * The device status byte and the receive queue: a driver that
         * opened the NIC is ready until it resets it, its buffers taken
         * or not
         */
        .status = {
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "initializing",
            [STATE_BOUND] = "initializing", [STATE_OPENED] = "ready",
            [STATE_DRAINED] = "ready", [STATE_CLOSED] = "none",
            [STATE_LINK_OFF] = "ready",
        },
        .from_registers = {
            [STATE_POWER_ON] = "none", [STATE_PROBED] = "initializing",
            [STATE_BOUND] = "initializing", [STATE_OPENED] = "ready",
            [STATE_DRAINED] = "initializing", [STATE_CLOSED] = "none",
            [STATE_LINK_OFF] = "ready",
        },
    },
};

static void nic_start(Nic *n, const char *env, const TestCase *c,
                      const char *extra)
{
    g_autofree char *args = NULL;

    memset(n, 0, sizeof(*n));
    g_assert_cmpint(socketpair(PF_UNIX, SOCK_STREAM, 0, n->sock), ==, 0);
    args = g_strdup_printf("-machine %s -nodefaults "
                           "-netdev socket,fd=%d,id=hs0 "
                           "-device %s,id=nic0,netdev=hs0,addr=%d %s",
                           c->machine, n->sock[1], c->model->device,
                           NIC_SLOT, extra);
    n->qts = qtest_init_ext(env, args, NULL, true);
    pc_alloc_init(&n->alloc, n->qts, ALLOC_NO_FLAGS);
    n->bus = qpci_new_pc(n->qts, NULL);
    if (g_str_equal(c->model->name, "virtio-net")) {
        QPCIAddress addr = { .devfn = QPCI_DEVFN(NIC_SLOT, 0) };

        n->vio = virtio_pci_new(n->bus, &addr);
        g_assert_nonnull(n->vio);
        qvirtio_pci_device_enable(n->vio);
        return;
    }
    n->pdev = qpci_device_find(n->bus, QPCI_DEVFN(NIC_SLOT, 0));
    g_assert_nonnull(n->pdev);
    qpci_device_enable(n->pdev);
    n->bar = qpci_iomap(n->pdev, c->model->bar, NULL);
}

static void nic_stop(Nic *n)
{
    if (n->rx) {
        qvirtqueue_cleanup(n->vio->vdev.bus, n->rx, &n->alloc);
    }
    alloc_destroy(&n->alloc);
    if (n->vio) {
        qvirtio_pci_device_disable(n->vio);
        g_free(n->vio->pdev);
        g_free(n->vio);
    } else {
        qpci_iounmap(n->pdev, n->bar);
        g_free(n->pdev);
    }
    qpci_free_pc(n->bus);
    qtest_quit(n->qts);
    close(n->sock[0]);
    close(n->sock[1]);
}

/* Plays the driver into @state */
static void nic_enter(Nic *n, const NicModel *model, NicState state)
{
    switch (state) {
    case STATE_POWER_ON:
        break;
    case STATE_PROBED:
        model->probe(n);
        break;
    case STATE_RESET:
        model->reset(n);
        break;
    case STATE_BOUND:
        model->bind(n);
        break;
    case STATE_OPENED:
        model->open(n);
        break;
    case STATE_DRAINED:
        model->drain(n);
        break;
    case STATE_CLOSED:
        model->open(n);
        model->close(n);
        break;
    case STATE_REFUSED:
        model->refuse(n);
        break;
    case STATE_LINK_OFF:
        model->open(n);
        qtest_qmp_assert_success(n->qts, "{ 'execute': 'set_link',"
                                 "  'arguments': { 'name': 'nic0',"
                                 "                 'up': false } }");
        break;
    default:
        g_assert_not_reached();
    }
}

static char *nic_read(Nic *n, const NicModel *model)
{
    GString *regs = g_string_new(NULL);

    model->read(n, regs);
    return g_string_free(regs, false);
}

/* NIC_PATH's driver status, or NULL where the emulator has none */
static char *driver_status(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-driver-status' }");
    QListEntry *e;
    char *status = NULL;

    if (!qdict_haskey(rsp, "return")) {
        g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "class"),
                        ==, "CommandNotFound");
        qobject_unref(rsp);
        return NULL;
    }
    QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
        QDict *info = qobject_to(QDict, qlist_entry_obj(e));

        if (g_str_equal(qdict_get_str(info, "qom-path"), NIC_PATH)) {
            status = g_strdup(qdict_get_str(info, "status"));
        }
    }
    qobject_unref(rsp);
    g_assert_nonnull(status);
    return status;
}

static char *migration_status(QTestState *qts)
{
    QDict *rsp = qtest_qmp_assert_success_ref(qts,
                                              "{ 'execute': 'query-migrate' }");
    char *status = g_strdup(qdict_get_try_str(rsp, "status"));

    qobject_unref(rsp);
    return status;
}

/* Waits for the incoming side, which does not exit when it fails */
static void migration_wait(QTestState *qts)
{
    for (;;) {
        g_autofree char *status = migration_status(qts);

        if (status && (g_str_equal(status, "completed") ||
                       g_str_equal(status, "failed"))) {
            g_assert_cmpstr(status, ==, "completed");
            return;
        }
        g_usleep(10 * 1000);
    }
}

static void migrate(Nic *src, Nic *dst)
{
    g_autofree char *dir = g_dir_make_tmp("nic-migration-XXXXXX", NULL);
    g_autofree char *sock = g_strdup_printf("%s/sock", dir);
    g_autofree char *uri = g_strdup_printf("unix:%s", sock);

    qtest_qmp_assert_success(dst->qts, "{ 'execute': 'migrate-incoming',"
                             "  'arguments': { 'uri': %s,"
                             "                 'exit-on-error': false } }",
                             uri);
    qtest_qmp_assert_success(src->qts, "{ 'execute': 'migrate',"
                             "  'arguments': { 'uri': %s } }", uri);
    migration_wait(dst->qts);
    unlink(sock);
    rmdir(dir);
}

static void test_migrate(const void *data)
{
    const TestCase *c = data;
    Nic src, dst;
    g_autofree char *before = NULL;
    g_autofree char *src_regs = NULL;
    g_autofree char *dst_regs = NULL;
    g_autofree char *src_status = NULL;
    g_autofree char *dst_status = NULL;

    nic_start(&src, ENV_SRC, c, "");
    nic_enter(&src, c->model, c->state);
    src_status = driver_status(src.qts);
    if (src_status) {
        g_assert_cmpstr(src_status, ==, c->model->status[c->state]);
    }
    before = nic_read(&src, c->model);

    /*
     * Saving can change registers (e1000 completes a pending
     * autonegotiation), and reading can change what is read next
     * (vmxnet3's CMD): compare with the source read again
     */
    nic_start(&dst, ENV_DST, c, "-incoming defer");
    migrate(&src, &dst);
    src_regs = nic_read(&src, c->model);
    dst_regs = nic_read(&dst, c->model);
    g_assert_cmpstr(dst_regs, ==, src_regs);

    /*
     * An emulator with driver status answers, whatever the source was:
     * the status that arrived, or where none can, the one the registers
     * say
     */
    dst_status = driver_status(dst.qts);
    if (c->status_arrives) {
        g_assert_cmpstr(dst_status, ==, c->model->status[c->state]);
    } else if (dst_status) {
        g_assert_cmpstr(dst_status, ==, c->model->from_registers[c->state]);
    }
    nic_stop(&dst);
    nic_stop(&src);

    /*
     * The same driver on the destination's emulator, without migrating:
     * what the guest reads must not depend on the emulator.
     */
    if (!c->status_arrives &&
        strcmp(qtest_qemu_binary(ENV_SRC), qtest_qemu_binary(ENV_DST))) {
        g_autofree char *twin_regs = NULL;
        Nic twin;

        nic_start(&twin, ENV_DST, c, "");
        nic_enter(&twin, c->model, c->state);
        twin_regs = nic_read(&twin, c->model);
        g_assert_cmpstr(twin_regs, ==, before);
        nic_stop(&twin);
    }
}

/* Whether the emulator @env names reports driver status */
static bool has_driver_status(const char *env)
{
    QTestState *qts = qtest_init_ext(env, "-machine none", NULL, true);
    QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-driver-status' }");
    bool has = qdict_haskey(rsp, "return");

    qobject_unref(rsp);
    qtest_quit(qts);
    return has;
}

/*
 * A case that cannot run is not left out: the emulators test fails,
 * naming what is missing.
 */
static void test_emulators(const void *data)
{
    g_autofree char *missing = g_strchomp(g_strdup(data));

    if (*missing) {
        g_test_message("%s", missing);
        g_test_fail();
    }
}

/*
 * Whether both emulators have @machine; if not, adds a line naming the
 * one that lacks it to @missing
 */
static bool have_machine(GString *missing, const char *machine)
{
    const char *const envs[] = { ENV_SRC, ENV_DST };
    bool have = true;
    int i;

    for (i = 0; i < ARRAY_SIZE(envs); i++) {
        if (!qtest_has_machine_with_env(envs[i], machine)) {
            g_string_append_printf(missing, "%s has no machine type %s\n",
                                   qtest_qemu_binary(envs[i]), machine);
            have = false;
        }
    }
    return have;
}

static void add_tests(GString *missing, const char *machine,
                      bool status_arrives)
{
    int i;
    NicState state;

    if (!have_machine(missing, machine)) {
        return;
    }
    for (i = 0; i < ARRAY_SIZE(models); i++) {
        for (state = 0; state < STATE__MAX; state++) {
            TestCase *c;
            g_autofree char *path = NULL;

            if (!models[i].status[state]) {
                continue;
            }
            c = g_new0(TestCase, 1);
            c->machine = machine;
            c->model = &models[i];
            c->state = state;
            c->status_arrives = status_arrives;
            path = g_strdup_printf("nic-migration-compat/%s/%s/%s", machine,
                                   models[i].name, state_names[state]);
            qtest_add_data_func_full(path, c, test_migrate, g_free);
        }
    }
}

int main(int argc, char **argv)
{
    const char *src = qtest_qemu_binary(ENV_SRC);
    const char *dst = qtest_qemu_binary(ENV_DST);
    GString *missing = g_string_new(NULL);
    bool src_status, dst_status;
    int ret;

    g_test_init(&argc, &argv, NULL);

    /*
     * One emulator is the series' own, the other may be one without it:
     * then only the machine types of the last release can migrate.
     */
    src_status = has_driver_status(ENV_SRC);
    dst_status = has_driver_status(ENV_DST);
    if (!src_status && !dst_status) {
        if (g_str_equal(src, dst)) {
            g_string_append_printf(missing, "%s has no query-driver-status\n",
                                   src);
        } else {
            g_string_append_printf(missing, "neither %s nor %s has "
                                   "query-driver-status\n", src, dst);
        }
    }
    add_tests(missing, "pc-i440fx-10.2", false);
    add_tests(missing, "pc-q35-10.2", false);
    if (src_status && dst_status) {
        add_tests(missing, "pc-i440fx-11.0", true);
        add_tests(missing, "pc-q35-11.0", true);
    }
    qtest_add_data_func("nic-migration-compat/emulators", missing->str,
                        test_emulators);
    ret = g_test_run();
    g_string_free(missing, true);
    return ret;
}
