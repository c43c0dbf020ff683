/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the kvm_mmu_cache selftests: reading the module's
 * debugfs files and parameters, KVM's page-table accounting, and guest code
 * that faults in fresh memory round after round.
 */
#ifndef KMC_UTIL_H
#define KMC_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define KMC_DEBUGFS "/sys/kernel/debug/kvm_mmu_cache"
#define KMC_PARAMS "/sys/module/kvm_mmu_cache/parameters"
#define KMC_KO "/kmc/modules/kvm_mmu_cache.ko"

/* The module's capability, outside upstream's numbers (Documentation/). */
#ifndef KVM_CAP_NUMA_AWARE_PAGE_TABLE
#define KVM_CAP_NUMA_AWARE_PAGE_TABLE 0x10000
#endif

/* Memory one vCPU faults in per round: two 2 MiB regions, fresh each time. */
#define KMC_ROUND_MEM	SZ_4M
#define KMC_ROUND_PAGES	(KMC_ROUND_MEM / PAGE_SIZE)

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

static inline long kmc_capacity(void)
{
	return kmc_read_long(KMC_PARAMS "/capacity");
}

/* Module-wide statistics since load (debugfs "stats"). */
struct kmc_stats {
	long vms_bound;
	long allocs;
	long misses;
	long split_pages;
};

static inline struct kmc_stats kmc_stats(void)
{
	struct kmc_stats s;
	FILE *f = fopen(KMC_DEBUGFS "/stats", "r");

	TEST_ASSERT(f, "open " KMC_DEBUGFS "/stats");
	TEST_ASSERT(fscanf(f, "vms_bound %ld allocs %ld misses %ld split_pages %ld",
			   &s.vms_bound, &s.allocs, &s.misses,
			   &s.split_pages) == 4, "parse " KMC_DEBUGFS "/stats");
	fclose(f);
	return s;
}

/* Shadow paging (kvm_amd.npt=0 or kvm_intel.ept=0) rather than TDP. */
static inline int kmc_shadow_paging(void)
{
	static const char * const files[] = { "/sys/module/kvm_amd/parameters/npt",
				"/sys/module/kvm_intel/parameters/ept" };
	char c = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(files); i++) {
		FILE *f = fopen(files[i], "r");

		if (!f)
			continue;
		TEST_ASSERT(fread(&c, 1, 1, f) == 1, "read %s", files[i]);
		fclose(f);
		return c == 'N' || c == '0';
	}
	TEST_FAIL("neither kvm_amd nor kvm_intel is loaded");
	return 0;
}

/*
 * The module's debugfs directory of @vm, named as KVM's own "<pid>-<fd>",
 * or NULL if the VM is not bound. KVM's <pid> is the creating thread's id:
 * the project's tests create their VMs on the main thread, whose id is the
 * process's.
 */
static inline const char *kmc_vm_dir(struct kvm_vm *vm)
{
	static char path[128];

	snprintf(path, sizeof(path), KMC_DEBUGFS "/vms/%d-%d", getpid(), vm->fd);
	return access(path, F_OK) ? NULL : path;
}

/* Whether any VM of this process has a directory in the module's debugfs. */
static inline int kmc_any_vm_dir(void)
{
	char prefix[32];
	struct dirent *e;
	int found = 0;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "%d-", getpid());
	d = opendir(KMC_DEBUGFS "/vms");
	if (!d)
		return 0;
	while ((e = readdir(d)))
		found |= !strncmp(e->d_name, prefix, strlen(prefix));
	closedir(d);
	return found;
}

/*
 * Pins the calling thread (and the threads it creates after) to the CPUs of
 * @node; false if it has none.
 */
static inline bool kmc_pin_to_node(int node)
{
	int first, last, n, count = 0;
	char path[64];
	cpu_set_t cpus;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", node);
	f = fopen(path, "r");
	if (!f)
		return false;
	CPU_ZERO(&cpus);
	/* A list of ranges: "0-3,8,10-11". */
	while ((n = fscanf(f, "%d-%d", &first, &last)) >= 1) {
		if (n == 1)
			last = first;
		for (; first <= last && first < CPU_SETSIZE; first++, count++)
			CPU_SET(first, &cpus);
		if (fgetc(f) != ',')
			break;
	}
	fclose(f);
	if (!count)
		return false;
	TEST_ASSERT(!sched_setaffinity(0, sizeof(cpus), &cpus), "pin to node %d's CPUs", node);
	return true;
}

