#!/usr/bin/env python3
"""Check that the workspace's `rust-version` is not below what its locked dependencies need.

`rust-version` in Cargo.toml tells users which Rust builds `cargo install --path
crates/rollback-cli`. A dependency update can raise the real minimum without anyone touching it
(rusqlite 0.43 needs 1.89 where the workspace said 1.85), and the users of an older toolchain
then get cargo's error about a crate they never chose instead of ours. This reads `cargo
metadata` (no build) and names every locked package whose own `rust-version` is above the
workspace's. What the language features of our own code need is checked by building with that
toolchain (`make msrv`, scripts/msrv.sh), not here.

Exit 0 when none is, 1 (with the packages and the fix) when some are, 2 when `cargo metadata`
fails or the workspace declares no `rust-version`.
"""

import json
import subprocess
import sys


def version(text):
    """`1.89` or `1.89.0` as a comparable tuple (1, 89, 0)."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    cmd = ["cargo", "metadata", "--format-version", "1", "--locked"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        print(f"error: `{' '.join(cmd)}` failed (exit {done.returncode})", file=sys.stderr)
        return 2
    meta = json.loads(done.stdout)
    members = set(meta["workspace_members"])
    ours = {p["rust_version"] for p in meta["packages"] if p["id"] in members and p.get("rust_version")}
    if not ours:
        print("error: no workspace member declares `rust-version`", file=sys.stderr)
        return 2
    declared = min(ours, key=version)
    # Only the packages the lock file resolves into the build (not every one metadata lists).
    resolved = {n["id"] for n in meta["resolve"]["nodes"]}
    above = sorted(
        (version(p["rust_version"]), p["rust_version"], p["name"], p["version"])
        for p in meta["packages"]
        if p["id"] in resolved and p["id"] not in members and p.get("rust_version")
        and version(p["rust_version"]) > version(declared)
    )
    if not above:
        print(f"rust-version {declared}: no locked dependency needs more")
        return 0
    print(f"error: the workspace says rust-version = \"{declared}\", but these locked packages need more:")
    for _, need, name, ver in above:
        print(f"  {name} {ver}: rust-version {need}")
    print(
        f"fix: raise `rust-version` in Cargo.toml's [workspace.package] to \"{above[-1][1]}\" (and check"
        " that the code builds with it), or pin those packages lower"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
