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
 * counts as a miss). Last the vCPU writes a fresh page of a 2 MiB region
 * it mapped before the MMIO reads, a fault that needs no new table: then
 * its caches hold exactly a capacity each, and the counter equals that and
 * a recount. Once the VM is gone, SecPageTables and the counter are back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define KMC_MMIO_REGIONS	8
#define KMC_MMIO_VALUE		0x6b6d63006d6d696fULL
#define KMC_MMIO_STRIDE		BIT_ULL(30)
#define KMC_MEM_SLOT		10
#define KMC_MEM_GPA		BIT_ULL(32)
#define KMC_MEM_PAGES		512

static void guest_code(u64 gva, u64 mem)
{
	int pass, i;

	/* Page 0 of @mem: the tables of its 2 MiB region, before any MMIO. */
	WRITE_ONCE(*(u64 *)mem, KMC_MMIO_VALUE);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < KMC_MMIO_REGIONS; i++)
			GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(gva + i * KMC_MMIO_STRIDE)),
					KMC_MMIO_VALUE + i);
		GUEST_SYNC(pass);
	}
	/* Page 1: a fault whose tables exist, its topup refills the caches. */
	WRITE_ONCE(*(u64 *)(mem + PAGE_SIZE), KMC_MMIO_VALUE);
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
	long before_kb;

	TEST_ASSERT(mmio_caching_on(), "kvm.mmio_caching is off: no MMIO SPTEs to test");
	/* 4 KiB host pages, or page 1 would need no fault at all. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	before_kb = kmc_sec_page_tables_kb();
	vm = kmc_vm_with_memory(&vcpu, guest_code, KMC_MEM_GPA, KMC_MEM_SLOT, KMC_MEM_PAGES);
	/* High in the guest's physical space, far from every memslot. */
	top = (u64)(vm->max_gfn + 1) << vm->page_shift;
	gpa = (top / 2) & ~(KMC_MMIO_STRIDE - 1);
	TEST_ASSERT(gpa >= KMC_MEM_GPA + SZ_1G && gpa + KMC_MMIO_REGIONS * KMC_MMIO_STRIDE <= top,
		    "guest physical space too small: 0x%lx bytes", top);
	for (i = 0; i < KMC_MMIO_REGIONS; i++)
		virt_pg_map(vm, gpa + i * KMC_MMIO_STRIDE, gpa + i * KMC_MMIO_STRIDE);
	vcpu_args_set(vcpu, 2, gpa, KMC_MEM_GPA);

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
	if (bound) {
		TEST_ASSERT_EQ(kmc_unused_pages(), kmc_assert_vcpu_full(kmc_vm_dir(vm), 0));
		TEST_ASSERT_EQ(kmc_recount(), kmc_unused_pages());
	}

	kvm_vm_free(vm);
	kmc_assert_sec_page_tables_back(before_kb);
	if (bound) {
		TEST_ASSERT_EQ(kmc_unused_pages(), 0);
		TEST_ASSERT_EQ(kmc_recount(), 0);
	}
	printf("ok: %d MMIO regions read twice%s\n", KMC_MMIO_REGIONS,
	       bound ? ", their page tables from the module" : "");
	return 0;
}
