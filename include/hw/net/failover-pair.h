/*
 * failover-pair: the type name, for code that looks pairs up in QOM
 *
 * Copyright (c) 2026 The QEMU driver status authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_NET_FAILOVER_PAIR_H
#define HW_NET_FAILOVER_PAIR_H

#define TYPE_FAILOVER_PAIR "failover-pair"

#endif
