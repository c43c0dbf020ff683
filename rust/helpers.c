// SPDX-License-Identifier: GPL-2.0
/*
 * What the module needs from C macros and inline functions that have no
 * helper in the kernel crate (rust/helpers/): declared in helpers.h, bound
 * by scripts/bindgen.sh, linked into the module.
 */
#include <linux/build_bug.h>
#include <linux/mm.h>
#include <linux/shrinker.h>

#include "helpers.h"

/* The NUMA node of the page at @addr, an address in the direct map. */
int kmc_virt_to_nid(const void *addr)
{
	return page_to_nid(virt_to_page(addr));
}

/* What rust/shrinker.rs takes the shrinker's sentinels to be. */
static_assert(SHRINK_STOP == ~0UL && SHRINK_EMPTY == ~0UL - 1);
