// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failures during faults and topups, injected with the kernel's
 * fail_page_alloc and failslab, filtered to the vCPU's own task and armed
 * only around KVM_RUN. Every memslot is populated by the host first, and
 * highmem (user page) allocations are left alone, so the allocations that
 * fail are KVM's (and the module's) cache topups.
 *
 * Each KVM_RUN under injection either makes progress or fails with ENOMEM,
 * as KVM's own caches do, and is simply run again; once injection stops the
 * guest finishes and its memory is intact. With kvm_mmu_cache loaded the VM
 * is bound, no allocation missed, and the counter of unused pages equals its
 * recount. This at 10%, 25% and 50% of allocations failing, and with the
 * module also for a NUMA-aware VM whose memory lies on both nodes (its
 * vCPU tops up per-node caches under injection).
 *
 * Then VM and vCPU creation with one allocation failing, in turn each of
 * those it makes (fail-nth; the provider's vm_init and vcpu_init allocate
 * too): KVM_CREATE_VM and KVM_CREATE_VCPU fail with ENOMEM or go on
 * without what failed, and with the module every VM created is bound. And
 * shrinker runs (drop_caches, per-node scans) from a task whose
 * allocations fail: they free the cached pages all the same.
 *
 * After each part SecPageTables is back at its value before it and the
 * module's counters are 0. Run without and with the module (the debug
 * kernel has fault injection); a kmemleak scan after the suite finds what
 * was leaked.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

#include <linux/mempolicy.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_PAGES	(SZ_64M / PAGE_SIZE)
#define SYNC_EVERY	64
/*
 * Far more than 50% failures cause: a topup of KVM's pte_list_desc cache
 * must get 13 objects in a row (1 in 8192 tries at 50%), so 50% is the
 * highest probability with progress in every MMU mode.
 */
#define MAX_ENOMEM	100000
#define CREATE_TRIES	100

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define FAIL_PAGE "/sys/kernel/debug/fail_page_alloc/"
#define FAILSLAB "/sys/kernel/debug/failslab/"

static void setup_injection(const char *dir, const char *probability)
{
	char path[128];
	static const char *const settings[][2] = {
		{ "task-filter", "Y" }, { "interval", "1" }, { "times", "-1" },
		{ "space", "0" }, { "verbose", "0" }, { "ignore-gfp-wait", "N" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(settings); i++) {
		snprintf(path, sizeof(path), "%s%s", dir, settings[i][0]);
		kmc_write_file(path, settings[i][1]);
	}
	snprintf(path, sizeof(path), "%sprobability", dir);
	kmc_write_file(path, probability);
}

/* Injection off, at exit too, whatever happened. */
static void stop_injection(void)
{
	kmc_write_file("/dev/kmsg", "kmc-expect: alloc-failure end");
	kmc_write_file(FAIL_PAGE "probability", "0");
	kmc_write_file(FAILSLAB "probability", "0");
}

/*
 * Guest: pass 1 writes every page but the last, syncing now and then; pass 2
 * writes the last page, which lies in a 2 MiB region already mapped (its
 * fault needs no new table), and checks every page.
 */
static void guest_code(u64 gva, u64 npages)
{
	u64 i;

	for (i = 0; i < npages - 1; i++) {
		WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), kmc_pattern(1, i));
		if (i % SYNC_EVERY == SYNC_EVERY - 1)
			GUEST_SYNC(i);
	}
	GUEST_DONE();
	WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), kmc_pattern(1, i));
	for (i = 0; i < npages; i++)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(gva + i * PAGE_SIZE)), kmc_pattern(1, i));
	GUEST_DONE();
}

/* Host: populate every memslot, so that no host page is allocated in KVM_RUN. */
static void populate(struct kvm_vm *vm)
{
	struct userspace_mem_region *region;
	int bkt;

	hash_for_each(vm->regions.slot_hash, bkt, region, slot_node)
		TEST_ASSERT(!madvise(region->host_mem, region->region.memory_size,
				     MADV_POPULATE_WRITE),
			    "MADV_POPULATE_WRITE slot %u", region->region.slot);
}

/*
 * Runs the guest to GUEST_DONE with make-it-fail set on this task around
 * each KVM_RUN (if @fd >= 0); returns how many KVM_RUNs failed with ENOMEM.
 */
