/*
 * Fuzzing target: a failover pair driven by a hostile guest and host
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The input is a sequence of 8-byte operations on a machine with a
 * virtio-net NIC and a fallback NIC (rtl8139, e1000, e1000e, igb or
 * vmxnet3) joined in a failover pair: the guest side (PCI config space,
 * I/O and MMIO accesses to the NICs' register BARs, writes to the
 * registers their drivers bring them up with, virtual clock steps) and
 * the management side (set_link, NIC unplug and plug, system_reset).
 *
 * Besides crashes and sanitizer reports, the pair's promise is checked
 * after every operation, while the pair is formed: at most one of its
 * NICs has its link up, and only a NIC whose driver wants it: ready, or
 * waiting for a link.  (The device asserts the same whenever it changes
 * the links.)
 *
 * An unplug dissolves the pair; plugging a NIC with the same id in again
 * forms it again.  Both happen in this process, so libFuzzer sees what
 * they cover, and each input ends with both NICs plugged in and a
 * system reset, so that the next one starts where this one did.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-failover-pair.h"
#include "qapi/qapi-commands-net.h"
#include "qapi/qapi-commands-qdev.h"
#include "qobject/qdict.h"
#include "monitor/qdev.h"
#include "hw/driver-status.h"
#include "hw/pci/pci_regs.h"
#include "net/net.h"
#include "qom/object.h"
#include "tests/qtest/libqtest.h"
#include "tests/qtest/libqos/pci-pc.h"
#include "fuzz.h"

#define PRIMARY_SLOT 3
#define FALLBACK_SLOT 4
#define DELAY_NS (500 * 1000 * 1000LL)
#define ACPI_PCIHP_EJECT 0xae08

enum {
    OP_WRITE,       /* width (offset & 3), BAR offset, value */
    OP_READ,
    OP_PCI_WRITE,   /* width (offset & 3), config offset, value */
    OP_DRIVER,      /* value to the register the driver enables with */
    OP_CLOCK_STEP,  /* value % (3 * the fallback delay) ns */
    OP_SET_LINK,    /* value & 1: up */
    OP_RESET,
    OP_UNPLUG,
    OP_PLUG,
    OP__MAX,
};

typedef struct QEMU_PACKED FuzzOp {
    uint8_t op;
    uint8_t nic;    /* even: the primary, odd: the fallback */
    uint16_t offset;
    uint32_t value;
} FuzzOp;

typedef struct FuzzNic {
    const char *id;
    QPCIDevice *dev;
    QPCIBar bar;
    uint64_t bar_size;
    bool unplugged;
} FuzzNic;

static const char *fallback_model;
static const int slots[] = { PRIMARY_SLOT, FALLBACK_SLOT };

/* vmxnet3's driver registers are in BAR 1, the others' in BAR 0 */
static int fuzz_bar(bool primary)
{
    return !primary && !strcmp(fallback_model, "vmxnet3");
}

/* What firmware does: enable the NICs still there and map their BARs */
static QPCIBus *fuzz_map(QTestState *s, QPCIBus *bus, FuzzNic *nics)
{
    int i;

    if (bus) {
        /* Start address allocation over: reset unmapped the BARs */
        qpci_free_pc(bus);
    }
    bus = qpci_new_pc(s, NULL);
    for (i = 0; i < 2; i++) {
        FuzzNic *nic = &nics[i];

        nic->id = i ? "nic1" : "nic0";
        g_free(nic->dev);
        nic->dev = qpci_device_find(bus, QPCI_DEVFN(slots[i], 0));
        nic->unplugged = !nic->dev;
        if (nic->dev) {
            qpci_device_enable(nic->dev);
            nic->bar = qpci_iomap(nic->dev, fuzz_bar(i == 0),
                                  &nic->bar_size);
        }
    }
    return bus;
}

static void fuzz_io(FuzzNic *nic, const FuzzOp *o, bool write)
{
    unsigned width = 1 << ((o->offset & 3) % 3);
    uint64_t off = ((o->offset >> 2) % nic->bar_size) & ~(uint64_t)(width - 1);

    switch (width | (write ? 8 : 0)) {
    case 1 | 8:
        qpci_io_writeb(nic->dev, nic->bar, off, o->value);
        break;
    case 2 | 8:
        qpci_io_writew(nic->dev, nic->bar, off, o->value);
        break;
    case 4 | 8:
        qpci_io_writel(nic->dev, nic->bar, off, o->value);
        break;
    case 1:
        qpci_io_readb(nic->dev, nic->bar, off);
        break;
    case 2:
        qpci_io_readw(nic->dev, nic->bar, off);
        break;
    default:
        qpci_io_readl(nic->dev, nic->bar, off);
        break;
    }
}

