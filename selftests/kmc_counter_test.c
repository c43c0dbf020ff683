// SPDX-License-Identifier: GPL-2.0
/*
 * With kvm_mmu_cache loaded, vCPUs fault in memory; whenever they are quiet
 * the module's counter of unused cached pages equals its exact recount, no
 * cache holds more than its capacity, and both return to 0 once the VM is
 * gone.
 */
#include <pthread.h>
#include <sys/prctl.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define NR_VCPUS	2
#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define VCPU_MEM	SZ_16M
#define VCPU_PAGES	(VCPU_MEM / PAGE_SIZE)
#define ROUNDS		3

static void *vcpu_run_once(void *arg)
{
	kmc_run_round(arg);
	return NULL;
}

static void dump_file(const char *path)
{
	char line[256];
	FILE *f = fopen(path, "r");

	TEST_ASSERT(f, "open %s", path);
	while (fgets(line, sizeof(line), f))
		printf("  %s: %s", path + strlen(KMC_DEBUGFS) + 1, line);
	fclose(f);
}

/* The module's VM directory is named as KVM's own, so operators can match them. */
static void check_named_as_kvm(const char *vm_dir)
{
	char kvm_dir[512];

	snprintf(kvm_dir, sizeof(kvm_dir), "/sys/kernel/debug/kvm/%s",
		 strrchr(vm_dir, '/') + 1);
	TEST_ASSERT(!access(kvm_dir, F_OK), "%s has no match %s", vm_dir, kvm_dir);
	printf("module's %s matches KVM's %s\n", vm_dir, kvm_dir);
}

/* Checks every cache line of every vCPU file of this VM; returns the sum. */
static long check_vcpu_files(const char *vm_dir)
{
	char path[512], line[256], name[32];
	long free, cap, total = 0;
	int i, seen = 0;
	FILE *f;

	for (i = 0; i < NR_VCPUS; i++) {
		snprintf(path, sizeof(path), "%s/vcpu%d", vm_dir, i);
		f = fopen(path, "r");
		TEST_ASSERT(f, "open %s", path);
		while (fgets(line, sizeof(line), f)) {
			TEST_ASSERT(sscanf(line, "%31[a-z_]: free %ld capacity %ld",
					   name, &free, &cap) == 3,
				    "parse '%s' in %s", line, path);
			TEST_ASSERT(free >= 0 && free <= cap,
				    "%s %s: %ld pages, capacity %ld",
				    path, name, free, cap);
			total += free;
			seen++;
		}
		fclose(f);
	}
	TEST_ASSERT_EQ(seen, NR_VCPUS * 2);
	return total;
}

int main(int argc, char *argv[])
{
	struct kvm_vcpu *vcpus[NR_VCPUS];
	pthread_t threads[NR_VCPUS];
	long unused, recount, files;
	const char *vm_dir;
	struct kvm_vm *vm;
	int i, round;

	TEST_REQUIRE(kmc_loaded());
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);

	vm = vm_create_with_vcpus(NR_VCPUS, kmc_guest_write_rounds, vcpus);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    VCPU_PAGES * NR_VCPUS, 0);
	virt_map(vm, TEST_GPA, TEST_GPA, VCPU_PAGES * NR_VCPUS);
	for (i = 0; i < NR_VCPUS; i++)
		vcpu_args_set(vcpus[i], 2, TEST_GPA + i * VCPU_MEM, VCPU_PAGES);

	vm_dir = kmc_vm_dir();
	TEST_ASSERT(vm_dir, "no debugfs directory for pid %d", getpid());
	check_named_as_kvm(vm_dir);

	for (round = 0; round < ROUNDS; round++) {
		for (i = 0; i < NR_VCPUS; i++)
			pthread_create(&threads[i], NULL, vcpu_run_once, vcpus[i]);
		for (i = 0; i < NR_VCPUS; i++)
			pthread_join(threads[i], NULL);

		/* All vCPUs are out of KVM_RUN: nothing is in flight. */
		unused = kmc_unused_pages();
		recount = kmc_recount();
		files = check_vcpu_files(vm_dir);
		printf("round %d: unused_pages %ld recount %ld (vCPU caches %ld)\n",
		       round, unused, recount, files);
		TEST_ASSERT_EQ(unused, recount);
		TEST_ASSERT(unused > 0, "no cached page after faults");
	}

	/* What an operator sees while the VM lives. */
	dump_file(KMC_DEBUGFS "/vm_list");
	for (i = 0; i < NR_VCPUS; i++) {
		char path[512];

		snprintf(path, sizeof(path), "%s/vcpu%d", vm_dir, i);
		dump_file(path);
	}

	kvm_vm_free(vm);
	TEST_ASSERT(!kmc_vm_dir(), "debugfs directory left after the VM");
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	printf("ok: counter == recount in %d rounds, 0 after the VM\n", ROUNDS);
	return 0;
}
