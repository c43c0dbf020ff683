// SPDX-License-Identifier: GPL-2.0
/*
 * Who may see and steer the module: root only.
 *
 * Every file of the module's debugfs tree is root's and mode 0400, so
 * that no mount mode of debugfs opens it to others. A process that
 * dropped root (uid and gid 65534, no groups) can open none of them
 * (EACCES), with debugfs mounted 0700 as usual or remounted 0755 for the
 * test, and cannot open the module's parameters for writing. A VM fd
 * that reaches another process (inherited here; SCM_RIGHTS alike) is of
 * no use there: KVM refuses every ioctl from another mm with EIO, so
 * KVM_CHECK_EXTENSION and KVM_ENABLE_CAP for the module's capability
 * fail (on a VM with no vCPU yet, where the enable would succeed in its
 * own process: the VM then gets no per-node cache), and the module's
 * counts do not move. The VMs then run on.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define NOBODY		65534
#define DEBUGFS		"/sys/kernel/debug"

static int files_checked;
/* debugfs's mount mode before the test, restored at exit if changed. */
static mode_t debugfs_mode;
static int remounted;
static pid_t test_pid;

static int check_mode(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type != FTW_F)
		return 0;
	TEST_ASSERT(st->st_uid == 0 && st->st_gid == 0 && (st->st_mode & 07777) == 0400,
		    "%s: uid %u gid %u mode %o, expected root's 0400", path, st->st_uid,
		    st->st_gid, st->st_mode & 07777);
	files_checked++;
	return 0;
}

static void assert_errno(int r, int expected, const char *what)
{
	TEST_ASSERT(r == -1 && errno == expected, "%s: %d (errno %d), expected errno %d",
		    what, r, errno, expected);
}

static void remount_debugfs(mode_t mode)
{
	char opts[32];

	snprintf(opts, sizeof(opts), "mode=%o", mode);
	TEST_ASSERT(!mount(NULL, DEBUGFS, NULL, MS_REMOUNT, opts),
		    "remount " DEBUGFS " %s: errno %d", opts, errno);
	remounted = mode != debugfs_mode;
}

/* A failed assertion exits: the suite's later tests get debugfs as it was. */
static void restore_debugfs(void)
{
	/* Not in the child, which cannot remount and must not try. */
	if (remounted && getpid() == test_pid)
		remount_debugfs(debugfs_mode);
}

/*
 * In a child that dropped root: nothing of the module is reachable. @vm has
 * no vCPU, so KVM_ENABLE_CAP would succeed in its own process.
 */
static void __noreturn as_nobody(struct kvm_vm *vm, const char *vcpu_file)
{
	static const char * const files[] = { "unused_pages", "recount", "stats",
					      "nodes", "vm_list" };
	struct kvm_enable_cap cap = { .cap = KVM_CAP_NUMA_AWARE_PAGE_TABLE,
				      .args = { 1 } };
	char path[256];
	size_t i;

	TEST_ASSERT(!setgroups(0, NULL) && !setgid(NOBODY) && !setuid(NOBODY),
		    "drop root: errno %d", errno);
	TEST_ASSERT(geteuid() == NOBODY, "still uid %d", geteuid());

	for (i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), KMC_DEBUGFS "/%s", files[i]);
		assert_errno(open(path, O_RDONLY), EACCES, path);
	}
	assert_errno(open(vcpu_file, O_RDONLY), EACCES, vcpu_file);
	assert_errno(open(KMC_PARAMS "/capacity", O_WRONLY), EACCES,
		     "open capacity for writing");

	assert_errno(ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_NUMA_AWARE_PAGE_TABLE),
		     EIO, "KVM_CHECK_EXTENSION on another process's VM fd");
	assert_errno(ioctl(vm->fd, KVM_ENABLE_CAP, &cap), EIO,
		     "KVM_ENABLE_CAP on another process's VM fd");
	_exit(0);
}

/* Runs as_nobody() in a child; the module's counts must not move. */
static void try_as_nobody(struct kvm_vm *vm, const char *vcpu_file)
{
	struct kmc_stats before = kmc_stats(), after;
	int status;
	pid_t pid;

	pid = fork();
	TEST_ASSERT(pid >= 0, "fork: errno %d", errno);
	if (!pid)
		as_nobody(vm, vcpu_file);
	TEST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
	TEST_ASSERT(WIFEXITED(status) && !WEXITSTATUS(status),
		    "the unprivileged process got in: status 0x%x", status);
	after = kmc_stats();
	TEST_ASSERT(after.vms_bound == before.vms_bound && after.allocs == before.allocs,
		    "the module's counts moved: vms %ld -> %ld, allocs %ld -> %ld",
		    before.vms_bound, after.vms_bound, before.allocs, after.allocs);
}

int main(int argc, char *argv[])
{
	struct kvm_vcpu *vcpu, *other_vcpu;
	struct kvm_vm *vm, *other;
	char vcpu_file[256];
	struct stat st;

	TEST_REQUIRE(kmc_loaded());
	vm = vm_create_with_one_vcpu(&vcpu, kmc_guest_fault_rounds);
	kmc_add_round_memory(vm, &vcpu, 1, TEST_GPA, TEST_SLOT, 2);
	kmc_run_round(vcpu);
	TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the module");
	snprintf(vcpu_file, sizeof(vcpu_file), "%s/vcpu0", kmc_vm_dir(vm));

	TEST_ASSERT(!nftw(KMC_DEBUGFS, check_mode, 16, FTW_PHYS), "walk " KMC_DEBUGFS);
	TEST_ASSERT(files_checked >= 6, "only %d files in " KMC_DEBUGFS, files_checked);
	printf("%d debugfs files, each root's and 0400\n", files_checked);

	TEST_ASSERT(!stat(DEBUGFS, &st), "stat " DEBUGFS);
	debugfs_mode = st.st_mode & 07777;
	test_pid = getpid();
	atexit(restore_debugfs);
	/* The fds the child gets: of a bound VM that has no vCPU yet. */
	other = vm_create(1);
	/* Bound (its directory comes with its first vCPU): its fd answers 1. */
	TEST_ASSERT_EQ(__vm_ioctl(other, KVM_CHECK_EXTENSION,
				  (void *)(long)KVM_CAP_NUMA_AWARE_PAGE_TABLE), 1);
	try_as_nobody(other, vcpu_file);
	remount_debugfs(0755);
	try_as_nobody(other, vcpu_file);
	remount_debugfs(debugfs_mode);
	printf("uid %d: debugfs files (mounted %o and 0755) and parameters EACCES; the VM fd EIO\n",
	       NOBODY, debugfs_mode);

	/* The child's KVM_ENABLE_CAP changed nothing: no per-node caches. */
	other_vcpu = vm_vcpu_add(other, 0, kmc_guest_fault_rounds);
	kmc_add_round_memory(other, &other_vcpu, 1, TEST_GPA, TEST_SLOT, 2);
	kmc_run_round(other_vcpu);
	TEST_ASSERT_EQ(kmc_read_vcpu(kmc_vm_dir(other), 0).nr_nodes, 0);
	kvm_vm_free(other);

	/* The VM is unharmed: its next round checks the last. */
	kmc_run_round(vcpu);
	TEST_ASSERT_EQ(kmc_unused_pages(), kmc_assert_vcpu_full(kmc_vm_dir(vm), 0));
	kvm_vm_free(vm);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	printf("ok\n");
	return 0;
}
