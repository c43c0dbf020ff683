#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the build and the QEMU bench need. Idempotent: each
# step is skipped when its result is already present.
#
# Packages from newer Debian suites (linux-source-7.2, rust-src) are fetched
# with a private apt state and extracted under the cache; the system's apt
# sources are never modified.
set -euo pipefail
. "$(dirname "$0")/env.sh"

BOOKWORM_PKGS="clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc cpio kmod
rsync libelf-dev libssl-dev dwarves qemu-system-x86 busybox-static make gcc
libc6-dev libnuma-dev xz-utils python3 python3-ply python3-git perl git"
BINDGEN_VERSION=0.72.1
KSRC_SERIES=7.2

mkdir -p "$KMC_DL" "$KMC_TOOLS"

install_system_packages() {
	local missing=()
	for p in $BOOKWORM_PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	log "installing system packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The mirror the machine already uses, read from its own apt configuration.
mirror_uri() {
	local uri
	uri=$(awk '/^URIs:/ { print $2; exit }' \
		/etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	if [ -z "$uri" ]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ {
				for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit }
			}' /etc/apt/sources.list 2>/dev/null || true)
	fi
	[ -n "$uri" ] || die "cannot find the machine's Debian mirror URI"
	echo "$uri"
}

PRIV=$KMC_CACHE/apt
apt_priv() {
	apt-get -o Dir::Etc::SourceList="$PRIV/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$PRIV/lists" \
		-o Dir::Cache="$PRIV/cache" \
		-o Debug::NoLocking=1 "$@"
}
apt_cache_priv() {
	apt-cache -o Dir::Etc::SourceList="$PRIV/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$PRIV/lists" \
		-o Dir::Cache="$PRIV/cache" "$@"
}

private_apt_update() {
	[ -f "$PRIV/.updated" ] && return
	local uri key=/usr/share/keyrings/debian-archive-keyring.gpg
	uri=$(mirror_uri)
	mkdir -p "$PRIV/lists/partial" "$PRIV/cache/archives/partial"
	cat >"$PRIV/sources.list" <<EOS
deb [signed-by=$key] $uri forky main
deb [signed-by=$key] $uri trixie-backports main
EOS
	log "updating the private apt state (forky, trixie-backports)"
	apt_priv update -qq
	touch "$PRIV/.updated"
}

# Print the candidate versions of package $1 matching the regex $2, newest first.
versions_of() {
	apt_cache_priv madison "$1" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' |
		grep -E "$2" | sort -Vr | uniq
}

fetch_and_extract() {	# pkg version destdir
	local pkg=$1 ver=$2 dest=$3 deb
	mkdir -p "$KMC_DL"
	(cd "$KMC_DL" && apt_priv download -qq "$pkg=$ver" 2>&1 |
		grep -v 'unsandboxed' || true)
	deb=$(ls "$KMC_DL/${pkg}_"*.deb 2>/dev/null | sort -V | tail -n1)
	[ -n "$deb" ] || die "download of $pkg=$ver failed"
	rm -rf "$dest.tmp"
	dpkg -x "$deb" "$dest.tmp"
	echo "$pkg=$ver" >"$dest.tmp/.version"
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
}

install_rust_src() {
	local dest=$KMC_TOOLS/rust-src-$KMC_RUSTC_VERSION ver
	[ -d "$RUST_LIB_SRC/core" ] && return
	private_apt_update
	ver=$(versions_of rust-src "^${KMC_RUSTC_VERSION//./\\.}\\+" | head -n1)
	[ -n "$ver" ] || die "no rust-src matching rustc $KMC_RUSTC_VERSION"
	log "fetching rust-src $ver"
	fetch_and_extract rust-src "$ver" "$dest"
	[ -d "$RUST_LIB_SRC/core" ] || die "rust-src lacks $RUST_LIB_SRC"
}

install_linux_source() {
	local dest=$KMC_TOOLS/linux-source ver
	[ -f "$KMC_KSRC_TARBALL" ] && return
	private_apt_update
	ver=$(versions_of linux-source-$KSRC_SERIES "^${KSRC_SERIES//./\\.}\\." | head -n1)
	[ -n "$ver" ] || die "no linux-source-$KSRC_SERIES in forky or trixie-backports"
	log "fetching linux-source-$KSRC_SERIES $ver"
	fetch_and_extract linux-source-$KSRC_SERIES "$ver" "$dest"
	[ -f "$KMC_KSRC_TARBALL" ] || die "linux-source lacks $KMC_KSRC_TARBALL"
}

install_bindgen() {
	if bindgen --version 2>/dev/null | grep -q " $BINDGEN_VERSION\$"; then
		return
	fi
	log "building bindgen-cli $BINDGEN_VERSION"
	cargo install -q --locked --root "$KMC_TOOLS" bindgen-cli --version "$BINDGEN_VERSION"
}

install_system_packages
install_rust_src
install_linux_source
install_bindgen
log "toolchain ready: $(rustc --version), $(bindgen --version), $(clang --version | head -n1)"
