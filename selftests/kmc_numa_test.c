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
 * kmc_numa_test place on|off gmem: the same with the test memory in a
 * guest_memfd (mappable, shared with the host), bound to node 1 by mbind()
 * on its mapping, which guest_memfd takes as its memory policy.
 *
 * kmc_numa_test interleave on|off: the same 64 MiB, its 2 MiB chunks bound
 * round-robin to every node (node i's share: 1 / nodes), the thread on node
 * 0. With the capability, the last-level tables (one per 2 MiB) go where
 * their chunk is: each node gets at least 99% of its share of them; upper
 * levels (a few tables) go on the node of the fault that first needed them.
 * Without it, at least 90% of the new tables follow the thread.
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

/* The node of the memory at @addr, faulted in. */
static int node_of(void *addr)
{
	int node = -1;

	TEST_ASSERT(!syscall(__NR_get_mempolicy, &node, NULL, 0, addr,
			     MPOL_F_NODE | MPOL_F_ADDR), "get_mempolicy");
	return node;
}

#define MAX_NODES	8
#define CHUNK_PAGES	(SZ_2M / PAGE_SIZE)

/* The online nodes, which the suite's guests number 0..n-1. */
static int online_nodes(void)
{
	int first, last = 0, n;
	FILE *f = fopen("/sys/devices/system/node/online", "r");

	TEST_ASSERT(f, "open /sys/devices/system/node/online");
	n = fscanf(f, "%d-%d", &first, &last);
	TEST_ASSERT(n >= 1 && first == 0 && fgetc(f) == '\n',
		    "the online nodes are not 0 or 0-<n>");
	fclose(f);
	n = n == 2 ? last + 1 : 1;
	TEST_ASSERT(n <= MAX_NODES, "%d nodes, at most %d supported", n, MAX_NODES);
	return n;
}

/*
 * A VM with one vCPU (running guest_code), the capability enabled if @on,
 * and the calling thread (which runs the vCPU) pinned to THREAD_NODE before
 * the VM exists, so that everything KVM allocates for it is local.  Skips
 * without CPUs on both nodes, or without the module if @on.
 */
static struct kvm_vm *numa_vm_create(int on, struct kvm_vcpu **vcpu)
{
	struct kvm_vm *vm;

	if (on && !kmc_loaded()) {
		print_skip("the capability needs kvm_mmu_cache");
		exit(KSFT_SKIP);
	}
	if (online_nodes() <= MEM_NODE || !kmc_pin_to_node(THREAD_NODE)) {
		print_skip("needs nodes %d (with CPUs) and %d", THREAD_NODE, MEM_NODE);
		exit(KSFT_SKIP);
	}

	vm = vm_create(1);
	if (on)
		TEST_ASSERT_EQ(enable_cap(vm, 0, 1, 0, 0, 0), 0);
	*vcpu = vm_vcpu_add(vm, 0, guest_code);
	return vm;
}

/*
 * numa_vm_create()'s VM with @pages of @src test memory bound to MEM_NODE,
 * its vCPU set to write and verify all of it.
 */
static struct kvm_vm *numa_vm(int on, enum vm_mem_backing_src_type src, u64 pages,
			      struct kvm_vcpu **vcpu, void **hva)
{
	struct kvm_vm *vm = numa_vm_create(on, vcpu);
	unsigned long mask = 1UL << MEM_NODE;

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
 * As numa_vm(), with the test memory in a guest_memfd (mappable, shared)
 * instead, whose memory policy is set through its mapping (*@hva).
 */
static struct kvm_vm *numa_vm_gmem(int on, u64 pages, struct kvm_vcpu **vcpu, void **hva)
{
	struct kvm_vm *vm = numa_vm_create(on, vcpu);
	unsigned long mask = 1UL << MEM_NODE;
	u64 size = pages * PAGE_SIZE;
	int fd;

	if (!(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) & GUEST_MEMFD_FLAG_MMAP) ||
	    !(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) & GUEST_MEMFD_FLAG_INIT_SHARED)) {
		print_skip("no mappable, shared guest_memfd");
		exit(KSFT_SKIP);
	}
	fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
	*hva = kvm_mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	TEST_ASSERT(!syscall(__NR_mbind, *hva, size, MPOL_BIND, &mask, 8 * sizeof(mask), 0),
		    "mbind the guest_memfd to node %d", MEM_NODE);
	/*
	 * The mapping's address too, although faults take the pages from the
	 * guest_memfd: the shadow MMU's prefetch (kvm_mmu_prefetch_sptes())
	 * GUPs the memslot's userspace address even then, and with none (0)
	 * it mapped the test's own binary and heap into the guest.
	 */
	vm_set_user_memory_region2(vm, TEST_SLOT, KVM_MEM_GUEST_MEMFD, TEST_GPA, size, *hva,
				   fd, 0);
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

/*
 * The vCPU of a NUMA-aware @vm that faulted on @nodes nodes: one page-table
 * cache per node, each of which served its node's faults (no miss, no page
 * from another node), none from its default cache, and no more unused pages
 * than a capacity per node.
 */
static void assert_node_caches(struct kvm_vm *vm, int nodes)
{
	const char *dir = kmc_vm_dir(vm);
	struct kmc_vcpu_caches v;
	struct kmc_node counted[KMC_MAX_NODES];
	long unused, capacity = kmc_capacity();
	int i, own, nr;

	TEST_ASSERT(dir, "the NUMA-aware VM is not bound");
	v = kmc_read_vcpu(dir, 0);
	TEST_ASSERT_EQ(v.nr_nodes, nodes);
	unused = v.page_table.free + v.shadowed_info.free;
	for (i = 0; i < v.nr_nodes; i++) {
		struct kmc_cache *c = &v.node_page_table[i];

		printf("node%d_page_table: allocs %ld misses %ld fallbacks %ld free %ld\n",
		       v.node_id[i], c->allocs, c->misses, c->fallbacks, c->free);
		TEST_ASSERT(c->allocs > 0, "node %d's cache served nothing", v.node_id[i]);
		TEST_ASSERT_EQ(c->misses, 0);
		TEST_ASSERT_EQ(c->fallbacks, 0);
		unused += c->free;
	}
	printf("unused cached pages of the vCPU: %ld (capacity %ld, %d nodes in use)\n",
	       unused, capacity, nodes);
	/*
	 * The module's per-node counters against a recount of the caches by
	 * node (this VM's are the only ones): a node cache's pages are on
	 * its node (no fallback), the shadowed-info pages on the thread's.
	 */
	nr = kmc_read_nodes(counted, KMC_MAX_NODES);
	for (i = 0; i < nr; i++) {
		long expected = i == THREAD_NODE ? v.shadowed_info.free : 0;
		int k;

		for (k = 0; k < v.nr_nodes; k++)
			if (v.node_id[k] == i)
				expected += v.node_page_table[k].free;
		printf("node%d: unused_pages %ld, recount %ld\n", i, counted[i].unused, expected);
		TEST_ASSERT_EQ(counted[i].unused, expected);
	}
	/* Roots too go on a node's cache: the default one stays unused. */
	TEST_ASSERT(!v.page_table.topups && !v.page_table.allocs,
		    "the default page-table cache was used (%ld topups, %ld allocs)",
		    v.page_table.topups, v.page_table.allocs);
	/* And a capacity for the shadowed-info cache, under shadow paging. */
	own = !!v.shadowed_info.topups;
	TEST_ASSERT(unused <= capacity * (nodes + own),
		    "%ld unused cached pages, more than a capacity (%ld) per node in use%s",
		    unused, capacity, own ? " and for shadowed info" : "");
}

static void test_place(int on, int gmem)
{
	long before[2], after[2], d0, d1, total;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	void *hva;

	/* 4 KiB host pages only, so that KVM maps every page at 4 KiB. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	if (gmem)
		vm = numa_vm_gmem(on, TEST_PAGES, &vcpu, &hva);
	else
		vm = numa_vm(on, VM_MEM_SRC_ANONYMOUS, TEST_PAGES, &vcpu, &hva);

	kmc_run_to_sync(vcpu);
	before[0] = kmc_sec_page_tables_node_kb(THREAD_NODE);
	before[1] = kmc_sec_page_tables_node_kb(MEM_NODE);
	kmc_run_to_done(vcpu);
	after[0] = kmc_sec_page_tables_node_kb(THREAD_NODE);
	after[1] = kmc_sec_page_tables_node_kb(MEM_NODE);
	TEST_ASSERT_EQ(node_of(hva), MEM_NODE);
	TEST_ASSERT_EQ(node_of(hva + (TEST_PAGES - 1) * PAGE_SIZE), MEM_NODE);

	d0 = after[0] - before[0];
	d1 = after[1] - before[1];
	total = d0 + d1;
	printf("%s, capability %s: new page tables %ld kB on node %d (thread), %ld kB on node %d\n",
	       gmem ? "guest_memfd" : "anonymous memory", on ? "on" : "off", d0, THREAD_NODE, d1,
	       MEM_NODE);
	/* One 4 KiB last-level table maps at most 2 MiB. */
	TEST_ASSERT(total >= (long)(TEST_PAGES / 512 * 4),
		    "KVM accounted %ld kB of new page tables, expected at least %llu",
		    total, TEST_PAGES / 512 * 4);
	assert_placement(on, d0, d1, "page tables");
	/* The guest's code and stack are in slot 0, on the thread's node. */
	if (on)
		assert_node_caches(vm, 2);
	kvm_vm_free(vm);
}

static void test_interleave(int on)
{
	long before[MAX_NODES], after[MAX_NODES], d[MAX_NODES], total = 0, share;
	int nodes = online_nodes(), i;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 chunk;
	void *hva;

	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	vm = numa_vm(on, VM_MEM_SRC_ANONYMOUS, TEST_PAGES, &vcpu, &hva);
	for (chunk = 0; chunk < TEST_PAGES / CHUNK_PAGES; chunk++) {
		unsigned long mask = 1UL << (chunk % nodes);

		TEST_ASSERT(!syscall(__NR_mbind, hva + chunk * SZ_2M, SZ_2M, MPOL_BIND,
				     &mask, 8 * sizeof(mask), MPOL_MF_MOVE | MPOL_MF_STRICT),
			    "mbind chunk %d to node %d", (int)chunk, (int)(chunk % nodes));
	}

	kmc_run_to_sync(vcpu);
	for (i = 0; i < nodes; i++)
		before[i] = kmc_sec_page_tables_node_kb(i);
	kmc_run_to_done(vcpu);
	for (i = 0; i < nodes; i++) {
		after[i] = kmc_sec_page_tables_node_kb(i);
		d[i] = after[i] - before[i];
		total += d[i];
		TEST_ASSERT_EQ(node_of(hva + i * SZ_2M), i);
		printf("capability %s: node %d: new page tables %ld kB%s\n",
		       on ? "on" : "off", i, d[i], i == THREAD_NODE ? " (thread)" : "");
	}
	/* Each node's chunks: one 4 KiB last-level table per 2 MiB. */
	share = TEST_PAGES / CHUNK_PAGES / nodes * 4;
	TEST_ASSERT(total >= share * nodes,
		    "KVM accounted %ld kB of new page tables, expected at least %ld",
		    total, share * nodes);
	for (i = 0; i < nodes; i++) {
		if (on)
			TEST_ASSERT(d[i] * 100 >= share * 99,
				    "only %ld kB of page tables on node %d, its chunks need %ld",
				    d[i], i, share);
		else if (i == THREAD_NODE)
			TEST_ASSERT(d[i] * 100 >= total * 90,
				    "only %ld of %ld kB of page tables on the thread's node",
				    d[i], total);
	}
	if (on)
		assert_node_caches(vm, nodes);
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
	before[0] = kmc_sec_page_tables_node_kb(THREAD_NODE);
	before[1] = kmc_sec_page_tables_node_kb(MEM_NODE);
	vm_mem_region_set_flags(vm, TEST_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	after[0] = kmc_sec_page_tables_node_kb(THREAD_NODE);
	after[1] = kmc_sec_page_tables_node_kb(MEM_NODE);
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
	else if ((argc == 3 || (argc == 4 && !strcmp(argv[3], "gmem"))) &&
		 !strcmp(argv[1], "place"))
		test_place(!strcmp(argv[2], "on"), argc == 4);
	else if (argc == 3 && !strcmp(argv[1], "interleave"))
		test_interleave(!strcmp(argv[2], "on"));
	else if (argc == 3 && !strcmp(argv[1], "split"))
		test_split(!strcmp(argv[2], "on"));
	else
		TEST_FAIL("usage: %s cap | place on|off [gmem] | interleave on|off | split on|off",
			  argv[0]);
	return 0;
}