/*
 * After a KVM_RUN that failed: no cache of vCPU 0 of the VM at @dir is left
 * held (a failed topup released it as a successful one would).
 */
static void assert_none_held(const char *dir)
{
	struct kmc_vcpu_caches c = kmc_read_vcpu(dir, 0);
	int n;

	TEST_ASSERT_EQ(c.page_table.held, 0);
	TEST_ASSERT_EQ(c.shadowed_info.held, 0);
	for (n = 0; n < c.nr_nodes; n++)
		TEST_ASSERT_EQ(c.node_page_table[n].held, 0);
}

static int run_pass(struct kvm_vcpu *vcpu, int fd, const char *dir)
{
	int r, err, enomem = 0;
	struct ucall uc;

	for (;;) {
		if (fd >= 0)
			TEST_ASSERT(pwrite(fd, "1", 1, 0) == 1, "arm make-it-fail");
		r = __vcpu_run(vcpu);
		err = errno;
		if (fd >= 0)
			TEST_ASSERT(pwrite(fd, "0", 1, 0) == 1, "disarm make-it-fail");
		if (r) {
			TEST_ASSERT(err == ENOMEM,
				    "KVM_RUN under injection: r = %d, errno = %d (%s), expected ENOMEM",
				    r, err, strerror(err));
			enomem++;
			TEST_ASSERT(enomem < MAX_ENOMEM, "%d ENOMEMs: no progress", enomem);
			if (dir)
				assert_none_held(dir);
			continue;
		}
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			continue;
		case UCALL_DONE:
			return enomem;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			kmc_unexpected_exit(vcpu, &uc);
		}
	}
}

/* An open make-it-fail file of the calling task, for arm()/disarm(). */
static int open_make_it_fail(void)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/make-it-fail",
		 (long)syscall(__NR_gettid));
	fd = open(path, O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %s", path);
	return fd;
}

static void arm(int fd, int on)
{
	TEST_ASSERT(pwrite(fd, on ? "1" : "0", 1, 0) == 1, "make-it-fail %d", on);
}

/*
 * Kernel page allocations of any order, and slab allocations, fail at
 * @probability percent for the tasks armed; user (highmem) pages are all
 * there already.
 */
static void start_injection(const char *probability)
{
	/*
	 * vmalloc reports a failed allocation with a stack: expected until
	 * stop_injection(), where the bench's report scan excuses it.
	 */
	kmc_write_file("/dev/kmsg", "kmc-expect: alloc-failure begin");
	setup_injection(FAIL_PAGE, probability);
	kmc_write_file(FAIL_PAGE "min-order", "0");
	kmc_write_file(FAIL_PAGE "ignore-gfp-highmem", "Y");
	setup_injection(FAILSLAB, probability);
}

static int have_node1(void)
{
	return !access("/sys/devices/system/node/node1", F_OK);
}

/* Half of the test memory on node 0, half on node 1. */
static void split_nodes(struct kvm_vm *vm)
{
	char *hva = addr_gpa2hva(vm, TEST_GPA);
	size_t half = TEST_PAGES * PAGE_SIZE / 2;
	unsigned long node;

	for (node = 0; node < 2; node++) {
		unsigned long mask = 1UL << node;

		TEST_ASSERT(!syscall(__NR_mbind, hva + node * half, half, MPOL_BIND,
				     &mask, 8 * sizeof(mask), MPOL_MF_MOVE | MPOL_MF_STRICT),
			    "mbind half of the test memory to node %lu", node);
	}
}

/*
 * One VM faults in all its memory while @probability percent of
 * allocations fail, then runs on without injection; its module caches are
 * checked. Returns how many KVM_RUNs failed with ENOMEM.
 */
