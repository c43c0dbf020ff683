// SPDX-License-Identifier: GPL-2.0
/*
 * KVM_CAP_NUMA_AWARE_PAGE_TABLE, judged by KVM's own per-node accounting.
 *
 * kmc_numa_test cap: with kvm_mmu_cache loaded, KVM_CHECK_EXTENSION says 1
 * on /dev/kvm and on a VM, and KVM_ENABLE_CAP follows the rules (args[0] 0
 * or 1, nothing else set, before any vCPU, idempotent); without the module,
 * 0 and -EINVAL.
 *
 * kmc_numa_test place on|off: a VM whose test memory is bound to node 1
 * while the thread running its vCPU is pinned to node 0 writes 64 MiB; the
 * page tables KVM accounts while it does (SecPageTables per node, after
 * stat_refresh) must be on node 1 (at least 99%) with the capability on,
 * and follow the thread (at least 90% on node 0) with it off.
 *
 * kmc_numa_test split on|off (TDP MMU): the same VM with 32 MiB of
 * THP-backed test memory on node 1, mapped by KVM with 2 MiB pages, then
 * dirty logging on, which splits every huge page eagerly: the new page
 * tables (one per 2 MiB) must be on node 1 (at least 99%) with the
 * capability on, and on the thread's node (at least 90%) with it off; with
 * the module, each came from it (stats: split_pages).
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/mempolicy.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_PAGES	(SZ_64M / PAGE_SIZE)
#define MEM_NODE	1
#define THREAD_NODE	0

static void guest_code(u64 gva, u64 npages)
{
	u64 i;

	/* The first run faults in code, stack and ucall pages. */
	GUEST_SYNC(0);
	for (i = 0; i < npages; i++)
		WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), i);
	for (i = 0; i < npages; i++)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(gva + i * PAGE_SIZE)), i);
	GUEST_DONE();
}

static int enable_cap(struct kvm_vm *vm, u32 flags, u64 a0, u64 a1, u64 a2, u64 a3)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_NUMA_AWARE_PAGE_TABLE,
		.flags = flags,
		.args = { a0, a1, a2, a3 },
	};

	return __vm_ioctl(vm, KVM_ENABLE_CAP, &cap);
}

static void assert_einval(int r, const char *what)
{
	TEST_ASSERT(r == -1 && errno == EINVAL,
		    "KVM_ENABLE_CAP %s: %d (errno %d), expected EINVAL", what, r, errno);
}

static void test_cap(void)
{
	int supported = kmc_loaded();
	int kvm_fd = open_kvm_dev_path_or_exit();
	struct kvm_enable_cap other = { .cap = KVM_CAP_NUMA_AWARE_PAGE_TABLE + 1 };
	struct kvm_vm *vm;

	TEST_ASSERT_EQ(ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NUMA_AWARE_PAGE_TABLE),
		       supported);
	TEST_ASSERT_EQ(ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NUMA_AWARE_PAGE_TABLE + 1), 0);
	TEST_ASSERT_EQ(ioctl(kvm_fd, KVM_CHECK_EXTENSION, 0x7fffffff), 0);
	close(kvm_fd);

	vm = vm_create_barebones();
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_NUMA_AWARE_PAGE_TABLE), supported);
	TEST_ASSERT_EQ(vm_check_cap(vm, KVM_CAP_NUMA_AWARE_PAGE_TABLE + 1), 0);
	assert_einval(__vm_ioctl(vm, KVM_ENABLE_CAP, &other), "of an unknown provider cap");

	if (!supported) {
		assert_einval(enable_cap(vm, 0, 1, 0, 0, 0), "without the module");
		kvm_vm_free(vm);
		printf("cap: not offered without the module\n");
		return;
	}

	assert_einval(enable_cap(vm, 0, 2, 0, 0, 0), "args[0] = 2");
	assert_einval(enable_cap(vm, 0, ~0ULL, 0, 0, 0), "args[0] = -1");
	assert_einval(enable_cap(vm, 0, 1, 1, 0, 0), "args[1] = 1");
	assert_einval(enable_cap(vm, 0, 1, 0, 0, 1ULL << 63), "args[3] set");
	assert_einval(enable_cap(vm, 1, 1, 0, 0, 0), "flags = 1");
	TEST_ASSERT_EQ(enable_cap(vm, 0, 1, 0, 0, 0), 0);
	TEST_ASSERT_EQ(enable_cap(vm, 0, 1, 0, 0, 0), 0);
	TEST_ASSERT_EQ(enable_cap(vm, 0, 0, 0, 0, 0), 0);
	TEST_ASSERT_EQ(enable_cap(vm, 0, 1, 0, 0, 0), 0);

	__vm_vcpu_add(vm, 0);
	assert_einval(enable_cap(vm, 0, 1, 0, 0, 0), "after a vCPU (on)");
	assert_einval(enable_cap(vm, 0, 0, 0, 0, 0), "after a vCPU (off)");
	kvm_vm_free(vm);
	printf("cap: offered; bad args, flags and late enables refused; enables idempotent\n");
}

