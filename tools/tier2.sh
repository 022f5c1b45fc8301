#!/usr/bin/env bash
# Run the tier-2 tests (real ComfyUI, in process, over HTTP, in the browser) against one of the ComfyUI
# versions in ../shared/comfyui, prepared on first use into a cache folder (reused after).
#
#   tools/tier2.sh VERSION [pytest arguments]      e.g. tools/tier2.sh 0.33.0 -q -m comfyui tests/test_samplers_comfy.py
#
# VERSION is one of the archives beside ../shared/comfyui/setup.sh (0.3.64, 0.33.0). Environment:
#   SOLUNE_SHARED          the shared folder (default: ../shared beside this checkout)
#   SOLUNE_COMFYUI_CACHE   where ComfyUI and its venv are prepared (default: ~/.cache/solune-comfyui)
# This checkout is importable as `solune` through a throw-away PYTHONPATH folder; nothing is installed
# into ComfyUI's venv. pytest's exit code is this script's.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
version=${1:?usage: tools/tier2.sh VERSION [pytest arguments]}
shift
shared=${SOLUNE_SHARED:-$repo/../shared}
cache=${SOLUNE_COMFYUI_CACHE:-$HOME/.cache/solune-comfyui}
[ -x "$shared/comfyui/setup.sh" ] || [ -f "$shared/comfyui/setup.sh" ] ||
  { echo "tier2: no $shared/comfyui/setup.sh (set SOLUNE_SHARED to the shared folder)" >&2; exit 2; }
mkdir -p "$cache"
# one preparation at a time: setup.sh removes a half-made venv before it starts again
exec 9>"$cache/.lock-$version"
flock 9
env_lines=$(bash "$shared/comfyui/setup.sh" "$version" "$cache")
flock -u 9
eval "$env_lines"
shim=$(mktemp -d)
# pytest's base folder holds the random-weight test models (need_gb below, measured): it is
# removed when this script ends, passed or failed, so versions run one after another never hold two runs'
# models (a --basetemp of the caller's, after it, wins and is kept)
basetemp=$(mktemp -d)
trap 'rm -rf "$shim" "$basetemp"' EXIT  # removes the link, never the checkout it points at
# a full disk fails dozens of tests with I/O errors: say the room there is, and stop here naming the need
need_gb=${SOLUNE_TIER2_DISK_GB:-13}  # measured: 9.0 GB at the peak on 0.3.64, 12.3 on 0.33.0 (Z-Image Fun)
free_gb=$(df -Pk "$basetemp" | awk 'NR==2 {print int($4 / 1048576)}')
echo "tier2: ComfyUI $version; $free_gb GB free for the test models in $basetemp (a full run needs about $need_gb GB)" >&2
[ "$free_gb" -ge "$need_gb" ] || {
  echo "tier2: only $free_gb GB free in $(dirname "$basetemp"); a full tier-2 run writes about $need_gb GB of test models there (free some, set TMPDIR to a larger disk, or SOLUNE_TIER2_DISK_GB=0 to run a few tests with less)" >&2
  exit 2
}
ln -s "$repo" "$shim/solune"
code=0
PYTHONPATH="$shim" COMFYUI_PATH="$COMFYUI_PATH" SOLUNE_CHROMIUM="${SOLUNE_CHROMIUM:-/usr/bin/chromium}" \
  "$COMFYUI_PYTHON" -m pytest --basetemp="$basetemp/pytest" "$@" || code=$?
exit "$code"
