#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bindgen.sh OBJTREE HEADER OUTPUT: generate Rust bindings for the KVM and
# kernel types the module uses, with the clang flags the kernel build used
# for its own bindings (recorded in rust/bindings/.bindings_generated.rs.cmd).
# Types the kernel crate already has are not generated again but taken from
# kernel::bindings, so that a page from the kernel crate and one from these
# bindings are the same type.
set -euo pipefail
objtree=$1 header=$2 output=$3
cmdfile=$objtree/rust/bindings/.bindings_generated.rs.cmd
[ -f "$cmdfile" ] || { echo "bindgen.sh: $cmdfile missing (kernel built without Rust?)" >&2; exit 1; }

# The part of the kernel's bindgen command after " -- ", up to "; sed",
# without the dependency-file flags. It holds quoted arguments: let the
# shell split it.
flags=$(sed -n 's/^savedcmd_[^:]*:= //p' "$cmdfile" | sed 's/.* -- //; s/; *sed .*//' |
	sed -E 's/-Wp,-MMD,[^ ]*//g; s/-Wp,-MD,[^ ]*//g')
eval "set -- $flags"

cd "$objtree"
mkdir -p "$(dirname "$output")"
bindgen "$header" \
	--use-core --with-derive-default --ctypes-prefix ffi --no-layout-tests \
	--no-debug '.*' --enable-function-attribute-detection \
	--no-recursive-allowlist \
	--allowlist-type 'kvm_mmu_memory_cache' \
	--allowlist-type 'kvm_mmu_cache_provider' \
	--allowlist-type 'kvm_mmu_cache_type' \
	--allowlist-type 'kvm_enable_cap' \
	--allowlist-var 'KVM_CAP_NUMA_AWARE_PAGE_TABLE' \
	--allowlist-var 'KMC_.*_OFFSET' \
	--allowlist-type 'percpu_counter' \
	--opaque-type 'kvm' --allowlist-type 'kvm' \
	--opaque-type 'kvm_vcpu' --allowlist-type 'kvm_vcpu' \
	--allowlist-function 'kvm_mmu_cache_provider_(un)?register' \
	--allowlist-function '__kvm_mmu_topup_memory_cache' \
	--allowlist-function 'kvm_mmu_memory_cache_alloc' \
	--allowlist-function 'kvm_mmu_free_memory_cache' \
	--allowlist-function '__percpu_counter_init_many' \
	--allowlist-function 'percpu_counter_add_batch' \
	--allowlist-function '__percpu_counter_sum' \
	--allowlist-function 'percpu_counter_destroy_many' \
	--allowlist-var 'percpu_counter_batch' \
	--allowlist-function 'kmc_.*' \
	--allowlist-type 'shrinker' --allowlist-type 'shrink_control' \
	--allowlist-function 'shrinker_(alloc|register|free)' \
	--allowlist-var 'KMC_SHRINKER_.*' \
	--raw-line 'use kernel::bindings::*;' \
	--raw-line 'use kernel::ffi;' \
	-o "$output.tmp" -- "$@" -DMODULE
mv "$output.tmp" "$output"
