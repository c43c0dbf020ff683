// SPDX-License-Identifier: GPL-2.0
/*
 * Everything at once, for a while: VMs come and go while the shrinker
 * storms, debugfs is read, rmmod is tried and VMMs are killed mid-fault.
 *
 *   kmc_stress_test [-s SECONDS] [-w WORKERS] [-v VCPUS]
 *
 * WORKERS processes (16) each create, run and destroy VMs of VCPUS vCPUs
 * (2) one after another, so that WORKERS VMs live at a time. Of every 3
 * VMs one enables KVM_CAP_NUMA_AWARE_PAGE_TABLE before its vCPUs and one
 * from a thread racing the creation of its vCPUs: the racing enable
 * succeeds (before the first vCPU) or fails with EINVAL (after it), and
 * the VM's vCPUs have per-node caches exactly when it succeeded. Each vCPU
 * faults fresh memory (every 4th page), round after round, and checks the
 * round before; each VM's vCPUs took pages from the
 * module and none missed. One more worker makes a VM whose vCPU waits in
 * a userfaultfd fault that is never resolved.
 *
 * Meanwhile this process, which holds a bound VM of its own throughout,
 * drops caches and scans each node through the shrinker's debugfs every
 * 100 ms, reads every file of the module's debugfs tree in a loop (files
 * of VMs that go meanwhile may vanish or read EIO, nothing else), tries
 * rmmod every 250 ms (refused: the module is in use), and every second
 * SIGKILLs a worker (mostly in KVM_RUN, faulting) or the one blocked in
 * userfaultfd, and starts a new one. A worker that fails, a guest whose
 * memory is wrong, a debugfs read or rmmod answered otherwise fails the
 * test.
 *
 * At the end the workers are killed where they are, the own VM runs a
 * last round (unused_pages == recount while it is quiet) and is freed,
 * then: unused_pages and recount are 0, SecPageTables is back at its value
 * before the test, no cache missed, and rmmod succeeds at once (insmod
 * brings the module back for the tests after this one).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/userfaultfd.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define ROUNDS		3
/* Every 4th page: a quarter of the faults, as many new page tables. */
#define STRIDE_PAGES	4
#define MAX_WORKERS	32
#define MAX_VCPUS	4
#define USAGE		"usage: %s [-s SECONDS] [-w WORKERS] [-v VCPUS]"

/* What the workers did, in memory shared with this process. */
struct worker_stats {
	long created, vms, numa_on, numa_refused, rounds;
	int in_run;	/* a vCPU of the worker is in KVM_RUN */
	int blocked;	/* the uffd worker's vCPU waits in userfaultfd */
};

static struct worker_stats *stats;
static int nr_vcpus = 2, nr_workers = 16;
/* Worker nr_workers is the one blocked in userfaultfd. */
static pid_t workers[MAX_WORKERS + 1];
static int stop;

/* How a worker's VM gets the NUMA capability. */
enum numa_mode { NUMA_OFF, NUMA_BEFORE_VCPUS, NUMA_RACING };

struct race_arg {
	struct kvm_vm *vm;
	int r, err;
};

static void *enable_numa(void *data)
{
	struct race_arg *a = data;

	a->r = __vm_enable_cap(a->vm, KVM_CAP_NUMA_AWARE_PAGE_TABLE, 1);
	a->err = errno;
	return NULL;
}

/*
 * Guest of the workers: round after round, write every STRIDE_PAGES-th page
 * of KMC_ROUND_MEM fresh memory at @gva, check what the round before wrote,
 * then GUEST_SYNC.
 */
static void guest_stress_rounds(u64 gva)
{
	u64 round, i, base;

	for (round = 0;; round++) {
		base = gva + round * KMC_ROUND_MEM;
		for (i = 0; i < KMC_ROUND_PAGES; i += STRIDE_PAGES)
			WRITE_ONCE(*(u64 *)(base + i * PAGE_SIZE), kmc_pattern(round, i));
		for (i = 0; round && i < KMC_ROUND_PAGES; i += STRIDE_PAGES)
			GUEST_ASSERT_EQ(READ_ONCE(*(u64 *)(base - KMC_ROUND_MEM + i * PAGE_SIZE)),
					kmc_pattern(round - 1, i));
		GUEST_SYNC(round);
	}
}

static void *run_rounds(void *data)
{
	struct kvm_vcpu *vcpu = data;
	int i;

	for (i = 0; i < ROUNDS; i++)
		kmc_run_to_sync(vcpu);
	return NULL;
}

