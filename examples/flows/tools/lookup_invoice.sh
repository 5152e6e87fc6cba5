#!/bin/sh
# lookup_invoice: {"invoice": "..."} on stdin; the invoice as a JSON object on stdout.
invoice=$(sed -n 's/.*"invoice"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
case "$invoice" in
  INV-1042) echo '{"invoice": "INV-1042", "amount": 42.0, "charges": 2, "status": "paid"}' ;;
  INV-1043) echo '{"invoice": "INV-1043", "amount": 19.5, "charges": 1, "status": "open"}' ;;
  *) echo "no invoice $invoice" >&2; exit 1 ;;
esac
