#!/usr/bin/env bash
# Makes sure git-lfs is installed, for the LFS tests (the real filter and `git lfs fetch`):
# installs the Debian package with apt-get when it is missing (as root); otherwise says what to
# run and fails, and those tests fail with the same hint.
set -euo pipefail
git lfs version >/dev/null 2>&1 && exit 0
if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
    echo "git-lfs is missing; install it (apt-get install git-lfs)" >&2
    exit 1
fi
echo "git-lfs.sh: installing git-lfs with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq git-lfs >&2 || { apt-get update -qq >&2 && apt-get install -y -qq git-lfs >&2; }
git lfs version >/dev/null
