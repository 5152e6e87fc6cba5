#!/usr/bin/env bash
# Creates (once) the Python environment holding the reference implementation of Agent Spec
# (pyagentspec and wayflowcore, pinned in shared/agentspec/tools/requirements.txt), used by the
# conformance tests as an oracle, plus the reference servers some tests start: its `mcp`
# package (FastMCP, pinned with them) serves the MCP tests (crates/weft-testkit/python/mcp_server.py),
# and scripts/test-servers-requirements.txt adds the A2A server. Idempotent: a stamp with the
# requirements' hash makes a second run instant. Prints the environment's python path on its last
# line.
#
# Usage: scripts/agentspec-venv.sh [VENV_DIR]   (default: target/agentspec-venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${WEFT_SHARED_DIR:-$root/../shared}"
requirements="$shared/agentspec/tools/requirements.txt"
servers="$root/scripts/test-servers-requirements.txt"
venv="${1:-$root/target/agentspec-venv}"

if [[ ! -f "$requirements" ]]; then
    echo "error: $requirements not found; clone the project with shared/ beside it (or set WEFT_SHARED_DIR)" >&2
    exit 1
fi

python=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
        python="$candidate"
        break
    fi
done
if [[ -z "$python" ]]; then
    echo "error: no python3 found; install Python 3.11 (the version the reference packages are pinned for)" >&2
    exit 1
fi

# One creator at a time: tests that need the environment may start together.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

stamp="$venv/.weft-stamp"
want="$(cat "$requirements" "$servers" | sha256sum | cut -d' ' -f1) $($python --version 2>&1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

echo "creating the Agent Spec reference environment in $venv (pyagentspec, wayflowcore)..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2; then
    echo "error: installing $requirements failed (the package registry must be reachable)" >&2
    exit 1
fi
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$servers" -c "$requirements" >&2; then
    echo "error: installing $servers failed (the package registry must be reachable)" >&2
    exit 1
fi
echo "$want" > "$stamp"
echo "$venv/bin/python"
