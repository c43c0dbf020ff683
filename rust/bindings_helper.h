/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C declarations scripts/bindgen.sh turns into rust/bindings.rs: the
 * page-table cache provider seam (patches/) and the kernel facilities the
 * kernel crate does not bind.
 */
#include <linux/kvm_host.h>
#include <linux/kvm_types.h>
#include <linux/percpu_counter.h>
#include <linux/shrinker.h>

#include "helpers.h"

/*
 * Where the provider finds the VM of a vCPU and KVM's debugfs directory for
 * the VM, whose name ("<pid>-<fd>") the module's own directory for the VM
 * takes: the structs are too large to bind whole, so only these offsets
 * are, computed by the compiler that builds KVM.
 */
enum {
	KMC_VCPU_KVM_OFFSET = offsetof(struct kvm_vcpu, kvm),
	KMC_KVM_DEBUGFS_DENTRY_OFFSET = offsetof(struct kvm, debugfs_dentry),
};

/* bindgen cannot expand BIT(). SHRINK_STOP and SHRINK_EMPTY: rust/helpers.c. */
static const unsigned int KMC_SHRINKER_NUMA_AWARE = SHRINKER_NUMA_AWARE;

