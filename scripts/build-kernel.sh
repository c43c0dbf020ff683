#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the bench kernel: build-kernel.sh release|debug|noseam|bench|bench-noseam
#
# noseam is the release kernel's configuration built without patches/: the
# baseline for the seam's own cost (make bench). bench is the release
# kernel with jump labels (config/bench.config), for the instruction-count
# benchmark only; bench-noseam is that without patches/.
#
# The pristine Linux source is unpacked once into a git repository; the seam
# series in patches/ is applied with `git am` on a worktree of it. Each build
# directory is keyed by a hash of the kernel version, the config fragments
# and the patches, so a second run with the same inputs rebuilds nothing.
# Prints the build directory on stdout.
set -euo pipefail
. "$(dirname "$0")/env.sh"

flavor=${1:-release}
case $flavor in
release | noseam) fragments="$KMC_ROOT/config/base.config $KMC_ROOT/config/release.config" ;;
bench | bench-noseam) fragments="$KMC_ROOT/config/base.config $KMC_ROOT/config/release.config $KMC_ROOT/config/bench.config" ;;
debug) fragments="$KMC_ROOT/config/base.config $KMC_ROOT/config/debug.config" ;;
*) die "unknown flavor '$flavor' (release|debug|noseam|bench|bench-noseam)" ;;
esac

[ -f "$KMC_KSRC_TARBALL" ] || die "kernel source missing: run scripts/setup.sh"
# Bump when the recipe below changes in a way the inputs do not show.
RECIPE=1
ksrc_version=$(cat "$KMC_TOOLS/linux-source/.version")
patches=$(ls "$KMC_ROOT"/patches/*.patch 2>/dev/null || true)
case $flavor in *noseam) patches= ;; esac

src_key=$( { echo "$RECIPE $ksrc_version"; [ -z "$patches" ] || cat $patches; } |
	sha256sum | cut -c1-16)
build_key=$( { echo "$src_key"; cat $fragments; } | sha256sum | cut -c1-16)

pristine=$KMC_CACHE/linux-pristine
src=$KMC_CACHE/src-$src_key
build=$KMC_CACHE/build-$flavor-$build_key

if [ -f "$build/.kmc-done" ]; then
	log "kernel $flavor cached: $build"
	echo "$build"
	exit 0
fi

exec 9>"$KMC_CACHE/.kernel.lock"
flock 9
# Another run may have built it while this one waited for the lock.
if [ -f "$build/.kmc-done" ]; then
	log "kernel $flavor cached: $build"
	echo "$build"
	exit 0
fi

unpack_pristine() {
	[ -f "$pristine/.kmc-done" ] && return
	log "unpacking $ksrc_version"
	rm -rf "$pristine"
	mkdir -p "$pristine"
	tar -xJf "$KMC_KSRC_TARBALL" -C "$pristine" --strip-components=1
	git -C "$pristine" init -q -b base
	# Debian's tarball ends its .gitignore with "/*"; track every file.
	git -C "$pristine" add -A -f
	git -C "$pristine" -c user.name=kmc -c user.email=kmc@localhost \
		commit -q -m "Linux $ksrc_version (Debian linux-source-7.2)"
	touch "$pristine/.kmc-done"
}

prepare_source() {
	[ -f "$src/.kmc-done" ] && return
	unpack_pristine
	log "preparing source $src"
	git -C "$pristine" worktree prune
	rm -rf "$src"
	git -C "$pristine" worktree add -q --detach "$src" base
	if [ -n "$patches" ]; then
		git -C "$src" -c user.name=kmc -c user.email=kmc@localhost \
			am -q $patches || die "patches/ does not apply with git am"
	fi
	touch "$src/.kmc-done"
}

check_config() {
	local f line sym missing=0
	for f in $fragments; do
		while read -r line; do
			case $line in
			CONFIG_*=*) sym=${line%%=*} ;;
			"# CONFIG_"*" is not set") sym=${line#\# }; sym=${sym%% *} ;;
			*) continue ;;
			esac
			if ! grep -qxF "$line" "$build/.config"; then
				echo "config: wanted '$line', got '$(grep -E "^(# )?$sym[= ]" "$build/.config" || echo absent)'" >&2
				missing=1
			fi
		done <"$f"
	done
	[ $missing -eq 0 ] || die "a required config symbol was dropped (see above)"
}

prepare_source
rm -rf "$build"
mkdir -p "$build"
kmake() { make -s -C "$src" O="$build" LLVM=1 "$@"; }
log "configuring $flavor kernel in $build"
kmake tinyconfig >/dev/null
(cd "$build" && "$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" $fragments >/dev/null)
kmake olddefconfig >/dev/null
check_config
kmake rustavailable >/dev/null || die "Rust is not available to this kernel build"
log "building $flavor kernel (takes ~10 min on 2 cores)"
start=$(date +%s)
kmake -j"$(($(nproc) + 1))" bzImage modules
kmake headers_install INSTALL_HDR_PATH="$build/usr" >/dev/null
echo "$(($(date +%s) - start))" >"$build/.kmc-build-seconds"
touch "$build/.kmc-done"
log "kernel $flavor built in $(cat "$build/.kmc-build-seconds") s: $build"
echo "$build"
