#!/bin/sh
# ServerTool get_current_time (seed_parallel_marketing.json): no arguments; prints the current
# local time as one JSON string, e.g. "2025/10/01 10:30 PM".
cat >/dev/null
printf '"%s"\n' "$(date '+%Y/%m/%d %I:%M %p')"
