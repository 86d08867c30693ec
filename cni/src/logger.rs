//! Logs to stderr (never stdout, which is protocol) and optionally to a file.
//! `CNI_LOG_LEVEL` picks the level (error, warn, info, debug, trace; default warn) and
//! `CNI_LOG_FILE` adds a file that lines are appended to.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata, Record};

struct Logger {
    plugin: &'static str,
    level: LevelFilter,
    file: Option<Mutex<File>>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {}[{}] {}: {}\n",
            unix_time(),
            self.plugin,
            std::process::id(),
            record.level(),
            record.args()
        );
        // A failing log sink must never fail the CNI operation.
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

fn unix_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}

/// Installs the logger once per process.
pub fn init(plugin: &'static str) {
    let level = std::env::var("CNI_LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Warn);
    let file = std::env::var_os("CNI_LOG_FILE")
        .filter(|p| !p.is_empty())
        .and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok())
        .map(Mutex::new);
    let logger = Box::new(Logger {
        plugin,
        level,
        file,
    });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
