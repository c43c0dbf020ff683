/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the kvm_mmu_cache selftests: reading the module's
 * debugfs files and KVM's page-table accounting.
 */
#ifndef KMC_UTIL_H
#define KMC_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define KMC_DEBUGFS "/sys/kernel/debug/kvm_mmu_cache"
#define KMC_KO "/kmc/modules/kvm_mmu_cache.ko"

static inline int kmc_loaded(void)
{
	return access(KMC_DEBUGFS "/unused_pages", R_OK) == 0;
}

static inline long kmc_read_long(const char *path)
{
	long val;
	FILE *f = fopen(path, "r");

	TEST_ASSERT(f, "open %s", path);
	TEST_ASSERT(fscanf(f, "%ld", &val) == 1, "parse %s", path);
	fclose(f);
	return val;
}

static inline long kmc_unused_pages(void)
{
	return kmc_read_long(KMC_DEBUGFS "/unused_pages");
}

static inline long kmc_recount(void)
{
	return kmc_read_long(KMC_DEBUGFS "/recount");
}

/* The debugfs directory of this process's VM, or NULL if it is not bound. */
static inline char *kmc_vm_dir(void)
{
	static char path[320];
	char prefix[32];
	struct dirent *e;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "%d-", getpid());
	d = opendir(KMC_DEBUGFS "/vms");
	if (!d)
		return NULL;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, prefix, strlen(prefix))) {
			snprintf(path, sizeof(path), KMC_DEBUGFS "/vms/%s", e->d_name);
			closedir(d);
			return path;
		}
	}
	closedir(d);
	return NULL;
}

/* Sum of KVM's page-table pages over all nodes, in kB, exactly. */
static inline long kmc_sec_page_tables_kb(void)
{
	char path[64], line[256];
	long total = 0, kb;
	int node;
	FILE *f;

	/* Fold the per-CPU vmstat deltas, or the node counts lag behind. */
	f = fopen("/proc/sys/vm/stat_refresh", "w");
	TEST_ASSERT(f, "open /proc/sys/vm/stat_refresh");
	fputs("1", f);
	fclose(f);

	for (node = 0; node < 64; node++) {
		snprintf(path, sizeof(path),
			 "/sys/devices/system/node/node%d/meminfo", node);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "Node %*d SecPageTables: %ld kB", &kb) == 1)
				total += kb;
		fclose(f);
	}
	return total;
}

/* Guest: write the round number to each of @npages pages at @gva, round after round. */
static inline void kmc_guest_write_rounds(u64 gva, u64 npages)
{
	u64 round, i;

	for (round = 0;; round++) {
		for (i = 0; i < npages; i++)
			WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), round);
		GUEST_SYNC(round);
	}
}

/* Host: run @vcpu through one round of kmc_guest_write_rounds(). */
static inline void kmc_run_round(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		TEST_FAIL("Unexpected ucall %lu", uc.cmd);
	}
}

#endif /* KMC_UTIL_H */
