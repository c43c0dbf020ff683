// SPDX-License-Identifier: GPL-2.0
/*
 * With kvm_mmu_cache loaded, VMs created now are bound to it and their vCPUs
 * take their page tables from it. Round after round the vCPUs fault in fresh
 * memory; whenever they are quiet:
 *
 * - every VM has its debugfs directory, named as KVM's own;
 * - each vCPU's page-table cache handed out more pages than the round
 *   before, no cache missed, none is held;
 * - shadowed-info pages were handed out under shadow paging only;
 * - after a last fault that needs no new table, every cache in use holds
 *   exactly `capacity` pages, so unused_pages, its recount and the sum of
 *   the vCPU files all equal vCPUs x caches in use x capacity.
 *
 * Once the VMs are gone the counts are 0, the directories are gone and KVM's
 * SecPageTables is back to its value before the VMs.
 *
 *   kmc_counter_test [-n VMS] [-v VCPUS_PER_VM] [-r ROUNDS] [-b]
 *
 * -b: without the module, the same VMs and rounds and no count: how often
 * the emulator alone fails this workload, for comparison.
 */
#include <pthread.h>
#include <sys/prctl.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define MAX_VMS		8
#define MAX_VCPUS	8
#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)

static int nr_vms = 1, nr_vcpus = 2, rounds = 3, base;
static struct kvm_vm *vms[MAX_VMS];
static struct kvm_vcpu *vcpus[MAX_VMS][MAX_VCPUS];
static struct kmc_vcpu_caches last[MAX_VMS][MAX_VCPUS];

static void *vcpu_to_sync(void *arg)
{
	kmc_run_to_sync(arg);
	return NULL;
}

/* Runs every vCPU of every VM to its next GUEST_SYNC, in parallel. */
static void run_all_to_sync(void)
{
	pthread_t threads[MAX_VMS][MAX_VCPUS];
	int v, i;

	for (v = 0; v < nr_vms; v++)
		for (i = 0; i < nr_vcpus; i++)
			pthread_create(&threads[v][i], NULL, vcpu_to_sync, vcpus[v][i]);
	for (v = 0; v < nr_vms; v++)
		for (i = 0; i < nr_vcpus; i++)
			pthread_join(threads[v][i], NULL);
}

