//! The `--llm` option (helper fills this in).
