/* SPDX-License-Identifier: GPL-2.0 */
/* rust/helpers.c, for bindgen (rust/bindings_helper.h) and the C side. */
#ifndef KMC_HELPERS_H
#define KMC_HELPERS_H

int kmc_virt_to_nid(const void *addr);

#endif /* KMC_HELPERS_H */
