#!/bin/sh
# refund_charge: {"invoice": "...", "amount": ...} on stdin; the refund's id as a JSON string on stdout.
args=$(cat)
invoice=$(printf '%s' "$args" | sed -n 's/.*"invoice"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
amount=$(printf '%s' "$args" | sed -n 's/.*"amount"[[:space:]]*:[[:space:]]*\([-0-9.]*\).*/\1/p')
case "$amount" in
  ""|-*|0|0.0) echo "the amount must be positive" >&2; exit 1 ;;
esac
echo "\"RF-${invoice#INV-}\""
