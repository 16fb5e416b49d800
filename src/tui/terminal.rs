//! The real terminal: raw mode and the alternate screen, restored however
//! the cockpit ends, and the screen drawn as stacked ratatui terminals, one
//! per band of the view (`view::BANDS`).
//!
//! Why bands: a change reaches the operator when its bytes are written, and
//! ratatui writes a frame only after laying out and comparing all of it.
//! Drawn band by band from the top, each band flushed as it is done, a node
//! row is on screen once the status bar and the node table are drawn, not
//! after the services and the log panel's new line as well. Each band is
//! drawn once per frame, as the whole screen was; only the order of the
//! bytes changes (and a frame costs one write per band instead of one).

use std::io::{BufWriter, Stdout};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use ratatui::layout::Rect;

use super::app::App;
use super::{frame_log, redraw, title, view};

/// crossterm writing through a buffer that ratatui flushes once per frame:
/// stdout's own line buffer takes its lock for every escape sequence, looks
/// for newlines in each, and writes every kilobyte, a cost paid on every
/// frame while the cluster churns.
type Part = ratatui::Terminal<ratatui::backend::CrosstermBackend<BufWriter<Stdout>>>;

/// Restores the terminal however the loop ends (the panic hook set in
/// [`Screen::init`] covers panics): the screen, and the title saved when
/// the cockpit started.
pub(crate) struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        ratatui::restore();
        pop_title();
    }
}

/// Puts back the title [`Screen::init`] saved (a terminal without a title
/// stack ignores it).
fn pop_title() {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = out.write_all(title::POP_TITLE.as_bytes());
    let _ = out.flush();
}

pub(crate) struct Screen {
    bands: [Part; view::BANDS],
    size: Rect,
    /// Where each band starts, then where the last ends (as laid out now).
    rows: [u16; view::BANDS + 1],
}

/// A part with a fixed viewport: a full-screen one asks the terminal for its
/// size on every frame (an open of /dev/tty and an ioctl); the size only
/// changes with a resize event, which the loop hands to [`Screen::resize`].
fn part(area: Rect) -> std::io::Result<Part> {
    let writer = BufWriter::with_capacity(1 << 16, std::io::stdout());
    ratatui::Terminal::with_options(
        ratatui::backend::CrosstermBackend::new(writer),
        ratatui::TerminalOptions {
            viewport: ratatui::Viewport::Fixed(area),
        },
    )
}

impl Screen {
    /// What `ratatui::try_init` does, with the screen in bands.
    pub(crate) fn init() -> std::io::Result<Screen> {
        restore_on_panic();
        crossterm::terminal::enable_raw_mode()?;
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All),
            // Saved here, restored by the guard and the panic hook.
            crossterm::style::Print(title::PUSH_TITLE)
        )?;
        let (width, height) = crossterm::terminal::size()?;
        let none = Rect::new(0, 0, width, 0);
        Ok(Screen {
            bands: [part(none)?, part(none)?, part(none)?],
            size: Rect::new(0, 0, width, height),
            rows: [0; view::BANDS + 1],
        })
    }

    /// The terminal's new size: every band is laid out and drawn afresh.
    pub(crate) fn resize(&mut self, width: u16, height: u16) -> Result<()> {
        self.size = Rect::new(0, 0, width, height);
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
        )
        .wrap_err("clearing the resized terminal")?;
        // ratatui clears the whole screen itself when a viewport gets
        // narrower: let that happen now, before anything is drawn, by taking
        // every band to an empty row at the new width.
        let none = Rect::new(0, 0, width, 0);
        for band in &mut self.bands {
            band.resize(none).wrap_err("resizing")?;
            ratatui::backend::Backend::flush(band.backend_mut()).wrap_err("resizing")?;
        }
        self.rows = [0; view::BANDS + 1];
        Ok(())
    }

    /// Moves band boundaries; a band that moves or changes size clears its
    /// rows and is drawn whole.
    fn lay_out(&mut self, rows: [u16; view::BANDS + 1]) -> Result<()> {
        for (i, band) in self.bands.iter_mut().enumerate() {
            if (rows[i], rows[i + 1]) == (self.rows[i], self.rows[i + 1]) {
                continue;
            }
            let area = Rect::new(0, rows[i], self.size.width, rows[i + 1] - rows[i]);
            band.resize(area).wrap_err("laying out the screen")?;
        }
        self.rows = rows;
        Ok(())
    }

    /// Writes the pane title or a bell, between frames: every band has
    /// flushed, so the bytes cannot land inside another escape sequence.
    pub(crate) fn signal(&mut self, bytes: &str) -> Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(bytes.as_bytes())
            .and_then(|()| out.flush())
            .wrap_err("writing the title")
    }

    /// Draws one frame, band by band from the top (timed into the frame
    /// log when it is on); returns the nodes it shows.
    pub(crate) fn draw(
        &mut self,
        app: &App,
        frames: &mut frame_log::FrameLog,
        reason: &str,
    ) -> Result<redraw::Shown> {
        let timer = frames.start();
        let layout = view::FrameLayout::new(app, self.size);
        self.lay_out(view::band_rows(app, &layout))?;
        let mut render_time = Duration::ZERO;
        for (i, band) in self.bands.iter_mut().enumerate() {
            if self.rows[i] == self.rows[i + 1] {
                continue;
            }
            band.draw(|f| {
                let started = frames.enabled().then(std::time::Instant::now);
                view::render_band(app, f, &layout, i);
                render_time += started.map(|s| s.elapsed()).unwrap_or_default();
            })
            .wrap_err("drawing the cockpit")?;
        }
        frames.finish(timer, render_time, reason);
        Ok(redraw::Shown::new(view::shown_nodes(app, &layout)))
    }
}

/// A panic leaves the alternate screen and raw mode before the report is
/// printed, so the operator's shell is usable and the report readable.
fn restore_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        ratatui::restore();
        pop_title();
        report(info);
    }));
}
