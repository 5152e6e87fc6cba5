#!/bin/sh
# find_facts: {"section": "..."} on stdin; the fact sheet's entries for it as a JSON list on stdout.
section=$(sed -n 's/.*"section"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | tr '[:upper:]' '[:lower:]')
case "$section" in
  introduction) echo '["AI is software that learns patterns from data instead of following hand-written rules", "the term was coined in 1956"]' ;;
  "how it works") echo '["a model adjusts millions of numbers until its answers on known examples are right", "a trained model answers inputs it has never seen"]' ;;
  "what it changes") echo '["AI already translates text, reads medical scans and drafts code", "it can be confidently wrong, so people check its work"]' ;;
  *) echo '[]' ;;
esac