/* One VM of a worker: created, run ROUNDS rounds, checked, destroyed. */
static void worker_vm(struct worker_stats *s, enum numa_mode numa)
{
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS], racer;
	struct race_arg race;
	struct kvm_vm *vm;
	int i, nodes;

	vm = vm_create(nr_vcpus);
	race = (struct race_arg){ .vm = vm, .r = -1 };
	if (numa == NUMA_BEFORE_VCPUS)
		enable_numa(&race);
	else if (numa == NUMA_RACING)
		pthread_create(&racer, NULL, enable_numa, &race);
	for (i = 0; i < nr_vcpus; i++)
		vcpus[i] = vm_vcpu_add(vm, i, guest_stress_rounds);
	if (numa == NUMA_RACING)
		pthread_join(racer, NULL);
	if (numa != NUMA_OFF) {
		TEST_ASSERT(!race.r || (numa == NUMA_RACING && race.err == EINVAL),
			    "KVM_ENABLE_CAP %s the vCPUs: %d, errno %d",
			    numa == NUMA_RACING ? "racing" : "before", race.r, race.err);
		if (race.r)
			s->numa_refused++;
		else
			s->numa_on++;
	}
	kmc_add_round_memory(vm, vcpus, nr_vcpus, TEST_GPA, TEST_SLOT, ROUNDS);
	TEST_ASSERT(kmc_vm_dir(vm), "a VM is not bound to the module");
	s->created++;

	WRITE_ONCE(s->in_run, 1);
	for (i = 0; i < nr_vcpus; i++)
		pthread_create(&threads[i], NULL, run_rounds, vcpus[i]);
	for (i = 0; i < nr_vcpus; i++)
		pthread_join(threads[i], NULL);
	WRITE_ONCE(s->in_run, 0);

	for (i = 0; i < nr_vcpus; i++) {
		struct kmc_vcpu_caches c = kmc_read_vcpu(kmc_vm_dir(vm), i);
		long allocs = c.page_table.allocs;

		for (nodes = 0; nodes < c.nr_nodes; nodes++) {
			allocs += c.node_page_table[nodes].allocs;
			TEST_ASSERT_EQ(c.node_page_table[nodes].misses, 0);
		}
		TEST_ASSERT(allocs > 0, "vCPU %d took no page from the module", i);
		TEST_ASSERT_EQ(c.page_table.misses, 0);
		TEST_ASSERT_EQ(c.shadowed_info.misses, 0);
		TEST_ASSERT(!c.nr_nodes == !!race.r,
			    "vCPU %d has %d node caches, NUMA enable %s", i, c.nr_nodes,
			    numa == NUMA_OFF ? "not asked" : race.r ? "refused" : "succeeded");
	}
	s->rounds += (long)ROUNDS * nr_vcpus;
	s->vms++;
	kvm_vm_free(vm);
}

/* Until killed: VM after VM, a third of them NUMA-aware or trying. */
static void __noreturn worker(struct worker_stats *s, int id)
{
	int n;

	for (n = id;; n++)
		worker_vm(s, n % 3);
}

static void *vcpu_blocked(void *data)
{
	vcpu_run(data);
	return NULL;
}

/*
 * A worker whose vCPU, after a round of its own, faults on memory
 * registered with userfaultfd and waits there: nobody resolves it.
 */
static void __noreturn uffd_worker(struct worker_stats *s)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {};
	struct kvm_vcpu *vcpu;
	struct uffd_msg msg;
	struct pollfd pfd;
	struct kvm_vm *vm;
	pthread_t thread;
	int uffd;

	vm = vm_create_with_one_vcpu(&vcpu, guest_stress_rounds);
	kmc_add_round_memory(vm, &vcpu, 1, TEST_GPA, TEST_SLOT, ROUNDS);
	kmc_run_to_sync(vcpu);

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	TEST_ASSERT(uffd >= 0, "userfaultfd: errno %d", errno);
	TEST_ASSERT(!ioctl(uffd, UFFDIO_API, &api), "UFFDIO_API");
	reg.range.start = (u64)addr_gpa2hva(vm, TEST_GPA + KMC_ROUND_MEM);
	reg.range.len = (ROUNDS - 1) * KMC_ROUND_MEM;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	TEST_ASSERT(!ioctl(uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");

	pthread_create(&thread, NULL, vcpu_blocked, vcpu);
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	TEST_ASSERT(poll(&pfd, 1, 60 * 1000) == 1, "no userfault from the vCPU");
	TEST_ASSERT(read(uffd, &msg, sizeof(msg)) == sizeof(msg), "read uffd_msg");
	TEST_ASSERT_EQ(msg.event, UFFD_EVENT_PAGEFAULT);
	s->created++;
	WRITE_ONCE(s->blocked, 1);
	for (;;)
		pause();
}

static pid_t start_worker(int id)
{
	pid_t pid = fork();

	TEST_ASSERT(pid >= 0, "fork: errno %d", errno);
	if (pid)
		return pid;
	/* A failing test leaves no VMM behind to skew the next one's counts. */
	TEST_ASSERT(!prctl(PR_SET_PDEATHSIG, SIGKILL), "PR_SET_PDEATHSIG");
	if (id == nr_workers)
		uffd_worker(&stats[id]);
	worker(&stats[id], id);
}

/* Workers run until killed: one that ended on its own failed. */
static void assert_no_worker_ended(void)
{
	int status;
	pid_t pid = waitpid(-1, &status, WNOHANG);

	TEST_ASSERT(pid <= 0, "worker pid %d ended: status 0x%x", pid, status);
}

/* SIGKILLs worker @id and waits for it; returns whether it was in KVM_RUN. */
static int kill_worker(int id)
{
	int status, in_run = READ_ONCE(stats[id].in_run) || READ_ONCE(stats[id].blocked);

	TEST_ASSERT(!kill(workers[id], SIGKILL), "kill: errno %d", errno);
	TEST_ASSERT_EQ(waitpid(workers[id], &status, 0), workers[id]);
	TEST_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		    "worker %d ended before its SIGKILL: status 0x%x", id, status);
	workers[id] = 0;
	WRITE_ONCE(stats[id].in_run, 0);
	WRITE_ONCE(stats[id].blocked, 0);
	return in_run;
}