static int fault_under_injection(const char *probability, int numa, int module)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_NUMA_AWARE_PAGE_TABLE, .args = { 1 } };
	long before_kb = kmc_sec_page_tables_kb(), unused, recount, node_allocs = 0;
	struct kmc_vcpu_caches c;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int fd, failed, n;
	char dir[128];

	vm = vm_create(1);
	if (numa)
		vm_ioctl(vm, KVM_ENABLE_CAP, &cap);
	vcpu = vm_vcpu_add(vm, 0, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    TEST_PAGES, 0);
	if (numa)
		split_nodes(vm);
	virt_map(vm, TEST_GPA, TEST_GPA, TEST_PAGES);
	vcpu_args_set(vcpu, 2, TEST_GPA, TEST_PAGES);
	/* Populate guest memory now, so that only KVM's allocations can fail. */
	populate(vm);

	start_injection(probability);
	fd = open_make_it_fail();
	if (module) {
		TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the loaded module");
		snprintf(dir, sizeof(dir), "%s", kmc_vm_dir(vm));
	}
	failed = run_pass(vcpu, fd, module ? dir : NULL);
	stop_injection();
	close(fd);
	TEST_ASSERT(failed > 0, "%s%%: no allocation failure reached KVM_RUN", probability);

	/* Injection is off: the VM runs, and its memory is intact. */
	TEST_ASSERT_EQ(run_pass(vcpu, -1, NULL), 0);
	printf("%s%% of allocations failing%s: %d KVM_RUNs failed with ENOMEM; "
	       "then all %llu pages verified\n",
	       probability, numa ? ", NUMA-aware VM on 2 nodes" : "", failed, TEST_PAGES);

	if (module) {
		TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the loaded module");
		c = kmc_read_vcpu(kmc_vm_dir(vm), 0);
		unused = kmc_unused_pages();
		recount = kmc_recount();
		TEST_ASSERT_EQ(unused, recount);
		if (numa) {
			/* A per-node cache for each node of the memory, none missed. */
			TEST_ASSERT_EQ(c.nr_nodes, 2);
			for (n = 0; n < c.nr_nodes; n++) {
				TEST_ASSERT_EQ(c.node_page_table[n].misses, 0);
				TEST_ASSERT_EQ(c.node_page_table[n].held, 0);
				TEST_ASSERT(c.node_page_table[n].allocs > 0,
					    "node %d cache handed out nothing", c.node_id[n]);
				node_allocs += c.node_page_table[n].allocs;
			}
			TEST_ASSERT_EQ(c.page_table.misses, 0);
			printf("  module: node caches allocs %ld, misses 0; "
			       "unused_pages %ld recount %ld\n",
			       node_allocs, unused, recount);
		} else {
			/* The last fault needed no new table: its topup refilled. */
			TEST_ASSERT_EQ(unused, kmc_assert_vcpu_full(kmc_vm_dir(vm), 0));
			printf("  module: topups %ld allocs %ld misses 0; "
			       "unused_pages %ld recount %ld\n",
			       c.page_table.topups, c.page_table.allocs, unused, recount);
		}
	}
	kvm_vm_free(vm);
	kmc_assert_sec_page_tables_back(before_kb);
	if (module) {
		TEST_ASSERT_EQ(kmc_unused_pages(), 0);
		TEST_ASSERT_EQ(kmc_recount(), 0);
	}
	return failed;
}

/*
 * KVM_CREATE_VM, then KVM_CREATE_VCPU if @with_vcpu, with the @nth
 * allocation of this task failing (fail-nth; 0: none). Returns 0 if both
 * were created, 1 if the VM was refused, 2 if the vCPU was; *@injected says
 * whether the failure was injected (a failed allocation KVM tolerates, e.g.
 * of a debugfs file, lets both be created). Every refusal is ENOMEM.
 */
static int create_once(int kvm_fd, int nth_fd, unsigned int nth, int with_vcpu,
		       int *injected, unsigned int *left)
{
	int vm_fd, vcpu_fd = -1, ret = 0;
	char buf[16];
	ssize_t r;

	snprintf(buf, sizeof(buf), "%u", nth);
	TEST_ASSERT(pwrite(nth_fd, buf, strlen(buf), 0) == (ssize_t)strlen(buf), "fail-nth");
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd >= 0 && with_vcpu)
		vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vm_fd < 0 || (with_vcpu && vcpu_fd < 0)) {
		TEST_ASSERT(errno == ENOMEM, "%s, allocation %u failing: errno %d (%s), not ENOMEM",
			    vm_fd < 0 ? "KVM_CREATE_VM" : "KVM_CREATE_VCPU", nth, errno,
			    strerror(errno));
		ret = vm_fd < 0 ? 1 : 2;
	}
	r = pread(nth_fd, buf, sizeof(buf) - 1, 0);
	TEST_ASSERT(r > 0, "read fail-nth");
	buf[r] = 0;
	*left = strtoul(buf, NULL, 10);
	*injected = nth && !*left;
	TEST_ASSERT(pwrite(nth_fd, "0", 1, 0) == 1, "fail-nth 0");
	if (vcpu_fd >= 0)
		close(vcpu_fd);
	if (vm_fd >= 0)
		close(vm_fd);
	return ret;
}

