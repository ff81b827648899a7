#!/usr/bin/env bash
# Remove a battletracker volunteer node installed by scripts/install-node.sh (Linux, macOS).
#
#   scripts/uninstall-node.sh [--purge]
#
# Stops and removes the service, then the venv (~/.battletracker, or BATTLETRACKER_HOME).
# The node's identity and logs stay in your config directory unless you pass --purge.
set -euo pipefail
home="${BATTLETRACKER_HOME:-$HOME/.battletracker}"
purge=0
[ "${1:-}" = "--purge" ] && purge=1
bt="$home/venv/bin/battletracker"
if [ -x "$bt" ]; then
  "$bt" node uninstall-service || true
  node_dir=$("$home/venv/bin/python" -c \
    'import click, pathlib; print(pathlib.Path(click.get_app_dir("battletracker")) / "node")')
else
  echo "no node found in $home"
  node_dir=""
fi
rm -rf "$home"
echo "removed $home"
if [ "$purge" = 1 ] && [ -n "$node_dir" ]; then
  rm -rf "$node_dir"
  echo "removed $node_dir (identity, lease, logs)"
elif [ -n "$node_dir" ]; then
  echo "kept $node_dir (identity and logs); --purge removes it"
fi