/* Folds the per-CPU vmstat deltas, or the node counts lag behind. */
static inline void kmc_stat_refresh(void)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);

	TEST_ASSERT(fd >= 0, "open /proc/sys/vm/stat_refresh");
	TEST_ASSERT(write(fd, "1", 1) == 1, "write /proc/sys/vm/stat_refresh");
	close(fd);
}

/* KVM's page tables on @node, in kB, per-CPU deltas folded in. */
static inline long kmc_sec_page_tables_node_kb(int node)
{
	char path[64], line[256];
	long kb = -1, v;
	FILE *f;

	kmc_stat_refresh();
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", node);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Node %*d SecPageTables: %ld kB", &v) == 1)
			kb = v;
	fclose(f);
	TEST_ASSERT(kb >= 0, "no SecPageTables in %s", path);
	return kb;
}

/* One cache's line of a vCPU file. */
struct kmc_cache {
	long free, capacity, held, topups, allocs, misses, fallbacks;
};

#define KMC_MAX_NODES 64

/*
 * A vCPU's caches, from vms/<vm>/vcpu<index>: of a NUMA-aware VM also one
 * page-table cache per node it faulted on (node_page_table[], nr_nodes of
 * them, node_id[] saying which).
 */
struct kmc_vcpu_caches {
	struct kmc_cache page_table, shadowed_info;
	struct kmc_cache node_page_table[KMC_MAX_NODES];
	int node_id[KMC_MAX_NODES];
	int nr_nodes;
};

static inline struct kmc_vcpu_caches kmc_read_vcpu(const char *vm_dir, int index)
{
	struct kmc_vcpu_caches v = {};
	struct kmc_cache *c;
	char path[256], line[256], name[32];
	int seen = 0, node;
	FILE *f;

	snprintf(path, sizeof(path), "%s/vcpu%d", vm_dir, index);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	while (fgets(line, sizeof(line), f)) {
		struct kmc_cache tmp;

		TEST_ASSERT(sscanf(line,
				   "%31[a-z0-9_]: free %ld capacity %ld held %ld topups %ld allocs %ld misses %ld fallbacks %ld",
				   name, &tmp.free, &tmp.capacity, &tmp.held,
				   &tmp.topups, &tmp.allocs, &tmp.misses, &tmp.fallbacks) == 8,
			    "parse '%s' in %s", line, path);
		if (!strcmp(name, "page_table")) {
			c = &v.page_table;
		} else if (!strcmp(name, "shadowed_info")) {
			c = &v.shadowed_info;
		} else if (sscanf(name, "node%d_page_table", &node) == 1 &&
			   v.nr_nodes < KMC_MAX_NODES) {
			v.node_id[v.nr_nodes] = node;
			c = &v.node_page_table[v.nr_nodes++];
		} else {
			TEST_FAIL("unknown cache '%s' in %s", name, path);
		}
		*c = tmp;
		seen++;
	}
	fclose(f);
	TEST_ASSERT_EQ(seen, 2 + v.nr_nodes);
	return v;
}

/*
 * After a fault that needed no new page table (its topup refilled every cache
 * in use), with the vCPU quiet: vCPU @index of the VM at @vm_dir holds
 * exactly `capacity` pages in its page-table cache, and in its shadowed-info
 * cache under shadow paging only; none missed, none is held. Returns the
 * pages it holds.
 */
static inline long kmc_assert_vcpu_full(const char *vm_dir, int index)
{
	struct kmc_vcpu_caches c = kmc_read_vcpu(vm_dir, index);
	long capacity = kmc_capacity();
	int shadow = kmc_shadow_paging();

	TEST_ASSERT(c.page_table.allocs > 0, "vcpu %d took no page from the module", index);
	TEST_ASSERT_EQ(c.page_table.misses, 0);
	TEST_ASSERT_EQ(c.shadowed_info.misses, 0);
	TEST_ASSERT_EQ(c.page_table.held, 0);
	TEST_ASSERT_EQ(c.shadowed_info.held, 0);
	TEST_ASSERT_EQ(c.page_table.free, capacity);
	TEST_ASSERT_EQ(c.shadowed_info.free, shadow ? capacity : 0);
	if (!shadow)
		TEST_ASSERT_EQ(c.shadowed_info.allocs, 0);
	return c.page_table.free + c.shadowed_info.free;
}

