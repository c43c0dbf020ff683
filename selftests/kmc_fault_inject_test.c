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
 * recount. Run without and with the module (the debug kernel has fault
 * injection); a kmemleak scan after the suite finds what was leaked.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_PAGES	(SZ_64M / PAGE_SIZE)
#define SYNC_EVERY	64
#define PROBABILITY	"50"
/* Far more than 50% failures can cause: a topup that never succeeds. */
#define MAX_ENOMEM	100000

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define FAIL_PAGE "/sys/kernel/debug/fail_page_alloc/"
#define FAILSLAB "/sys/kernel/debug/failslab/"

static void write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	TEST_ASSERT(fd >= 0, "open %s", path);
	TEST_ASSERT(write(fd, val, strlen(val)) == (ssize_t)strlen(val),
		    "write '%s' to %s", val, path);
	close(fd);
}

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
		write_file(path, settings[i][1]);
	}
	snprintf(path, sizeof(path), "%sprobability", dir);
	write_file(path, probability);
}

/* Injection off, at exit too, whatever happened. */
static void stop_injection(void)
{
	write_file(FAIL_PAGE "probability", "0");
	write_file(FAILSLAB "probability", "0");
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
static int run_pass(struct kvm_vcpu *vcpu, int fd)
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
			TEST_FAIL("Unexpected ucall %lu, exit reason %s", uc.cmd,
				  exit_reason_str(vcpu->run->exit_reason));
		}
	}
}

int main(int argc, char *argv[])
{
	long before_kb, unused, recount, full;
	struct kmc_vcpu_caches c;
	struct kvm_vcpu *vcpu;
	int fd, failed, module;
	struct kvm_vm *vm;
	char path[64];

	TEST_REQUIRE(!access(FAIL_PAGE "probability", W_OK) &&
		     !access(FAILSLAB "probability", W_OK));
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	module = kmc_loaded();

	before_kb = kmc_sec_page_tables_kb();
	vm = kmc_vm_with_memory(&vcpu, guest_code, TEST_GPA, TEST_SLOT, TEST_PAGES);
	/* Populate guest memory now, so that only KVM's allocations can fail. */
	populate(vm);

	/*
	 * Kernel page allocations of any order, and slab allocations, may
	 * fail; user (highmem) pages are all there already.
	 */
	atexit(stop_injection);
	setup_injection(FAIL_PAGE, PROBABILITY);
	write_file(FAIL_PAGE "min-order", "0");
	write_file(FAIL_PAGE "ignore-gfp-highmem", "Y");
	setup_injection(FAILSLAB, PROBABILITY);

	snprintf(path, sizeof(path), "/proc/self/task/%ld/make-it-fail",
		 (long)syscall(__NR_gettid));
	fd = open(path, O_WRONLY);
	TEST_ASSERT(fd >= 0, "open %s", path);

	failed = run_pass(vcpu, fd);
	stop_injection();
	close(fd);
	printf("pass 1, %s%% of allocations failing: %d KVM_RUNs failed with ENOMEM\n",
	       PROBABILITY, failed);
	TEST_ASSERT(failed > 0, "no allocation failure reached KVM_RUN");

	/* Injection is off: the VM runs, and its memory is intact. */
	TEST_ASSERT_EQ(run_pass(vcpu, -1), 0);
	printf("pass 2 without injection: all %llu pages verified\n", TEST_PAGES);

	if (module) {
		TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the loaded module");
		c = kmc_read_vcpu(kmc_vm_dir(vm), 0);
		unused = kmc_unused_pages();
		recount = kmc_recount();
		printf("module: topups %ld allocs %ld misses %ld; unused_pages %ld recount %ld\n",
		       c.page_table.topups, c.page_table.allocs, c.page_table.misses,
		       unused, recount);
		/* Pass 2's fault needed no new table: its topup refilled. */
		full = kmc_assert_vcpu_full(kmc_vm_dir(vm), 0);
		TEST_ASSERT_EQ(unused, recount);
		TEST_ASSERT_EQ(unused, full);
	}
	kvm_vm_free(vm);
	kmc_assert_sec_page_tables_back(before_kb);
	if (module) {
		TEST_ASSERT_EQ(kmc_unused_pages(), 0);
		TEST_ASSERT_EQ(kmc_recount(), 0);
	}
	printf("ok\n");
	return 0;
}
