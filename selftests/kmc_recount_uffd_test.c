// SPDX-License-Identifier: GPL-2.0
/*
 * A debugfs recount while a vCPU waits in a userfaultfd fault must not hold
 * up VM creation, nor wait for the fault: KVM_CREATE_VM needs the module's
 * VM list to bind the new VM, and a recount that waited for a fault with
 * that list locked would hold it up for as long as user space pleases. (The
 * seam tops the caches up after the fault's pfn is resolved, and a cache in
 * use is counted without waiting, so neither happens: this guards both.)
 *
 * A vCPU faults on a page registered with userfaultfd and waits there; a
 * thread reads kvm_mmu_cache/recount; then KVM_CREATE_VM must return within
 * 10 s. Afterwards the page is supplied, the vCPU finishes (it writes the
 * next page too, a fault that needs no new table), the recount returns and
 * the vCPU's caches hold exactly a capacity each, served with no miss, equal
 * to unused_pages and a recount. Once the VM is gone, SecPageTables and the
 * counter are back.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"
#include "kmc_util.h"

#define TEST_SLOT	10
#define TEST_GPA	BIT_ULL(32)
#define TEST_PAGES	512
#define WAIT_SECS	10

static void guest_code(u64 gva)
{
	WRITE_ONCE(*(u64 *)gva, 0x6b6d63);
	/* Not registered with userfaultfd; its tables exist. */
	WRITE_ONCE(*(u64 *)(gva + PAGE_SIZE), 0x6b6d63);
	GUEST_DONE();
}

static struct kvm_vcpu *vcpu;
static int vm_created, recount_done;
static long recount_value;

static void *vcpu_thread(void *arg)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_DONE);
	return NULL;
}

static void *recount_thread(void *arg)
{
	recount_value = kmc_recount();
	WRITE_ONCE(recount_done, 1);
	return NULL;
}

static void *create_vm_thread(void *arg)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int fd;

	TEST_ASSERT(kvm >= 0, "open /dev/kvm");
	fd = ioctl(kvm, KVM_CREATE_VM, 0);
	TEST_ASSERT(fd >= 0, "KVM_CREATE_VM");
	WRITE_ONCE(vm_created, 1);
	close(fd);
	close(kvm);
	return NULL;
}

/* Waits up to WAIT_SECS for *flag; returns whether it was set. */
static int wait_for(int *flag)
{
	int i;

	for (i = 0; i < WAIT_SECS * 100 && !READ_ONCE(*flag); i++)
		usleep(10000);
	return READ_ONCE(*flag);
}

int main(int argc, char *argv[])
{
	pthread_t vcpu_tid, recount_tid, create_tid;
	struct uffdio_register reg = { 0 };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_zeropage zero = { 0 };
	struct uffd_msg msg;
	struct pollfd pfd;
	struct kvm_vm *vm;
	int uffd, created;
	long before_kb;
	void *hva;

	TEST_REQUIRE(kmc_loaded());
	TEST_ASSERT(!prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), "PR_SET_THP_DISABLE");

	before_kb = kmc_sec_page_tables_kb();
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, TEST_GPA, TEST_SLOT,
				    TEST_PAGES, 0);
	virt_map(vm, TEST_GPA, TEST_GPA, TEST_PAGES);
	vcpu_args_set(vcpu, 1, TEST_GPA);
	TEST_ASSERT(kmc_vm_dir(vm), "the VM is not bound to the loaded module");

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	TEST_REQUIRE(uffd >= 0);
	TEST_ASSERT(!ioctl(uffd, UFFDIO_API, &api), "UFFDIO_API");
	hva = addr_gpa2hva(vm, TEST_GPA);
	reg.range.start = (u64)hva;
	reg.range.len = PAGE_SIZE;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	TEST_ASSERT(!ioctl(uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");

	/* The vCPU faults on the registered page and waits in userfaultfd. */
	pthread_create(&vcpu_tid, NULL, vcpu_thread, NULL);
	pfd = (struct pollfd){ .fd = uffd, .events = POLLIN };
	TEST_ASSERT(poll(&pfd, 1, WAIT_SECS * 1000) == 1, "no userfault from the vCPU");
	TEST_ASSERT(read(uffd, &msg, sizeof(msg)) == sizeof(msg), "read uffd_msg");
	TEST_ASSERT_EQ(msg.event, UFFD_EVENT_PAGEFAULT);
	printf("vCPU waits in a userfaultfd fault at %llx\n", msg.arg.pagefault.address);

	/* A recount, which may wait for the vCPU's cache, then a new VM. */
	pthread_create(&recount_tid, NULL, recount_thread, NULL);
	usleep(500000);
	printf("recount %s\n", READ_ONCE(recount_done) ? "returned at once" : "waits");
	pthread_create(&create_tid, NULL, create_vm_thread, NULL);
	created = wait_for(&vm_created);
	printf("KVM_CREATE_VM %s\n", created ? "returned" : "still blocked after 10 s");

	/* Let the vCPU go whatever happened, so that nothing stays stuck. */
	zero.range.start = msg.arg.pagefault.address & ~(PAGE_SIZE - 1);
	zero.range.len = PAGE_SIZE;
	TEST_ASSERT(!ioctl(uffd, UFFDIO_ZEROPAGE, &zero), "UFFDIO_ZEROPAGE");
	TEST_ASSERT(!ioctl(uffd, UFFDIO_UNREGISTER, &reg.range), "UFFDIO_UNREGISTER");
	TEST_ASSERT(wait_for(&recount_done), "the recount never returned");
	pthread_join(vcpu_tid, NULL);
	pthread_join(recount_tid, NULL);
	TEST_ASSERT(created, "KVM_CREATE_VM waited on a recount that waited on a vCPU in a fault");
	pthread_join(create_tid, NULL);

	/* The VM created meanwhile is gone: this VM's caches are all there is. */
	TEST_ASSERT_EQ(kmc_unused_pages(), kmc_assert_vcpu_full(kmc_vm_dir(vm), 0));
	TEST_ASSERT_EQ(kmc_recount(), kmc_unused_pages());
	printf("recount during the fault: %ld; after: %ld\n", recount_value, kmc_recount());
	close(uffd);
	kvm_vm_free(vm);
	kmc_assert_sec_page_tables_back(before_kb);
	TEST_ASSERT_EQ(kmc_unused_pages(), 0);
	TEST_ASSERT_EQ(kmc_recount(), 0);
	printf("ok\n");
	return 0;
}