/* Sum of KVM's page-table pages over all nodes, in kB, exactly. */
static inline long kmc_sec_page_tables_kb(void)
{
	char path[64], line[256];
	long total = 0, kb;
	int node;
	FILE *f;

	kmc_stat_refresh();

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

/*
 * After a VM is freed, KVM's page-table accounting returns to @before: some
 * tables are freed after an RCU grace period, so wait up to 10 s for it.
 */
static inline void kmc_assert_sec_page_tables_back(long before)
{
	long now = kmc_sec_page_tables_kb();
	int i;

	for (i = 0; i < 100 && now != before; i++) {
		usleep(100 * 1000);
		now = kmc_sec_page_tables_kb();
	}
	TEST_ASSERT(now == before,
		    "SecPageTables %ld kB after the VMs, %ld kB before", now, before);
}

static inline u64 kmc_pattern(u64 round, u64 page)
{
	return round << 32 | page;
}

/*
 * Guest: round after round, fault in KMC_ROUND_PAGES fresh pages at @gva,
 * the last page of each round apart: first every page but the last (new
 * page tables), then GUEST_SYNC, then the last page, which lies in a 2 MiB
 * region already mapped and so needs no new page table, then GUEST_SYNC.
 * Each round checks what the previous one wrote.
 */
static inline void kmc_guest_fault_rounds(u64 gva)
{
	u64 round, i, base, prev;

	for (round = 0;; round++) {
		base = gva + round * KMC_ROUND_MEM;
		for (i = 0; i < KMC_ROUND_PAGES - 1; i++)
			WRITE_ONCE(*(u64 *)(base + i * PAGE_SIZE), kmc_pattern(round, i));
		GUEST_SYNC(round);
		WRITE_ONCE(*(u64 *)(base + i * PAGE_SIZE), kmc_pattern(round, i));
		if (round) {
			prev = base - KMC_ROUND_MEM;
			for (i = 0; i < KMC_ROUND_PAGES; i++)
				GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(prev + i * PAGE_SIZE)),
						kmc_pattern(round - 1, i));
		}
		GUEST_SYNC(round);
	}
}

/*
 * Host: fails the test for an exit that was no expected ucall, with where
 * the guest was when it shut down (a triple fault: the guests have no IDT).
 */
static inline void kmc_unexpected_exit(struct kvm_vcpu *vcpu, struct ucall *uc)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	/* Best effort: the failure below must be reported whatever happens. */
	if (vcpu->run->exit_reason == KVM_EXIT_SHUTDOWN &&
	    !__vcpu_ioctl(vcpu, KVM_GET_REGS, &regs) &&
	    !__vcpu_ioctl(vcpu, KVM_GET_SREGS, &sregs)) {
		fprintf(stderr, "vCPU %u shut down: rip 0x%llx rsp 0x%llx; ",
			vcpu->id, regs.rip, regs.rsp);
		fprintf(stderr, "cr0 0x%llx cr2 0x%llx cr3 0x%llx cr4 0x%llx efer 0x%llx\n",
			sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer);
	}
	TEST_FAIL("Unexpected ucall %lu, exit reason %s", uc->cmd,
		  exit_reason_str(vcpu->run->exit_reason));
}

/* Host: fails the test unless @vcpu's last exit is a GUEST_SYNC. */
static inline void kmc_expect_sync(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		kmc_unexpected_exit(vcpu, &uc);
	}
}

/* Host: run @vcpu to its next GUEST_SYNC. */
static inline void kmc_run_to_sync(struct kvm_vcpu *vcpu)
{
	vcpu_run(vcpu);
	kmc_expect_sync(vcpu);
}

/* Host: run @vcpu until its guest code is done (GUEST_DONE). */
static inline void kmc_run_to_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_DONE:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		kmc_unexpected_exit(vcpu, &uc);
	}
}

/* Host: run @vcpu through one whole round of kmc_guest_fault_rounds(). */
static inline void kmc_run_round(struct kvm_vcpu *vcpu)
{
	kmc_run_to_sync(vcpu);
	kmc_run_to_sync(vcpu);
}

/*
 * Host: a VM with one vCPU running @guest_code(@gpa, @pages) over the
 * @pages of memory at @gpa (memslot @slot), identity-mapped.
 */
static inline struct kvm_vm *kmc_vm_with_memory(struct kvm_vcpu **vcpu, void *guest_code,
						u64 gpa, u32 slot, u64 pages)
{
	struct kvm_vm *vm = vm_create_with_one_vcpu(vcpu, guest_code);

	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, slot, pages, 0);
	virt_map(vm, gpa, gpa, pages);
	vcpu_args_set(*vcpu, 2, gpa, pages);
	return vm;
}

/*
 * Host: add @rounds rounds of memory for each of @nr_vcpus vCPUs of @vm at
 * @gpa (identity-mapped), vCPU i getting its own part.
 */
