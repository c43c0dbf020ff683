# SPDX-License-Identifier: GPL-2.0
# Shared environment for the build and bench scripts; source it, do not run it.

KMC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KMC_CACHE=${KMC_CACHE:-$HOME/.cache/kvm_mmu_cache}
KMC_DL=$KMC_CACHE/downloads
KMC_TOOLS=$KMC_CACHE/tools

export PATH=/usr/lib/llvm-19/bin:$KMC_TOOLS/bin:$HOME/.cargo/bin:$PATH
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

# rust-src must be the exact version of the rustc in use.
KMC_RUSTC_VERSION=$(rustc --version 2>/dev/null | awk '{print $2}')
export RUST_LIB_SRC=$KMC_TOOLS/rust-src-$KMC_RUSTC_VERSION/usr/src/rustc-$KMC_RUSTC_VERSION/library

# Kernel source tarball extracted from Debian's linux-source-7.2.
KMC_KSRC_TARBALL=$KMC_TOOLS/linux-source/usr/src/linux-source-7.2.tar.xz

die() { echo "error: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

# Scripts that stop at the first error name the command that failed.
if [[ $- == *e* ]]; then
	trap 'kmc_rc=$?; echo "error: $(basename "${BASH_SOURCE[0]:-$0}"):$LINENO: \"$BASH_COMMAND\" failed (exit $kmc_rc)" >&2' ERR
fi
