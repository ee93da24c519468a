#!/usr/bin/env bash
# Create/refresh the Python virtual environment used by whittle's test tooling.
#
#   bash scripts/venv.sh        # from anywhere; the venv lands in <repo>/.venv
#
# Idempotent: the pinned requirements (scripts/requirements.txt) are hashed and
# the hash stored in .venv/.requirements.sha256 after a successful install; when
# the stamp matches, nothing is installed. Quiet on success.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/scripts/requirements.txt"
stamp="$venv/.requirements.sha256"

want="$( (python3 --version; cat "$req") | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Registry downloads (onnxruntime and numpy wheels are tens of MB) can time out; retry
# the whole install a few times before calling it a failure, and say how much disk is
# left when it fails (a full disk also looks like a pip crash).
ok=0
for attempt in 1 2 3 4; do
    if "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
        --timeout 60 --retries 8 -q -r "$req" >"$log" 2>&1; then
        ok=1
        break
    fi
    echo "venv.sh: pip install attempt $attempt/4 failed ($(df -h "$root" | awk 'NR==2 {print $4}') free):" >&2
    tail -n 8 "$log" >&2
    sleep $((5 * attempt))
done
if [[ "$ok" != 1 ]]; then
    echo "venv.sh: pip install failed" >&2
    exit 1
fi
echo "$want" >"$stamp"
