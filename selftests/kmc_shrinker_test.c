// SPDX-License-Identifier: GPL-2.0
/*
 * The module's shrinker gives unused cached pages back, and nothing else.
 *
 *   kmc_shrinker_test drop [-v VCPUS]: idle VMs whose caches are full; one
 *     "echo 2 > drop_caches" frees every unused page (unused_pages and its
 *     recount 0, the shrinker's freed count up by exactly what was cached)
 *     and leaves KVM's page tables alone (SecPageTables unchanged: no table
 *     zapped); the VMs then run on, check their memory and refill their
 *     caches, with no miss.
 *   kmc_shrinker_test node: two VMs whose vCPU threads are bound to nodes 0
 *     and 1; a scan of node 1 through /sys/kernel/debug/shrinker/ frees
 *     node 1's pages only, and the shrinker's count matches the module's.
 *   kmc_shrinker_test mixed: one vCPU whose page-table cache holds pages of
 *     both nodes (its thread moved from node 0 to node 1 between rounds); a
 *     scan of node 0 frees those pages from under node 1's and keeps these.
 *   kmc_shrinker_test storm [-t] [-v VCPUS] [-r ROUNDS]: vCPUs fault fresh
 *     memory while another thread drops caches and scans every node every
 *     100 ms (-t: scans without a pause): the guests' memory is right, no
 *     cache missed, pages were freed meanwhile, counter == recount. Each
 *     write is to a new 2 MiB region (mapped 2 MiB in the guest, 4 KiB by
 *     KVM), so that every fault takes a page-table page from the cache it
 *     just topped up: a scan that took a cache in use would make it miss.
 *     Under one storm, 8 cycles of VMs are created, run and destroyed.
 *   kmc_shrinker_test pressure: idle VMs, then the HugeTLB pool grown to
 *     all but 256 MiB of the guest's available memory and a memory hog that
 *     needs more than the guest has: kswapd and direct reclaim take the
 *     caches' pages (the hog stops there, or is OOM-killed); the pool is
 *     given back and the VMs refill.
 *   kmc_shrinker_test cgroup: idle VMs whose VMM (this process) is in a
 *     memory cgroup of its own; proactive reclaim of that cgroup
 *     (memory.reclaim) does not reach the shrinker, which is not
 *     memcg-aware (Documentation/kvm_mmu_cache.rst): the caches stay full;
 *     the root cgroup's memory.reclaim does reach it and frees them; the
 *     VMs then refill.
 */
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/mempolicy.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define NR_VMS		2
#define MAX_VCPUS	4
#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define MAX_ROUNDS	16
/* The storm's guests: one write per 2 MiB region, this many per round. */
#define SPARSE_WRITES	64
#define SPARSE_ROUND	((u64)SPARSE_WRITES * SZ_2M)
/* VMs created, run and destroyed one after the other under one storm. */
#define STORM_CYCLES	8
#define USAGE		"usage: %s drop|node|mixed|storm|pressure|cgroup [-t] [-v VCPUS] [-r ROUNDS]"

static int nr_vcpus = 2, rounds = 6;
static struct kvm_vm *vms[NR_VMS];
static struct kvm_vcpu *vcpus[NR_VMS][MAX_VCPUS];
/* The node each VM's vCPU threads allocate from, or -1. */
static int vm_node[NR_VMS] = { -1, -1 };
static int storm_stop, storm_tight;

static struct kmc_node total_nodes(void)
{
	struct kmc_node nodes[KMC_MAX_NODES], sum = {};
	int i, n = kmc_read_nodes(nodes, KMC_MAX_NODES);

	for (i = 0; i < n; i++) {
		sum.scans += nodes[i].scans;
		sum.visited += nodes[i].visited;
		sum.busy += nodes[i].busy;
	}
	return sum;
}

struct run_arg {
	struct kvm_vcpu *vcpu;
	int node;
	int syncs;
};

static void *run_vcpu(void *data)
{
	struct run_arg *a = data;
	unsigned long mask = 1UL << a->node;
	int i;

	if (a->node >= 0)
		TEST_ASSERT(!syscall(__NR_set_mempolicy, MPOL_BIND, &mask, 64),
			    "set_mempolicy(MPOL_BIND, node %d)", a->node);
	for (i = 0; i < a->syncs; i++)
		kmc_run_to_sync(a->vcpu);
	return NULL;
}

