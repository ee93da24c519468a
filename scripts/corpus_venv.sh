#!/usr/bin/env bash
# Create/refresh the heavy Python venv used only to *regenerate* the exporter corpus
# (tests/corpus/, see scripts/corpus.py). Checking the corpus needs only the ordinary
# project venv (.venv: onnx, onnxruntime, numpy); this one adds torch, transformers, timm.
#
#   bash scripts/corpus_venv.sh      # the venv lands in <repo>/.venv-corpus (git-ignored)
#
# torch from PyPI is the CUDA build and pulls ~3 GB of nvidia packages; triton is
# removed afterwards (saves ~1 GB, exporting does not need it). Idempotent via a stamp
# of the pins below; downloads are retried.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-corpus"
stamp="$venv/.pins.sha256"
pins=(
    torch==2.15.0
    transformers==5.23.0
    timm==1.0.31
    onnx==1.23.2
    onnxruntime==1.32.0
    onnxscript==0.7.2
    numpy==2.4.6
)

want="$( (python3 --version; printf '%s\n' "${pins[@]}") | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
ok=0
for attempt in 1 2 3 4 5; do
    if "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
        --timeout 120 --retries 10 -q "${pins[@]}" >"$log" 2>&1; then
        ok=1
        break
    fi
    echo "corpus_venv.sh: pip install attempt $attempt/5 failed ($(df -h "$root" | awk 'NR==2 {print $4}') free):" >&2
    tail -n 8 "$log" >&2
    sleep $((10 * attempt))
done
if [[ "$ok" != 1 ]]; then
    echo "corpus_venv.sh: pip install failed" >&2
    exit 1
fi
"$venv/bin/python" -m pip uninstall -y -q triton >/dev/null 2>&1 || true
echo "$want" >"$stamp"