static long reclaim_passes, debugfs_reads, debugfs_gone, rmmod_refused;

static void *reclaimer(void *arg)
{
	struct kmc_node scratch[KMC_MAX_NODES];
	int nodes = kmc_read_nodes(scratch, KMC_MAX_NODES), i;

	while (!READ_ONCE(stop)) {
		kmc_drop_slab();
		for (i = 0; i < nodes; i++)
			kmc_scan_node(i, 128);
		reclaim_passes++;
		usleep(100 * 1000);
	}
	return NULL;
}

/* Reads @path to its end; a file of a VM that went may be gone or EIO. */
static void read_debugfs(const char *path, int may_vanish)
{
	char buf[4096];
	ssize_t r;
	int fd = open(path, O_RDONLY);

	if (fd < 0 && may_vanish && (errno == ENOENT || errno == EIO)) {
		debugfs_gone++;
		return;
	}
	TEST_ASSERT(fd >= 0, "open %s: errno %d", path, errno);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		;
	TEST_ASSERT(!r || (may_vanish && errno == EIO), "read %s: errno %d", path, errno);
	if (r)
		debugfs_gone++;
	close(fd);
	debugfs_reads++;
}

static void *debugfs_reader(void *arg)
{
	static const char * const files[] = { "unused_pages", "recount", "stats",
					      "nodes", "vm_list" };
	char path[1024];
	struct dirent *vm, *f;
	DIR *vms, *d;
	size_t i;

	while (!READ_ONCE(stop)) {
		for (i = 0; i < ARRAY_SIZE(files); i++) {
			snprintf(path, sizeof(path), KMC_DEBUGFS "/%s", files[i]);
			read_debugfs(path, 0);
		}
		vms = opendir(KMC_DEBUGFS "/vms");
		TEST_ASSERT(vms, "opendir " KMC_DEBUGFS "/vms");
		while ((vm = readdir(vms))) {
			if (vm->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), KMC_DEBUGFS "/vms/%s", vm->d_name);
			d = opendir(path);
			if (!d) {
				TEST_ASSERT(errno == ENOENT, "opendir %s: errno %d", path, errno);
				continue;
			}
			while ((f = readdir(d))) {
				if (f->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), KMC_DEBUGFS "/vms/%s/%s",
					 vm->d_name, f->d_name);
				read_debugfs(path, 1);
			}
			closedir(d);
		}
		closedir(vms);
	}
	return NULL;
}

static void *rmmod_trier(void *arg)
{
	int r;

	while (!READ_ONCE(stop)) {
		r = kmc_delete_module("kvm_mmu_cache");
		/* EBUSY would be a load or unload in progress: none may be. */
		TEST_ASSERT(r == -1 && errno == EAGAIN,
			    "rmmod while VMs live: %d, errno %d", r, errno);
		TEST_ASSERT(kmc_loaded(), "the module went while VMs live");
		rmmod_refused++;
		usleep(250 * 1000);
	}
	return NULL;
}