static void fuzz_pci_write(FuzzNic *nic, const FuzzOp *o)
{
    uint8_t off = o->offset >> 2;

    switch ((o->offset & 3) % 3) {
    case 0:
        qpci_config_writeb(nic->dev, off, o->value);
        break;
    case 1:
        qpci_config_writew(nic->dev, off & ~1, o->value);
        break;
    default:
        qpci_config_writel(nic->dev, off & ~3, o->value);
        break;
    }
}

/*
 * The registers whose writes change the driver status: virtio's device
 * status, rtl8139's ChipCmd, e1000's CTRL, RCTL or TCTL, e1000e's and
 * igb's CTRL_EXT as well, vmxnet3's revision selection, shared memory
 * address or command (one of its commands: a random value rarely is).
 */
static void fuzz_driver(FuzzNic *nic, bool primary, const FuzzOp *o)
{
    static const uint16_t e1000_regs[] = { 0x0, 0x100, 0x400, 0x18 };
    static const uint16_t vmxnet3_regs[] = { 0x0, 0x10, 0x18, 0x20 };
    uint16_t reg;

    if (primary) {
        qpci_io_writeb(nic->dev, nic->bar, 18, o->value);
    } else if (!strcmp(fallback_model, "rtl8139")) {
        qpci_io_writeb(nic->dev, nic->bar, 0x37, o->value);
    } else if (!strcmp(fallback_model, "e1000")) {
        qpci_io_writel(nic->dev, nic->bar, e1000_regs[o->offset % 3],
                       o->value);
    } else if (!strcmp(fallback_model, "vmxnet3")) {
        reg = vmxnet3_regs[o->offset % 4];
        qpci_io_writel(nic->dev, nic->bar, reg, reg != 0x20 ? o->value :
                       (o->value & 1 ? 0xcafe0000 : 0xf00d0000) |
                       (o->value >> 1) % 12);
    } else {
        qpci_io_writel(nic->dev, nic->bar, e1000_regs[o->offset % 4],
                       o->value);
    }
}

static bool fuzz_link_up(const char *id)
{
    NetClientState *ncs[MAX_QUEUE_NUM];
    int i, n;

    n = qemu_find_net_clients_except(id, ncs, NET_CLIENT_DRIVER__MAX,
                                     MAX_QUEUE_NUM);
    for (i = 0; i < n; i++) {
        if (ncs[i]->info->type == NET_CLIENT_DRIVER_NIC &&
            !ncs[i]->link_down) {
            return true;
        }
    }
    return false;
}

static bool fuzz_driver_wants_link(const char *id)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
    Object *obj = object_resolve_path_type(path, TYPE_DRIVER_STATUS_REPORTER,
                                           NULL);
    DriverStatusReporter *r;

    if (!obj) {
        return false;
    }
    r = DRIVER_STATUS_REPORTER(obj);
    return driver_status_reporter_get_status(r) == DRIVER_STATUS_READY ||
           driver_status_reporter_link_wanted(r);
}

static bool fuzz_pair_formed(void)
{
    FailoverPairInfoList *list = qmp_query_failover_pairs(&error_abort);
    bool formed = list->value->formed;

    qapi_free_FailoverPairInfoList(list);
    return formed;
}

static void fuzz_check_pair(FuzzNic *nics)
{
    int i, up = 0;

    /* Once dissolved, the NIC left follows set_link alone */
    if (!fuzz_pair_formed()) {
        return;
    }
    for (i = 0; i < 2; i++) {
        if (fuzz_link_up(nics[i].id)) {
            g_assert(fuzz_driver_wants_link(nics[i].id));
            up++;
        }
    }
    g_assert_cmpint(up, <=, 1);
}

static void fuzz_unplug(QTestState *s, FuzzNic *nic, int slot)
{
    g_autofree char *path = g_strdup_printf("/machine/peripheral/%s",
                                            nic->id);

    /* Refused while an unplug is pending, like QMP device_del */
    qmp_device_del(nic->id, NULL);
    /* The guest's ACPI code ejects the slot */
    qtest_outl(s, ACPI_PCIHP_EJECT, 1 << slot);
    nic->unplugged = !object_resolve_path(path, NULL);
}

