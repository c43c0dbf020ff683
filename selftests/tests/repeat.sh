#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# repeat.sh COUNT COMMAND...: runs COMMAND COUNT times (each killed after
# 120 s), prints the output of the first failed run and how many failed;
# fails if any did. To measure how often a rare failure comes (heavy
# tests, or by hand in the bench guest).
count=$1; shift
# KVM selftests open their own ELF through argv[0]: a full path.
bin=$(command -v "$1"); shift
i=1 failed=0
while [ $i -le "$count" ]; do
	if ! timeout -s KILL 120 "$bin" "$@" >/tmp/repeat.out 2>&1; then
		failed=$((failed + 1))
		[ $failed = 1 ] && { cat /tmp/repeat.out; echo "(run $i)"; }
		grep -q 'exit reason SHUTDOWN' /tmp/repeat.out && echo "run $i: SHUTDOWN"
	fi
	i=$((i + 1))
done
echo "$failed of $count runs failed"
[ $failed = 0 ]
