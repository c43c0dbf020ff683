// SPDX-License-Identifier: GPL-2.0
/*
 * rmmod and insmod racing VM creation and destruction, with no VM holding
 * the module throughout.
 *
 *   kmc_unload_race_test [-s SECONDS] [-w WORKERS]
 *
 * WORKERS processes (4) create a VM of one vCPU, run a round of faults on
 * fresh memory, and destroy it, over and over. Meanwhile this process
 * tries rmmod without waiting, as fast as it can, and loads the module
 * again whenever rmmod succeeded. Each VM is either bound (created while
 * the module was live: KVM_CHECK_EXTENSION for its capability on the VM
 * fd says 1) and then served by the module with no miss, or unbound (0)
 * and served by KVM; rmmod either succeeds or is refused with EAGAIN
 * (a VM is bound), never anything else. There must be some of each. At the
 * end the module is loaded, holds no page and no reference, and
 * SecPageTables is back at its value before the test.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define MAX_WORKERS	16

struct worker_stats {
	long bound, unbound;
};

static struct worker_stats *stats;
static int *stop;

static void __noreturn worker(struct worker_stats *s)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int r;

	while (!READ_ONCE(*stop)) {
		vm = vm_create_with_one_vcpu(&vcpu, kmc_guest_fault_rounds);
		kmc_add_round_memory(vm, &vcpu, 1, TEST_GPA, TEST_SLOT, 1);
		r = __vm_ioctl(vm, KVM_CHECK_EXTENSION,
			       (void *)(long)KVM_CAP_NUMA_AWARE_PAGE_TABLE);
		TEST_ASSERT(r == 0 || r == 1, "KVM_CHECK_EXTENSION on the VM: %d", r);
		kmc_run_round(vcpu);
		if (r) {
			/* Bound: the module cannot go before the VM does. */
			struct kmc_vcpu_caches c;

			TEST_ASSERT(kmc_vm_dir(vm), "a bound VM has no directory");
			c = kmc_read_vcpu(kmc_vm_dir(vm), 0);
			TEST_ASSERT(c.page_table.allocs > 0, "a bound VM was not served");
			TEST_ASSERT_EQ(c.page_table.misses, 0);
			s->bound++;
		} else {
			s->unbound++;
		}
		kvm_vm_free(vm);
	}
	_exit(0);
}

int main(int argc, char *argv[])
{
	long seconds = 20, unloads = 0, refused = 0, before_kb;
	struct worker_stats total = {};
	pid_t pids[MAX_WORKERS];
	int opt, i, status, workers = 4;
	time_t end;

	while ((opt = getopt(argc, argv, "s:w:")) != -1) {
		switch (opt) {
		case 's':
			seconds = atol(optarg);
			break;
		case 'w':
			workers = atoi(optarg);
			break;
		default:
			TEST_FAIL("usage: %s [-s SECONDS] [-w WORKERS]", argv[0]);
		}
	}
	TEST_ASSERT(seconds > 0 && workers > 0 && workers <= MAX_WORKERS,
		    "bad -s %ld -w %d", seconds, workers);
	TEST_REQUIRE(kmc_loaded());
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	before_kb = kmc_sec_page_tables_kb();

	stats = mmap(NULL, sizeof(*stats) * MAX_WORKERS + sizeof(int),
		     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(stats != MAP_FAILED, "mmap");
	stop = (int *)&stats[MAX_WORKERS];

	for (i = 0; i < workers; i++) {
		pids[i] = fork();
		TEST_ASSERT(pids[i] >= 0, "fork: errno %d", errno);
		if (!pids[i]) {
			TEST_ASSERT(!prctl(PR_SET_PDEATHSIG, SIGKILL), "PR_SET_PDEATHSIG");
			worker(&stats[i]);
		}
	}

	for (end = time(NULL) + seconds; time(NULL) < end;) {
		if (!kmc_delete_module("kvm_mmu_cache")) {
			unloads++;
			kmc_insmod();
			continue;
		}
		/* EBUSY would be a load or unload in progress: none may be. */
		TEST_ASSERT(errno == EAGAIN, "rmmod: errno %d, expected EAGAIN", errno);
		refused++;
		usleep(1000);
	}
	WRITE_ONCE(*stop, 1);
	for (i = 0; i < workers; i++) {
		TEST_ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
		TEST_ASSERT(WIFEXITED(status) && !WEXITSTATUS(status),
			    "worker %d failed: status 0x%x", i, status);
		total.bound += stats[i].bound;
		total.unbound += stats[i].unbound;
	}
	if (!kmc_loaded())
		kmc_insmod();

	printf("%ld s, %d workers: %ld VMs bound, %ld unbound (made while the module was away)\n",
	       seconds, workers, total.bound, total.unbound);
	printf("  rmmod: %ld succeeded (each followed by insmod), %ld refused with EAGAIN\n",
	       unloads, refused);
	TEST_ASSERT(total.bound > 0 && total.unbound > 0, "no mix of bound and unbound VMs");
	TEST_ASSERT(unloads > 0 && refused > 0, "no mix of unloads and refusals");
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	TEST_ASSERT_EQ(kmc_module_refcnt(), 0);
	kmc_assert_sec_page_tables_back(before_kb);
	printf("ok: counts 0, no reference left, SecPageTables back\n");
	return 0;
}
