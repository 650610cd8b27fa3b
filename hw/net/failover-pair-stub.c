/*
 * failover-pair: what QMP needs on targets built without it
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/qapi-commands-failover-pair.h"

FailoverPairInfoList *qmp_query_failover_pairs(Error **errp)
{
    return NULL;
}
