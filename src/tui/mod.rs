//! The terminal: one `select!` loop over keys, cluster events and a 1 s
//! tick. It redraws only when something visible changed or the tick
//! advanced the ages; it never busy-loops.

pub mod app;
pub mod frame_log;
pub mod keymap;
pub mod view;

use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;

use self::app::App;
use crate::model::ClusterEvent;

/// Restores the terminal however the loop ends (ratatui's own panic hook
/// covers panics).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub async fn run(mut app: App, mut events: UnboundedReceiver<ClusterEvent>) -> Result<()> {
    let mut terminal =
        ratatui::try_init().wrap_err("cannot initialise the terminal (is this a TTY?)")?;
    let _guard = TerminalGuard;
    tracing::debug!("terminal initialised");
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut feed_open = true;
    let mut frames = frame_log::FrameLog::from_env();
    // Why the next frame is drawn (for the frame log only).
    let mut reason = "start";
    loop {
        if dirty {
            tui_logger::move_events();
            let timer = frames.start();
            let mut render_time = Duration::ZERO;
            terminal
                .draw(|f| {
                    let started = frames.enabled().then(std::time::Instant::now);
                    view::render(&app, f);
                    render_time = started.map(|s| s.elapsed()).unwrap_or_default();
                })
                .wrap_err("drawing the cockpit")?;
            frames.finish(timer, render_time, reason);
            dirty = false;
        }
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => {
                    dirty |= app.on_key(k);
                    reason = "key";
                }
                Some(Ok(Event::Resize(..))) => {
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
                dirty |= app.on_cluster(msg);
                // Drain what is queued, then draw once.
                while let Ok(m) = events.try_recv() {
                    dirty |= app.on_cluster(m);
                }
                reason = "cluster";
            }
            _ = tick.tick() => {
                app.on_tick(jiff::Timestamp::now());
                dirty = true;
                reason = "tick";
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}
