// The build script of the release binaries (weft-cli and weft-bench include it): links them
// with `scripts/hot-text.ld`, which places the functions a run executes together at the start
// of the text (see `scripts/hot_text.py`). Only for release builds on Linux, where the
// linker (rust-lld or GNU ld) reads the script; `WEFT_NO_HOT_TEXT=1` turns it off, for a
// linker that does not take linker scripts (mold).

use std::env;
use std::path::PathBuf;

fn main() {
    let script = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../../scripts/hot-text.ld");
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::rerun-if-env-changed=WEFT_NO_HOT_TEXT");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let off = env::var_os("WEFT_NO_HOT_TEXT").is_some_and(|v| v != "0");
    let mold = env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("mold"));
    if release && linux && !off && !mold && script.is_file() {
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
