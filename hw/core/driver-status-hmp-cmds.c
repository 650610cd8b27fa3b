/*
 * HMP command for the guest driver status of devices
 *
 * A thin wrapper around query-driver-status: one line per device.
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-driver-status.h"

void hmp_info_driver_status(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    DriverStatusInfoList *list = qmp_query_driver_status(&err);
    DriverStatusInfoList *node;

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }

    if (!list) {
        monitor_printf(mon, "No device reports a guest driver status\n");
        return;
    }

    for (node = list; node; node = node->next) {
        DriverStatusInfo *info = node->value;

        if (info->device) {
            monitor_printf(mon, "%s (%s): %s\n", info->device,
                           info->qom_path, DriverStatus_str(info->status));
        } else {
            monitor_printf(mon, "%s: %s\n", info->qom_path,
                           DriverStatus_str(info->status));
        }
    }
    qapi_free_DriverStatusInfoList(list);
}
