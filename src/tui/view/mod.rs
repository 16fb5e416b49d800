//! Drawing: pure functions of the [`App`]. Layout works from 80x24 up;
//! columns that do not fit a narrow pane are dropped, never wrapped.
//!
//! This module lays out the screen and draws it band by band; each panel
//! is drawn by a module of its own.

mod cells;
mod compact;
mod detail;
mod help;
mod log;
mod nodes;
mod restore_confirm;
mod services;
mod status;

use std::ops::Range;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::app::{App, Page};
use super::rollout_view;
use crate::model::fleet::ApiStatus;
use detail::render_detail;
use help::render_help;
use log::{render_full_log, render_log};
use nodes::render_nodes;
use services::render_services;
use status::{banner_line, footer_line, status_bar};

/// Colours, or none at all under `NO_COLOR`.
pub struct Theme {
    color: bool,
}

impl Theme {
    pub fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    pub fn good(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        self.fg(Color::DarkGray)
    }
    pub fn badge(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }
}

/// The panels top to bottom: status bar, API banner, hint, rollout
/// (control mode), nodes, LoadBalancer services, timeline, footer.
fn panels(app: &App, area: Rect) -> [Rect; 8] {
    let banner_rows = u16::from(matches!(app.fleet.api, ApiStatus::Down { .. }));
    let hint_rows = u16::from(app.hint.is_some());
    let services = app.fleet.services.len() as u16;
    let services_rows = if services == 0 {
        0
    } else {
        (services + 3).min(area.height / 4).max(4)
    };
    let rollout_rows = rollout_view::panel_rows(app);
    let nodes_rows = (app.visible_count() as u16 + 3)
        .min(area.height.saturating_sub(8 + services_rows + rollout_rows))
        .max(4);
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_rows),
        Constraint::Length(hint_rows),
        Constraint::Length(rollout_rows),
        Constraint::Length(nodes_rows),
        Constraint::Length(services_rows),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Which of `count` visible nodes the node table in `area` shows: as many
/// as fit under its header, scrolled so the selected row is on screen. Only
/// these rows are built, so a frame costs the same at 5 or 5,000 nodes.
fn node_window(app: &App, count: usize, area: Rect) -> Range<usize> {
    // Two borders and the header row.
    let fit = usize::from(area.height.saturating_sub(3));
    let start = (app.selected + 1)
        .saturating_sub(fit)
        .min(count.saturating_sub(fit));
    start..(start + fit).min(count)
}

/// The nodes whose rows a frame laid out as `layout` shows (the loop
/// redraws for a change to one of these, and not for the others).
pub fn shown_nodes(app: &App, layout: &FrameLayout) -> Vec<String> {
    let names = app.visible_nodes();
    let window = if compact::applies(layout.full) {
        compact::shown(app, layout.full)
    } else {
        node_window(app, names.len(), layout.panels[4])
    };
    names
        .get(window)
        .unwrap_or_default()
        .iter()
        .map(|n| n.to_string())
        .collect()
}

/// The screen's bands, top to bottom, each drawn by a terminal of its own
/// (see `tui::terminal`): the live state (status, rollout, nodes), the
/// LoadBalancer services, the log panel with the footer.
pub const BANDS: usize = 3;

/// A frame's layout: the screen and its panels, worked out once per frame
/// (the node panel's height counts the visible nodes, O(nodes)).
pub struct FrameLayout {
    full: Rect,
    panels: [Rect; 8],
}

impl FrameLayout {
    pub fn new(app: &App, full: Rect) -> FrameLayout {
        FrameLayout {
            full,
            panels: panels(app, full),
        }
    }
}

/// The whole screen: every band in turn.
pub fn render(app: &App, frame: &mut Frame) {
    let layout = FrameLayout::new(app, frame.area());
    let rows = band_rows(app, &layout);
    for band in 0..BANDS {
        if rows[band] < rows[band + 1] {
            render_band(app, frame, &layout, band);
        }
    }
}

/// Where each band starts (the last entry: where the last one ends). An
/// overlay covers every band: then the first band is the screen.
pub fn band_rows(app: &App, layout: &FrameLayout) -> [u16; BANDS + 1] {
    let full = layout.full;
    let bottom = full.bottom();
    if app.page != Page::Nodes || compact::applies(full) || restore_confirm::asking(app) {
        return [full.y, bottom, bottom, bottom];
    }
    let [.., svc, log, _] = layout.panels;
    [full.y, svc.y, log.y, bottom]
}

