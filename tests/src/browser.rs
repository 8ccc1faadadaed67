//! What the browser tests of the examples share.

use std::path::{Path, PathBuf};

/// Checks that the Chromium the browser tests drive (`$CHROMIUM`, or Debian's) is there; panics
/// with the fix when it is missing.
pub fn require_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run the README test command (it installs Debian's chromium)"
    );
}

/// Where a browser test saves its screenshots: `tests/output/<name>/`.
pub fn output_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("output")
        .join(name)
}
