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
 * the drivers would, next to the pair's "active" property.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "hw/pci/pci_regs.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"

#define DELAY_MS 500
#define DELAY_NS ((int64_t)DELAY_MS * 1000 * 1000)
#define PRIMARY_SLOT 3
#define FALLBACK_SLOT 4

/* Legacy virtio-pci I/O BAR (disable-modern=on), MSI-X off */
#define VIRTIO_PCI_STATUS 18
#define VIRTIO_NET_CONFIG_STATUS (20 + 6)
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_STATUS_READY 0x0f /* ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK */

/* rtl8139 */
#define RTL_CHIPCMD 0x37
#define RTL_CHIPCMD_RX_TX 0x0c
#define RTL_CHIPCMD_RESET 0x10
#define RTL_BASIC_MODE_STATUS 0x64
#define RTL_BMS_LINK_UP 0x04

/* e1000 */
#define E1000_CTRL 0x0
#define E1000_CTRL_RST (1u << 26)
#define E1000_STATUS 0x8
#define E1000_STATUS_LU (1u << 1)
#define E1000_RCTL 0x100
#define E1000_TCTL 0x400
#define E1000_EN (1u << 1)
#define E1000_AUTONEG_NS (500 * 1000 * 1000LL)

typedef struct Guest {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *primary;
    QPCIDevice *fallback;
    QPCIBar primary_bar;
    QPCIBar fallback_bar;
    bool e1000;
} Guest;

static char *cmdline(bool e1000, const char *extra)
{
    return g_strdup_printf(
        "-machine pc -nodefaults "
        "-netdev user,id=hs0 -netdev user,id=hs1 "
        "-device virtio-net-pci,id=nic0,netdev=hs0,disable-modern=on,"
        "addr=%d "
        "-device %s,id=nic1,netdev=hs1,addr=%d "
        "-device failover-pair,id=pair0,primary=nic0,fallback=nic1,"
        "fallback-delay-ms=%d %s",
        PRIMARY_SLOT, e1000 ? "e1000" : "rtl8139",
        FALLBACK_SLOT, DELAY_MS, extra);
}

/* What firmware would do: enable the NICs and map their BAR 0 */
static void guest_map(Guest *g)
{
    if (g->primary) {
        qpci_device_enable(g->primary);
        g->primary_bar = qpci_iomap(g->primary, 0, NULL);
    }
    if (g->fallback) {
        qpci_device_enable(g->fallback);
        g->fallback_bar = qpci_iomap(g->fallback, 0, NULL);
    }
}

static void guest_start(Guest *g, bool e1000, const char *extra)
{
    g_autofree char *args = cmdline(e1000, extra);

    memset(g, 0, sizeof(*g));
    g->e1000 = e1000;
    g->qts = qtest_init(args);
    g->bus = qpci_new_pc(g->qts, NULL);
    g->primary = qpci_device_find(g->bus, QPCI_DEVFN(PRIMARY_SLOT, 0));
    g->fallback = qpci_device_find(g->bus, QPCI_DEVFN(FALLBACK_SLOT, 0));
    g_assert(g->primary && g->fallback);
    guest_map(g);
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
    qpci_io_writeb(g->primary, g->primary_bar, VIRTIO_PCI_STATUS,
                   up ? VIRTIO_STATUS_READY : 0);
}

static void fallback_driver(Guest *g, bool up)
{
    if (!g->fallback) {
        return;
    }
    if (!g->e1000) {
        qpci_io_writeb(g->fallback, g->fallback_bar, RTL_CHIPCMD,
                       up ? RTL_CHIPCMD_RX_TX : 0);
        return;
    }
    if (up) {
        qpci_io_writel(g->fallback, g->fallback_bar, E1000_CTRL,
                       E1000_CTRL_RST);
    }
    qpci_io_writel(g->fallback, g->fallback_bar, E1000_RCTL,
                   up ? E1000_EN : 0);
    qpci_io_writel(g->fallback, g->fallback_bar, E1000_TCTL,
                   up ? E1000_EN : 0);
}

static void fallback_reset(Guest *g)
{
    if (g->e1000) {
        qpci_io_writel(g->fallback, g->fallback_bar, E1000_CTRL,
                       E1000_CTRL_RST);
    } else {
        qpci_io_writeb(g->fallback, g->fallback_bar, RTL_CHIPCMD,
                       RTL_CHIPCMD_RESET);
    }
}