/* Runs every vCPU @syncs times to its next GUEST_SYNC, in parallel. */
static void run_all(int syncs)
{
	pthread_t threads[NR_VMS][MAX_VCPUS];
	struct run_arg args[NR_VMS][MAX_VCPUS];
	int v, i;

	for (v = 0; v < NR_VMS; v++)
		for (i = 0; i < nr_vcpus; i++) {
			args[v][i] = (struct run_arg){ vcpus[v][i], vm_node[v], syncs };
			pthread_create(&threads[v][i], NULL, run_vcpu, &args[v][i]);
		}
	for (v = 0; v < NR_VMS; v++)
		for (i = 0; i < nr_vcpus; i++)
			pthread_join(threads[v][i], NULL);
}

/* From now on every VM's vCPU threads allocate on @node. */
static void bind_vms(int node)
{
	int v;

	for (v = 0; v < NR_VMS; v++)
		vm_node[v] = node;
}

static void create_vms(int nr_rounds)
{
	int v;

	for (v = 0; v < NR_VMS; v++) {
		vms[v] = vm_create_with_vcpus(nr_vcpus, kmc_guest_fault_rounds, vcpus[v]);
		kmc_add_round_memory(vms[v], vcpus[v], nr_vcpus, TEST_GPA, TEST_SLOT,
				     nr_rounds);
		TEST_ASSERT(kmc_vm_dir(vms[v]), "VM %d is not bound to the module", v);
	}
}

static void free_vms(void)
{
	int v;

	for (v = 0; v < NR_VMS; v++)
		kvm_vm_free(vms[v]);
}

/* Pages a quiet vCPU's caches hold: page tables, and shadowed info if shadowing. */
static long full_pages_per_vcpu(void)
{
	return kmc_capacity() * (kmc_shadow_paging() ? 2 : 1);
}

/* Every cache of every vCPU is full, none missed; returns the pages held. */
static long assert_all_full(void)
{
	long total = 0;
	int v, i;

	for (v = 0; v < NR_VMS; v++)
		for (i = 0; i < nr_vcpus; i++)
			total += kmc_assert_vcpu_full(kmc_vm_dir(vms[v]), i);
	return total;
}

static void assert_all_empty(void)
{
	int v, i;

	for (v = 0; v < NR_VMS; v++)
		for (i = 0; i < nr_vcpus; i++) {
			struct kmc_vcpu_caches c = kmc_read_vcpu(kmc_vm_dir(vms[v]), i);

			int n;

			TEST_ASSERT(c.page_table.free == 0 && c.shadowed_info.free == 0,
				    "vm %d vcpu %d keeps %ld + %ld pages after reclaim", v, i,
				    c.page_table.free, c.shadowed_info.free);
			for (n = 0; n < c.nr_nodes; n++)
				TEST_ASSERT(!c.node_page_table[n].free,
					    "vm %d vcpu %d keeps %ld node%d pages after reclaim",
					    v, i, c.node_page_table[n].free, c.node_id[n]);
		}
}

