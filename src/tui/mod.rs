//! The terminal: one `select!` loop over keys, cluster events and a 1 s
//! tick. It redraws only when something visible changed or the tick
//! advanced the ages; it never busy-loops.

pub mod app;
pub mod control;
pub mod keymap;
pub mod rollout_view;
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
pub(crate) struct TerminalGuard;

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
    loop {
        if dirty {
            tui_logger::move_events();
            terminal
                .draw(|f| view::render(&app, f))
                .wrap_err("drawing the cockpit")?;
            dirty = false;
        }
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(Event::Key(k))) if k.kind == KeyEventKind::Press => dirty |= app.on_key(k),
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).wrap_err("reading the terminal"),
                None => return Ok(()),
            },
            msg = events.recv(), if feed_open => {
                // A closed feed must not spin the loop: stop polling it.
                let Some(msg) = msg else { feed_open = false; continue };
                // Timeline entries get the instant the event arrived.
                app.now = jiff::Timestamp::now();
                dirty |= app.on_cluster(msg);
                // Drain what is queued, then draw once.
                while let Ok(m) = events.try_recv() {
                    dirty |= app.on_cluster(m);
                }
            }
            _ = tick.tick() => {
                app.on_tick(jiff::Timestamp::now());
                dirty = true;
            }
        }
        if app.quit {
            return Ok(());
        }
    }
}
