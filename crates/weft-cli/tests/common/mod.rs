//! Helpers shared by the command-line tests.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]
#![allow(clippy::expect_used, reason = "a test fails loudly on any unexpected error")]

use std::path::Path;

/// The absolute path of a valid corpus document.
pub fn corpus(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agentspec/corpus/valid").join(file);
    path.canonicalize().expect("corpus file").to_string_lossy().into_owned()
}

/// The absolute path of a file in `tests/fixtures`.
pub fn fixture(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    path.canonicalize().expect("fixture file").to_string_lossy().into_owned()
}

/// A testkit server on its own runtime, alive as long as the returned runtime.
pub fn server(config: weft_testkit::MockConfig) -> (tokio::runtime::Runtime, weft_testkit::MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = rt.block_on(weft_testkit::MockServer::start(config));
    (rt, server)
}
