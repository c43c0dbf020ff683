// SPDX-License-Identifier: GPL-2.0
/*
 * MMIO faults take the module's pages too.
 *
 * A guest read of a GPA that no memslot covers is an MMIO fault: with MMIO
 * caching on, KVM installs an MMIO SPTE for it under mmu_lock, and builds
 * the page tables down to it. The vCPU reads one GPA in each of
 * KMC_MMIO_REGIONS fresh 1 GiB regions, each needing new tables, and
 * then each again (its MMIO SPTE is cached: no new table). With the module
 * loaded, every one of those tables must come from a cache the fault
 * topped up: allocs grow, nothing misses (a table taken without a topup
 * counts as a miss), and the counter equals a recount afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define KMC_MMIO_REGIONS	8
#define KMC_MMIO_VALUE		0x6b6d63006d6d696fULL
#define KMC_MMIO_STRIDE		BIT_ULL(30)

static void guest_code(u64 gva)
{
	int pass, i;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < KMC_MMIO_REGIONS; i++)
			GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(gva + i * KMC_MMIO_STRIDE)),
					KMC_MMIO_VALUE + i);
		GUEST_SYNC(pass);
	}
	GUEST_DONE();
}

static int mmio_caching_on(void)
{
	FILE *f = fopen("/sys/module/kvm/parameters/mmio_caching", "r");
	int c;

	TEST_ASSERT(f, "open kvm.mmio_caching");
	c = fgetc(f);
	fclose(f);
	return c == 'Y';
}

/* Runs the vCPU to its next GUEST_SYNC, serving its MMIO reads. */
static int run_pass(struct kvm_vcpu *vcpu, u64 gpa)
{
	struct kvm_run *run = vcpu->run;
	int exits = 0;
	u64 value, i;

	for (;;) {
		vcpu_run(vcpu);
		if (run->exit_reason != KVM_EXIT_MMIO)
			break;
		i = (run->mmio.phys_addr - gpa) / KMC_MMIO_STRIDE;
		TEST_ASSERT(!run->mmio.is_write && run->mmio.len == 8 &&
			    run->mmio.phys_addr == gpa + i * KMC_MMIO_STRIDE &&
			    i < KMC_MMIO_REGIONS,
			    "unexpected MMIO %s of %u bytes at 0x%llx",
			    run->mmio.is_write ? "write" : "read", run->mmio.len,
			    run->mmio.phys_addr);
		value = KMC_MMIO_VALUE + i;
		memcpy(run->mmio.data, &value, sizeof(value));
		exits++;
	}
	kmc_expect_sync(vcpu);
	return exits;
}

int main(int argc, char *argv[])
{
	struct kmc_vcpu_caches before, after;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int bound, pass, exits;
	u64 gpa, top, i;

	TEST_ASSERT(mmio_caching_on(), "kvm.mmio_caching is off: no MMIO SPTEs to test");
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	/* High in the guest's physical space, far from every memslot. */
	top = (u64)(vm->max_gfn + 1) << vm->page_shift;
	gpa = (top / 2) & ~(KMC_MMIO_STRIDE - 1);
	TEST_ASSERT(gpa >= SZ_4G && gpa + KMC_MMIO_REGIONS * KMC_MMIO_STRIDE <= top,
		    "guest physical space too small: 0x%lx bytes", top);
	for (i = 0; i < KMC_MMIO_REGIONS; i++)
		virt_pg_map(vm, gpa + i * KMC_MMIO_STRIDE, gpa + i * KMC_MMIO_STRIDE);
	vcpu_args_set(vcpu, 1, gpa);

	bound = kmc_loaded();
	if (bound)
		TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the loaded module");
	/* The vCPU's first run faults its code and stack in, not MMIO. */
	for (pass = 0; pass < 2; pass++) {
		if (bound)
			before = kmc_read_vcpu(kmc_vm_dir(vm), 0);
		exits = run_pass(vcpu, gpa);
		TEST_ASSERT_EQ(exits, KMC_MMIO_REGIONS);
		if (!bound)
			continue;
		after = kmc_read_vcpu(kmc_vm_dir(vm), 0);
		printf("pass %d: %d MMIO exits, page_table allocs %ld -> %ld, misses %ld\n",
		       pass, exits, before.page_table.allocs, after.page_table.allocs,
		       after.page_table.misses);
		TEST_ASSERT_EQ(after.page_table.misses, 0);
		TEST_ASSERT_EQ(after.shadowed_info.misses, 0);
		TEST_ASSERT_EQ(after.page_table.held, 0);
		TEST_ASSERT_EQ(after.shadowed_info.held, 0);
		/* A new last-level table for each region on the first pass. */
		if (pass == 1)
			continue;
		TEST_ASSERT(after.page_table.allocs - before.page_table.allocs >= KMC_MMIO_REGIONS,
			    "%ld page tables from the module for %d fresh MMIO regions",
			    after.page_table.allocs - before.page_table.allocs,
			    KMC_MMIO_REGIONS);
	}
	kmc_run_to_done(vcpu);
	if (bound)
		TEST_ASSERT_EQ(kmc_recount(), kmc_unused_pages());

	kvm_vm_free(vm);
	printf("ok: %d MMIO regions read twice%s\n", KMC_MMIO_REGIONS,
	       bound ? ", their page tables from the module" : "");
	return 0;
}