static void test_drop(void)
{
	long expected, unused, freed, kb, kb_vms, after;
	struct kmc_stats before = kmc_stats();

	kb = kmc_sec_page_tables_kb();
	create_vms(3);
	/* A round of fresh memory, then a fault that only refills. */
	run_all(2);
	expected = (long)NR_VMS * nr_vcpus * full_pages_per_vcpu();
	TEST_ASSERT_EQ(assert_all_full(), expected);
	TEST_ASSERT_EQ(kmc_unused_pages(), expected);

	kb_vms = kmc_sec_page_tables_kb();
	freed = kmc_total_freed();
	kmc_drop_slab();
	unused = kmc_unused_pages();
	after = kmc_sec_page_tables_kb();
	printf("drop_caches: unused_pages %ld -> %ld, shrinker freed %ld, ",
	       expected, unused, kmc_total_freed() - freed);
	printf("SecPageTables %ld -> %ld kB\n", kb_vms, after);
	TEST_ASSERT_EQ(unused, 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	TEST_ASSERT_EQ(kmc_total_freed() - freed, expected);
	TEST_ASSERT_EQ(after, kb_vms);
	assert_all_empty();

	/* The VMs run on: the next round checks the last one and refills. */
	run_all(2);
	TEST_ASSERT_EQ(assert_all_full(), expected);
	TEST_ASSERT_EQ(kmc_unused_pages(), expected);
	TEST_ASSERT_EQ(kmc_recount(), expected);
	TEST_ASSERT_EQ(kmc_stats().misses, before.misses);

	free_vms();
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	kmc_assert_sec_page_tables_back(kb);
	printf("ok: one drop_caches freed all %ld unused pages, no page table in use\n",
	       expected);
}

/* The shrinker's own count file: "<memcg> <node 0> <node 1>...", or nothing. */
static long shrinker_count(int node)
{
	char path[300], line[512], *p;
	long count = 0;
	int i;
	FILE *f;

	snprintf(path, sizeof(path), "%s/count", kmc_shrinker_dir());
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	if (fgets(line, sizeof(line), f)) {
		p = line;
		strtoul(p, &p, 10);
		for (i = 0; i <= node; i++)
			count = strtol(p, &p, 10);
	}
	fclose(f);
	return count;
}

static void test_node(void)
{
	struct kmc_node nodes[KMC_MAX_NODES], after[KMC_MAX_NODES];
	long per_vm, freed;
	int n;

	n = kmc_read_nodes(nodes, KMC_MAX_NODES);
	__TEST_REQUIRE(n >= 2, "needs 2 NUMA nodes");
	vm_node[0] = 0;
	vm_node[1] = 1;
	create_vms(3);
	run_all(2);
	per_vm = nr_vcpus * full_pages_per_vcpu();
	TEST_ASSERT_EQ(assert_all_full(), 2 * per_vm);

	kmc_read_nodes(nodes, n);
	printf("before: node0 %ld node1 %ld pages; shrinker count %ld %ld\n",
	       nodes[0].unused, nodes[1].unused, shrinker_count(0), shrinker_count(1));
	TEST_ASSERT_EQ(nodes[0].unused, per_vm);
	TEST_ASSERT_EQ(nodes[1].unused, per_vm);
	/*
	 * The count is the node counter's unsummed read, off by up to a
	 * batch per CPU (32 seen for 10 pages on the debug kernel): only
	 * its sign is exact.
	 */
	TEST_ASSERT(shrinker_count(0) > 0 && shrinker_count(1) > 0,
		    "a node with unused pages counts some");

	kmc_scan_node(1, 1000);
	kmc_read_nodes(after, n);
	freed = after[1].freed - nodes[1].freed;
	printf("scan of node 1: node0 %ld node1 %ld pages, %ld freed on node 1, %ld on node 0\n",
	       after[0].unused, after[1].unused, freed, after[0].freed - nodes[0].freed);
	TEST_ASSERT_EQ(after[1].unused, 0);
	TEST_ASSERT_EQ(after[0].unused, per_vm);
	TEST_ASSERT_EQ(freed, per_vm);
	TEST_ASSERT_EQ(after[0].freed, nodes[0].freed);
	TEST_ASSERT_EQ(kmc_unused_pages(), per_vm);
	TEST_ASSERT_EQ(kmc_recount(), per_vm);

	/* A scan asks for at most nr_to_scan: 3 pages of node 0 go. */
	kmc_scan_node(0, 3);
	TEST_ASSERT_EQ(kmc_unused_pages(), per_vm - 3);

	kmc_scan_node(0, 1000);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);

	run_all(2);
	TEST_ASSERT_EQ(assert_all_full(), 2 * per_vm);
	free_vms();
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	printf("ok: a scan of one node frees that node's pages only\n");
}

/*
 * One vCPU, its thread on node 0 for a round (the cache: node 0 pages),
 * then on node 1 for a round (the tables it takes come from the top; its
 * refill puts node 1 pages there): the cache holds both. A scan of node 0
 * frees node 0's pages from under node 1's and keeps these.
 */
