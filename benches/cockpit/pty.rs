//! A program on a pseudo-terminal of a fixed size, its output parsed into a
//! screen (vt100) as it arrives: what an operator's terminal would show.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

use crate::observe::Observed;
use crate::{Result, now_ns};

pub struct Pty {
    pub child: Child,
    master: File,
    pub screen: Arc<Observed<vt100::Parser>>,
    /// The output as lines (for programs that print lines, like `kubectl -w`).
    pub lines: Arc<Observed<String>>,
    pub bytes: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
}

impl Pty {
    /// Starts `cmd` with a `cols`×`rows` terminal as stdin, stdout and stderr.
    pub fn spawn(cmd: &mut Command, cols: u16, rows: u16) -> Result<Pty> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            Path::new(std::ffi::OsStr::from_bytes(name.as_bytes())),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::termios::tcsetwinsize(
            &slave,
            rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )?;
        let slave = File::from(slave);
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave))
            .env("TERM", "xterm-256color")
            // Keys typed at the benchmark's own terminal stay there.
            .process_group(0);
        let child = cmd.spawn();
        // The Command holds copies of the slave until dropped or reset: the
        // reader only sees the end of the output once every copy is closed.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = child?;
        let master = File::from(master);
        let size = |n: u16| std::num::NonZeroU16::new(n).ok_or("zero terminal size");
        let parser = vt100::Parser::new(size(rows)?, size(cols)?, 0);
        let screen = Arc::new(Observed::new(parser));
        let bytes = Arc::new(AtomicU64::new(0));
        let lines = Arc::new(Observed::new(String::new()));
        let reader = {
            let mut input = master.try_clone()?;
            let mut answers = master.try_clone()?;
            let (screen, bytes, lines) = (screen.clone(), bytes.clone(), lines.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut partial: Vec<u8> = Vec::new();
                // EIO when the last writer closes: the program ended.
                while let Ok(n) = input.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let at = now_ns();
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    let chunk = &buf[..n];
                    let mut cursor = None;
                    screen.update(at, |p| {
                        p.process(chunk);
                        cursor = Some(p.screen().cursor_position());
                    });
                    for piece in chunk.split_inclusive(|b| *b == b'\n') {
                        partial.extend_from_slice(piece);
                        if piece.ends_with(b"\n") {
                            let text = String::from_utf8_lossy(&partial);
                            let text = text.trim_end_matches(['\r', '\n']);
                            lines.update(at, |l| {
                                l.clear();
                                l.push_str(text);
                            });
                            partial.clear();
                        }
                    }
                    // Answer "where is the cursor?" like a terminal (kdash asks).
                    if let Some((row, col)) = cursor
                        && chunk.windows(4).any(|w| w == b"\x1b[6n")
                    {
                        let _ = write!(answers, "\x1b[{};{}R", row + 1, col + 1);
                    }
                }
            })
        };
        Ok(Pty {
            child,
            master,
            screen,
            lines,
            bytes,
            reader: Some(reader),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn type_keys(&mut self, keys: &str) -> Result<()> {
        self.master.write_all(keys.as_bytes())?;
        Ok(())
    }

    pub fn contents(&self) -> String {
        self.screen.with(|p| p.screen().contents())
    }

    /// Waits until the screen satisfies `pred`; returns when it did (Unix ns).
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&vt100::Screen) -> bool + Send + 'static,
    ) -> Option<u128> {
        match self.screen.expect(move |p| pred(p.screen())) {
            None => Some(now_ns()),
            Some(e) => e.wait(timeout),
        }
    }

    /// Sends `quit` (e.g. "q"), then kills the program if it is still
    /// running after `grace`.
    pub fn quit(mut self, quit: &str, grace: Duration) {
        let _ = self.type_keys(quit);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
    }

    fn stop(&mut self) {
        // The program and whatever it started (its own process group).
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            // A grandchild that escaped the group may keep the terminal open:
            // then leave the reader behind rather than hang.
            let start = Instant::now();
            while !r.is_finished() && start.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Words of a table row, without the box-drawing borders.
pub fn cells(row: &str) -> Vec<&str> {
    row.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|w| !w.is_empty())
        .collect()
}

/// The first row whose first word is `first`.
pub fn row_starting(screen: &vt100::Screen, first: &str) -> Option<String> {
    let (_, cols) = screen.size();
    screen
        .rows(0, cols.get())
        .find(|r| cells(r).first().is_some_and(|w| *w == first))
}
