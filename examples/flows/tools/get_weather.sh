#!/bin/sh
# get_weather: {"city": "..."} on stdin; the weather as a JSON string on stdout.
city=$(sed -n 's/.*"city"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
case "$city" in
  "") echo "no city given" >&2; exit 1 ;;
  Paris|paris) echo '"light rain, clearing in the evening"' ;;
  *) echo '"sunny"' ;;
esac
