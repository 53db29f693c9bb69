#!/bin/sh
# install-peers.sh — installs the tools bench/compare.py measures kiln against (Debian 12).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends ninja-build make time bc ${WITH_SNAKEMAKE:+snakemake} >/dev/null