/* The module's VM directory is named as KVM's own, so operators can match them. */
static const char *check_bound(struct kvm_vm *vm)
{
	const char *dir = kmc_vm_dir(vm);
	char kvm_dir[256];

	TEST_ASSERT(dir, "VM fd %d of pid %d is not bound to the module",
		    vm->fd, getpid());
	snprintf(kvm_dir, sizeof(kvm_dir), "/sys/kernel/debug/kvm/%s",
		 strrchr(dir, '/') + 1);
	TEST_ASSERT(!access(kvm_dir, F_OK), "%s has no match %s", dir, kvm_dir);
	return dir;
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

/*
 * Checks every vCPU after @round, with the vCPUs quiet; returns the sum of
 * their cached pages.
 */
static long check_vcpus(int round, int shadow, long capacity)
{
	long total = 0;
	int v, i;

	for (v = 0; v < nr_vms; v++) {
		const char *dir = check_bound(vms[v]);

		for (i = 0; i < nr_vcpus; i++) {
			struct kmc_vcpu_caches c = kmc_read_vcpu(dir, i);
			struct kmc_vcpu_caches *prev = &last[v][i];

			/* At least a last-level table per fresh 2 MiB. */
			TEST_ASSERT(c.page_table.allocs - prev->page_table.allocs >=
				    KMC_ROUND_MEM / SZ_2M,
				    "vm %d vcpu %d round %d: page_table allocs %ld, %ld before: no fresh faults",
				    v, i, round, c.page_table.allocs, prev->page_table.allocs);
			TEST_ASSERT_EQ(c.page_table.misses, 0);
			TEST_ASSERT_EQ(c.shadowed_info.misses, 0);
			TEST_ASSERT_EQ(c.page_table.held, 0);
			TEST_ASSERT_EQ(c.shadowed_info.held, 0);
			TEST_ASSERT_EQ(c.page_table.capacity, capacity);
			TEST_ASSERT_EQ(c.page_table.free, capacity);
			if (shadow) {
				TEST_ASSERT(c.shadowed_info.allocs > prev->shadowed_info.allocs,
					    "vm %d vcpu %d round %d: no shadowed_info allocs under shadow paging",
					    v, i, round);
				TEST_ASSERT_EQ(c.shadowed_info.free, capacity);
			} else {
				TEST_ASSERT_EQ(c.shadowed_info.allocs, 0);
				TEST_ASSERT_EQ(c.shadowed_info.free, 0);
			}
			total += c.page_table.free + c.shadowed_info.free;
			*prev = c;
		}
	}
	return total;
}

static void run_base(void)
{
	int v, round;

	for (v = 0; v < nr_vms; v++) {
		vms[v] = vm_create_with_vcpus(nr_vcpus, kmc_guest_fault_rounds, vcpus[v]);
		kmc_add_round_memory(vms[v], vcpus[v], nr_vcpus, TEST_GPA,
				     TEST_SLOT, rounds);
	}
	for (round = 0; round < rounds; round++) {
		run_all_to_sync();
		run_all_to_sync();
	}
	for (v = 0; v < nr_vms; v++)
		kvm_vm_free(vms[v]);
	printf("ok: %d VMs x %d vCPUs, %d rounds without the module\n",
	       nr_vms, nr_vcpus, rounds);
}

int main(int argc, char *argv[])
{
	long capacity, unused, recount, files, expected, before_kb;
	struct kmc_stats before, after;
	int opt, v, round, shadow;
	char path[256];

	while ((opt = getopt(argc, argv, "n:v:r:b")) != -1) {
		switch (opt) {
		case 'n':
			nr_vms = atoi(optarg);
			break;
		case 'v':
			nr_vcpus = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'b':
			base = 1;
			break;
		default:
			TEST_FAIL("usage: %s [-n VMS] [-v VCPUS] [-r ROUNDS] [-b]", argv[0]);
		}
	}
	TEST_ASSERT(nr_vms >= 1 && nr_vms <= MAX_VMS && nr_vcpus >= 1 &&
		    nr_vcpus <= MAX_VCPUS && rounds >= 1,
		    "bad -n %d -v %d -r %d", nr_vms, nr_vcpus, rounds);

	/* 4 KiB host pages only, so that KVM maps every page at 4 KiB. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	if (base) {
		TEST_ASSERT(!kmc_loaded(), "-b runs without the module");
		run_base();
		return 0;
	}
	TEST_REQUIRE(kmc_loaded());
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	capacity = kmc_capacity();
	shadow = kmc_shadow_paging();
	before = kmc_stats();
	before_kb = kmc_sec_page_tables_kb();
	printf("%d VMs x %d vCPUs, %d rounds of %d MiB per vCPU, capacity %ld, %s\n",
	       nr_vms, nr_vcpus, rounds, KMC_ROUND_MEM >> 20, capacity,
	       shadow ? "shadow paging" : "two-dimensional paging");

	for (v = 0; v < nr_vms; v++) {
		vms[v] = vm_create_with_vcpus(nr_vcpus, kmc_guest_fault_rounds, vcpus[v]);
		kmc_add_round_memory(vms[v], vcpus[v], nr_vcpus, TEST_GPA,
				     TEST_SLOT, rounds);
		check_bound(vms[v]);
	}
	TEST_ASSERT_EQ(kmc_stats().vms_bound, before.vms_bound + nr_vms);

	/* Caches in use per vCPU: page tables, and shadowed info if shadowing. */
	expected = (long)nr_vms * nr_vcpus * capacity * (shadow ? 2 : 1);
	for (round = 0; round < rounds; round++) {
		/* Fresh memory: new page tables. */
		run_all_to_sync();
		/* One new page in a mapped 2 MiB region: the topup refills. */
		run_all_to_sync();

		/* All vCPUs are out of KVM_RUN: nothing is in flight. */
		files = check_vcpus(round, shadow, capacity);
		unused = kmc_unused_pages();
		recount = kmc_recount();
		printf("round %d: unused_pages %ld recount %ld vCPU files %ld expected %ld\n",
		       round, unused, recount, files, expected);
		TEST_ASSERT_EQ(files, expected);
		TEST_ASSERT_EQ(recount, expected);
		TEST_ASSERT_EQ(unused, expected);
	}

	/* What an operator sees while the VMs live. */
	dump_file(KMC_DEBUGFS "/stats");
	dump_file(KMC_DEBUGFS "/vm_list");
	snprintf(path, sizeof(path), "%s/vcpu0", kmc_vm_dir(vms[0]));
	dump_file(path);

	after = kmc_stats();
	TEST_ASSERT(after.allocs > before.allocs, "module allocs did not grow");
	TEST_ASSERT_EQ(after.misses, before.misses);

	for (v = 0; v < nr_vms; v++)
		kvm_vm_free(vms[v]);
	TEST_ASSERT(!kmc_any_vm_dir(), "debugfs directory left after the VMs");
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	kmc_assert_sec_page_tables_back(before_kb);
	printf("ok: exact counts in %d rounds; 0 and SecPageTables %ld kB after the VMs\n",
	       rounds, before_kb);
	return 0;
}