static void test_mixed(void)
{
	struct kmc_node nodes[KMC_MAX_NODES], after[KMC_MAX_NODES];
	long full;
	int n;

	n = kmc_read_nodes(nodes, KMC_MAX_NODES);
	__TEST_REQUIRE(n >= 2, "needs 2 NUMA nodes");
	nr_vcpus = 1;
	create_vms(3);
	bind_vms(0);
	run_all(2);
	bind_vms(1);
	run_all(2);
	full = 2 * full_pages_per_vcpu();
	TEST_ASSERT_EQ(assert_all_full(), full);
	kmc_read_nodes(nodes, n);
	printf("mixed caches: node0 %ld node1 %ld pages\n", nodes[0].unused, nodes[1].unused);
	TEST_ASSERT(nodes[0].unused > 0 && nodes[1].unused > 0,
		    "the caches do not hold pages of both nodes");

	kmc_scan_node(0, 1000);
	kmc_read_nodes(after, n);
	printf("scan of node 0: node0 %ld node1 %ld pages\n", after[0].unused, after[1].unused);
	TEST_ASSERT_EQ(after[0].unused, 0);
	TEST_ASSERT_EQ(after[1].unused, nodes[1].unused);
	TEST_ASSERT_EQ(after[0].freed - nodes[0].freed, nodes[0].unused);
	TEST_ASSERT_EQ(kmc_unused_pages(), nodes[1].unused);
	TEST_ASSERT_EQ(kmc_recount(), nodes[1].unused);

	/* The kept pages serve the next round, which checks the last one. */
	run_all(2);
	TEST_ASSERT_EQ(assert_all_full(), full);
	TEST_ASSERT_EQ(kmc_recount(), full);
	free_vms();
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	printf("ok: a scan of one node frees its pages from a mixed cache, keeps the rest\n");
}

static void *storm(void *arg)
{
	struct kmc_node scratch[KMC_MAX_NODES];
	int nodes = kmc_read_nodes(scratch, KMC_MAX_NODES), i;
	long *passes = arg;

	while (!READ_ONCE(storm_stop)) {
		if (!storm_tight)
			kmc_drop_slab();
		for (i = 0; i < nodes; i++)
			kmc_scan_node(i, 128);
		(*passes)++;
		if (!storm_tight)
			usleep(100 * 1000);
	}
	return NULL;
}

/*
 * Guest: round after round, write once into each of SPARSE_WRITES fresh
 * 2 MiB regions at @gva, then GUEST_SYNC twice (the host's run_all() runs
 * to two syncs a round); each round checks the round before.
 */
static void guest_sparse_rounds(u64 gva)
{
	u64 round, i, base;

	for (round = 0;; round++) {
		base = gva + round * SPARSE_ROUND;
		for (i = 0; i < SPARSE_WRITES; i++)
			WRITE_ONCE(*(u64 *)(base + i * SZ_2M), kmc_pattern(round, i));
		GUEST_SYNC(round);
		for (i = 0; round && i < SPARSE_WRITES; i++)
			GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(base - SPARSE_ROUND + i * SZ_2M)),
					kmc_pattern(round - 1, i));
		GUEST_SYNC(round);
	}
}

/* VMs for the storm: guest_sparse_rounds() on a 2 MiB-mapped slot. */
static void create_sparse_vms(void)
{
	u64 per_vcpu = rounds * SPARSE_ROUND, size = per_vcpu * nr_vcpus;
	int v, i;

	for (v = 0; v < NR_VMS; v++) {
		vms[v] = vm_create_with_vcpus(nr_vcpus, guest_sparse_rounds, vcpus[v]);
		vm_userspace_mem_region_add(vms[v], VM_MEM_SRC_ANONYMOUS, TEST_GPA,
					    TEST_SLOT, size / PAGE_SIZE, 0);
		virt_map_level(vms[v], TEST_GPA, TEST_GPA, size, PG_LEVEL_2M);
		for (i = 0; i < nr_vcpus; i++)
			vcpu_args_set(vcpus[v][i], 1, TEST_GPA + i * per_vcpu);
		TEST_ASSERT(kmc_vm_dir(vms[v]), "VM %d is not bound to the module", v);
	}
}

