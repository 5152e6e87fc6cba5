#!/bin/sh
# service_status: {"service": "..."} on stdin; the status page's entry as a JSON string on stdout.
service=$(sed -n 's/.*"service"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
case "$service" in
  payments) echo '"incident PAY-17 on 2026-12-01: some cards were charged twice; resolved, duplicates may be refunded"' ;;
  *) echo '"operational"' ;;
esac
