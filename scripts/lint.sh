#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Static checks, each reported as a test: rustfmt with the kernel's
# settings, a CLIPPY=1 build with zero warnings, checkpatch --strict on the
# seam series and the C selftests, the suite's test list, the build order.
#   lint.sh [--summary FILE]   (FILE gets "PASSED FAILED SKIPPED")
set -uo pipefail
. "$(dirname "$0")/env.sh"
summary=
[ "${1:-}" = --summary ] && summary=$2
passed=0 failed=0

result() {	# name status logfile
	if [ "$2" = 0 ]; then
		passed=$((passed + 1)); printf '%-4s %s\n' PASS "$1"
	else
		failed=$((failed + 1)); printf '%-4s %s\n' FAIL "$1"
		sed 's/^/    | /' "$3" | head -n 40
	fi
}

kdir=$("$KMC_ROOT/scripts/build-kernel.sh" release) || exit 1
ksrc=$(readlink -f "$kdir/source")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# rustfmt: every .rs of the module, with the kernel's .rustfmt.toml.
mapfile -t rs < <(cd "$KMC_ROOT" && git ls-files -co --exclude-standard '*.rs')
(cd "$KMC_ROOT" && rustfmt --check --edition 2021 \
	--config-path "$ksrc/.rustfmt.toml" "${rs[@]}") >"$tmp/fmt" 2>&1
result lint/rustfmt $? "$tmp/fmt"

# clippy: a fresh build so that every file is linted; any warning fails.
rm -rf "$KMC_CACHE/lint-clippy"
"$KMC_ROOT/scripts/build-module.sh" "$kdir" "$KMC_CACHE/lint-clippy" CLIPPY=1 W=1 \
	>"$tmp/clippy" 2>&1
rc=$?
grep -qiE 'warning|error' "$tmp/clippy" && rc=1
result lint/clippy $rc "$tmp/clippy"

# checkpatch --strict: the seam series, the C selftests and rust/*.[ch].
mapfile -t patches < <(ls "$KMC_ROOT"/patches/*.patch 2>/dev/null)
mapfile -t csrc < <(cd "$KMC_ROOT" && git ls-files -co --exclude-standard 'selftests/*.c' 'rust/*.c' 'rust/*.h')
rc=0
: >"$tmp/cp"
for f in "${patches[@]}"; do
	(cd "$ksrc" && scripts/checkpatch.pl --strict -q "$f") >>"$tmp/cp" 2>&1 || rc=1
done
for f in "${csrc[@]}"; do
	(cd "$ksrc" && scripts/checkpatch.pl --strict -q --no-tree -f "$KMC_ROOT/$f") >>"$tmp/cp" 2>&1 || rc=1
done
result lint/checkpatch $rc "$tmp/cp"

# tests.list: the suite's plan (run-suite.sh) drops a line whose phase or
# tag it does not know, so such a line is caught here.
awk '/^[ \t]*(#|$)/ { next }
	{
		bad = ""
		n = split($1, p, ":")
		if (p[1] !~ /^(base|module|both)$/) bad = "phase " p[1]
		nt = n > 1 ? split(p[2], t, ",") : 0
		for (k = 1; k <= nt; k++)
			if (t[k] !~ /^(release|debug|tdp|legacy|shadow|split|heavy)$/) bad = "tag " t[k]
		if (NF < 4 || $3 !~ /^[0-9]+$/) bad = "not PHASE[:TAGS] NAME TIMEOUT COMMAND"
		if (bad != "") { print FILENAME ":" FNR ": " bad ": " $0; err = 1 }
	}
	END { exit err }' "$KMC_ROOT/selftests/tests.list" >"$tmp/list" 2>&1
result lint/tests-list $? "$tmp/list"

# Kbuild users mix in-tree and bench builds in any order.
"$KMC_ROOT/scripts/test-build-order.sh" >"$tmp/order" 2>&1
result lint/build-order $? "$tmp/order"

[ -n "$summary" ] && echo "$passed $failed 0" >"$summary"
[ $failed -eq 0 ]