/* A NIC like the one unplugged, with its id, slot and backend */
static void fuzz_plug(FuzzNic *nic, bool primary, int slot)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", primary ? "virtio-net-pci" :
                  fallback_model);
    qdict_put_str(opts, "id", nic->id);
    qdict_put_str(opts, "netdev", primary ? "hs0" : "hs1");
    qdict_put_int(opts, "addr", QPCI_DEVFN(slot, 0));
    if (primary) {
        qdict_put_bool(opts, "disable-modern", true);
    }
    qmp_device_add(opts, NULL, &error_abort);
    qobject_unref(opts);
    nic->unplugged = false;
}

static void failover_pair_fuzz(QTestState *s, const unsigned char *data,
                               size_t size)
{
    size_t n = size / sizeof(FuzzOp);
    g_autofree FuzzOp *ops = g_memdup2(data, n * sizeof(FuzzOp));
    FuzzNic nics[2] = { 0 };
    QPCIBus *bus = fuzz_map(s, NULL, nics);
    size_t i;

    for (i = 0; i < n; i++) {
        const FuzzOp *o = &ops[i];
        int which = o->nic & 1;
        FuzzNic *nic = &nics[which];

        if (nic->unplugged && o->op % OP__MAX != OP_RESET &&
            o->op % OP__MAX != OP_CLOCK_STEP &&
            o->op % OP__MAX != OP_PLUG) {
            continue;
        }
        switch (o->op % OP__MAX) {
        case OP_WRITE:
        case OP_READ:
            fuzz_io(nic, o, o->op % OP__MAX == OP_WRITE);
            break;
        case OP_PCI_WRITE:
            fuzz_pci_write(nic, o);
            break;
        case OP_DRIVER:
            fuzz_driver(nic, which == 0, o);
            break;
        case OP_CLOCK_STEP:
            qtest_clock_step(s, 1 + o->value % (3 * DELAY_NS));
            break;
        case OP_SET_LINK:
            qmp_set_link(nic->id, o->value & 1, &error_abort);
            break;
        case OP_RESET:
            fuzz_reset(s);
            bus = fuzz_map(s, bus, nics);
            break;
        case OP_UNPLUG:
            fuzz_unplug(s, nic, slots[which]);
            break;
        case OP_PLUG:
            if (nic->unplugged) {
                fuzz_plug(nic, which == 0, slots[which]);
                bus = fuzz_map(s, bus, nics);
            }
            break;
        }
        flush_events(s);
        fuzz_check_pair(nics);
    }

    /* The next input starts as this one did: both NICs, links up */
    for (i = 0; i < 2; i++) {
        if (nics[i].unplugged) {
            fuzz_plug(&nics[i], i == 0, slots[i]);
        }
        qmp_set_link(nics[i].id, true, &error_abort);
        g_free(nics[i].dev);
    }
    qpci_free_pc(bus);
    flush_events(s);
    g_assert(fuzz_pair_formed());
    fuzz_reset(s);
}

static GString *failover_pair_cmdline(FuzzTarget *t)
{
    GString *cmdline = g_string_new(NULL);

    fallback_model = t->opaque;
    g_string_printf(cmdline,
        "%s -machine pc,accel=qtest -m 16M -nodefaults -display none "
        "-netdev user,id=hs0 -netdev user,id=hs1 "
        "-device virtio-net-pci,id=nic0,netdev=hs0,disable-modern=on,"
        "addr=%d "
        "-device %s,id=nic1,netdev=hs1,addr=%d "
        "-device failover-pair,id=pair0,primary=nic0,fallback=nic1",
        TARGET_NAME, PRIMARY_SLOT, fallback_model, FALLBACK_SLOT);
    return cmdline;
}

static void register_failover_pair_fuzz_targets(void)
{
    static const char *const models[] = {
        "rtl8139", "e1000", "e1000e", "igb", "vmxnet3",
    };
    int i;

    for (i = 0; i < ARRAY_SIZE(models); i++) {
        /* Kept for the life of the process, in the target list */
        char *name = g_strdup_printf("failover-pair-%s", models[i]);
        char *desc = g_strdup_printf(
            "Fuzz a failover pair of virtio-net and %s from the guest "
            "(PCI, I/O, MMIO, clock) and the host (set_link, unplug, plug, "
            "reset)",
            models[i]);

        fuzz_add_target(&(FuzzTarget){
            .name = name,
            .description = desc,
            .get_init_cmdline = failover_pair_cmdline,
            .fuzz = failover_pair_fuzz,
            .opaque = (void *)models[i],
        });
    }
}

fuzz_target_init(register_failover_pair_fuzz_targets);