static bool primary_link(Guest *g)
{
    return qpci_io_readw(g->primary, g->primary_bar,
                         VIRTIO_NET_CONFIG_STATUS) & VIRTIO_NET_S_LINK_UP;
}

static bool fallback_link(Guest *g)
{
    if (g->e1000) {
        return qpci_io_readl(g->fallback, g->fallback_bar, E1000_STATUS) &
               E1000_STATUS_LU;
    }
    return qpci_io_readw(g->fallback, g->fallback_bar,
                         RTL_BASIC_MODE_STATUS) & RTL_BMS_LINK_UP;
}

static char *pair_active(QTestState *qts)
{
    QDict *rsp;
    char *active;

    rsp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments': {"
                    " 'path': '/machine/peripheral/pair0',"
                    " 'property': 'active' } }");
    g_assert(qdict_haskey(rsp, "return"));
    active = g_strdup(qdict_get_str(rsp, "return"));
    qobject_unref(rsp);
    return active;
}

static void set_link(Guest *g, const char *nic, bool up)
{
    qtest_qmp_assert_success(g->qts, "{ 'execute': 'set_link', "
                             "'arguments': { 'name': %s, 'up': %i } }",
                             nic, up);
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
    EXPECT,         /* @active, and the links the guest sees */
} Op;

typedef struct Step {
    Op op;
    int64_t ns;
    const char *nic;
    bool up;
    const char *active;
    bool primary_up;
    bool fallback_up;
} Step;

#define EXPECT(a, p, f) \
    { .op = EXPECT, .active = (a), .primary_up = (p), .fallback_up = (f) }
#define NONE_UP EXPECT("none", false, false)
#define PRIMARY_ACTIVE EXPECT("primary", true, false)
#define FALLBACK_ACTIVE EXPECT("fallback", false, true)
#define STEP(n) { .op = STEP_NS, .ns = (n) }
#define OP(o) { .op = (o) }
#define LINK(n, u) { .op = SET_LINK, .nic = (n), .up = (u) }
#define UNPLUG_NIC(n) { .op = UNPLUG, .nic = (n) }

#define MAX_STEPS 24

typedef struct Case {
    const char *name;
    bool e1000;
    Step steps[MAX_STEPS];
} Case;

static const Case cases[] = {
    { "boot-none", false, {
        NONE_UP, STEP(10 * DELAY_NS), NONE_UP,
    } },
    { "primary-first", false, {
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(FALLBACK_UP), STEP(10 * DELAY_NS), PRIMARY_ACTIVE,
    } },
    { "fallback-after-delay", false, {
        OP(FALLBACK_UP), NONE_UP,
        STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
    } },
    { "primary-during-delay", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS / 2), NONE_UP,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        STEP(DELAY_NS), PRIMARY_ACTIVE,
    } },
    { "primary-after-fallback", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
    { "primary-leaves", false, {
        OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(PRIMARY_DOWN), NONE_UP,
        STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
    } },
    { "primary-leaves-alone", false, {
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(PRIMARY_DOWN), NONE_UP, STEP(10 * DELAY_NS), NONE_UP,
    } },
    { "fallback-leaves", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(FALLBACK_DOWN), NONE_UP,
        OP(FALLBACK_UP), NONE_UP, STEP(DELAY_NS), FALLBACK_ACTIVE,
    } },
    { "fallback-leaves-during-delay", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS / 2), OP(FALLBACK_DOWN),
        STEP(DELAY_NS), NONE_UP,
    } },
    { "reset-primary", false, {
        OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(RESET), NONE_UP, STEP(10 * DELAY_NS), NONE_UP,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
    { "reset-during-delay", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS / 2),
        OP(RESET), STEP(10 * DELAY_NS), NONE_UP,
    } },
    { "reset-fallback", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(RESET), NONE_UP,
        OP(FALLBACK_UP), STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
    } },
    { "set-link-down-wins", false, {
        LINK("nic0", false), OP(PRIMARY_UP),
        EXPECT("primary", false, false),
        LINK("nic0", true), PRIMARY_ACTIVE,
    } },
    { "set-link-up-cannot-override", false, {
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        LINK("nic1", true), PRIMARY_ACTIVE,
        LINK("nic0", true), PRIMARY_ACTIVE,
    } },
    { "set-link-down-survives-handover", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        LINK("nic0", false), OP(PRIMARY_UP),
        EXPECT("primary", false, false),
        OP(PRIMARY_DOWN), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), EXPECT("primary", false, false),
        LINK("nic0", true), PRIMARY_ACTIVE,
    } },
    { "unplug-primary", false, {
        OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE,
        UNPLUG_NIC("nic0"), NONE_UP,
        STEP(DELAY_NS - 1), NONE_UP,
        STEP(1), FALLBACK_ACTIVE,
        OP(RESET), NONE_UP,
    } },
    { "unplug-fallback", false, {
        OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE,
        UNPLUG_NIC("nic1"), NONE_UP,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
        OP(RESET), NONE_UP,
    } },
    { "e1000-fallback", true, {
        OP(FALLBACK_UP), STEP(DELAY_NS - 1),
        EXPECT("none", false, false),
        STEP(1), STEP(DELAY_NS), FALLBACK_ACTIVE,
        OP(PRIMARY_UP), PRIMARY_ACTIVE,
    } },
};

