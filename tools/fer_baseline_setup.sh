#!/usr/bin/env bash
# The peer baseline for tools/bench_face.py: the `fer` package's own
# FER().detect_emotions, in a virtualenv of its own (.venv-fer-baseline in the
# repository root), never in moodwire's .venv.
#
# Why a separate venv: fer needs TensorFlow (hundreds of MB) and declares
# facenet-pytorch (which would pull another torch) and moviepy/ffmpeg-python.
# So fer is installed with --no-deps, plus exactly what `from fer.fer import FER`
# and detect_emotions() import: tensorflow-cpu, numpy, opencv-contrib-python,
# setuptools<81 (fer imports pkg_resources), requests and pillow. pandas and
# tqdm are left out on purpose: only fer.classes (the Video helper) imports them.
# Every transitive dependency is pinned too (CONSTRAINTS), so reruns install the
# same thing. Idempotent: a venv whose stamp matches these pins is left alone.
#
#     bash tools/fer_baseline_setup.sh            # then, from the repository: .venv-fer-baseline/bin/python -m tools.fer_baseline FRAMES.npy
#     PYTHON=python3.11 bash tools/fer_baseline_setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-fer-baseline"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.fer-baseline-pins"

# What fer's detect_emotions imports, pinned exactly (checked together on Python 3.11, x86_64).
PINS=(
  "tensorflow-cpu==2.21.0"
  "numpy==2.4.6"
  "opencv-contrib-python==5.0.0.93"
  "setuptools==80.10.2"
  "requests==2.34.2"
  "pillow==13.0.0"
)
FER_PIN="fer==25.10.3"

# Everything tensorflow-cpu and requests pull in, as resolved with the pins above.
CONSTRAINTS="absl-py==2.5.1
astunparse==1.6.3
certifi==2026.10.18
charset-normalizer==3.5.2
flatbuffers==25.12.19
gast==0.7.0
google-pasta==0.2.0
grpcio==1.85.1
h5py==3.14.0
idna==3.20
keras==3.15.1
libclang==18.1.1
markdown-it-py==4.3.0
mdurl==0.1.2
ml_dtypes==0.6.0
namex==0.1.0
opt_einsum==3.4.0
optree==0.20.0
packaging==26.3
protobuf==7.36.2
Pygments==2.21.0
rich==15.0.0
six==1.17.0
termcolor==3.3.0
typing_extensions==4.16.0
urllib3==2.8.0
wrapt==2.5.2"

want_stamp() {
  printf '%s\n' "$FER_PIN" "${PINS[@]}" "$CONSTRAINTS"
}

check_import() {
  # TensorFlow and pkg_resources chatter on stderr: shown only if the import fails.
  local log
  log="$(mktemp)"
  if ! "$VENV/bin/python" -W ignore - 2>"$log" <<'PY'
import fer, tensorflow, cv2, numpy
from fer.fer import FER  # noqa: F401  (what tools/fer_baseline.py uses)
print(f"fer baseline: imports fine: fer {fer.__version__}, tensorflow {tensorflow.__version__}, "
      f"opencv {cv2.__version__}, numpy {numpy.__version__}")
PY
  then
    cat "$log" >&2
    rm -f "$log"
    echo "fer baseline: importing fer in $VENV failed (see above); delete $VENV and rerun" >&2
    return 1
  fi
  rm -f "$log"
}

if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$(want_stamp)" ]]; then
  echo "fer baseline: $VENV is already set up with these pins; nothing to do"
  check_import
  exit 0
fi

start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "fer baseline: creating $VENV with $("$PYTHON" --version 2>&1) ($PYTHON)"
  "$PYTHON" -m venv "$VENV"
else
  echo "fer baseline: $VENV exists but its pins differ or were never recorded; reinstalling the pins"
fi

constraints_file="$(mktemp)"
trap 'rm -f "$constraints_file"' EXIT
printf '%s\n' "$CONSTRAINTS" > "$constraints_file"

echo "fer baseline: installing ${PINS[*]} (with pinned transitive deps)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints_file" "${PINS[@]}"
echo "fer baseline: installing $FER_PIN --no-deps (skips facenet-pytorch, moviepy, ffmpeg-python, matplotlib, pandas, tqdm)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$FER_PIN"

check_import
want_stamp > "$STAMP"
echo "fer baseline: done in $(( $(date +%s) - start )) s; run: .venv/bin/python -m tools.bench_face"
