// SPDX-License-Identifier: GPL-2.0
/*
 * Fault microbenchmark: times only the KVM_RUN in which each vCPU writes
 * every 4 KiB page of its own fresh region once, so that the time is the
 * fault path (exit, page-table allocation, map, re-entry) and not VM
 * creation or teardown. Under QEMU's -icount shift=0,sleep=off the time is
 * a count of guest instructions (see the README's benchmark section).
 *
 *   kmc_fault_bench [-v VCPUS] [-m MIB_PER_VCPU]
 *
 * Prints "Faulting KVM_RUN time: <s>s" (first vCPU released to last vCPU
 * done) and the time per page.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define MAX_VCPUS	8

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
	pthread_t threads[MAX_VCPUS];
	struct timespec start, end;
	u64 mib = 32, pages_per_vcpu;
	int nr_vcpus = 1, opt, i;
	struct kvm_vm *vm;
	double secs;

	while ((opt = getopt(argc, argv, "v:m:")) != -1) {
		switch (opt) {
		case 'v':
			nr_vcpus = atoi_positive("vCPUs", optarg);
			break;
		case 'm':
			mib = atoi_positive("MiB per vCPU", optarg);
			break;
		default:
			TEST_FAIL("usage: %s [-v VCPUS] [-m MIB_PER_VCPU]", argv[0]);
		}
	}
	TEST_ASSERT(nr_vcpus <= MAX_VCPUS, "at most %d vCPUs", MAX_VCPUS);
	pages_per_vcpu = mib * SZ_1M / PAGE_SIZE;

	/* 4 KiB host pages only, so that every guest page takes a fault. */
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");

	vm = vm_create_with_vcpus(nr_vcpus, guest_code, vcpus);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    pages_per_vcpu * nr_vcpus, 0);
	virt_map(vm, TEST_GPA, TEST_GPA, pages_per_vcpu * nr_vcpus);
	for (i = 0; i < nr_vcpus; i++) {
		vcpu_args_set(vcpus[i], 2, TEST_GPA + i * pages_per_vcpu * PAGE_SIZE,
			      pages_per_vcpu);
		vcpu_run(vcpus[i]);
		expect_ucall(vcpus[i], UCALL_SYNC);
	}

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
	kvm_vm_free(vm);
	return 0;
}