static void test_storm(void)
{
	struct kmc_stats before = kmc_stats(), after;
	long passes = 0, freed = kmc_total_freed(), unused, recount;
	struct kmc_node start = total_nodes(), end;
	long min_allocs = (long)STORM_CYCLES * NR_VMS * nr_vcpus * rounds * SPARSE_WRITES;
	pthread_t t;
	int cycle;

	pthread_create(&t, NULL, storm, &passes);
	/* Each round's guest code checks the round before. */
	for (cycle = 0; cycle < STORM_CYCLES; cycle++) {
		if (cycle)
			free_vms();
		create_sparse_vms();
		run_all(2 * rounds);
	}
	WRITE_ONCE(storm_stop, 1);
	pthread_join(t, NULL);
	/* Quiet now: the last cycle's VMs are idle, and no scan runs. */
	unused = kmc_unused_pages();
	recount = kmc_recount();
	free_vms();

	after = kmc_stats();
	printf("%d cycles of %d rounds x %d vCPUs x %d VMs under %ld reclaim passes: ",
	       STORM_CYCLES, rounds, nr_vcpus, NR_VMS, passes);
	end = total_nodes();
	printf("%ld node scans visited %ld caches with pages and kept off %ld in use or locked, ",
	       end.scans - start.scans, end.visited - start.visited, end.busy - start.busy);
	printf("%ld pages freed, allocs %ld, misses %ld, ", kmc_total_freed() - freed,
	       after.allocs - before.allocs, after.misses - before.misses);
	printf("then unused %ld recount %ld\n", unused, recount);
	TEST_ASSERT(passes > 0, "no reclaim pass ran");
	TEST_ASSERT(kmc_total_freed() > freed, "the storm freed no page while the vCPUs faulted");
	/* Every write's fault took at least one page from its cache. */
	TEST_ASSERT(after.allocs - before.allocs >= min_allocs,
		    "%ld pages from the module for %ld faults that each needed one",
		    after.allocs - before.allocs, min_allocs);
	TEST_ASSERT_EQ(after.misses, before.misses);
	TEST_ASSERT_EQ(unused, recount);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	printf("ok: faults under a reclaim storm: correct memory, no miss, exact counts\n");
}

static long mem_available_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	TEST_ASSERT(f, "open /proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * A child that touches memory until reclaim has taken pages of the module's
 * caches (fewer than @full left), or it is OOM-killed (it is the first
 * choice), or it has touched @limit_kb.
 */
static void hog(long full, long limit_kb)
{
	long done = 0, chunk = SZ_16M;

	kmc_write_file("/proc/self/oom_score_adj", "1000");
	while (done < limit_kb * 1024) {
		char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		/* MAP_POPULATE allocates every page: no need to touch them. */
		if (p == MAP_FAILED)
			break;
		done += chunk;
		if (kmc_unused_pages() < full)
			break;
	}
	_exit(0);
}

#define HUGEPAGES	"/proc/sys/vm/nr_hugepages"

/* Asks for a pool of @nr huge pages: it may get fewer when growing. */
static void write_hugepages(long nr)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", nr);
	kmc_write_file(HUGEPAGES, buf);
}

/*
 * Takes all but about @keep_kb of the guest's available memory into the
 * HugeTLB pool, which costs no page clearing, so that the hog below fills
 * the rest in seconds (filling 4 GiB took 105 s on the debug kernel).
 * Returns the pool's size before, to give back.
 */
static long shrink_free_memory(long keep_kb)
{
	long before = kmc_read_long(HUGEPAGES), take;

	take = (mem_available_kb() - keep_kb) / (SZ_2M / 1024);
	if (take > 0)
		write_hugepages(before + take);
	return before;
}

static void test_pressure(void)
{
	long expected, freed, unused, hugepages;
	int status;
	pid_t pid;

	create_vms(3);
	run_all(2);
	expected = (long)NR_VMS * nr_vcpus * full_pages_per_vcpu();
	TEST_ASSERT_EQ(assert_all_full(), expected);

	/*
	 * A hog that needs more memory than the guest has. The kernel's
	 * report of an OOM kill (with its stack) is expected in this window
	 * only: the bench's report scan excuses it there and nowhere else.
	 */
	freed = kmc_total_freed();
	hugepages = shrink_free_memory(SZ_256M / 1024);
	kmc_write_file("/dev/kmsg", "kmc-expect: oom-kill begin");
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid)
		hog(expected, 2 * mem_available_kb());
	TEST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
	kmc_write_file("/dev/kmsg", "kmc-expect: oom-kill end");
	write_hugepages(hugepages);
	TEST_ASSERT_EQ(kmc_read_long(HUGEPAGES), hugepages);
	unused = kmc_unused_pages();
	printf("memory hog (%s): unused_pages %ld -> %ld, shrinker freed %ld\n",
	       WIFSIGNALED(status) ? "OOM-killed" : "exited", expected, unused,
	       kmc_total_freed() - freed);
	TEST_ASSERT(kmc_total_freed() > freed, "the memory hog's reclaim freed no cached page");
	TEST_ASSERT_EQ(kmc_recount(), unused);

	run_all(2);
	TEST_ASSERT_EQ(assert_all_full(), expected);
	free_vms();
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	printf("ok: real reclaim takes the caches' unused pages\n");
}