/*
 * Creation with each of its allocations failing in turn: KVM_CREATE_VM and
 * KVM_CREATE_VCPU make some hundreds (KVM's, the provider's vm_init and
 * vcpu_init, debugfs). About CREATE_TRIES of them fail in turn: half
 * sampled over the VM's; a quarter, each of the first the vCPU makes (its
 * struct, its run page, the arch and MMU state: those a failure refuses;
 * most of its later ones, its debugfs files, are tolerated); a quarter
 * sampled over the vCPU's rest. Each refusal is ENOMEM; with the module
 * every VM created was bound; nothing is left afterwards.
 */
static void create_under_injection(int module)
{
	int kvm_fd, nth_fd, injected, vm_enomem = 0, vcpu_enomem = 0, tolerated = 0, vms = 0;
	long before_kb = kmc_sec_page_tables_kb();
	long bound_before = module ? kmc_stats().vms_bound : 0;
	int refs = module ? kmc_module_refcnt() : 0;
	unsigned int total, total_vm, left, nth, i;
	struct { unsigned int first, last, tries; } phase[3];

	kvm_fd = open_kvm_dev_path_or_exit();
	nth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	TEST_ASSERT(nth_fd >= 0, "open /proc/thread-self/fail-nth");
	/* fail-nth only: no random failures, the same filters as above. */
	start_injection("0");

	/* How many allocations a VM's creation makes, and with its vCPU. */
	TEST_ASSERT_EQ(create_once(kvm_fd, nth_fd, 1000000, 0, &injected, &left), 0);
	TEST_ASSERT(left > 0 && left < 1000000, "fail-nth left %u", left);
	total_vm = 1000000 - left;
	TEST_ASSERT_EQ(create_once(kvm_fd, nth_fd, 1000000, 1, &injected, &left), 0);
	TEST_ASSERT(left > 0 && 1000000 - left > total_vm, "fail-nth left %u", left);
	total = 1000000 - left;
	vms += 2;
	phase[0].first = 1;
	phase[0].last = total_vm;
	phase[0].tries = CREATE_TRIES / 2;
	phase[1].first = total_vm + 1;
	phase[1].last = min(total, total_vm + CREATE_TRIES / 4);
	phase[1].tries = CREATE_TRIES / 4;
	phase[2].first = phase[1].last + 1;
	phase[2].last = total;
	phase[2].tries = CREATE_TRIES / 4;
	for (i = 0; i < 3; i++) {
		unsigned int step = max(1u, (phase[i].last - phase[i].first + 1) / phase[i].tries);

		for (nth = phase[i].first; nth <= phase[i].last; nth += step) {
			switch (create_once(kvm_fd, nth_fd, nth, 1, &injected, &left)) {
			case 0:
				vms++;
				tolerated += injected;
				break;
			case 1:
				vm_enomem++;
				break;
			default:
				vms++;
				vcpu_enomem++;
				break;
			}
			/* Whatever failed, the VM's reference on the module went with it. */
			if (module)
				TEST_ASSERT(kmc_module_refcnt() == refs,
					    "module refcnt %d after allocation %u failed, %d before",
					    kmc_module_refcnt(), nth, refs);
		}
	}
	stop_injection();
	close(nth_fd);
	close(kvm_fd);
	printf("creation: %u allocations (%u of the VM), each of ~%d of them failed in turn; "
	       "ENOMEM: %d VMs, %d vCPUs\n", total, total_vm, CREATE_TRIES, vm_enomem, vcpu_enomem);
	printf("  %d created despite the failure\n", tolerated);
	TEST_ASSERT(vm_enomem > 0 && vcpu_enomem > 0, "no refused VM or vCPU");
	if (module) {
		/* A VM whose creation failed after vm_init() was bound too. */
		TEST_ASSERT(kmc_stats().vms_bound - bound_before >= vms,
			    "%ld VMs bound, %d created", kmc_stats().vms_bound - bound_before, vms);
		TEST_ASSERT(!kmc_any_vm_dir(), "a VM directory is left");
		TEST_ASSERT_EQ(kmc_unused_pages(), 0);
		TEST_ASSERT_EQ(kmc_recount(), 0);
	}
	kmc_assert_sec_page_tables_back(before_kb);
}

