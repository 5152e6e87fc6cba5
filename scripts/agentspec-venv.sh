#!/usr/bin/env bash
# Creates (once) the Python environment holding the reference implementation of Agent Spec
# (pyagentspec and wayflowcore, pinned in shared/agentspec/tools/requirements.txt), used by the
# conformance tests as an oracle; its `mcp` package (FastMCP, pinned with them) serves as the
# reference MCP server of the MCP tests (crates/weft-testkit/python/mcp_server.py). Idempotent: a
# stamp with the requirements' hash makes a second run instant. Prints the environment's python
# path on its last line.
#
# Usage: scripts/agentspec-venv.sh [VENV_DIR]   (default: target/agentspec-venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${WEFT_SHARED_DIR:-$root/../shared}"
requirements="$shared/agentspec/tools/requirements.txt"
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

stamp="$venv/.weft-stamp"
want="$(sha256sum "$requirements" | cut -d' ' -f1) $($python --version 2>&1)"
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
echo "$want" > "$stamp"
echo "$venv/bin/python"