static inline void kmc_add_round_memory(struct kvm_vm *vm, struct kvm_vcpu **vcpus,
					int nr_vcpus, u64 gpa, u32 slot, int rounds)
{
	u64 per_vcpu = (u64)rounds * KMC_ROUND_MEM;
	int i;

	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, slot,
				    per_vcpu * nr_vcpus / PAGE_SIZE, 0);
	virt_map(vm, gpa, gpa, per_vcpu * nr_vcpus / PAGE_SIZE);
	for (i = 0; i < nr_vcpus; i++)
		vcpu_args_set(vcpus[i], 1, gpa + i * per_vcpu);
}

/* One line of the module's "nodes" file. */
struct kmc_node {
	long unused, scans, scanned, freed, visited, busy;
};

/* Reads up to @max lines of the module's "nodes" file; returns how many. */
static inline int kmc_read_nodes(struct kmc_node *nodes, int max)
{
	char line[256];
	int n = 0, id;
	FILE *f = fopen(KMC_DEBUGFS "/nodes", "r");

	TEST_ASSERT(f, "open " KMC_DEBUGFS "/nodes");
	while (fgets(line, sizeof(line), f)) {
		struct kmc_node *c = &nodes[n];

		TEST_ASSERT(n < max, "more than %d nodes in " KMC_DEBUGFS "/nodes", max);
		TEST_ASSERT(sscanf(line,
				   "node%d unused %ld scans %ld scanned %ld freed %ld visited %ld busy %ld",
				   &id, &c->unused, &c->scans, &c->scanned, &c->freed,
				   &c->visited, &c->busy) == 7 && id == n,
			    "parse '%s' in nodes", line);
		n++;
	}
	fclose(f);
	TEST_ASSERT(n > 0, "no node in " KMC_DEBUGFS "/nodes");
	return n;
}

/* What the shrinker freed, over all nodes. */
static inline long kmc_total_freed(void)
{
	struct kmc_node nodes[KMC_MAX_NODES];
	int i, n = kmc_read_nodes(nodes, KMC_MAX_NODES);
	long freed = 0;

	for (i = 0; i < n; i++)
		freed += nodes[i].freed;
	return freed;
}

static inline void kmc_write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);

	TEST_ASSERT(fd >= 0, "open %s", path);
	TEST_ASSERT(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "write '%s' to %s", s, path);
	close(fd);
}

/* What "echo 2 > /proc/sys/vm/drop_caches" does: every shrinker, every node. */
static inline void kmc_drop_slab(void)
{
	kmc_write_file("/proc/sys/vm/drop_caches", "2");
}

/* The shrinker's directory in /sys/kernel/debug/shrinker/. */
static inline const char *kmc_shrinker_dir(void)
{
	static char path[256];
	glob_t g;

	TEST_ASSERT(!glob("/sys/kernel/debug/shrinker/kvm_mmu_cache-*", 0, NULL, &g) &&
		    g.gl_pathc == 1, "one kvm_mmu_cache shrinker in /sys/kernel/debug/shrinker");
	snprintf(path, sizeof(path), "%s", g.gl_pathv[0]);
	globfree(&g);
	return path;
}

static inline void kmc_scan_node(int node, long nr)
{
	char path[300], cmd[64];

	snprintf(path, sizeof(path), "%s/scan", kmc_shrinker_dir());
	snprintf(cmd, sizeof(cmd), "0 %d %ld", node, nr);
	kmc_write_file(path, cmd);
}

/* rmmod, without waiting for the module's users: 0 or -1 and errno. */
static inline int kmc_delete_module(const char *name)
{
	return syscall(__NR_delete_module, name, O_NONBLOCK);
}

static inline void kmc_insmod(void)
{
	int fd = open(KMC_KO, O_RDONLY | O_CLOEXEC);

	TEST_ASSERT(fd >= 0, "open %s", KMC_KO);
	TEST_ASSERT(!syscall(__NR_finit_module, fd, "", 0), "insmod %s", KMC_KO);
	close(fd);
}

/* The module's reference count, from sysfs. */
static inline int kmc_module_refcnt(void)
{
	FILE *f = fopen("/sys/module/kvm_mmu_cache/refcnt", "r");
	int refs = -1;

	TEST_ASSERT(f, "open refcnt: errno = %d", errno);
	TEST_ASSERT(fscanf(f, "%d", &refs) == 1, "read refcnt");
	fclose(f);
	return refs;
}

#endif /* KMC_UTIL_H */
