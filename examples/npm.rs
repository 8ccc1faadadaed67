//! What the examples that serve npm packages share (included with `#[path]`): installing the
//! packages of their lockfile the first time they run.

use std::{
    io,
    path::{Path, PathBuf},
    process::Command,
};

/// Runs `npm ci` in `dir` (the example's folder, with its `package-lock.json`) unless `marker`,
/// a file the packages hold, is there already; `announce` tells the person who started the
/// example.
pub(crate) fn install(dir: &Path, marker: &Path, what: &str, announce: fn(&str)) -> io::Result<()> {
    if marker.exists() {
        return Ok(());
    }
    announce(&format!("installing {what} (npm ci)..."));
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        // npm's summary on stderr: an example's stdout is its own (the cluster test reads it).
        .stdout(io::stderr())
        .status()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "running npm (Node.js's package manager) failed: {error}; install Node.js and npm, then run again"
                ),
            )
        })?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "npm ci in {} failed",
            dir.display()
        )));
    }
    Ok(())
}

/// The `dist` folder of the `socket.io-client` npm package in `dir` (an example's folder, whose
/// lockfile holds it), installed the first time (`npm ci`).
#[allow(
    dead_code,
    reason = "the examples that serve no browser bundle include this file too"
)]
pub(crate) fn socket_io_client_bundle(dir: &Path, announce: fn(&str)) -> io::Result<PathBuf> {
    let dist = dir.join("node_modules/socket.io-client/dist");
    install(
        dir,
        &dist.join("socket.io.min.js"),
        "the socket.io-client browser bundle",
        announce,
    )?;
    Ok(dist)
}
