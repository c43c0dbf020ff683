// SPDX-License-Identifier: GPL-2.0
/*
 * What the module needs from C macros and inline functions that have no
 * helper in the kernel crate (rust/helpers/): declared in helpers.h, bound
 * by scripts/bindgen.sh, linked into the module.
 */
#include <linux/build_bug.h>
#include <linux/mm.h>
#include <linux/percpu_counter.h>
#include <linux/shrinker.h>
#include <linux/swap.h>

#include "helpers.h"

/* The NUMA node of the page at @addr, an address in the direct map. */
int kmc_virt_to_nid(const void *addr)
{
	return page_to_nid(virt_to_page(addr));
}

/*
 * An order-0 page in the direct map, preferably on @nid: without
 * __GFP_THISNODE, a full node falls back to another one. NULL if none.
 */
void *kmc_get_free_page_node(int nid, gfp_t gfp)
{
	/* As __get_free_pages(): a page with an address in the direct map. */
	struct page *page = alloc_pages_node(nid, gfp & ~__GFP_HIGHMEM, 0);

	return page ? page_address(page) : NULL;
}

/* The nearest node with memory to the CPU the caller runs on. */
int kmc_numa_mem_id(void)
{
	return numa_mem_id();
}

/*
 * percpu_counter_read_positive(): the counter without its CPUs' pending
 * deltas, read racily as C does.
 */
s64 kmc_percpu_counter_read_positive(struct percpu_counter *fbc)
{
	return percpu_counter_read_positive(fbc);
}

/* Credits pages a shrinker freed to the reclaim in progress, if any. */
void kmc_account_reclaimed_pages(unsigned long pages)
{
	mm_account_reclaimed_pages(pages);
}

/* What rust/shrinker.rs takes the shrinker's sentinels to be. */
static_assert(SHRINK_STOP == ~0UL && SHRINK_EMPTY == ~0UL - 1);
