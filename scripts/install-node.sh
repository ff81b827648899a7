#!/usr/bin/env bash
# Install a battletracker volunteer node on Linux or macOS, register it, start it at login.
#
#   scripts/install-node.sh --server https://tracker.example --invite CODE [--name NAME]
#
# Steps: find Python >= 3.11; make a venv in ~/.battletracker/venv (BATTLETRACKER_HOME to
# change it); install battletracker from the server's wheel (its SHA-256 checked against
# what the server announces) or, with --from-index, from the package index; use the
# server's constraints file when it offers one; register with the invite code; install a
# systemd user service (Linux) or a launchd agent (macOS); run `battletracker node check`.
# Undo with scripts/uninstall-node.sh.
set -euo pipefail

server="" invite="" name="" from_index=0 service=1
home="${BATTLETRACKER_HOME:-$HOME/.battletracker}"
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "install-node: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --server) server="${2:?}"; shift 2 ;;
    --invite) invite="${2:?}"; shift 2 ;;
    --name) name="${2:?}"; shift 2 ;;
    --from-index) from_index=1; shift ;;
    --no-service) service=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option $1" >&2; usage 2 ;;
  esac
done
[ -n "$server" ] || die "--server URL is needed (the operator gives it to you with the invite)"
server="${server%/}"

# 1. Python 3.11 or newer
python=""
for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$(command -v "$candidate")"; break
  fi
done
[ -n "$python" ] || die "Python 3.11 or newer is needed. Install it (Debian/Ubuntu: \
apt install python3 python3-venv; macOS: brew install python, or python.org) and run this again."
echo "using $python ($("$python" -c 'import platform; print(platform.python_version())'))"

# 2. the node's own environment
venv="$home/venv"
mkdir -p "$home"
"$python" -m venv "$venv" || die "could not make a venv (Debian/Ubuntu: apt install python3-venv)"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip

# 3. battletracker itself: the server's wheel (hash checked) or the package index
downloads="$home/downloads"
mkdir -p "$downloads"
fetched=$("$py" - "$server" "$downloads" <<'PY'
import hashlib, json, sys, urllib.request
server, dest = sys.argv[1], sys.argv[2]
try:
    with urllib.request.urlopen(server + "/api/v1/node/release", timeout=30) as r:
        release = json.load(r)
except OSError as exc:
    sys.exit(f"install-node: the server at {server} did not answer ({exc}); check the address")
out = {"wheel": "", "constraints": ""}
wheel = release.get("wheel")
if wheel:
    name = wheel["filename"]
    if "/" in name or not name.startswith("battletracker-") or not name.endswith(".whl"):
        sys.exit(f"install-node: the server announced a strange wheel name {name!r}")
    with urllib.request.urlopen(server + wheel["url"], timeout=300) as r:
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != wheel["sha256"]:
        sys.exit(f"install-node: the wheel's SHA-256 is {got}, the server announced "
                 f"{wheel['sha256']}: not installed (tell the operator)")
    with open(f"{dest}/{name}", "wb") as fh:
        fh.write(data)
    out["wheel"] = f"{dest}/{name}"
if release.get("constraints_url"):
    with urllib.request.urlopen(server + release["constraints_url"], timeout=60) as r:
        open(f"{dest}/constraints.txt", "wb").write(r.read())
    out["constraints"] = f"{dest}/constraints.txt"
print(out["wheel"] + "\t" + out["constraints"])
PY
) || exit 1
wheel="${fetched%%$'\t'*}"
constraints="${fetched#*$'\t'}"
pip_args=(-q)
if [ -n "$constraints" ]; then
  echo "pinning versions with the server's constraints file"
  pip_args+=(--constraint "$constraints")
fi
if [ "$from_index" = 1 ] || [ -z "$wheel" ]; then
  [ -z "$wheel" ] && [ "$from_index" = 0 ] && echo "the server offers no wheel: installing from the package index"
  "$py" -m pip install "${pip_args[@]}" 'battletracker[node]'
else
  echo "installing $(basename "$wheel") (SHA-256 checked)"
  "$py" -m pip install "${pip_args[@]}" "$wheel"
fi
bt="$venv/bin/battletracker"
"$bt" --version

# 4. register (keeps the node's identity in your config directory, owner-only)
register=("$bt" node register --server "$server")
[ -n "$invite" ] && register+=(--invite "$invite")
[ -n "$name" ] && register+=(--name "$name")
"${register[@]}"

# 5. start at login and keep running
if [ "$service" = 1 ]; then
  "$bt" node install-service
fi

# 6. check everything a node needs
if "$bt" node check; then
  echo "done: the node runs in the background. See it work: $bt node status"
else
  echo "installed, but some checks failed: read the lines above, fix, then run scripts/check-node"
fi
