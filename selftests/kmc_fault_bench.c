// SPDX-License-Identifier: GPL-2.0
/*
 * Fault microbenchmark: times only the KVM_RUN in which each vCPU writes
 * every 4 KiB page of its own fresh region once, so that the time is the
 * fault path (exit, page-table allocation, map, re-entry) and not VM
 * creation or teardown. Under QEMU's -icount shift=0,sleep=off the time is
 * a count of guest instructions (see the README's benchmark section).
 *
 *   kmc_fault_bench [-v VCPUS] [-m MIB_PER_VCPU] [-n NODE [-N]]
 *
 * -n NODE binds the test memory to NODE and runs the vCPUs on node 0; -N
 * enables KVM_CAP_NUMA_AWARE_PAGE_TABLE (kvm_mmu_cache).
 *
 * Prints "Faulting KVM_RUN time: <s>s" (first vCPU released to last vCPU
 * done) and the time per page; with -n, the new page tables per node
 * (KVM's SecPageTables) and, with the module, the unused cached pages per
 * vCPU after the run.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/mempolicy.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define MAX_VCPUS	8
#define MAX_NODES	8

static void guest_code(u64 gva, u64 npages)
{
	u64 i;

	/* The first KVM_RUN faults in the guest's code, stack and ucall pages. */
	GUEST_SYNC(0);
	for (i = 0; i < npages; i++)
		WRITE_ONCE(*(u64 *)(gva + i * PAGE_SIZE), i);
	GUEST_DONE();
}

static pthread_barrier_t start_barrier;
static struct kvm_vcpu *vcpus[MAX_VCPUS];
static struct timespec done_at[MAX_VCPUS];

static void expect_ucall(struct kvm_vcpu *vcpu, u64 cmd)
{
	struct ucall uc;
	u64 got = get_ucall(vcpu, &uc);

	if (got == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT(got == cmd, "vCPU %d: ucall %lu, expected %lu", vcpu->id, got, cmd);
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;

	pthread_barrier_wait(&start_barrier);
	vcpu_run(vcpu);
	clock_gettime(CLOCK_MONOTONIC, &done_at[vcpu->id]);
	expect_ucall(vcpu, UCALL_DONE);
	return NULL;
}

static double secs_between(struct timespec a, struct timespec b)
{
	return (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
}

int main(int argc, char *argv[])
{
	long tables_before[MAX_NODES], tables_after[MAX_NODES];
	int nr_vcpus = 1, mem_node = -1, numa_aware = 0, opt, i;
	pthread_t threads[MAX_VCPUS];
	struct timespec start, end;
	u64 mib = 32, pages_per_vcpu;
	struct kvm_vm *vm;
	double secs;

	while ((opt = getopt(argc, argv, "v:m:n:N")) != -1) {
		switch (opt) {
		case 'v':
			nr_vcpus = atoi_positive("vCPUs", optarg);
			break;
		case 'm':
			mib = atoi_positive("MiB per vCPU", optarg);
			break;
		case 'n':
			mem_node = atoi_non_negative("node", optarg);
			break;
		case 'N':
			numa_aware = 1;
			break;
		default:
			TEST_FAIL("usage: %s [-v VCPUS] [-m MIB_PER_VCPU] [-n NODE [-N]]", argv[0]);
		}
	}
	TEST_ASSERT(nr_vcpus <= MAX_VCPUS, "at most %d vCPUs", MAX_VCPUS);
	TEST_ASSERT(mem_node < MAX_NODES && (mem_node >= 0 || !numa_aware),
		    "-N needs -n NODE, NODE below %d", MAX_NODES);
	pages_per_vcpu = mib * SZ_1M / PAGE_SIZE;

	/* 4 KiB host pages only, so that every guest page takes a fault. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");

	if (mem_node >= 0)
		TEST_ASSERT(kmc_pin_to_node(0), "node 0 has no CPU");
	vm = vm_create(nr_vcpus);
	if (numa_aware)
		vm_enable_cap(vm, KVM_CAP_NUMA_AWARE_PAGE_TABLE, 1);
	for (i = 0; i < nr_vcpus; i++)
		vcpus[i] = vm_vcpu_add(vm, i, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    pages_per_vcpu * nr_vcpus, 0);
	if (mem_node >= 0) {
		unsigned long mask = 1UL << mem_node;

		TEST_ASSERT(!syscall(__NR_mbind, addr_gpa2hva(vm, TEST_GPA),
				     pages_per_vcpu * nr_vcpus * PAGE_SIZE, MPOL_BIND, &mask,
				     8 * sizeof(mask), MPOL_MF_STRICT),
			    "mbind the test memory to node %d", mem_node);
	}
	virt_map(vm, TEST_GPA, TEST_GPA, pages_per_vcpu * nr_vcpus);
	for (i = 0; i < nr_vcpus; i++) {
		vcpu_args_set(vcpus[i], 2, TEST_GPA + i * pages_per_vcpu * PAGE_SIZE,
			      pages_per_vcpu);
		vcpu_run(vcpus[i]);
		expect_ucall(vcpus[i], UCALL_SYNC);
	}

	for (i = 0; mem_node >= 0 && i <= mem_node; i++)
		tables_before[i] = kmc_sec_page_tables_node_kb(i);
	pthread_barrier_init(&start_barrier, NULL, nr_vcpus + 1);
	for (i = 0; i < nr_vcpus; i++)
		pthread_create(&threads[i], NULL, vcpu_thread, vcpus[i]);
	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_barrier_wait(&start_barrier);
	for (i = 0; i < nr_vcpus; i++)
		pthread_join(threads[i], NULL);

	end = done_at[0];
	for (i = 1; i < nr_vcpus; i++)
		if (secs_between(end, done_at[i]) > 0)
			end = done_at[i];
	secs = secs_between(start, end);
	printf("Faulting KVM_RUN time: %.9fs\n", secs);
	printf("%d vCPUs x %llu pages: %.1f ns per page\n", nr_vcpus,
	       (unsigned long long)pages_per_vcpu,
	       secs * 1e9 / (pages_per_vcpu * nr_vcpus));
	if (mem_node >= 0) {
		printf("New page tables (kB):");
		for (i = 0; i <= mem_node; i++) {
			tables_after[i] = kmc_sec_page_tables_node_kb(i);
			printf(" node%d=%ld", i, tables_after[i] - tables_before[i]);
		}
		printf("\n");
	}
	if (mem_node >= 0 && kmc_vm_dir(vm)) {
		for (i = 0; i < nr_vcpus; i++) {
			struct kmc_vcpu_caches v = kmc_read_vcpu(kmc_vm_dir(vm), i);
			long unused = v.page_table.free + v.shadowed_info.free;
			int n;

			for (n = 0; n < v.nr_nodes; n++)
				unused += v.node_page_table[n].free;
			printf("vCPU %d unused cached pages: %ld, node caches: %d\n", i, unused,
			       v.nr_nodes);
		}
	}
	kvm_vm_free(vm);
	return 0;
}
