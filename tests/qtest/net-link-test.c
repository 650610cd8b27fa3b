/*
 * QTest for the link of network clients: set_link and query-net-links
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"

/* A NIC and its backend */
#define ARGS "-nodefaults -netdev user,id=net0 -device e1000,netdev=net0,id=nic0"

static void set_link(QTestState *qts, const char *name, bool up)
{
    qtest_qmp_assert_success(qts, "{'execute': 'set_link', 'arguments':"
                             " {'name': %s, 'up': %i}}", name, up);
}

/* Check one entry of query-net-links */
static void check_link_info(QDict *link, const char *name, const char *type,
                            const char *peer, bool up)
{
    g_assert_cmpstr(qdict_get_str(link, "name"), ==, name);
    g_assert_cmpstr(qdict_get_str(link, "type"), ==, type);
    g_assert_cmpstr(qdict_get_try_str(link, "peer"), ==, peer);
    g_assert_cmpint(qdict_get_bool(link, "up"), ==, up);
}

/* Check what query-net-links answers for @name alone */
static void check_link(QTestState *qts, const char *name, const char *type,
                       const char *peer, bool up)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'query-net-links',"
                            " 'arguments': {'name': %s}}", name);
    QList *list = qdict_get_qlist(resp, "return");

    g_assert(list);
    g_assert_cmpint(qlist_size(list), ==, 1);
    check_link_info(qobject_to(QDict, qlist_peek(list)), name, type, peer, up);
    qobject_unref(resp);
}

static void check_no_client(QTestState *qts, const char *name)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'query-net-links',"
                            " 'arguments': {'name': %s}}", name);
    QDict *error = qdict_get_qdict(resp, "error");

    g_assert(error);
    g_assert_cmpstr(qdict_get_str(error, "class"), ==, "DeviceNotFound");
    g_assert(strstr(qdict_get_str(error, "desc"), name));
    qobject_unref(resp);
}

/* Without a name, every client, once, in the order they were created */
static void test_list(void)
{
    QTestState *qts = qtest_init(ARGS " -netdev user,id=net1");
    QDict *resp = qtest_qmp(qts, "{'execute': 'query-net-links'}");
    QList *list = qdict_get_qlist(resp, "return");
    QListEntry *entry;
    int n = 0;

    g_assert(list);
    QLIST_FOREACH_ENTRY(list, entry) {
        QDict *link = qobject_to(QDict, qlist_entry_obj(entry));

        switch (n++) {
        case 0:
            check_link_info(link, "net0", "user", "nic0", true);
            break;
        case 1:
            check_link_info(link, "net1", "user", NULL, true);
            break;
        case 2:
            check_link_info(link, "nic0", "nic", "net0", true);
            break;
        }
    }
    g_assert_cmpint(n, ==, 3);
    qobject_unref(resp);
    qtest_quit(qts);
}

/*
 * set_link on a backend changes its NIC too, set_link on a NIC only the
 * NIC: what the guest sees, not what the backend does
 */
static void test_set_link(void)
{
    QTestState *qts = qtest_init(ARGS);

    set_link(qts, "net0", false);
    check_link(qts, "net0", "user", "nic0", false);
    check_link(qts, "nic0", "nic", "net0", false);
    set_link(qts, "net0", true);
    check_link(qts, "net0", "user", "nic0", true);
    check_link(qts, "nic0", "nic", "net0", true);

    set_link(qts, "nic0", false);
    check_link(qts, "net0", "user", "nic0", true);
    check_link(qts, "nic0", "nic", "net0", false);
    set_link(qts, "nic0", true);
    check_link(qts, "nic0", "nic", "net0", true);

    check_no_client(qts, "nosuch");
    qtest_quit(qts);
}

/* A NIC whose backend was deleted has no peer, and its link is down */
static void test_netdev_del(void)
{
    QTestState *qts = qtest_init(ARGS);

    qtest_qmp_assert_success(qts, "{'execute': 'netdev_del',"
                             " 'arguments': {'id': 'net0'}}");
    check_link(qts, "nic0", "nic", NULL, false);
    check_no_client(qts, "net0");
    qtest_quit(qts);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/net-link/list", test_list);
    qtest_add_func("/net-link/set-link", test_set_link);
    qtest_add_func("/net-link/netdev-del", test_netdev_del);
    return g_test_run();
}