/// One band of a frame laid out as `layout`.
pub fn render_band(app: &App, frame: &mut Frame, layout: &FrameLayout, band: usize) {
    let theme = Theme { color: app.color };
    let [.., svc, log, footer] = layout.panels;
    match band {
        0 => render_live(app, &theme, frame, layout),
        1 if svc.height > 0 => render_services(app, &theme, frame, svc),
        1 => {}
        _ => {
            render_log(app, &theme, frame, log);
            frame.render_widget(footer_line(app, &theme), footer);
        }
    }
}

/// The first band: status, banner, hint, rollout and nodes; with an
/// overlay, the whole screen.
fn render_live(app: &App, theme: &Theme, frame: &mut Frame, layout: &FrameLayout) {
    if app.page == Page::Log {
        render_full_log(app, theme, frame, layout.full);
        return;
    }
    if app.page == Page::Nodes && compact::applies(layout.full) {
        compact::render(app, theme, frame, layout.full);
        return;
    }
    let [status, banner_area, hint_area, rollout, nodes, ..] = layout.panels;
    frame.render_widget(status_bar(app, theme), status);
    if let Some(b) = banner_line(app, theme) {
        frame.render_widget(b, banner_area);
    }
    if let Some(hint) = &app.hint {
        frame.render_widget(
            Paragraph::new(Line::styled(hint.clone(), theme.dim())),
            hint_area,
        );
    }
    if rollout.height > 0 {
        rollout_view::render_panel(app, theme, frame, rollout);
    }
    render_nodes(app, theme, frame, nodes);
    // An overlay: this band is the screen, drawn under the overlay.
    let overlay = |frame: &mut Frame| {
        for band in 1..BANDS {
            render_band(app, frame, layout, band);
        }
    };
    match &app.page {
        Page::Nodes | Page::Log => {}
        Page::Detail(node) => {
            overlay(frame);
            render_detail(app, theme, frame, node);
        }
        Page::Help => {
            overlay(frame);
            render_help(app, theme, frame);
        }
    }
    if restore_confirm::asking(app) {
        overlay(frame);
        restore_confirm::render(app, theme, frame);
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

#[cfg(test)]
mod tests {
    use super::cells::{ellipsize, fit_list};
    use super::*;
    use crate::model::ClusterEvent;
    use crate::model::fleet::Tri;
    use crate::model::fleet::{Condition, L2Info, LeaseInfo, NodeInfo, ServiceInfo, Taint};
    use crate::tui::app::LogPanel;
    use crate::tui::keymap::KEYMAP;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use std::time::Duration;

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_769_378_700 + secs).unwrap()
    }

    fn node(name: &str, ready: Tri, since: i64, taints: &[&str]) -> ClusterEvent {
        ClusterEvent::Node(NodeInfo {
            name: name.into(),
            roles: vec!["control-plane".into(), "etcd".into(), "master".into()],
            node_args: None,
            version: "v1.35.0+k3s1".into(),
            unschedulable: false,
            taints: taints
                .iter()
                .map(|k| Taint {
                    key: format!("node.kubernetes.io/{k}"),
                    effect: "NoExecute".into(),
                })
                .collect(),
            conditions: vec![Condition {
                kind: "Ready".into(),
                status: ready,
                reason: "NodeStatusUnknown".into(),
                message: String::new(),
                last_transition: Some(t(since)),
                last_heartbeat: Some(t(since)),
            }],
            boot_id: "b".into(),
            internal_ip: None,
            lb_excluded: false,
        })
    }

    fn incident_app(width: u16, height: u16) -> Terminal<TestBackend> {
        draw(&incident_model(), width, height)
    }

    fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| render(app, f)).unwrap();
        terminal
    }

    fn incident_model() -> App {
        let mut app = App::new("k3s-lab", "http://127.0.0.1:6443/", true, t(0));
        app.tz = jiff::tz::TimeZone::UTC;
        app.color = false;
        app.log_panel = LogPanel::Timeline;
        app.on_cluster(ClusterEvent::ApiOk);
        app.on_cluster(node("k3s-vm-fun-bedbug", Tri::Unknown, 0, &["unreachable"]));
        app.on_cluster(node("k3s-vm-pumped-piglet-gpu", Tri::True, -300, &[]));
        app.on_cluster(node("k3s-vm-still-fawn", Tri::True, -300, &[]));
        for (n, renewed) in [
            ("k3s-vm-fun-bedbug", -55),
            ("k3s-vm-pumped-piglet-gpu", -3),
            ("k3s-vm-still-fawn", -14),
        ] {
            app.now = t(renewed);
            app.on_cluster(ClusterEvent::Lease(LeaseInfo {
                node: n.into(),
                holder: n.into(),
                renewed: Some(t(renewed)),
                duration: Duration::from_secs(40),
            }));
        }
        app.on_cluster(ClusterEvent::Service(ServiceInfo {
            namespace: "frigate".into(),
            name: "frigate".into(),
            ips: vec!["127.77.0.10".into()],
            ports: vec![5000],
            selector: Default::default(),
        }));
        app.now = t(-100);
        app.on_cluster(ClusterEvent::L2(L2Info {
            object: "m/l2-a".into(),
            node: "k3s-vm-still-fawn".into(),
            service: ("frigate".into(), "frigate".into()),
        }));
        app.now = t(-40);
        app.on_cluster(ClusterEvent::L2Deleted("m/l2-a".into()));
        app.on_cluster(ClusterEvent::L2(L2Info {
            object: "m/l2-b".into(),
            node: "k3s-vm-fun-bedbug".into(),
            service: ("frigate".into(), "frigate".into()),
        }));
        app.on_tick(t(0));
        app
    }

    /// The incident with Frigate probed: fine for a while, dark for 12 s
    /// (still dark now).
    fn probed_model() -> App {
        let mut app = incident_model();
        for i in -30i64..=0 {
            let ok = i < -12;
            app.on_cluster(ClusterEvent::Probe(crate::model::probe::ProbeResult {
                service: ("frigate".into(), "frigate".into()),
                endpoint: "127.77.0.10:5000".into(),
                check: "http GET /".into(),
                ok,
                latency: Duration::from_micros(400 + 700 * (i.unsigned_abs() % 5)),
                error: (!ok).then(|| "connection refused".into()),
                at: t(i),
            }));
        }
        app
    }

    /// A node MetalLB was told to leave out (the handoff's label) says so
    /// in the node table, in watch mode too.
    #[test]
    fn a_node_with_the_exclude_label_shows_a_no_lb_badge() {
        let mut app = incident_model();
        let text = format!("{}", draw(&app, 132, 30).backend());
        assert!(!text.contains("no-lb"), "{text}");
        if let ClusterEvent::Node(mut n) = node("k3s-vm-pumped-piglet-gpu", Tri::True, -300, &[]) {
            n.lb_excluded = true;
            app.on_cluster(ClusterEvent::Node(n));
        }
        let text = format!("{}", draw(&app, 132, 30).backend());
        let row = text
            .lines()
            .find(|l| l.contains("k3s-vm-pumped-piglet-gpu"))
            .unwrap();
        assert!(row.contains("no-lb"), "{text}");
    }

    /// The output of a failed install is in the node's detail, newest
    /// lines last as the terminal showed them.
    #[test]
    fn node_detail_shows_the_output_of_the_last_failed_step() {
        let mut app = incident_model();
        app.fleet.failed_step_output(
            "k3s-vm-still-fawn",
            "[INFO]  Downloading sha256sum-amd64.txt\nsha256 mismatch for k3s: refusing the swap",
            app.now,
        );
        app.page = Page::Detail("k3s-vm-still-fawn".into());
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(text.contains("Output of the last failed step"), "{text}");
        assert!(
            text.contains("│ sha256 mismatch for k3s: refusing the swap"),
            "{text}"
        );
    }

    /// The node detail lists the whole drain report, blocks marked.
    #[test]
    fn node_detail_shows_the_drain_report() {
        use crate::model::fleet::{DrainNote, DrainOutlook};
        let mut app = incident_model();
        let outlook = DrainOutlook {
            at: app.now,
            evicts: 2,
            notes: vec![
                DrainNote {
                    blocks: true,
                    text: "nvr/recorder: has emptyDir data, which eviction deletes (fix: x)".into(),
                },
                DrainNote {
                    blocks: false,
                    text: "frigate/frigate-0: volume media is node-local (local-path)".into(),
                },
            ],
        };
        app.fleet.set_drain_outlook("k3s-vm-still-fawn", outlook);
        app.page = Page::Detail("k3s-vm-still-fawn".into());
        let text = format!("{}", draw(&app, 120, 40).backend());
        assert!(
            text.contains("Drain report (evicts 2 · 1 block · 1 warn, listed 0s ago)"),
            "{text}"
        );
        assert!(
            text.contains("  block nvr/recorder: has emptyDir data"),
            "{text}"
        );
        assert!(
            text.contains("  warn  frigate/frigate-0: volume media"),
            "{text}"
        );
    }

    /// The rollout panel keeps the users' outage so far: probe downtime
    /// while a node was being worked on.
    #[test]
    fn the_rollout_panel_shows_what_users_lost_so_far() {
        use crate::model::timeline::{EntryKind, Severity};
        let mut app = incident_model();
        let engine = crate::upgrade::Engine::new(crate::upgrade::testkit::abc());
        app.rollout = Some(engine.view(t(0)));
        let text = format!("{}", draw(&app, 132, 30).backend());
        assert!(text.contains("users lost 0s"), "{text}");
        let phase = |p: &str| EntryKind::UpgradePhase {
            node: Some("A".into()),
            phase: p.into(),
        };
        let tl = &mut app.fleet.timeline;
        tl.push_kind(t(-30), Severity::Info, "A", phase("restart"), String::new());
        let down = EntryKind::ProbeDown {
            endpoint: "127.77.0.10:5000".into(),
            error: "connection refused".into(),
            since: Some(t(-25)),
        };
        tl.push_kind(
            t(-24),
            Severity::Error,
            "frigate/frigate",
            down,
            String::new(),
        );
        let up = EntryKind::ProbeUp {
            endpoint: "127.77.0.10:5000".into(),
            down_for_ms: 5000,
        };
        tl.push_kind(t(-20), Severity::Info, "frigate/frigate", up, String::new());
        let text = format!("{}", draw(&app, 132, 30).backend());
        assert!(text.contains("users lost 5s"), "{text}");
    }

    #[test]
    fn watch_view_80x24_shows_the_incident() {
        insta::assert_snapshot!(incident_app(80, 24).backend());
    }

    /// A tmux split: the worst state first, every node with its Ready
    /// state and heartbeat, and what the full view needs.
    #[test]
    fn a_40x10_pane_shows_the_compact_layout() {
        let terminal = incident_app(40, 10);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("EXPIRED"), "{text}");
        assert!(text.contains("full view needs 60×16"), "{text}");
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn a_20x5_pane_says_the_size_it_needs() {
        let text = format!("{}", incident_app(20, 5).backend());
        assert!(text.contains("pane too small: need"), "{text}");
        insta::assert_snapshot!(incident_app(20, 5).backend());
    }

    #[test]
    fn probes_show_state_duration_and_history_in_80_columns() {
        let terminal = draw(&probed_model(), 80, 24);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("DOWN 12s"), "{text}");
        assert!(
            text.contains("probe DOWN (http GET / 127.77.0.10:5000)"),
            "{text}"
        );
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn probes_keep_ip_and_moves_in_a_wide_pane() {
        let terminal = draw(&probed_model(), 132, 30);
        let text = format!("{}", terminal.backend());
        for column in ["IP", "MOVES", "PROBE", "LAST 20 PROBES"] {
            assert!(text.contains(column), "{column}: {text}");
        }
    }

    #[test]
    fn long_node_lists_scroll_to_the_selection_and_build_only_shown_rows() {
        let mut app = App::new("k3s-lab", "http://127.0.0.1:6443/", true, t(0));
        app.color = false;
        app.log_panel = LogPanel::Timeline;
        for i in 0..500 {
            app.on_cluster(node(&format!("n-{i:03}"), Tri::True, -60, &[]));
        }
        let area = Rect::new(0, 0, 80, 24);
        let shown = shown_nodes(&app, &FrameLayout::new(&app, area));
        assert_eq!(shown.first().map(String::as_str), Some("n-000"));
        // The table gets all but 8 rows; borders and header take 3 of its own.
        assert_eq!(shown.len(), 24 - 8 - 3);
        app.selected = 499;
        let shown = shown_nodes(&app, &FrameLayout::new(&app, area));
        assert_eq!(shown.last().map(String::as_str), Some("n-499"));
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| render(&app, f)).unwrap();
        let text = format!("{}", terminal.backend());
        assert!(text.contains("n-499") && !text.contains("n-000"), "{text}");
        assert!(text.contains("Nodes 500"), "{text}");
    }

    #[test]
    fn watch_view_wide_shows_taints() {
        let terminal = incident_app(132, 30);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("unreachable:NoExecute"), "{text}");
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn lists_fit_by_whole_values() {
        let ips = ["192.168.4.80", "192.168.4.81"];
        assert_eq!(fit_list(&ips, ",", 25), "192.168.4.80,192.168.4.81");
        assert_eq!(fit_list(&ips, ",", 24), "192.168.4.80 +1");
        assert_eq!(fit_list(&ips, ",", 15), "192.168.4.80 +1");
        assert_eq!(fit_list(&ips, ",", 14), "192.168.4.… +1");
        assert_eq!(fit_list(&["192.168.4.80"], ",", 11), "192.168.4.…");
        assert_eq!(fit_list(&["a", "b", "c"], " ", 5), "a b c");
        assert_eq!(fit_list(&["a", "b", "c"], " ", 4), "a +2");
        // A value that fits beside its `+N` rather than a cut one.
        assert_eq!(
            fit_list(&["192.168.100.201", "10.0.0.9"], ",", 15),
            "10.0.0.9 +1"
        );
        assert_eq!(fit_list::<&str>(&[], ",", 5), "");
        assert_eq!(ellipsize("v1.29.1-rc2+k3s1", 12), "v1.29.1-rc2…");
        assert_eq!(ellipsize("anything", 0), "");
    }

    /// The incident's nodes announcing several real-length addresses each.
    fn many_ips_model() -> App {
        let mut app = incident_model();
        let services = [
            ("frigate", "k3s-vm-fun-bedbug", "192.168.4.80"),
            ("home-assistant", "k3s-vm-fun-bedbug", "192.168.4.81"),
            ("mqtt", "k3s-vm-fun-bedbug", "192.168.4.82"),
            ("jellyfin", "k3s-vm-still-fawn", "192.168.100.201"),
            ("paperless", "k3s-vm-still-fawn", "10.0.0.9"),
            ("adguard", "k3s-vm-pumped-piglet-gpu", "192.168.4.90"),
        ];
        for (name, node, ip) in services {
            app.on_cluster(ClusterEvent::Service(ServiceInfo {
                namespace: name.into(),
                name: name.into(),
                ips: vec![ip.into()],
                ports: vec![80],
                selector: Default::default(),
            }));
            app.on_cluster(ClusterEvent::L2(L2Info {
                object: format!("m/{name}"),
                node: node.into(),
                service: (name.into(), name.into()),
            }));
        }
        app.on_cluster(ClusterEvent::L2Deleted("m/l2-b".into()));
        app.on_cluster(ClusterEvent::Service(ServiceInfo {
            namespace: "frigate".into(),
            name: "frigate".into(),
            ips: vec!["192.168.4.80".into(), "192.168.4.180".into()],
            ports: vec![5000],
            selector: Default::default(),
        }));
        app.on_tick(t(0));
        app
    }

    /// No address is cut into another one: each shows whole, or is counted
    /// in a `+N`.
    fn assert_no_cut_address(text: &str) {
        for cut in [
            "192.168.4.8 ",
            "192.168.4.8│",
            "192.168.100.20 ",
            "192.168.4.18 ",
        ] {
            assert!(!text.contains(cut), "{cut:?} cut in:\n{text}");
        }
    }

    #[test]
    fn node_table_keeps_addresses_whole_in_80_columns() {
        let terminal = draw(&many_ips_model(), 80, 24);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("192.168.4.80 +3"), "{text}");
        assert!(text.contains("10.0.0.9 +1"), "{text}");
        assert!(text.contains("192.168.4.80 +1"), "{text}");
        assert_no_cut_address(&text);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn node_table_keeps_addresses_whole_in_120_columns() {
        let terminal = draw(&many_ips_model(), 120, 30);
        let text = format!("{}", terminal.backend());
        assert!(text.contains("192.168.4.80 +3"), "{text}");
        assert!(text.contains("192.168.100.201"), "{text}");
        assert_no_cut_address(&text);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn bands_stack_without_gaps_and_an_overlay_takes_the_screen() {
        let mut app = incident_model();
        let full = Rect::new(0, 0, 120, 40);
        let rows = band_rows(&app, &FrameLayout::new(&app, full));
        assert_eq!((rows[0], rows[BANDS]), (0, 40));
        assert!(rows.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");
        // The node table ends where the services begin; the log panel below.
        let [.., nodes, svc, log, _] = panels(&app, full);
        assert_eq!((rows[1], rows[2]), (svc.y, log.y));
        assert_eq!(nodes.bottom(), svc.y);
        app.page = Page::Help;
        assert_eq!(
            band_rows(&app, &FrameLayout::new(&app, full)),
            [0, 40, 40, 40]
        );
    }

    #[test]
    fn help_lists_every_control_key_even_in_80x24() {
        let mut app = App::new("lab", "http://127.0.0.1:1/", false, t(0));
        app.color = false;
        app.log_panel = LogPanel::Timeline;
        let engine = crate::upgrade::Engine::new(crate::upgrade::testkit::abc());
        app.rollout = Some(engine.view(t(0)));
        app.page = Page::Help;
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| render(&app, f)).unwrap();
        let text = format!("{}", terminal.backend());
        for b in KEYMAP {
            let shown = format!("{:>7}  ", b.keys);
            assert!(text.contains(&shown), "{:?} missing:\n{text}", b.keys);
        }
    }
}