/*
 * Writes @s to @path with this task's allocations failing (@fd armed); a
 * write that fails with ENOMEM (copying the buffer in) is tried again.
 * Returns how many did.
 */
static int write_armed(int fd, const char *path, const char *s)
{
	int file = open(path, O_WRONLY), enomem = 0;
	ssize_t r;

	TEST_ASSERT(file >= 0, "open %s", path);
	for (;;) {
		arm(fd, 1);
		r = write(file, s, strlen(s));
		arm(fd, 0);
		if (r >= 0 || errno != ENOMEM)
			break;
		enomem++;
		TEST_ASSERT(enomem < MAX_ENOMEM, "write %s: ENOMEM %d times", path, enomem);
	}
	TEST_ASSERT(r == (ssize_t)strlen(s), "write '%s' to %s: %zd, errno %d", s, path, r, errno);
	close(file);
	return enomem;
}

/*
 * Idle VM with full caches; drop_caches and per-node scans run from this
 * task with half of its allocations failing: all cached pages are freed.
 */
static void shrink_under_injection(void)
{
	long full, freed = kmc_total_freed();
	int fd, node, enomem = 0;
	struct kvm_vcpu *vcpu;
	char path[300];
	struct kvm_vm *vm;

	vm = kmc_vm_with_memory(&vcpu, guest_code, TEST_GPA, TEST_SLOT, TEST_PAGES);
	populate(vm);
	TEST_ASSERT_EQ(run_pass(vcpu, -1, NULL), 0);
	TEST_ASSERT_EQ(run_pass(vcpu, -1, NULL), 0);
	full = kmc_assert_vcpu_full(kmc_vm_dir(vm), 0);

	fd = open_make_it_fail();
	start_injection("50");
	snprintf(path, sizeof(path), "%s/scan", kmc_shrinker_dir());
	for (node = 0; node < 1 + have_node1(); node++)
		enomem += write_armed(fd, path, node ? "0 1 128" : "0 0 128");
	enomem += write_armed(fd, "/proc/sys/vm/drop_caches", "2");
	stop_injection();
	close(fd);
	printf("shrinker at 50%%: unused_pages %ld -> %ld, freed %ld (%d writes ENOMEM)\n",
	       full, kmc_unused_pages(), kmc_total_freed() - freed, enomem);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	TEST_ASSERT_EQ(kmc_total_freed() - freed, full);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	static const char *const probabilities[] = { "10", "25", "50" };
	long before_kb, misses = 0;
	int module, failed = 0;
	size_t i;

	TEST_REQUIRE(!access(FAIL_PAGE "probability", W_OK) &&
		     !access(FAILSLAB "probability", W_OK));
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	module = kmc_loaded();
	if (module)
		misses = kmc_stats().misses;
	before_kb = kmc_sec_page_tables_kb();
	atexit(stop_injection);

	for (i = 0; i < ARRAY_SIZE(probabilities); i++)
		failed += fault_under_injection(probabilities[i], 0, module);
	if (module && have_node1())
		failed += fault_under_injection("50", 1, module);
	create_under_injection(module);
	if (module)
		shrink_under_injection();

	kmc_assert_sec_page_tables_back(before_kb);
	if (module) {
		TEST_ASSERT_EQ(kmc_unused_pages(), 0);
		TEST_ASSERT_EQ(kmc_recount(), 0);
		TEST_ASSERT_EQ(kmc_stats().misses, misses);
	}
	printf("ok: %d KVM_RUNs failed with ENOMEM in all\n", failed);
	return 0;
}
