/* SPDX-License-Identifier: GPL-2.0 */
/* rust/helpers.c, for bindgen (rust/bindings_helper.h) and the C side. */
#ifndef KMC_HELPERS_H
#define KMC_HELPERS_H

#include <linux/types.h>

struct percpu_counter;

int kmc_virt_to_nid(const void *addr);
void *kmc_get_free_page_node(int nid, gfp_t gfp);
int kmc_numa_mem_id(void);
s64 kmc_percpu_counter_read_positive(struct percpu_counter *fbc);
void kmc_account_reclaimed_pages(unsigned long pages);

#endif /* KMC_HELPERS_H */
