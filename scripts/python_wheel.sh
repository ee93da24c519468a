#!/usr/bin/env bash
# Build the `whittle` Python package (python/, pyo3 + maturin, an abi3 wheel for CPython
# 3.9+) and install it into the project venv (.venv, made by scripts/venv.sh):
#
#   bash scripts/python_wheel.sh            # then: .venv/bin/python -m pytest python/tests -q
#
# The wheel lands in target/wheels/ (pip install it into any other venv the same way).
# The native module shares target/ with the workspace, so the whittle crates built by
# `cargo build --release` are reused.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/venv.sh"
cd "$root/python"
CARGO_TARGET_DIR="$root/target" "$root/.venv/bin/maturin" build --release --quiet \
    -o "$root/target/wheels"
wheel="$(ls -t "$root"/target/wheels/whittle-*.whl | head -n 1)"
"$root/.venv/bin/python" -m pip install --disable-pip-version-check -q --force-reinstall \
    --no-deps "$wheel"
echo "installed $(basename "$wheel") into $root/.venv"
