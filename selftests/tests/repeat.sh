#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# repeat.sh COUNT COMMAND...: runs COMMAND COUNT times (each killed after
# 120 s, with what its vCPUs were doing printed first: lib.sh's stalled()),
# prints the output of the first failed run and how many failed; fails if
# any did. To measure how often a rare failure comes (heavy tests, or by
# hand in the bench guest).
. /kmc/lib.sh
count=$1; shift
# KVM selftests open their own ELF through argv[0]: a full path.
bin=$(command -v "$1"); shift
i=1 failed=0 stalls=0
while [ $i -le "$count" ]; do
	rm -f /tmp/repeat.stalled
	"$bin" "$@" >/tmp/repeat.out 2>&1 &
	pid=$!
	( trap 'kill $nap 2>/dev/null; exit' TERM
	  sleep 120 & nap=$!
	  wait $nap
	  touch /tmp/repeat.stalled
	  echo "run $i: still running after 120 s"
	  stalled "$(awk '{ print $5 }' /proc/$pid/stat)"
	  kill -KILL $pid ) &
	dog=$!
	wait $pid
	rc=$?
	kill $dog 2>/dev/null
	wait $dog 2>/dev/null
	[ -e /tmp/repeat.stalled ] && stalls=$((stalls + 1))
	if [ $rc != 0 ]; then
		failed=$((failed + 1))
		[ $failed = 1 ] && { cat /tmp/repeat.out; echo "(run $i)"; }
		grep -q 'exit reason SHUTDOWN' /tmp/repeat.out && echo "run $i: SHUTDOWN"
	fi
	i=$((i + 1))
done
echo "$failed of $count runs failed ($stalls stalled)"
[ $failed = 0 ]
