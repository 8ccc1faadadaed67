//! Runners for the official clients' scripts in `tests/js` (Node) and `tests/py` (Python).

use std::{path::PathBuf, time::Duration};

/// The folder of the JavaScript clients.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Runs `node tests/js/<script> <args>` (60 s at most) and parses the last line of its output as
/// JSON.
pub async fn run_node(script: &str, args: &[&str]) -> serde_json::Value {
    let dir = js_dir();
    assert!(
        dir.join("node_modules").exists(),
        "tests/js/node_modules is missing: run the README test command (it runs `npm ci` there)"
    );
    run_client("node", &dir, script, args).await
}

/// Runs `tests/py/.venv/bin/python tests/py/<script> <args>` (60 s at most) and parses the last
/// line of its output as JSON.
pub async fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "tests/py/.venv is missing: run the README test command (it installs python-socketio there)"
    );
    run_client(python.to_str().unwrap(), &dir, script, args).await
}

async fn run_client(
    program: &str,
    dir: &std::path::Path,
    script: &str,
    args: &[&str],
) -> serde_json::Value {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(program)
            .arg(dir.join(script))
            .args(args)
            .current_dir(dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the node client finishes within 60 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}
