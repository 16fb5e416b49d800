//! The terminal: one `select!` loop over keys, cluster events, a 1 s tick
//! and the next heartbeat deadline, for watch and control mode alike
//! (control mode adds a [`control::Driver`] for the rollout). It redraws
//! only when something visible changed or the tick advanced the ages; it
//! never busy-loops.

pub mod app;
pub mod control;
pub mod frame_log;
pub mod keymap;
pub mod log_format;
pub mod log_panel;
pub mod redraw;
pub mod rollout_view;
pub mod terminal;
pub mod view;

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;

use self::app::App;
use crate::model::ClusterEvent;

/// Terminal input, read by its own task. Polling crossterm's `EventStream`
/// from the `select!` costs a lock hand-over with crossterm's reader thread
/// on every loop turn (13 % of the cockpit's CPU at 5,000 nodes, where the
/// loop turns for every lease renewal); a channel costs nothing.
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

/// The read-only watch cockpit.
pub async fn run(mut app: App, mut events: UnboundedReceiver<ClusterEvent>) -> Result<()> {
    run_loop(&mut app, &mut events, None).await
}

/// The one loop of both modes: `driver` adds the rollout in control mode.
pub(crate) async fn run_loop(
    app: &mut App,
    events: &mut UnboundedReceiver<ClusterEvent>,
    mut driver: Option<&mut control::Driver<'_>>,
) -> Result<()> {
    // Declared first, dropped last: the terminals flush what they still
    // buffer before the screen is restored (and a failed start is undone).
    let _guard = terminal::Guard;
    let mut screen =
        terminal::Screen::init().wrap_err("cannot initialise the terminal (is this a TTY?)")?;
    tracing::debug!("terminal initialised");
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
    loop {
        if let Some(d) = driver.as_deref_mut() {
            d.dispatch();
        }
        if dirty {
            if let Some(d) = driver.as_deref() {
                d.show(app);
            }
            tui_logger::move_events();
            shown = screen.draw(app, &mut frames, reason)?;
            dirty = false;
        }
        // The next heartbeat to turn LATE or EXPIRED, to the millisecond
        // (the timer is re-armed only when that instant changes).
        let next = deadlines.next_due();
        if next != armed {
            armed = next;
            if let Some(due) = next {
                let wait = Duration::try_from(due.duration_since(jiff::Timestamp::now()))
                    .unwrap_or_default();
                wake.as_mut().reset(tokio::time::Instant::now() + wait);
            }
        }
        tokio::select! {
            key = keys.rx.recv() => match key {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => {
                    dirty |= app.on_key(k);
                    if let Some(d) = driver.as_deref_mut() {
                        dirty |= d.on_requests(app)?;
                    }
                    reason = "key";
                }
                Some(Ok(Event::Resize(width, height))) => {
                    screen.resize(width, height)?;
                    dirty = true;
                    reason = "resize";
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).wrap_err("reading the terminal"),
                None => return Ok(()),
            },
            msg = events.recv(), if feed_open => {
                // A closed feed must not spin the loop: stop polling it.
                let Some(msg) = msg else { feed_open = false; continue };
                // Timeline entries get the instant the event arrived.
                app.now = jiff::Timestamp::now();
                deadlines.note(&msg);
                let mut news = crate::rollout::controller::engine_sees(&msg);
                dirty |= redraw::apply(app, msg, &shown);
                // Drain what is queued, then draw once.
                while let Ok(m) = events.try_recv() {
                    deadlines.note(&m);
                    news |= crate::rollout::controller::engine_sees(&m);
                    dirty |= redraw::apply(app, m, &shown);
                }
                if news && let Some(d) = driver.as_deref_mut() {
                    dirty |= d.on_cluster(app)?;
                }
                reason = "cluster";
            }
            Some(done) = next_done(&mut driver) => {
                if let Some(d) = driver.as_deref_mut() {
                    d.on_done(app, done)?;
                }
                dirty = true;
                reason = "rollout";
            }
            _ = &mut wake, if armed.is_some() => {
                armed = None;
                let now = jiff::Timestamp::now();
                if deadlines.fire(now) {
                    // The engine judges the late heartbeat now, not at the
                    // next tick.
                    tick_once(app, driver.as_deref_mut(), now)?;
                    dirty = true;
                    reason = "deadline";
                }
            }
            _ = tick.tick() => {
                tick_once(app, driver.as_deref_mut(), jiff::Timestamp::now())?;
                dirty = true;
                reason = "tick";
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}

/// Advances the clock: through the driver in control mode (its controller
/// ticks the fleet), else through the app; the fleet is ticked once either way.
fn tick_once(
    app: &mut App,
    driver: Option<&mut control::Driver<'_>>,
    now: jiff::Timestamp,
) -> Result<()> {
    match driver {
        Some(d) => d.on_tick(app, now),
        None => {
            app.on_tick(now);
            Ok(())
        }
    }
}

/// The driver's next finished task; never resolves in watch mode.
async fn next_done(driver: &mut Option<&mut control::Driver<'_>>) -> Option<control::Done> {
    match driver {
        Some(d) => d.next().await,
        None => std::future::pending().await,
    }
}
