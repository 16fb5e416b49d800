//! The terminal: one `select!` loop over keys, cluster events, a 1 s tick
//! and the next heartbeat deadline, for watch and control mode alike
//! (control mode adds a [`control::Driver`] for the rollout). It redraws
//! only when something visible changed or the tick advanced the ages; it
//! never busy-loops.

pub mod app;
pub mod bell;
pub mod control;
pub mod frame_log;
pub mod keymap;
pub mod log_format;
pub mod log_panel;
pub mod redraw;
pub mod rollout_view;
pub mod terminal;
pub mod title;
pub mod view;

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;

use self::app::{App, Request};
use crate::model::ClusterEvent;
use crate::rollout::runner::{Done, Runner};

/// Terminal input, read by its own task. Polling crossterm's `EventStream`
/// from the `select!` costs a lock hand-over with crossterm's reader thread
/// on every loop turn, and the loop turns for every lease renewal; a
/// channel costs nothing.
struct Keys {
    rx: UnboundedReceiver<std::io::Result<Event>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn keys_task() -> Keys {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = EventStream::new();
        while let Some(event) = stream.next().await {
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    Keys { rx, task }
}

/// The read-only watch cockpit; `mode` names its session journal.
pub async fn run(
    mut app: App,
    mut events: UnboundedReceiver<ClusterEvent>,
    mode: &str,
    probes: &crate::probe::Selection,
) -> Result<()> {
    let session = start_session(&mut app, mode, probes);
    let ended = run_loop(&mut app, &mut events, None).await;
    let session = session.map(|log| {
        log.end(crate::clock::now());
        log.path().to_path_buf()
    });
    say_session(session.as_deref());
    ended
}

/// Opens the session journal for the cockpit and writes its first lines.
/// A journal that cannot be created costs the report, not the cockpit: it
/// is said on screen.
fn start_session(
    app: &mut App,
    mode: &str,
    probes: &crate::probe::Selection,
) -> Option<crate::report::session::SessionLog> {
    let (context, server) = (app.context.clone(), app.server.clone());
    match crate::report::session::start_for(&mut app.fleet, &context, &server, mode, probes) {
        Ok(log) => Some(log),
        Err(e) => {
            tracing::warn!("{e:#}");
            app.flash = Some((format!("no session journal: {e:#}"), crate::clock::now()));
            None
        }
    }
}

/// Says where the session journal is, once the screen is restored.
pub(crate) fn say_session(path: Option<&std::path::Path>) {
    if let Some(path) = path {
        eprintln!(
            "session journal: {} (`k3s-cockpit report` turns it into an incident timeline)",
            path.display()
        );
    }
}

/// Carries out what the last key asked for: the report here, the rollout's
/// requests through the runner. True if anything was asked.
fn carry_out(app: &mut App, runner: Option<&mut Runner>) -> Result<bool> {
    let mut requests = std::mem::take(&mut app.requests);
    app.quit |= requests.contains(&Request::Quit);
    let report = requests.contains(&Request::WriteReport);
    requests.retain(|r| !matches!(r, Request::WriteReport | Request::Quit));
    if report {
        write_report(app);
    }
    match runner {
        Some(r) => Ok(control::on_requests(r, app, requests)? || report),
        None => Ok(report),
    }
}

/// The report key: the current session's journal, as Markdown beside it.
fn write_report(app: &mut App) {
    let Some(journal) = app.fleet.timeline.sink_path().map(|p| p.to_path_buf()) else {
        app.say("no session journal in this cockpit: nothing to report".into());
        return;
    };
    match crate::report::write_session_report(&journal, app.tz.clone()) {
        Ok(path) => app.say(format!("report written: {}", path.display())),
        Err(e) => app.say(format!("report failed: {e:#}")),
    }
}

/// The one loop of both modes: `driver` adds the rollout in control mode.
pub(crate) async fn run_loop(
    app: &mut App,
    events: &mut UnboundedReceiver<ClusterEvent>,
    mut driver: Option<&mut Runner>,
) -> Result<()> {
    // Declared first, dropped last: the terminals flush what they still
    // buffer before the screen is restored (and a failed start is undone).
    let (_guard, mut screen) = open_terminal()?;
    let mut keys = keys_task();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut feed_open = true;
    let mut frames = frame_log::FrameLog::from_env();
    // Why the next frame is drawn (for the frame log only).
    let mut reason = "start";
    let mut shown = redraw::Shown::default();
    let mut deadlines = redraw::Deadlines::default();
    let wake = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(wake);
    let mut armed: Option<jiff::Timestamp> = None;
    let mut outside = Outside::new(app);
    loop {
        if let Some(d) = driver.as_deref_mut() {
            d.dispatch(&app.fleet);
        }
        if dirty {
            if let Some(d) = driver.as_deref() {
                app.rollout = Some(d.view(app.now));
            }
            tui_logger::move_events();
            shown = screen.draw(app, &mut frames, reason)?;
            dirty = false;
            outside.after_frame(app, &mut screen)?;
        }
        rearm(&mut deadlines, &mut armed, wake.as_mut());
        tokio::select! {
            key = keys.rx.recv() => match on_terminal(app, &mut screen, driver.as_deref_mut(), key)? {
                Flow::Redraw(why) => {
                    dirty = true;
                    reason = why;
                }
                Flow::Same => {}
                Flow::Stop => return Ok(()),
            },
            msg = events.recv(), if feed_open => {
                // A closed feed must not spin the loop: stop polling it.
                let Some(msg) = msg else { feed_open = false; continue };
                let batch = Batch { shown: &shown, deadlines: &mut deadlines };
                dirty |= batch.apply(app, events, msg, driver.as_deref_mut())?;
                reason = "cluster";
            }
            Some(done) = next_done(&mut driver) => {
                on_done(app, driver.as_deref_mut(), done)?;
                dirty = true;
                reason = "rollout";
            }
            _ = &mut wake, if armed.is_some() => {
                armed = None;
                let now = crate::clock::now();
                if deadlines.fire(now) {
                    // The engine judges the late heartbeat now, not at the
                    // next tick.
                    tick_once(app, driver.as_deref_mut(), now)?;
                    dirty = true;
                    reason = "deadline";
                }
            }
            _ = tick.tick() => {
                tick_once(app, driver.as_deref_mut(), crate::clock::now())?;
                dirty = true;
                reason = "tick";
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}

/// Takes over the terminal; the guard restores it when dropped.
fn open_terminal() -> Result<(terminal::Guard, terminal::Screen)> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        color_eyre::eyre::bail!("stdout is not a terminal: the cockpit cannot draw");
    }
    let guard = terminal::Guard;
    let screen =
        terminal::Screen::init().wrap_err("cannot initialise the terminal (is this a TTY?)")?;
    tracing::debug!("terminal initialised");
    Ok((guard, screen))
}

/// A rollout task finished; a manual operation's outcome is flashed.
fn on_done(app: &mut App, driver: Option<&mut Runner>, done: Done) -> Result<()> {
    if let Some(d) = driver {
        let now = crate::clock::now();
        if let Some(text) = d.on_done(done, &mut app.fleet, now)? {
            app.flash = Some((text, now));
        }
    }
    Ok(())
}

/// Arms the timer for the next heartbeat to turn LATE or EXPIRED, to the
/// millisecond; only when that instant changes.
fn rearm(
    deadlines: &mut redraw::Deadlines,
    armed: &mut Option<jiff::Timestamp>,
    wake: std::pin::Pin<&mut tokio::time::Sleep>,
) {
    let next = deadlines.next_due();
    if next == *armed {
        return;
    }
    *armed = next;
    if let Some(due) = next {
        let wait = Duration::try_from(due.duration_since(crate::clock::now())).unwrap_or_default();
        wake.reset(tokio::time::Instant::now() + wait);
    }
}

/// What the loop does after a terminal event.
enum Flow {
    Redraw(&'static str),
    Same,
    Stop,
}

/// A key (and what it asks for) or a resize.
fn on_terminal(
    app: &mut App,
    screen: &mut terminal::Screen,
    driver: Option<&mut Runner>,
    event: Option<std::io::Result<Event>>,
) -> Result<Flow> {
    match event {
        Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => {
            let changed = app.on_key(k) | carry_out(app, driver)?;
            Ok(if changed {
                Flow::Redraw("key")
            } else {
                Flow::Same
            })
        }
        Some(Ok(Event::Resize(width, height))) => {
            screen.resize(width, height)?;
            Ok(Flow::Redraw("resize"))
        }
        Some(Ok(_)) => Ok(Flow::Same),
        Some(Err(e)) => Err(e).wrap_err("reading the terminal"),
        None => Ok(Flow::Stop),
    }
}

/// What a batch of cluster events updates besides the app.
struct Batch<'a> {
    shown: &'a redraw::Shown,
    deadlines: &'a mut redraw::Deadlines,
}

impl Batch<'_> {
    /// Applies `first` and whatever else is queued, so that one frame
    /// shows them all; the engine looks once. True if the screen changed.
    fn apply(
        self,
        app: &mut App,
        events: &mut UnboundedReceiver<ClusterEvent>,
        first: ClusterEvent,
        driver: Option<&mut Runner>,
    ) -> Result<bool> {
        // Timeline entries get the instant the event arrived.
        app.now = crate::clock::now();
        let mut dirty = false;
        let mut news = false;
        let mut next = Some(first);
        while let Some(msg) = next {
            self.deadlines.note(&msg, app.now);
            news |= crate::rollout::controller::engine_sees(&msg);
            dirty |= redraw::apply(app, msg, self.shown);
            next = events.try_recv().ok();
        }
        if news && let Some(d) = driver {
            dirty |= d.observe(&mut app.fleet, crate::clock::now())?;
        }
        Ok(dirty)
    }
}

/// What the cockpit tells the world outside its screen after a frame: the
/// pane title when it changed, the bell on news, and the status file that
/// `k3s-cockpit status` reads (removed when the loop ends, however it ends).
struct Outside {
    title: title::Title,
    bell: bell::Bell,
    status_file: crate::status_file::StatusFile,
    status_failed: bool,
}

impl Outside {
    fn new(app: &App) -> Outside {
        Outside {
            title: title::Title::default(),
            bell: bell::Bell::new(app, bell::enabled()),
            status_file: crate::status_file::StatusFile::new(&crate::paths::status_dir()),
            status_failed: false,
        }
    }

    fn after_frame(&mut self, app: &App, screen: &mut terminal::Screen) -> Result<()> {
        let status = title::status(app);
        let mut signal = self.title.update(&status.text).unwrap_or_default();
        if self.bell.frame(app) {
            signal.push('\x07');
        }
        if !signal.is_empty() {
            screen.signal(&signal)?;
        }
        // A status file that cannot be written costs `status`, not the
        // cockpit (said once, in the log).
        let written = self
            .status_file
            .update(status.state, &status.text, crate::clock::now());
        if let Err(e) = written
            && !std::mem::replace(&mut self.status_failed, true)
        {
            tracing::warn!(
                "cannot write the status file {}: {e}",
                self.status_file.path().display()
            );
        }
        Ok(())
    }
}

/// Advances the clock: through the driver in control mode (its controller
/// ticks the fleet), else through the app; the fleet is ticked once either way.
fn tick_once(app: &mut App, driver: Option<&mut Runner>, now: jiff::Timestamp) -> Result<()> {
    match driver {
        Some(d) => {
            app.on_clock(now);
            d.tick(&mut app.fleet, now)
        }
        None => {
            app.on_tick(now);
            Ok(())
        }
    }
}

/// The runner's next finished task; never resolves in watch mode.
async fn next_done(driver: &mut Option<&mut Runner>) -> Option<Done> {
    match driver {
        Some(d) => d.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent};

    #[test]
    fn report_key_writes_the_session_report_even_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut app = App::new(
            "lab",
            "http://127.0.0.1:1",
            true,
            jiff::Timestamp::UNIX_EPOCH,
        );
        app.on_key(KeyEvent::from(KeyCode::Char('W')));
        carry_out(&mut app, None).unwrap();
        let (text, _) = app.flash.clone().unwrap();
        assert!(text.starts_with("no session journal"), "{text}");

        let log = crate::report::session::SessionLog::create(dir.path(), "watch", app.now).unwrap();
        app.fleet.timeline.set_sink(log.sink());
        app.fleet.timeline.push(
            app.now,
            crate::model::timeline::Severity::Warn,
            "a",
            "something happened".into(),
        );
        app.on_key(KeyEvent::from(KeyCode::Char('W')));
        carry_out(&mut app, None).unwrap();
        let (text, _) = app.flash.clone().unwrap();
        let written = log.path().with_extension("md");
        assert_eq!(text, format!("report written: {}", written.display()));
        let md = std::fs::read_to_string(written).unwrap();
        assert!(md.contains("| a: something happened |"), "{md}");
    }
}
