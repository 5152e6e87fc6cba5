#!/bin/sh
# search_changelog: {"query": "..."} on stdin; the changelog entries mentioning it (any case) as a JSON list on stdout.
query=$(sed -n 's/.*"query"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | tr '[:upper:]' '[:lower:]')
out="["
sep=""
while IFS= read -r line; do
  case "$(printf '%s' "$line" | tr '[:upper:]' '[:lower:]')" in
    *"$query"*) out="$out$sep\"$line\""; sep=", " ;;
  esac
done <<'LOG'
0.4: Swarm: a triage agent hands the conversation to specialists or sends them messages (handoff never, optional, always)
0.4: ManagerWorkers: a manager agent delegates tasks to worker agents and gets their answers back
0.4: worker agents run in parallel map items, at most max_workers at once
0.3: MCP tools and toolboxes over HTTP, SSE and stdio
LOG
echo "$out]"
