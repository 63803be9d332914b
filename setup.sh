#!/usr/bin/env bash
# Set-up (idempotent): a virtual environment at .venv with streamrecon installed editable, the native
# extension built by CMakeLists.txt, person-detection models, the viewer and ONNX Runtime.
#   ./setup.sh         what `streamrecon` needs
#   ./setup.sh test    also the system packages the test suite uses when present (Xvfb + Mesa for
#                      the viewer, Chromium for the report screenshot, Debian's labelme examples
#                      for mask IoU, opencv-doc's street clip for finding several people,
#                      libzmq's headers for the reference C client); installed with apt-get when
#                      run as root, else skipped.
# Re-running is cheap: Python packages are reinstalled only when pyproject.toml, CMakeLists.txt,
# native/ or this script change.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if [ "${1:-}" = "test" ]; then
  need=()
  command -v Xvfb >/dev/null || need+=(xvfb)
  [ -e /usr/lib/x86_64-linux-gnu/dri ] || [ -e /usr/lib/aarch64-linux-gnu/dri ] || need+=(libgl1 libgl1-mesa-dri)
  command -v chromium >/dev/null || need+=(chromium)
  [ -d /usr/share/doc/labelme-examples ] || need+=(labelme-examples)
  # OpenCV's example data: the street clip of several walkers (vtest.avi) for the people tests
  [ -e /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || need+=(opencv-doc)
  # Open3D's wheel links libusb (the viewer tests import it)
  ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || need+=(libusb-1.0-0)
  # the reference C client of the mesh stream (examples/client.c) is built against libzmq
  [ -e /usr/include/zmq.h ] || need+=(libzmq3-dev)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing system packages for the tests: ${need[*]}" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null \
        || echo "setup: warning: could not install ${need[*]}; the tests that need them will skip" >&2
    else
      echo "setup: note: not root; tests needing ${need[*]} will skip" >&2
    fi
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.streamrecon-setup
want=$(cat pyproject.toml CMakeLists.txt native/* setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import streamrecon._native" 2>/dev/null; then
  echo "setup: installing streamrecon (editable) and its dependencies into .venv (first time: a few minutes)" >&2
  # CPU torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test,people,view,onnx]"
  # The person-detection models (.tflite) ship in this wheel; its declared dependencies would
  # downgrade numpy/protobuf, and its Python layer is never imported.
  .venv/bin/python -m pip install -q --no-deps "mediapipe==0.10.21"
  echo "$want" > "$stamp"
fi

# The test suite also runs the synthetic-data, body-model and training tests: the train extra
# (anny, libigl, trimesh). anny builds its ~790 MB cache under ~/.cache/streamrecon/anny (or
# $STREAMRECON_CACHE/anny) on the first test that needs it, about a minute.
if [ "${1:-}" = "test" ] && ! .venv/bin/python -c "import anny, igl, trimesh" 2>/dev/null; then
  echo "setup: installing the train extra for the tests (anny, libigl, trimesh)" >&2
  .venv/bin/python -m pip install -q -e ".[train]"
fi
