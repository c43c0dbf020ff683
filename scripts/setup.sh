#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the build and the QEMU bench need. Idempotent: each
# step is skipped when its result is already present.
#
# Packages from newer Debian suites (linux-source-7.2, rust-src) are fetched
# with a private apt state and extracted under the cache; the system's apt
# sources are never modified.
#
# apt never removes an installed package here (--no-remove): QEMU 7.2 is
# therefore not installed into the system, where its qemu-system-common
# conflicts with a qemu-utils 10 from bookworm-backports, but extracted under
# $KMC_TOOLS/qemu-7.2 with only its libraries and firmware installed by apt.
set -euo pipefail
. "$(dirname "$0")/env.sh"

BOOKWORM_PKGS="clang-19 lld-19 llvm-19 libclang-19-dev flex bison bc cpio kmod
rsync libelf-dev libssl-dev dwarves busybox-static make gcc
libc6-dev libnuma-dev xz-utils python3 python3-ply python3-git perl git"
# QEMU 10 is too slow for the bench; 7.2 is bookworm's.
QEMU_SERIES=7.2
QEMU_PKGS="qemu-system-x86 qemu-system-common qemu-system-data"
QEMU_DIR=$KMC_TOOLS/qemu-$QEMU_SERIES
BINDGEN_VERSION=0.72.1
KSRC_SERIES=7.2

mkdir -p "$KMC_DL" "$KMC_TOOLS"

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=
apt_update_once() {
	[ -n "$APT_UPDATED" ] && return
	apt-get update -qq
	APT_UPDATED=1
}

