//! What is measured from outside a server: its CPU time and memory from `/proc`, and latency
//! percentiles.

use std::time::Instant;

use serde_json::{Value, json};

/// `/proc/<pid>/stat` counts CPU time in clock ticks of 1/100 s (`USER_HZ`, fixed by the ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user and system, every thread) a process has used; `pid` may be `self`.
///
/// From each thread's `schedstat` (nanoseconds), so that a window of a few milliseconds is
/// measured; from `stat` (1/100 s) where the kernel keeps no schedstat. A thread that has
/// exited is no longer counted: the servers measured keep their threads.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos = 0u64;
    let mut read = 0;
    for task in tasks.flatten() {
        // A thread that exited since the directory was listed is skipped.
        let Ok(schedstat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(on_cpu) = schedstat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        {
            nanos += on_cpu;
            read += 1;
        }
    }
    if read == 0 {
        return stat_cpu_seconds(pid);
    }
    Some(nanos as f64 / 1e9)
}

/// CPU seconds of a process from its `stat`.
fn stat_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // fields[0] is the third field (state); utime and stime are the 14th and 15th.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// Resident memory of a process, KiB (`VmRSS`).
pub(crate) fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time of some processes, and of the load generator itself, over a window of wall time.
#[derive(Debug)]
pub(crate) struct CpuWindow {
    started: Instant,
    me: f64,
    servers: Vec<(String, Option<f64>)>,
}

impl CpuWindow {
    pub(crate) fn start(pids: &[String]) -> Self {
        CpuWindow {
            started: Instant::now(),
            me: cpu_seconds("self").unwrap_or(0.0),
            servers: pids
                .iter()
                .map(|pid| (pid.clone(), cpu_seconds(pid)))
                .collect(),
        }
    }

    /// The seconds of wall time since the start, the CPU seconds each server used (in the
    /// order given; `None` where `/proc` could not be read), and the load generator's.
    pub(crate) fn finish(&self) -> Window {
        let wall = self.started.elapsed().as_secs_f64();
        let servers = self
            .servers
            .iter()
            .map(|(pid, before)| Some(cpu_seconds(pid)? - (*before)?))
            .collect();
        Window {
            wall,
            servers,
            loadgen: cpu_seconds("self").unwrap_or(0.0) - self.me,
        }
    }
}

/// What [`CpuWindow::finish`] measured.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) wall: f64,
    pub(crate) servers: Vec<Option<f64>>,
    pub(crate) loadgen: f64,
}

impl Window {
    /// CPU seconds of the server at `index` (0 when not measured: the JSON says null then).
    pub(crate) fn server(&self, index: usize) -> Option<f64> {
        self.servers.get(index).copied().flatten()
    }

    /// The window's common fields: its length, the load generator's CPU share, each server's.
    pub(crate) fn json(&self) -> Value {
        let pct = |cpu: f64| round(100.0 * cpu / self.wall.max(1e-9), 1);
        json!({
            "wall_s": round(self.wall, 3),
            "loadgen_cpu_pct": pct(self.loadgen),
            "server_cpu_pct": self.servers.iter().map(|cpu| cpu.map(pct)).collect::<Vec<_>>(),
        })
    }
}

/// `value` rounded to `digits` decimals.
pub(crate) fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// CPU microseconds per operation, or null when not measured or no operation happened.
pub(crate) fn per_op_us(cpu_seconds: Option<f64>, ops: u64) -> Value {
    match cpu_seconds {
        Some(cpu) if ops > 0 => json!(round(cpu * 1e6 / ops as f64, 3)),
        _ => Value::Null,
    }
}

/// Nearest-rank percentiles of microsecond samples.
pub(crate) fn percentiles(samples: &mut [u64]) -> Value {
    if samples.is_empty() {
        return json!({"p50_us": null, "p99_us": null, "max_us": null});
    }
    samples.sort_unstable();
    let pick = |p: f64| {
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    json!({"p50_us": pick(0.50), "p99_us": pick(0.99), "max_us": pick(1.0)})
}

/// The median of some values (the lower middle for an even count).
pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    Some(values[(values.len() - 1) / 2])
}
