// SPDX-License-Identifier: GPL-2.0
/*
 * How VMs bind to kvm_mmu_cache.
 *
 *   kmc_binding_test bound    (module loaded) a VM created now is bound:
 *                             rmmod is refused while it lives and
 *                             succeeds once it is gone;
 *   kmc_binding_test unbound  (module not loaded) a VM created before insmod
 *                             keeps KVM's own caches, runs on while the
 *                             module comes and goes, and never shows up in
 *                             the module's counts.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define ROUNDS		4

static struct kvm_vm *create_vm(struct kvm_vcpu **vcpu)
{
	struct kvm_vm *vm = vm_create_with_one_vcpu(vcpu, kmc_guest_fault_rounds);

	kmc_add_round_memory(vm, vcpu, 1, TEST_GPA, TEST_SLOT, ROUNDS);
	return vm;
}

static void test_bound(void)
{
	char vcpu_file[256], buf[256];
	struct kmc_vcpu_caches c;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	long before_kb;
	int r, fd, refs;

	TEST_REQUIRE(kmc_loaded());
	before_kb = kmc_sec_page_tables_kb();
	vm = create_vm(&vcpu);
	kmc_run_round(vcpu);
	TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the module");
	/* The round ended with a fault that needed no new table. */
	TEST_ASSERT_EQ(kmc_unused_pages(), kmc_assert_vcpu_full(kmc_vm_dir(vm), 0));
	c = kmc_read_vcpu(kmc_vm_dir(vm), 0);

	r = kmc_delete_module("kvm_mmu_cache");
	TEST_ASSERT(r == -1 && (errno == EBUSY || errno == EAGAIN),
		    "rmmod with a bound VM: r = %d, errno = %d", r, errno);
	printf("rmmod refused with %s while the VM lives\n",
	       errno == EBUSY ? "EBUSY" : "EAGAIN (EWOULDBLOCK)");
	TEST_ASSERT(kmc_loaded(), "module gone under a bound VM");

	/* The VM is unharmed by the attempt and still served by the module. */
	kmc_run_round(vcpu);
	TEST_ASSERT(kmc_read_vcpu(kmc_vm_dir(vm), 0).page_table.allocs > c.page_table.allocs,
		    "no page from the module after the refused rmmod");
	TEST_ASSERT_EQ(kmc_unused_pages(), kmc_assert_vcpu_full(kmc_vm_dir(vm), 0));
	snprintf(vcpu_file, sizeof(vcpu_file), "%s/vcpu0", kmc_vm_dir(vm));
	fd = open(vcpu_file, O_RDONLY);
	TEST_ASSERT(fd >= 0, "open %s: errno = %d", vcpu_file, errno);
	kvm_vm_free(vm);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	kmc_assert_sec_page_tables_back(before_kb);

	/*
	 * The vCPU's file, still open, is gone with its VM: it reads as EIO,
	 * and holds the module until closed (else its close would run the
	 * unloaded module's code: never try rmmod without that reference).
	 */
	r = read(fd, buf, sizeof(buf));
	TEST_ASSERT(r == -1 && errno == EIO,
		    "read of a removed vCPU file: r = %d, errno = %d", r, errno);
	refs = kmc_module_refcnt();
	if (refs < 1)
		close(fd);
	TEST_ASSERT(refs >= 1, "an open debugfs file holds no module reference");
	r = kmc_delete_module("kvm_mmu_cache");
	TEST_ASSERT(r == -1 && errno == EAGAIN,
		    "rmmod with a debugfs file open: r = %d, errno = %d", r, errno);
	close(fd);
	printf("a removed vCPU file reads EIO; while open, rmmod is refused with EAGAIN\n");

	/* With the VM gone the module unloads; load it back for what follows. */
	TEST_ASSERT(!kmc_delete_module("kvm_mmu_cache"),
		    "rmmod after the VM is gone: errno = %d", errno);
	TEST_ASSERT(!kmc_loaded(), "module still loaded after rmmod");
	kmc_insmod();
	printf("rmmod succeeded once the VM was gone\n");
}

/* Runs a round of fresh faults; returns how much KVM's page tables grew. */
static long fresh_round_kb(struct kvm_vcpu *vcpu)
{
	long before = kmc_sec_page_tables_kb();

	kmc_run_round(vcpu);
	return kmc_sec_page_tables_kb() - before;
}

static void test_unbound(void)
{
	struct kmc_stats before, after;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	long before_kb, grown;

	TEST_ASSERT(!kmc_loaded(), "kvm_mmu_cache is loaded before the unbound test");
	before_kb = kmc_sec_page_tables_kb();
	vm = create_vm(&vcpu);
	kmc_run_round(vcpu);

	kmc_insmod();
	TEST_ASSERT(kmc_loaded(), "module not loaded after insmod");
	before = kmc_stats();
	grown = fresh_round_kb(vcpu);
	TEST_ASSERT(grown > 0, "no new page tables for fresh memory after insmod");
	TEST_ASSERT(!kmc_vm_dir(vm), "a VM created before insmod was bound");
	after = kmc_stats();
	TEST_ASSERT(after.vms_bound == before.vms_bound && after.allocs == before.allocs &&
		    after.misses == before.misses,
		    "the module's counts moved for an unbound VM: vms %ld -> %ld, allocs %ld -> %ld",
		    before.vms_bound, after.vms_bound, before.allocs, after.allocs);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	printf("after insmod: KVM's own caches served %ld kB of new page tables\n", grown);

	/* Not bound, so the module is free to go while the VM runs on. */
	TEST_ASSERT(!kmc_delete_module("kvm_mmu_cache"),
		    "rmmod with only an unbound VM: errno = %d", errno);
	grown = fresh_round_kb(vcpu);
	TEST_ASSERT(grown > 0, "no new page tables for fresh memory after rmmod");
	kmc_run_round(vcpu);
	kvm_vm_free(vm);
	kmc_assert_sec_page_tables_back(before_kb);
	printf("a VM created before insmod faulted fresh memory through insmod and rmmod\n");
}

int main(int argc, char *argv[])
{
	TEST_ASSERT(argc == 2, "usage: %s bound|unbound", argv[0]);
	if (!strcmp(argv[1], "bound"))
		test_bound();
	else if (!strcmp(argv[1], "unbound"))
		test_unbound();
	else
		TEST_FAIL("unknown mode %s", argv[1]);
	return 0;
}
