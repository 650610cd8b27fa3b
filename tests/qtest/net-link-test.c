/*
 * QTest for the link of network clients: set_link and query-net-links
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/un.h>
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qstring.h"

/* How long a backend may take to see a connection */
#define TIMEOUT_S 60

/* A NIC and its backend */
#define ARGS "-nodefaults -netdev user,id=net0 " \
             "-device e1000,netdev=net0,id=nic0"

static void set_link(QTestState *qts, const char *name, bool up)
{
    qtest_qmp_assert_success(qts, "{'execute': 'set_link', 'arguments':"
                             " {'name': %s, 'up': %i}}", name, up);
}

/* The reasons for @link's link to be down, comma-separated */
static char *link_reasons(QDict *link)
{
    GString *reasons = g_string_new("");
    QListEntry *entry;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(link, "down-reasons"), entry) {
        QString *reason = qobject_to(QString, qlist_entry_obj(entry));

        g_string_append_printf(reasons, "%s%s", reasons->len ? "," : "",
                               qstring_get_str(reason));
    }
    return g_string_free(reasons, false);
}

/*
 * Check one entry of query-net-links: @reasons lists the reasons for
 * its link to be down, comma-separated, "" for a link that is up
 */
static void check_link_info(QDict *link, const char *name, const char *type,
                            const char *peer, const char *reasons)
{
    g_autofree char *found = link_reasons(link);

    g_assert_cmpstr(qdict_get_str(link, "name"), ==, name);
    g_assert_cmpstr(qdict_get_str(link, "type"), ==, type);
    g_assert_cmpstr(qdict_get_try_str(link, "peer"), ==, peer);
    g_assert_cmpstr(found, ==, reasons);
    g_assert_cmpint(qdict_get_bool(link, "up"), ==, !*reasons);
}

/* query-net-links for @name alone: its one entry */
static QDict *query_link(QTestState *qts, const char *name)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'query-net-links',"
                            " 'arguments': {'name': %s}}", name);
    QList *list = qdict_get_qlist(resp, "return");
    QDict *link;

    g_assert(list);
    g_assert_cmpint(qlist_size(list), ==, 1);
    link = qobject_to(QDict, qlist_peek(list));
    qobject_ref(link);
    qobject_unref(resp);
    return link;
}

static void check_link(QTestState *qts, const char *name, const char *type,
                       const char *peer, const char *reasons)
{
    QDict *link = query_link(qts, name);

    check_link_info(link, name, type, peer, reasons);
    qobject_unref(link);
}

/* Wait for the link of @name to be down for @reasons, as a backend connects */
static void wait_link(QTestState *qts, const char *name, const char *reasons)
{
    char *found = NULL;

    g_test_timer_start();
    do {
        QDict *link;

        g_free(found);
        g_usleep(10 * 1000);
        link = query_link(qts, name);
        found = link_reasons(link);
        qobject_unref(link);
    } while (strcmp(found, reasons) && g_test_timer_elapsed() < TIMEOUT_S);
    g_assert_cmpstr(found, ==, reasons);
    g_free(found);
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
            check_link_info(link, "net0", "user", "nic0", "");
            break;
        case 1:
            check_link_info(link, "net1", "user", NULL, "");
            break;
        case 2:
            check_link_info(link, "nic0", "nic", "net0", "");
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
    check_link(qts, "net0", "user", "nic0", "admin");
    check_link(qts, "nic0", "nic", "net0", "admin");
    set_link(qts, "net0", true);
    check_link(qts, "net0", "user", "nic0", "");
    check_link(qts, "nic0", "nic", "net0", "");

    set_link(qts, "nic0", false);
    check_link(qts, "net0", "user", "nic0", "");
    check_link(qts, "nic0", "nic", "net0", "admin");
    set_link(qts, "nic0", true);
    check_link(qts, "nic0", "nic", "net0", "");

    check_no_client(qts, "nosuch");
    qtest_quit(qts);
}

/*
 * A NIC whose backend was deleted has no peer, and its link stays down
 * whatever set_link does
 */
static void test_netdev_del(void)
{
    QTestState *qts = qtest_init(ARGS);

    qtest_qmp_assert_success(qts, "{'execute': 'netdev_del',"
                             " 'arguments': {'id': 'net0'}}");
    check_link(qts, "nic0", "nic", NULL, "no-backend");
    check_no_client(qts, "net0");

    set_link(qts, "nic0", true);
    check_link(qts, "nic0", "nic", NULL, "no-backend");
    set_link(qts, "nic0", false);
    check_link(qts, "nic0", "nic", NULL, "admin,no-backend");
    set_link(qts, "nic0", true);
    check_link(qts, "nic0", "nic", NULL, "no-backend");
    qtest_quit(qts);
}

/*
 * A stream server is down until a client connects, whatever set_link
 * does, and a connection does not bring up a link set down with set_link
 */
static void test_disconnected(void)
{
    g_autofree char *dir = g_dir_make_tmp("net-link-test-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "stream", NULL);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    QTestState *qts;
    int fd;

    g_assert(dir);
    qts = qtest_initf("-nodefaults -netdev stream,id=st0,server=on,"
                      "addr.type=unix,addr.path=%s "
                      "-device e1000,netdev=st0,id=nic0", path);
    check_link(qts, "st0", "stream", "nic0", "disconnected");
    check_link(qts, "nic0", "nic", "st0", "");

    set_link(qts, "st0", false);
    check_link(qts, "st0", "stream", "nic0", "admin,disconnected");
    check_link(qts, "nic0", "nic", "st0", "admin");
    set_link(qts, "st0", true);
    check_link(qts, "st0", "stream", "nic0", "disconnected");
    check_link(qts, "nic0", "nic", "st0", "");

    set_link(qts, "st0", false);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    g_assert_cmpint(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), ==, 0);
    wait_link(qts, "st0", "admin");
    check_link(qts, "nic0", "nic", "st0", "admin");
    set_link(qts, "st0", true);
    check_link(qts, "st0", "stream", "nic0", "");
    check_link(qts, "nic0", "nic", "st0", "");

    qtest_quit(qts);
    close(fd);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("/net-link/list", test_list);
    qtest_add_func("/net-link/set-link", test_set_link);
    qtest_add_func("/net-link/netdev-del", test_netdev_del);
    qtest_add_func("/net-link/disconnected", test_disconnected);
    return g_test_run();
}
