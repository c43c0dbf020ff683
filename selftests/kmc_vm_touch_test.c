// SPDX-License-Identifier: GPL-2.0
/*
 * A nested VM writes a pattern to every page of a memslot and reads it back;
 * the host checks the pattern and that KVM's page-table accounting
 * (SecPageTables, summed over nodes) grew by at least one last-level table
 * per 2 MiB while the VM was alive, and returned to its value before the VM
 * once the VM is gone. With kvm_mmu_cache loaded, the VM is bound and its
 * page tables came from the module without a miss.
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

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_PAGES	(SZ_64M / PAGE_SIZE)

static u64 pattern(u64 page)
{
	return 0x6b6d6300000000ULL | page;
}

static void guest_code(u64 gva, u64 npages)
{
	u64 i;

	for (i = 0; i < npages; i++)
		WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), pattern(i));
	for (i = 0; i < npages; i++)
		GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(gva + i * PAGE_SIZE)),
				pattern(i));
	GUEST_DONE();
}

int main(int argc, char *argv[])
{
	long before, during;
	struct kmc_vcpu_caches c;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 *host;
	u64 i;

	/* 4 KiB host pages only, so that KVM maps every page at 4 KiB. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");

	before = kmc_sec_page_tables_kb();
	vm = kmc_vm_with_memory(&vcpu, guest_code, TEST_GPA, TEST_SLOT, TEST_PAGES);

	kmc_run_to_done(vcpu);

	host = addr_gpa2hva(vm, TEST_GPA);
	for (i = 0; i < TEST_PAGES; i++)
		TEST_ASSERT_EQ(host[i * PAGE_SIZE / sizeof(*host)], pattern(i));

	/* One 4 KiB last-level table maps at most 2 MiB. */
	during = kmc_sec_page_tables_kb();
	printf("SecPageTables: %ld kB before the VM, %ld kB after faulting %llu MiB\n",
	       before, during, TEST_PAGES * PAGE_SIZE >> 20);
	TEST_ASSERT(during - before >= (long)(TEST_PAGES / 512 * 4),
		    "KVM accounted %ld kB of page tables, expected at least %llu",
		    during - before, TEST_PAGES / 512 * 4);

	if (kmc_loaded()) {
		TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the loaded module");
		c = kmc_read_vcpu(kmc_vm_dir(vm), 0);
		printf("module: page_table allocs %ld misses %ld\n",
		       c.page_table.allocs, c.page_table.misses);
		TEST_ASSERT(c.page_table.allocs >= (long)(TEST_PAGES / 512),
			    "%ld page tables from the module, expected at least %llu",
			    c.page_table.allocs, TEST_PAGES / 512);
		/* The last page's fault needed no new table: caches are full. */
		TEST_ASSERT_EQ(kmc_unused_pages(), kmc_assert_vcpu_full(kmc_vm_dir(vm), 0));
		TEST_ASSERT_EQ(kmc_recount(), kmc_unused_pages());
	}

	kvm_vm_free(vm);
	kmc_assert_sec_page_tables_back(before);
	printf("ok: %llu pages written and verified\n", TEST_PAGES);
	return 0;
}
