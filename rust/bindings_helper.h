/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C declarations scripts/bindgen.sh turns into rust/bindings.rs: the
 * page-table cache provider seam (patches/) and the kernel facilities the
 * kernel crate does not bind.
 */
#include <linux/kvm_host.h>
#include <linux/kvm_types.h>
#include <linux/percpu_counter.h>