#define CGROUP_ROOT	"/sys/fs/cgroup"
#define CGROUP_VMM	CGROUP_ROOT "/kmc_vmm"

/*
 * Asks @cgroup to reclaim more than the guest has: the write fails with
 * EAGAIN once nothing more can be reclaimed, which is expected here.
 */
static void memory_reclaim(const char *cgroup)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/memory.reclaim", cgroup);
	fd = open(path, O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %s: errno = %d", path, errno);
	if (write(fd, "8G", 2) < 0)
		TEST_ASSERT(errno == EAGAIN, "write %s: errno = %d", path, errno);
	close(fd);
}

static void test_cgroup(void)
{
	long expected, freed, unused_child, freed_child;
	char pid[16];

	if (access(CGROUP_ROOT "/cgroup.controllers", F_OK))
		TEST_ASSERT(!mount("none", CGROUP_ROOT, "cgroup2", 0, NULL),
			    "mount cgroup2 on " CGROUP_ROOT ": errno = %d", errno);
	kmc_write_file(CGROUP_ROOT "/cgroup.subtree_control", "+memory");
	TEST_ASSERT(!mkdir(CGROUP_VMM, 0755) || errno == EEXIST, "mkdir " CGROUP_VMM);
	snprintf(pid, sizeof(pid), "%d", getpid());
	kmc_write_file(CGROUP_VMM "/cgroup.procs", pid);

	create_vms(3);
	run_all(2);
	expected = (long)NR_VMS * nr_vcpus * full_pages_per_vcpu();
	TEST_ASSERT_EQ(assert_all_full(), expected);

	freed = kmc_total_freed();
	memory_reclaim(CGROUP_VMM);
	unused_child = kmc_unused_pages();
	freed_child = kmc_total_freed() - freed;
	memory_reclaim(CGROUP_ROOT);
	printf("memory.reclaim of the VMM's cgroup: unused_pages %ld -> %ld, shrinker freed %ld; ",
	       expected, unused_child, freed_child);
	printf("of the root cgroup: -> %ld, freed %ld\n", kmc_unused_pages(),
	       kmc_total_freed() - freed - freed_child);
	TEST_ASSERT_EQ(unused_child, expected);
	TEST_ASSERT_EQ(freed_child, 0);
	TEST_ASSERT(kmc_total_freed() > freed, "the root cgroup's reclaim freed no cached page");
	TEST_ASSERT_EQ(kmc_recount(), kmc_unused_pages());

	run_all(2);
	TEST_ASSERT_EQ(assert_all_full(), expected);
	free_vms();
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	kmc_write_file(CGROUP_ROOT "/cgroup.procs", pid);
	TEST_ASSERT(!rmdir(CGROUP_VMM), "rmdir " CGROUP_VMM ": errno = %d", errno);
	printf("ok: a cgroup's own reclaim leaves the caches, root reclaim takes them\n");
}

int main(int argc, char *argv[])
{
	const char *mode = argc > 1 ? argv[1] : "";
	int opt;

	optind = 2;
	while ((opt = getopt(argc, argv, "tv:r:")) != -1) {
		switch (opt) {
		case 't':
			storm_tight = 1;
			break;
		case 'v':
			nr_vcpus = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			TEST_FAIL(USAGE, argv[0]);
		}
	}
	TEST_ASSERT(nr_vcpus >= 1 && nr_vcpus <= MAX_VCPUS && rounds >= 1 &&
		    rounds <= MAX_ROUNDS, "bad -v %d -r %d", nr_vcpus, rounds);
	TEST_REQUIRE(kmc_loaded());
	/* 4 KiB host pages only, so that KVM maps every page at 4 KiB. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);

	if (!strcmp(mode, "drop"))
		test_drop();
	else if (!strcmp(mode, "node"))
		test_node();
	else if (!strcmp(mode, "mixed"))
		test_mixed();
	else if (!strcmp(mode, "storm"))
		test_storm();
	else if (!strcmp(mode, "pressure"))
		test_pressure();
	else if (!strcmp(mode, "cgroup"))
		test_cgroup();
	else
		TEST_FAIL(USAGE, argv[0]);
	return 0;
}
