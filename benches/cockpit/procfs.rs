//! CPU time and memory of a process from /proc (not wall time: the machine
//! is shared, and CPU time is what a process costs whatever else runs).

use std::time::Instant;

use crate::Result;

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// utime + stime + the same for waited-for children, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub fn sample(pid: u32) -> Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14.
    let field = |n: usize| -> Result<u64> {
        Ok(f.get(n - 3).ok_or("short /proc/PID/stat")?.parse::<u64>()?)
    };
    let cpu_ticks = field(14)? + field(15)? + field(16)? + field(17)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        at: Instant::now(),
        cpu_ticks,
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
    })
}

/// CPU use between two samples, in percent of one core.
pub fn cpu_percent(a: &Sample, b: &Sample) -> f64 {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let wall = b.at.duration_since(a.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    (b.cpu_ticks.saturating_sub(a.cpu_ticks)) as f64 / ticks / wall * 100.0
}

/// Samples several processes over a window: CPU % per process and the
/// largest resident set seen (sampled every `every`).
pub struct Window {
    pids: Vec<u32>,
    first: Vec<Option<Sample>>,
    peak_rss_kb: Vec<u64>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_percent: f64,
    pub peak_rss_mb: f64,
    pub hwm_mb: f64,
}

impl Window {
    pub fn start(pids: &[u32]) -> Window {
        let first: Vec<Option<Sample>> = pids
            .iter()
            .map(|p| {
                sample(*p)
                    .inspect_err(|e| eprintln!("  cannot sample process {p}: {e}"))
                    .ok()
            })
            .collect();
        let peak_rss_kb = first.iter().map(|s| s.map_or(0, |s| s.rss_kb)).collect();
        Window {
            pids: pids.to_vec(),
            first,
            peak_rss_kb,
        }
    }

    /// Sleeps for `secs`, sampling memory once a second.
    pub fn run(&mut self, secs: f64) {
        let end = Instant::now() + std::time::Duration::from_secs_f64(secs);
        while Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(std::time::Duration::from_secs(1)));
            self.poll();
        }
    }

    fn poll(&mut self) {
        for (i, pid) in self.pids.iter().enumerate() {
            if let Ok(s) = sample(*pid) {
                self.peak_rss_kb[i] = self.peak_rss_kb[i].max(s.rss_kb);
            }
        }
    }

    pub fn finish(mut self) -> Vec<Usage> {
        self.poll();
        self.pids
            .iter()
            .enumerate()
            .map(|(i, pid)| match (self.first[i], sample(*pid).ok()) {
                (Some(a), Some(b)) => Usage {
                    cpu_percent: cpu_percent(&a, &b),
                    peak_rss_mb: self.peak_rss_kb[i] as f64 / 1024.0,
                    hwm_mb: b.hwm_kb as f64 / 1024.0,
                },
                _ => Usage::default(),
            })
            .collect()
    }
}
