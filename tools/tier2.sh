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
trap 'rm -rf "$shim"' EXIT  # removes the link, never the checkout it points at
ln -s "$repo" "$shim/solune"
code=0
PYTHONPATH="$shim" COMFYUI_PATH="$COMFYUI_PATH" SOLUNE_CHROMIUM="${SOLUNE_CHROMIUM:-/usr/bin/chromium}" \
  "$COMFYUI_PYTHON" -m pytest "$@" || code=$?
exit "$code"
