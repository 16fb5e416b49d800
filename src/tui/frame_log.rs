//! Opt-in frame instrumentation for the benchmarks (`benches/cockpit`).
//!
//! With `K3S_COCKPIT_FRAME_LOG=PATH` every drawn frame appends one line
//!
//! ```text
//! frame SEQ START_UNIX_NS RENDER_NS DRAW_NS REASON
//! ```
//!
//! where `RENDER_NS` is building and rendering the widgets into the buffers
//! (`view::render_band` for each band), `DRAW_NS` the whole frame (for each
//! band: render, diff against its previous frame, write the changes), and
//! `REASON` what made the frame necessary (`start`, `key`, `resize`,
//! `cluster`, `tick`, `deadline`). Without the variable nothing is timed,
//! allocated or written: every method is one `Option` check.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const ENV: &str = "K3S_COCKPIT_FRAME_LOG";

#[derive(Default)]
pub struct FrameLog {
    out: Option<LineWriter<File>>,
    seq: u64,
}

/// A frame being timed (only exists when the log is on).
pub struct FrameTimer {
    unix_ns: u128,
    started: Instant,
}

impl FrameLog {
    /// Opens the log named by [`ENV`]; off when unset or unopenable (a
    /// benchmark hook must never stop the cockpit).
    pub fn from_env() -> FrameLog {
        let Some(path) = std::env::var_os(ENV).filter(|p| !p.is_empty()) else {
            return FrameLog::default();
        };
        match File::create(&path) {
            Ok(f) => FrameLog {
                out: Some(LineWriter::new(f)),
                seq: 0,
            },
            Err(e) => {
                tracing::warn!("{ENV}: cannot create {}: {e}", path.to_string_lossy());
                FrameLog::default()
            }
        }
    }

    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    pub fn start(&self) -> Option<FrameTimer> {
        self.out.as_ref()?;
        Some(FrameTimer {
            unix_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            started: Instant::now(),
        })
    }

    /// Records a frame: `render` is the time spent in `view::render`.
    pub fn finish(&mut self, timer: Option<FrameTimer>, render: Duration, reason: &str) {
        let (Some(out), Some(t)) = (self.out.as_mut(), timer) else {
            return;
        };
        self.seq += 1;
        let draw = t.started.elapsed();
        let line = format!(
            "frame {} {} {} {} {reason}\n",
            self.seq,
            t.unix_ns,
            render.as_nanos(),
            draw.as_nanos()
        );
        if out.write_all(line.as_bytes()).is_err() {
            // Disk full or similar: stop logging, keep the cockpit running.
            self.out = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_lines_when_on() {
        let mut off = FrameLog::default();
        assert!(!off.enabled());
        assert!(off.start().is_none());
        off.finish(None, Duration::ZERO, "tick");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frames");
        let mut on = FrameLog {
            out: Some(LineWriter::new(File::create(&path).unwrap())),
            seq: 0,
        };
        let t = on.start();
        on.finish(t, Duration::from_micros(5), "cluster");
        drop(on);
        let text = std::fs::read_to_string(&path).unwrap();
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields[0], "frame");
        assert_eq!(fields[1], "1");
        assert_eq!(fields[3], "5000");
        assert_eq!(fields[5], "cluster");
    }
}