static int first_cpu_of_node(int node)
{
	char path[64];
	int cpu = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", node);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &cpu) != 1)
		cpu = -1;
	fclose(f);
	return cpu;
}

/* KVM's page tables on @node, in kB, per-CPU deltas folded in. */
static long sec_page_tables_node_kb(int node)
{
	char path[64], line[256];
	long kb = -1, v;
	FILE *f;

	f = fopen("/proc/sys/vm/stat_refresh", "w");
	TEST_ASSERT(f, "open /proc/sys/vm/stat_refresh");
	fputs("1", f);
	fclose(f);

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

/* The node of the memory at @addr, faulted in. */
static int node_of(void *addr)
{
	int node = -1;

	TEST_ASSERT(!syscall(__NR_get_mempolicy, &node, NULL, 0, addr,
			     MPOL_F_NODE | MPOL_F_ADDR), "get_mempolicy");
	return node;
}

/*
 * A VM with @pages of @src test memory bound to MEM_NODE, its vCPU set to
 * write and verify all of it, and the calling thread (which runs the vCPU)
 * pinned to THREAD_NODE before the VM exists, so that everything KVM
 * allocates for it is local; the capability enabled if @on.  Skips without
 * CPUs on both nodes, or without the module if @on.
 */
static struct kvm_vm *numa_vm(int on, enum vm_mem_backing_src_type src, u64 pages,
			      struct kvm_vcpu **vcpu, void **hva)
{
	unsigned long mask = 1UL << MEM_NODE;
	int cpu = first_cpu_of_node(THREAD_NODE);
	struct kvm_vm *vm;
	cpu_set_t cpus;

	if (cpu < 0 || first_cpu_of_node(MEM_NODE) < 0) {
		print_skip("needs CPUs on nodes %d and %d", THREAD_NODE, MEM_NODE);
		exit(KSFT_SKIP);
	}
	if (on && !kmc_loaded()) {
		print_skip("the capability needs kvm_mmu_cache");
		exit(KSFT_SKIP);
	}
	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	TEST_ASSERT(!sched_setaffinity(0, sizeof(cpus), &cpus), "pin to CPU %d", cpu);

	vm = vm_create(1);
	if (on)
		TEST_ASSERT_EQ(enable_cap(vm, 0, 1, 0, 0, 0), 0);
	*vcpu = vm_vcpu_add(vm, 0, guest_code);
	vm_userspace_mem_region_add(vm, src, TEST_GPA, TEST_SLOT, pages, 0);
	*hva = addr_gpa2hva(vm, TEST_GPA);
	TEST_ASSERT(!syscall(__NR_mbind, *hva, pages * PAGE_SIZE, MPOL_BIND,
			     &mask, 8 * sizeof(mask), MPOL_MF_MOVE | MPOL_MF_STRICT),
		    "mbind the test memory to node %d", MEM_NODE);
	virt_map(vm, TEST_GPA, TEST_GPA, pages);
	vcpu_args_set(*vcpu, 2, TEST_GPA, pages);
	return vm;
}

/*
 * New page tables, @d0 kB on THREAD_NODE and @d1 kB on MEM_NODE: with the
 * capability at least 99% on the memory's node, without it at least 90% on
 * the thread's.
 */
static void assert_placement(int on, long d0, long d1, const char *what)
{
	long total = d0 + d1;

	if (on)
		TEST_ASSERT(d1 * 100 >= total * 99,
			    "only %ld of %ld kB of %s on the memory's node", d1, total, what);
	else
		TEST_ASSERT(d0 * 100 >= total * 90,
			    "only %ld of %ld kB of %s on the thread's node", d0, total, what);
}

static void test_place(int on)
{
	long before[2], after[2], d0, d1, total;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	void *hva;

	/* 4 KiB host pages only, so that KVM maps every page at 4 KiB. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	vm = numa_vm(on, VM_MEM_SRC_ANONYMOUS, TEST_PAGES, &vcpu, &hva);

	kmc_run_to_sync(vcpu);
	before[0] = sec_page_tables_node_kb(THREAD_NODE);
	before[1] = sec_page_tables_node_kb(MEM_NODE);
	kmc_run_to_done(vcpu);
	after[0] = sec_page_tables_node_kb(THREAD_NODE);
	after[1] = sec_page_tables_node_kb(MEM_NODE);
	TEST_ASSERT_EQ(node_of(hva), MEM_NODE);
	TEST_ASSERT_EQ(node_of(hva + (TEST_PAGES - 1) * PAGE_SIZE), MEM_NODE);

	d0 = after[0] - before[0];
	d1 = after[1] - before[1];
	total = d0 + d1;
	printf("capability %s: new page tables %ld kB on node %d (thread), %ld kB on node %d\n",
	       on ? "on" : "off", d0, THREAD_NODE, d1, MEM_NODE);
	/* One 4 KiB last-level table maps at most 2 MiB. */
	TEST_ASSERT(total >= (long)(TEST_PAGES / 512 * 4),
		    "KVM accounted %ld kB of new page tables, expected at least %llu",
		    total, TEST_PAGES / 512 * 4);
	assert_placement(on, d0, d1, "page tables");
	kvm_vm_free(vm);
}

#define SPLIT_PAGES	(SZ_32M / PAGE_SIZE)

static void test_split(int on)
{
	long before[2], after[2], d0, d1, total, want = SPLIT_PAGES / 512 * 4;
	struct kmc_stats s0 = {}, s1 = {};
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	void *hva;

	vm = numa_vm(on, VM_MEM_SRC_ANONYMOUS_THP, SPLIT_PAGES, &vcpu, &hva);
	kmc_run_to_sync(vcpu);
	kmc_run_to_done(vcpu);
	TEST_ASSERT_EQ(node_of(hva), MEM_NODE);

	if (kmc_loaded())
		s0 = kmc_stats();
	before[0] = sec_page_tables_node_kb(THREAD_NODE);
	before[1] = sec_page_tables_node_kb(MEM_NODE);
	vm_mem_region_set_flags(vm, TEST_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	after[0] = sec_page_tables_node_kb(THREAD_NODE);
	after[1] = sec_page_tables_node_kb(MEM_NODE);
	if (kmc_loaded())
		s1 = kmc_stats();

	d0 = after[0] - before[0];
	d1 = after[1] - before[1];
	total = d0 + d1;
	printf("capability %s: split tables %ld kB on node %d (thread), %ld kB on node %d\n",
	       on ? "on" : "off", d0, THREAD_NODE, d1, MEM_NODE);
	printf("module split pages: %ld\n", s1.split_pages - s0.split_pages);
	/* One 4 KiB table replaces each 2 MiB mapping. */
	TEST_ASSERT(total >= want,
		    "eager splitting added %ld kB of page tables, expected at least %ld (no 2 MiB mappings?)",
		    total, want);
	assert_placement(on, d0, d1, "split tables");
	if (kmc_loaded())
		TEST_ASSERT(s1.split_pages - s0.split_pages >= want / 4,
			    "the module supplied %ld split tables, expected at least %ld",
			    s1.split_pages - s0.split_pages, want / 4);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	if (argc == 2 && !strcmp(argv[1], "cap"))
		test_cap();
	else if (argc == 3 && !strcmp(argv[1], "place"))
		test_place(!strcmp(argv[2], "on"));
	else if (argc == 3 && !strcmp(argv[1], "split"))
		test_split(!strcmp(argv[2], "on"));
	else
		TEST_FAIL("usage: %s cap | place on|off | split on|off", argv[0]);
	return 0;
}
