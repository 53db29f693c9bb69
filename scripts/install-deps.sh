#!/bin/sh
# install-deps.sh — installs what kiln needs to build and test on Debian 12, as root.
# Safe to run again: apt-get skips what is already installed.
set -eu
packages="build-essential cmake ninja-build pkg-config liblua5.4-dev libsqlite3-dev libxxhash-dev \
  python3 gnuplot-nox graphviz procps rsync openssh-client openssh-server \
  slurmctld slurmd slurm-client munge \
  python3-torch python3-torchvision python3-pil chromium poppler-utils"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "kiln: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >/dev/null
fi