int main(int argc, char *argv[])
{
	long seconds = 40, kills = 0, kills_in_run = 0, uffd_kills = 0, before_kb, freed;
	pthread_t reclaim_thread, reader_thread, rmmod_thread;
	struct worker_stats total = {};
	struct kmc_stats before, after;
	struct kvm_vcpu *own_vcpu;
	struct kvm_vm *own_vm;
	time_t end;
	int opt, i, next = 0;

	while ((opt = getopt(argc, argv, "s:w:v:")) != -1) {
		switch (opt) {
		case 's':
			seconds = atol(optarg);
			break;
		case 'w':
			nr_workers = atoi(optarg);
			break;
		case 'v':
			nr_vcpus = atoi(optarg);
			break;
		default:
			TEST_FAIL(USAGE, argv[0]);
		}
	}
	TEST_ASSERT(seconds > 0 && nr_workers > 0 && nr_workers <= MAX_WORKERS &&
		    nr_vcpus > 0 && nr_vcpus <= MAX_VCPUS, USAGE, argv[0]);
	TEST_REQUIRE(kmc_loaded());
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");

	stats = mmap(NULL, sizeof(*stats) * (MAX_WORKERS + 1), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(stats != MAP_FAILED, "mmap");
	before_kb = kmc_sec_page_tables_kb();
	before = kmc_stats();
	freed = kmc_total_freed();

	own_vm = vm_create_with_one_vcpu(&own_vcpu, kmc_guest_fault_rounds);
	kmc_add_round_memory(own_vm, &own_vcpu, 1, TEST_GPA, TEST_SLOT, 2);
	kmc_run_round(own_vcpu);
	TEST_ASSERT(kmc_vm_dir(own_vm), "the test's own VM is not bound");

	/* The uffd worker first: its vCPU is to wait early. */
	for (i = nr_workers; i >= 0; i--)
		workers[i] = start_worker(i);
	pthread_create(&reclaim_thread, NULL, reclaimer, NULL);
	pthread_create(&reader_thread, NULL, debugfs_reader, NULL);
	pthread_create(&rmmod_thread, NULL, rmmod_trier, NULL);

	for (end = time(NULL) + seconds; time(NULL) < end;) {
		sleep(1);
		assert_no_worker_ended();
		/* Every other second the uffd worker, once its vCPU waits. */
		if (next & 1 && READ_ONCE(stats[nr_workers].blocked)) {
			kill_worker(nr_workers);
			uffd_kills++;
			workers[nr_workers] = start_worker(nr_workers);
		} else {
			i = (next / 2) % nr_workers;
			kills_in_run += kill_worker(i);
			kills++;
			workers[i] = start_worker(i);
		}
		next++;
	}

	/* Killed where they are, mid-fault for most. */
	for (i = 0; i <= nr_workers; i++)
		kills_in_run += kill_worker(i);
	WRITE_ONCE(stop, 1);
	pthread_join(reclaim_thread, NULL);
	pthread_join(reader_thread, NULL);
	pthread_join(rmmod_thread, NULL);

	for (i = 0; i <= nr_workers; i++) {
		total.created += stats[i].created;
		total.vms += stats[i].vms;
		total.numa_on += stats[i].numa_on;
		total.numa_refused += stats[i].numa_refused;
		total.rounds += stats[i].rounds;
	}

	/* The own VM ran through all of it and checks its last round. */
	kmc_run_round(own_vcpu);
	TEST_ASSERT_EQ(kmc_unused_pages(), kmc_recount());
	TEST_ASSERT_EQ(kmc_unused_pages(), kmc_assert_vcpu_full(kmc_vm_dir(own_vm), 0));
	kvm_vm_free(own_vm);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	after = kmc_stats();
	TEST_ASSERT_EQ(after.misses, before.misses);
	kmc_assert_sec_page_tables_back(before_kb);
	freed = kmc_total_freed() - freed;

	printf("%ld s, %d workers x %d vCPUs: %ld VMs created, %ld completed\n",
	       seconds, nr_workers, nr_vcpus, total.created, total.vms);
	printf("  %ld NUMA-aware, %ld enables refused after a vCPU; %ld vCPU rounds; %ld pages\n",
	       total.numa_on, total.numa_refused, total.rounds, after.allocs - before.allocs);
	printf("  %ld VMMs SIGKILLed (%ld in KVM_RUN, %ld blocked in userfaultfd)\n",
	       kills + nr_workers + 1, kills_in_run, uffd_kills);
	printf("  %ld reclaim passes freed %ld pages; %ld debugfs reads (%ld of files gone)\n",
	       reclaim_passes, freed, debugfs_reads, debugfs_gone);
	printf("  %ld rmmod refused\n", rmmod_refused);
	TEST_ASSERT(total.vms >= nr_workers, "only %ld VMs completed", total.vms);
	TEST_ASSERT(uffd_kills > 0, "no VMM was killed in a userfaultfd fault");
	TEST_ASSERT(kills_in_run > 0, "no VMM was killed in KVM_RUN");
	TEST_ASSERT(total.numa_on > 0, "no NUMA-aware VM");
	TEST_ASSERT(freed > 0, "the reclaim storm freed nothing");

	/* Nothing is left that holds the module: rmmod at once, then back. */
	TEST_ASSERT(!kmc_delete_module("kvm_mmu_cache"),
		    "rmmod after the last VM and the killed VMMs: errno %d", errno);
	kmc_insmod();
	printf("ok: counts 0, SecPageTables back, no miss; rmmod right after succeeded\n");
	return 0;
}