# Print those of the packages $@ that are not installed (one dpkg-query: fast).
not_installed() {
	[ $# -gt 0 ] || return 0
	{ dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true; } |
		awk -v want="$*" '$2 == "install" && $4 == "installed" { ok[$1] = 1 }
			END { n = split(want, w, " ")
				for (i = 1; i <= n; i++) if (!(w[i] in ok)) print w[i] }'
}

# Print, on one line, what apt would remove to install $@.
removals() {
	{ apt-get -s -qq install --no-install-recommends "$@" 2>/dev/null || true; } |
		awk '$1 == "Remv" { gsub(/[][]/, "", $3); printf "%s%s %s", n++ ? ", " : "", $2, $3 }'
}

# A set-up must never remove a package the user installed. --no-remove makes
# apt abort, but without saying why, so a simulation names the conflict first.
apt_install() {
	local rm p culprits=()
	rm=$(removals "$@")
	if [ -n "$rm" ]; then
		for p; do
			[ -z "$(removals "$p")" ] || culprits+=("$p")
		done
		die "apt would remove $rm to install ${culprits[*]:-$*}; refusing (setup.sh never removes installed packages)"
	fi
	apt-get install -y -qq --no-remove --no-install-recommends "$@" ||
		die "apt-get install --no-remove $* failed"
}

install_system_packages() {
	local missing
	missing=$(not_installed $BOOKWORM_PKGS)
	[ -z "$missing" ] && return
	log "installing system packages:" $missing
	apt_update_once
	apt_install $missing
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

# Print the versions of package $2 matching the regex $3 known to the
# apt-cache command $1, newest first.
versions_of() {
	"$1" madison "$2" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' |
		grep -E "$3" | sort -Vr | uniq
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
	ver=$(versions_of apt_cache_priv rust-src "^${KMC_RUSTC_VERSION//./\\.}\\+" | head -n1)
	[ -n "$ver" ] || die "no rust-src matching rustc $KMC_RUSTC_VERSION"
	log "fetching rust-src $ver"
	fetch_and_extract rust-src "$ver" "$dest"
	[ -d "$RUST_LIB_SRC/core" ] || die "rust-src lacks $RUST_LIB_SRC"
}

install_linux_source() {
	local dest=$KMC_TOOLS/linux-source ver
	[ -f "$KMC_KSRC_TARBALL" ] && return
	private_apt_update
	ver=$(versions_of apt_cache_priv linux-source-$KSRC_SERIES "^${KSRC_SERIES//./\\.}\\." | head -n1)
	[ -n "$ver" ] || die "no linux-source-$KSRC_SERIES in forky or trixie-backports"
	log "fetching linux-source-$KSRC_SERIES $ver"
	fetch_and_extract linux-source-$KSRC_SERIES "$ver" "$dest"
	[ -f "$KMC_KSRC_TARBALL" ] || die "linux-source lacks $KMC_KSRC_TARBALL"
}

# Library and firmware dependencies of the .debs $@, without the QEMU packages
# themselves (bookworm's candidates meet the version constraints).
deb_depends() {
	local deb alts a pick
	for deb; do dpkg-deb -f "$deb" Depends; done | tr ',' '\n' |
		sed -E 's/\([^)]*\)//g; s/:any//g; s/[[:space:]]+//g' | sort -u |
		while IFS='|' read -ra alts; do
			[ ${#alts[@]} -gt 0 ] || continue
			pick=${alts[0]}
			for a in "${alts[@]}"; do
				[ -n "$(not_installed "$a")" ] || { pick=$a; break; }
			done
			case " $QEMU_PKGS " in *" $pick "*) ;; *) echo "$pick" ;; esac
		done
}

# Check that QEMU $1 finds its accelerator module, BIOS and option ROMs: the
# machine is built (which loads them all) and quit before the CPU starts.
check_qemu() {
	timeout 60 "$1" -M q35 -accel tcg -m 64 -S -display none -monitor stdio \
		<<<quit >/dev/null
}

install_qemu() {
	local wrapper=$KMC_TOOLS/bin/qemu-system-x86_64 ver dver pkgs p v deb debs=() deps
	if [ -x "$wrapper" ] && [ -f "$QEMU_DIR/.depends" ] &&
	   [ -z "$(not_installed $(cat "$QEMU_DIR/.depends"))" ]; then
		return
	fi
	apt_update_once
	# qemu-system-common must be the exact version of qemu-system-x86.
	ver=$(versions_of apt-cache qemu-system-x86 "^(1:)?${QEMU_SERIES//./\\.}\\+" | head -n1)
	dver=$(versions_of apt-cache qemu-system-data "^(1:)?${QEMU_SERIES//./\\.}\\+" | head -n1)
	[ -n "$ver" ] && [ -n "$dver" ] || die "no QEMU $QEMU_SERIES in the system's apt sources"
	log "fetching QEMU $ver into $QEMU_DIR"
	pkgs="qemu-system-x86=$ver qemu-system-common=$ver qemu-system-data=$dver"
	# The download runs as root into root's cache, which _apt cannot enter.
	(cd "$KMC_DL" && apt-get -qq -o APT::Sandbox::User=root download $pkgs)
	rm -rf "$QEMU_DIR.tmp"
	for p in $pkgs; do
		# apt-get download spells the epoch's colon %3a.
		v=${p#*=}
		deb=$(ls "$KMC_DL/${p%%=*}_${v/:/%3a}"_*.deb 2>/dev/null || true)
		[ -f "$deb" ] || die "download of $p failed"
		dpkg -x "$deb" "$QEMU_DIR.tmp"
		debs+=("$deb")
	done
	deps=$(deb_depends "${debs[@]}")
	[ -z "$(not_installed $deps)" ] || {
		log "installing QEMU's libraries and firmware:" $(not_installed $deps)
		apt_install $(not_installed $deps)
	}
	echo "$pkgs" >"$QEMU_DIR.tmp/.version"
	echo $deps >"$QEMU_DIR.tmp/.depends"
	rm -rf "$QEMU_DIR"
	mv "$QEMU_DIR.tmp" "$QEMU_DIR"
	# QEMU relocates its data and module dirs next to the binary, but also
	# its firmware path (/usr/share/seabios, /usr/lib/ipxe/qemu), which only
	# the system's seabios and ipxe-qemu provide: -L adds them back.
	mkdir -p "$KMC_TOOLS/bin"
	cat >"$wrapper.tmp" <<EOS
#!/bin/sh
# QEMU $QEMU_SERIES extracted by scripts/setup.sh; not the system's QEMU.
Q=$QEMU_DIR
export QEMU_MODULE_DIR=\$Q/usr/lib/x86_64-linux-gnu/qemu
exec "\$Q/usr/bin/qemu-system-x86_64" -L "\$Q/usr/share/qemu" \\
	-L /usr/share/seabios -L /usr/lib/ipxe/qemu "\$@"
EOS
	chmod +x "$wrapper.tmp"
	check_qemu "$wrapper.tmp" || die "QEMU $ver in $QEMU_DIR does not start"
	mv "$wrapper.tmp" "$wrapper"
}

install_bindgen() {
	if bindgen --version 2>/dev/null | grep -q " $BINDGEN_VERSION\$"; then
		return
	fi
	log "building bindgen-cli $BINDGEN_VERSION"
	cargo install -q --locked --root "$KMC_TOOLS" bindgen-cli --version "$BINDGEN_VERSION"
}

install_system_packages
install_qemu
install_rust_src
install_linux_source
install_bindgen
log "toolchain ready: $(rustc --version), $(bindgen --version), $(clang --version | head -n1), $(qemu-system-x86_64 --version | head -n1)"
