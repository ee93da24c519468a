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
if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req" >"$log" 2>&1; then
    cat "$log" >&2
    echo "venv.sh: pip install failed" >&2
    exit 1
fi
echo "$want" >"$stamp"
