#!/usr/bin/env python3
"""Check that the Python test module's build reuses the Rust test build (scripts/test.sh).

scripts/test.sh builds the Rust tests over TEST_SCOPE (the workspace with rollback-py's
`failpoints`), then `maturin develop --features failpoints` builds the module the Python tests
import into the same target dir. Cargo reuses a compiled crate only when its features are the
same in both builds; one crate that differs (say a dev-dependency of the Rust tests turning on a
feature of libc) is compiled again with everything above it, some 70 crates and 450 CPU-seconds
on CI. This compares the features `cargo tree` resolves for each crate in the two builds and
names every crate that differs.

Exit 0 when they match, 1 (with the crates and the fix) when not, 2 when `cargo tree` fails or
its output cannot be read.
"""

import re
import subprocess
import sys

# What scripts/test.sh builds: the tests over the packages and features it passes (its
# TEST_SCOPE, given as this script's arguments), with their dev-dependencies; the module alone.
MODULE = ["-p", "rollback-py", "--features", "failpoints", "-e", "normal,build"]
LINE = re.compile(r"^(\S+ v\S+)(?: \([^)]*\))?(?: (\S*))?(?: \(\*\))?$")


def features(args):
    """{"name vX.Y.Z": {features}} for every crate of the build `args` describes."""
    cmd = ["cargo", "tree", "--locked", "--prefix", "none", "-f", "{p} {f}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        print(f"error: `{' '.join(cmd)}` failed (exit {done.returncode})", file=sys.stderr)
        sys.exit(2)
    crates = {}
    for line in done.stdout.splitlines():
        match = LINE.match(line.strip())
        if match:
            found = crates.setdefault(match.group(1), set())
            found.update(f for f in (match.group(2) or "").split(",") if f)
    return crates


def main():
    if len(sys.argv) < 2:
        print("usage: check-features.py CARGO_ARGS... (the test build's, e.g. --workspace --features F)", file=sys.stderr)
        return 2
    tests, module = features([*sys.argv[1:], "-e", "normal,build,dev"]), features(MODULE)
    if "rollback-py v" not in " ".join(module) or not tests:
        # Nothing read is not "the same": cargo tree's format is not what this script reads.
        print("error: could not read the crates and features out of `cargo tree`", file=sys.stderr)
        return 2
    differ = [
        (crate, sorted(tests[crate] - module[crate]), sorted(module[crate] - tests[crate]))
        for crate in sorted(tests.keys() & module.keys())
        if tests[crate] != module[crate]
    ]
    outside = sorted(module.keys() - tests.keys())
    if not differ and not outside:
        print(f"the Python module's build shares the test build's features ({len(module)} crates)")
        return 0
    print("error: the Python module's build (maturin develop --features failpoints) would compile")
    print("these crates again, as their features differ from the Rust test build's:")
    for crate, tests_only, module_only in differ:
        print(f"  {crate}: only in the tests {tests_only}, only in the module {module_only}")
    for crate in outside:
        print(f"  {crate}: not in the test build")
    print("Fix: add the dev-dependency that turns those features on to rollback-py's `failpoints`")
    print("feature (crates/rollback-py/Cargo.toml), as insta and rexpect are.")
    return 1


if __name__ == "__main__":
    sys.exit(main())