static void check(Guest *g, const Step *s, int i)
{
    g_autofree char *active = pair_active(g->qts);

    g_test_message("step %d: expect %s", i, s->active);
    g_assert_cmpstr(active, ==, s->active);
    if (g->primary) {
        g_assert_cmpint(primary_link(g), ==, s->primary_up);
    }
    if (g->fallback) {
        /*
         * e1000 reports link up once its PHY's auto-negotiation, started
         * when the link came up, is through: give it that time.
         */
        if (g->e1000 && s->fallback_up && !fallback_link(g)) {
            qtest_clock_step(g->qts, E1000_AUTONEG_NS);
        }
        g_assert_cmpint(fallback_link(g), ==, s->fallback_up);
    }
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

    guest_start(&g, c->e1000, "");
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

static const Step none_up = NONE_UP;
static const Step primary_active = PRIMARY_ACTIVE;
static const Step fallback_active = FALLBACK_ACTIVE;

typedef struct Outcome {
    const Step *now;
    const Step *later;
} Outcome;

/*
 * What the pair shows right after the disruption, and a delay later: the
 * rules of the pair, applied to the drivers left ready.  A reset of a
 * NIC by its guest driver and an unplug both take that driver away.
 */
static Outcome outcome(PairState state, Disruption d)
{
    bool primary_gone = d == PRIMARY_RESET || d == PRIMARY_UNPLUG;
    bool fallback_gone = d == FALLBACK_RESET_BY_GUEST ||
                         d == FALLBACK_UNPLUG;
    bool primary_ready = state == PRIMARY || state == BOTH;
    bool fallback_ready = state != IDLE && state != PRIMARY;

    if (d == SYSTEM_RESET) {
        return (Outcome){ &none_up, &none_up };
    }
    if (primary_gone) {
        primary_ready = false;
    }
    if (fallback_gone) {
        fallback_ready = false;
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

typedef struct HostileCase {
    PairState state;
    Disruption disruption;
    bool e1000;
} HostileCase;

static HostileCase hostile_cases[2 * PAIR_STATE__MAX * DISRUPTION__MAX];

static void add_steps(Step *steps, int *n, const Step *add, int count)
{
    g_assert_cmpint(*n + count, <, MAX_STEPS);
    memcpy(&steps[*n], add, count * sizeof(*add));
    *n += count;
}

static void test_hostile(gconstpointer opaque)
{
    static const Step reach[PAIR_STATE__MAX][4] = {
        [IDLE] = { NONE_UP },
        [WAITING] = { OP(FALLBACK_UP), STEP(DELAY_NS / 2), NONE_UP },
        [PRIMARY] = { OP(PRIMARY_UP), PRIMARY_ACTIVE },
        [BOTH] = { OP(FALLBACK_UP), OP(PRIMARY_UP), PRIMARY_ACTIVE },
        [FALLBACK] = { OP(FALLBACK_UP), STEP(DELAY_NS), FALLBACK_ACTIVE },
    };
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
    int n = 0, len;
    Guest g;

    len = 0;
    while (reach[c->state][len].op != END) {
        len++;
    }
    add_steps(steps, &n, reach[c->state], len);
    add_steps(steps, &n, &disrupt[c->disruption], 1);
    add_steps(steps, &n, o.now, 1);
    add_steps(steps, &n, &after, 1);
    add_steps(steps, &n, o.later, 1);

    guest_start(&g, c->e1000, "");
    run_steps(&g, steps);
    /* The guest's drivers come back: the usual rules apply again */
    memset(steps, 0, sizeof(steps));
    n = 0;
    add_steps(steps, &n, recover, ARRAY_SIZE(recover));
    add_steps(steps, &n, g.primary ? &primary_active : &fallback_active, 1);
    run_steps(&g, steps);
    guest_stop(&g);
}

/* FAILOVER_PAIR_CHANGED: once per change, rate-limited per pair */
static void test_event(void)
{
    Guest g;
    QDict *ev, *data;

    guest_start(&g, false, "");
    primary_driver(&g, true);
    ev = qtest_qmp_eventwait_ref(g.qts, "FAILOVER_PAIR_CHANGED");
    data = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(data, "device"), ==, "pair0");
    g_assert_cmpstr(qdict_get_str(data, "qom-path"), ==,
                    "/machine/peripheral/pair0");
    g_assert_cmpstr(qdict_get_str(data, "active"), ==, "primary");
    qobject_unref(ev);

    /* Within the second: held back, and only the last change is sent */
    primary_driver(&g, false);
    primary_driver(&g, true);
    primary_driver(&g, false);
    /* Any event sent would arrive before this reply */
    qtest_qmp_assert_success(g.qts, "{ 'execute': 'query-status' }");
    g_assert_null(qtest_qmp_event_ref(g.qts, "FAILOVER_PAIR_CHANGED"));
    qtest_clock_step(g.qts, 1000 * 1000 * 1000);
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

    guest_start(&g, false, "");
    primary_driver(&g, true);
    out = qtest_hmp(g.qts, "info failover-pairs");
    g_assert_nonnull(strstr(out, "/machine/peripheral/pair0: primary nic0 "
                            "fallback nic1 fallback-delay-ms 500 "
                            "active primary"));
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

    guest_start(&g, false, extra);
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
    g_assert_cmpint(rounds, >=, 1000);
    g_assert_cmpint(slowest, <, STORM_QMP_MAX_US);

    /* Throttled per device: the first at once, then one a second */
    bound = elapsed_s + 1;
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
 * LeakSanitizer this shows whether they leave anything behind.
 */
static void test_introspect_cycle(void)
{
    QTestState *qts = qtest_init("-machine none");
    int i;

    for (i = 0; i < 16; i++) {
        QDict *rsp = qtest_qmp(qts, "{ 'execute': 'device-list-properties',"
                               " 'arguments': { 'typename': 'failover-pair' } }");

        g_assert_cmpint(qlist_size(qdict_get_qlist(rsp, "return")), >=, 3);
        qobject_unref(rsp);
    }
    qtest_quit(qts);
}

static void wait_migration(QTestState *qts)
{
    for (;;) {
        QDict *rsp = qtest_qmp(qts, "{ 'execute': 'query-migrate' }");
        QDict *ret = qdict_get_qdict(rsp, "return");
        const char *status = qdict_get_try_str(ret, "status");

        if (status && !strcmp(status, "completed")) {
            qobject_unref(rsp);
            return;
        }
        g_assert_cmpstr(status, !=, "failed");
        qobject_unref(rsp);
        g_usleep(10 * 1000);
    }
}

/*
 * Migrate in the middle of the fallback delay, with the primary's link
 * set down by the user: the delay goes on where it stopped, and the
 * user's set_link survives.
 */
static void test_migrate_during_delay(void)
{
    g_autofree char *file = g_strdup_printf("%s/failover-pair-%d.mig",
                                            g_get_tmp_dir(), getpid());
    g_autofree char *out_uri = g_strdup_printf("exec:cat > %s", file);
    g_autofree char *in_uri = g_strdup_printf("exec:cat %s", file);
    Guest src, dst;
    int64_t armed, now;
    g_autofree char *active = NULL;

    guest_start(&src, false, "");
    set_link(&src, "nic0", false);
    /* clock_step refuses 0: read the clock with the smallest step */
    armed = qtest_clock_step(src.qts, 1);
    fallback_driver(&src, true);
    qtest_clock_step(src.qts, DELAY_NS / 2);
    qtest_qmp_assert_success(src.qts, "{ 'execute': 'migrate', "
                             "'arguments': { 'uri': %s } }", out_uri);
    wait_migration(src.qts);
    guest_stop(&src);

    guest_start(&dst, false, "-incoming defer");
    qtest_qmp_assert_success(dst.qts, "{ 'execute': 'migrate-incoming', "
                             "'arguments': { 'uri': %s } }", in_uri);
    qtest_qmp_eventwait(dst.qts, "RESUME");
    unlink(file);

    /* The BARs came with the migrated PCI config space */
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

/* A bad -device line, and the text its error must contain */
typedef struct BadCase {
    const char *name;
    const char *device;
    const char *error;
} BadCase;

static const BadCase bad_cases[] = {
    { "no-primary", "fallback=nic1", "'primary' is required" },
    { "no-fallback", "primary=nic0", "'fallback' is required" },
    { "unknown-primary", "primary=nope,fallback=nic1",
      "primary 'nope' not found" },
    { "unknown-fallback", "primary=nic0,fallback=nope",
      "fallback 'nope' not found" },
    { "same", "primary=nic0,fallback=nic0",
      "primary and fallback are both 'nic0'" },
    { "not-a-nic", "primary=nic0,fallback=ser0",
      "fallback 'ser0' is not a NIC" },
    { "primary-not-virtio", "primary=nic1,fallback=nic0",
      "primary 'nic1' (rtl8139) is not a virtio-net NIC" },
    { "fallback-no-status", "primary=nic0,fallback=nic2",
      "fallback 'nic2' (ne2k_pci) does not report guest driver status" },
    { "already-paired", "primary=nic0,fallback=nic1 "
      "-device failover-pair,primary=nic3,fallback=nic1",
      "fallback 'nic1' is already in another failover-pair" },
    { "delay-range", "primary=nic0,fallback=nic1,fallback-delay-ms=60001",
      "fallback-delay-ms 60001 out of range (0 to 60000)" },
    { "nic-after-pair", "primary=nic9,fallback=nic1 "
      "-device virtio-net-pci,id=nic9",
      "(the NICs must come before the failover-pair on the command line)" },
};

/*
 * The pair is cold-plug only, so a bad one stops QEMU from starting:
 * run it directly and read the error from stderr.
 */
static void test_bad(gconstpointer opaque)
{
    const BadCase *c = opaque;
    g_autofree char *cmd = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) gerr = NULL;
    int status;

    cmd = g_strdup_printf("%s -machine pc -nodefaults -display none "
                          "-accel qtest -net none "
                          "-device virtio-net-pci,id=nic0 "
                          "-device rtl8139,id=nic1 "
                          "-device ne2k_pci,id=nic2 "
                          "-device virtio-net-pci,id=nic3 "
                          "-device virtio-serial-pci,id=ser0 "
                          "-device failover-pair,%s",
                          g_getenv("QTEST_QEMU_BINARY"), c->device);
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, &err, &status,
                                            &gerr));
    g_assert_cmpint(status, !=, 0);
    g_test_message("stderr: %s", err);
    g_assert_nonnull(strstr(err, c->error));
}

int main(int argc, char **argv)
{
    int i;

    g_test_init(&argc, &argv, NULL);

    if (!qtest_has_device("failover-pair")) {
        return 0;
    }
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *path = g_strdup_printf("/failover-pair/%s",
                                                cases[i].name);
        qtest_add_data_func(path, &cases[i], test_case);
    }
    qtest_add_func("/failover-pair/event", test_event);
    qtest_add_func("/failover-pair/hmp", test_hmp);
    qtest_add_func("/failover-pair/introspect-cycle", test_introspect_cycle);
    for (i = 0; i < ARRAY_SIZE(storms); i++) {
        g_autofree char *path = g_strdup_printf("/failover-pair/storm/%s",
                                                storms[i].name);
        qtest_add_data_func(path, &storms[i], test_storm);
    }
    qtest_add_func("/failover-pair/migrate-during-delay",
                   test_migrate_during_delay);
    for (i = 0; i < ARRAY_SIZE(hostile_cases); i++) {
        HostileCase *c = &hostile_cases[i];
        g_autofree char *path = NULL;

        c->e1000 = i / (PAIR_STATE__MAX * DISRUPTION__MAX);
        c->state = i / DISRUPTION__MAX % PAIR_STATE__MAX;
        c->disruption = i % DISRUPTION__MAX;
        path = g_strdup_printf("/failover-pair/hostile/%s/%s/%s",
                               c->e1000 ? "e1000" : "rtl8139",
                               state_names[c->state],
                               disruption_names[c->disruption]);
        qtest_add_data_func(path, c, test_hostile);
    }
    for (i = 0; i < ARRAY_SIZE(bad_cases); i++) {
        g_autofree char *path = g_strdup_printf("/failover-pair/bad/%s",
                                                bad_cases[i].name);
        qtest_add_data_func(path, &bad_cases[i], test_bad);
    }
    return g_test_run();
}
