#!/bin/sh
# style_guide: {"audience": "..."} on stdin; the house style rules as a JSON string on stdout.
audience=$(sed -n 's/.*"audience"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
case "$audience" in
  customers) echo '"Plain words, no jargon; say what the reader can do now; at most two sentences."' ;;
  *) echo '"Be precise; name the feature and its component types."' ;;
esac
