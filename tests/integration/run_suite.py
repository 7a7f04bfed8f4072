"""Runs one integration test module as one ctest test, and tells ctest what
happened in a way it can report (tests/integration/CMakeLists.txt):

  exit 0   every test passed (some may have been skipped: see below)
  exit 77  every test was skipped (ctest's SKIP_RETURN_CODE: "Skipped", not "Passed")
  exit 1   a failure or an error, or no test ran at all (a suite that finds
           nothing to run is broken, not skipped)

Each skipped test, and each test that ran with less coverage than its suite
meant (see harness.note_skip), is appended as a JSON line to
$MULLIGAN_SKIP_LOG, so that scripts/test can say at the end what was skipped
and why, and fail when a tool that scripts/lib/deps.sh installs was missing.

Usage: python3 run_suite.py MODULE   (from this directory, as ctest runs it)
"""
import sys
import unittest

import harness

SKIP_RETURN_CODE = 77


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    suite = unittest.defaultTestLoader.loadTestsFromName(argv[1])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    for test, reason in result.skipped:
        harness.note_skip(test.id(), reason)
    if not result.wasSuccessful():
        return 1
    if result.testsRun == 0:
        print(f"{argv[1]}: no tests ran", file=sys.stderr)
        return 1
    if len(result.skipped) == result.testsRun:
        print(f"{argv[1]}: every test was skipped", file=sys.stderr)
        return SKIP_RETURN_CODE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
