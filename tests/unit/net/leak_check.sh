#!/usr/bin/env bash
# leak_check.sh TEST-BINARY [ARGS...]: runs an ASan-built test binary with
# LeakSanitizer on (scripts/test runs the suite with detect_leaks=0, since
# LeakSanitizer needs ptrace, which some sandboxes forbid). Exit: the
# binary's, a leak included; 77 (ctest: skipped) when LeakSanitizer cannot
# run here.
out=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -ne 0 ] && grep -q "LeakSanitizer has encountered a fatal error" <<<"$out"; then
  echo "leak_check.sh: LeakSanitizer cannot run here (it needs ptrace): skipped" >&2
  exit 77
fi
exit "$rc"
