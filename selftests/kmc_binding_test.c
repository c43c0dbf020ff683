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
#define TEST_PAGES	(SZ_8M / PAGE_SIZE)

static struct kvm_vm *create_vm(struct kvm_vcpu **vcpu)
{
	struct kvm_vm *vm = vm_create_with_one_vcpu(vcpu, kmc_guest_write_rounds);

	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA,
				    TEST_SLOT, TEST_PAGES, 0);
	virt_map(vm, TEST_GPA, TEST_GPA, TEST_PAGES);
	vcpu_args_set(*vcpu, 2, TEST_GPA, TEST_PAGES);
	return vm;
}

static int delete_module(const char *name)
{
	return syscall(__NR_delete_module, name, O_NONBLOCK);
}

static void insmod(void)
{
	int fd = open(KMC_KO, O_RDONLY | O_CLOEXEC);

	TEST_ASSERT(fd >= 0, "open %s", KMC_KO);
	TEST_ASSERT(!syscall(__NR_finit_module, fd, "", 0), "insmod %s", KMC_KO);
	close(fd);
}

static void test_bound(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int r;

	TEST_REQUIRE(kmc_loaded());
	vm = create_vm(&vcpu);
	kmc_run_round(vcpu);
	TEST_ASSERT(kmc_vm_dir(), "the VM is not bound to the module");

	r = delete_module("kvm_mmu_cache");
	TEST_ASSERT(r == -1 && (errno == EBUSY || errno == EAGAIN),
		    "rmmod with a bound VM: r = %d, errno = %d", r, errno);
	printf("rmmod refused with %s while the VM lives\n",
	       errno == EBUSY ? "EBUSY" : "EAGAIN (EWOULDBLOCK)");
	TEST_ASSERT(kmc_loaded(), "module gone under a bound VM");

	/* The VM is unharmed by the attempt. */
	kmc_run_round(vcpu);
	kvm_vm_free(vm);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);

	/* With the VM gone the module unloads; load it back for what follows. */
	TEST_ASSERT(!delete_module("kvm_mmu_cache"),
		    "rmmod after the VM is gone: errno = %d", errno);
	TEST_ASSERT(!kmc_loaded(), "module still loaded after rmmod");
	insmod();
	printf("rmmod succeeded once the VM was gone\n");
}

static void test_unbound(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	long before;

	TEST_REQUIRE(!kmc_loaded());
	vm = create_vm(&vcpu);
	kmc_run_round(vcpu);

	insmod();
	TEST_ASSERT(kmc_loaded(), "module not loaded after insmod");
	before = kmc_sec_page_tables_kb();
	kmc_run_round(vcpu);
	TEST_ASSERT(!kmc_vm_dir(), "a VM created before insmod was bound");
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	TEST_ASSERT(kmc_sec_page_tables_kb() >= before,
		    "the VM's page tables shrank while the module loaded");

	/* Not bound, so the module is free to go while the VM runs on. */
	TEST_ASSERT(!delete_module("kvm_mmu_cache"),
		    "rmmod with only an unbound VM: errno = %d", errno);
	kmc_run_round(vcpu);
	kvm_vm_free(vm);
	printf("a VM created before insmod ran through insmod and rmmod untouched\n");
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
