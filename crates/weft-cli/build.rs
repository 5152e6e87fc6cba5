//! Links the release binaries with `scripts/hot-text.ld`: see `scripts/hot_text_link.rs`.
include!("../../scripts/hot_text_link.rs");
