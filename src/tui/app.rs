//! Cockpit state and its update function: pure, so every key and every
//! cluster event can be tested without a terminal.

use crossterm::event::{KeyCode, KeyEvent};
use jiff::Timestamp;

use super::keymap::{self, Binding, KeyAction};
use super::log_panel::PanelLog;
use crate::model::{ClusterEvent, Fleet};
use crate::rollout::executor::Manual;
use crate::upgrade::{Command, RolloutState, RolloutView};

/// What the loop must do for a key: the app stays pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Engine(Command),
    Manual(Manual, String),
    /// Write the session's incident report beside its journal.
    WriteReport,
    /// Quit although the rollout is moving (asked first).
    Quit,
}

/// How the screen looks: the operator's environment, read at the edge.
#[derive(Clone, Debug)]
pub struct Look {
    pub color: bool,
    /// Zone for clocks on screen.
    pub tz: jiff::tz::TimeZone,
}

impl Look {
    /// Colour unless `NO_COLOR` is set; the system's time zone.
    pub fn from_env() -> Look {
        Look {
            color: true,
            tz: jiff::tz::TimeZone::UTC,
        }
    }
}

/// A request waiting for the operator's "y".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub question: String,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    Nodes,
    Detail(String),
    Help,
    /// Every log record (tui-logger), kube and SSH warnings included.
    Log,
}

/// What the log panel shows: the timeline and upgrade log records in the
/// real terminal, the model's own timeline where output must be
/// deterministic (snapshots).
#[derive(Clone)]
pub enum LogPanel {
    Records(PanelLog),
    Timeline,
}

pub struct App {
    pub fleet: Fleet,
    pub page: Page,
    pub selected: usize,
    pub filter: String,
    pub editing_filter: bool,
    pub flash: Option<(String, Timestamp)>,
    pub read_only: bool,
    pub context: String,
    pub server: String,
    pub now: Timestamp,
    pub quit: bool,
    /// A line of advice under the status bar (the demo uses it).
    pub hint: Option<String>,
    pub log_panel: LogPanel,
    /// The full log view's scroll position.
    pub log_view: tui_logger::TuiWidgetState,
    pub color: bool,
    /// Zone for clocks on screen (the operator's; tests pin UTC).
    pub tz: jiff::tz::TimeZone,
    /// Control mode: the rollout as last seen (None in watch mode).
    pub rollout: Option<RolloutView>,
    pub confirm: Option<Confirm>,
    /// Requests for the control loop, taken after each key.
    pub requests: Vec<Request>,
}

const FLASH_SECONDS: i64 = 5;

impl App {
    pub fn new(context: &str, server: &str, read_only: bool, now: Timestamp) -> Self {
        App {
            fleet: Fleet::new(),
            page: Page::Nodes,
            selected: 0,
            filter: String::new(),
            editing_filter: false,
            flash: None,
            read_only,
            context: context.to_string(),
            server: server.to_string(),
            now,
            quit: false,
            hint: None,
            log_panel: LogPanel::Timeline,
            log_view: tui_logger::TuiWidgetState::new(),
            color: true,
            tz: jiff::tz::TimeZone::UTC,
            rollout: None,
            confirm: None,
            requests: Vec::new(),
        }
    }

    pub fn with_look(mut self, look: Look) -> Self {
        self.color = look.color;
        self.tz = look.tz;
        self
    }

    /// Node names after the filter, in table order.
    pub fn visible_nodes(&self) -> Vec<&str> {
        self.fleet
            .nodes
            .iter()
            .filter(|(_, s)| s.info.is_some())
            .map(|(n, _)| n.as_str())
            .filter(|n| self.filter.is_empty() || n.contains(self.filter.as_str()))
            .collect()
    }

    /// `visible_nodes().len()` without building the list.
    pub fn visible_count(&self) -> usize {
        self.fleet
            .nodes
            .iter()
            .filter(|(n, s)| {
                s.info.is_some() && (self.filter.is_empty() || n.contains(self.filter.as_str()))
            })
            .count()
    }

    pub fn selected_node(&self) -> Option<String> {
        self.visible_nodes()
            .get(self.selected)
            .map(|s| s.to_string())
    }

    pub fn on_cluster(&mut self, event: ClusterEvent) -> bool {
        // Only these can shorten the list (counting it per lease renewal
        // cost O(nodes) 500 times a second at 5,000 nodes).
        let shrinks = matches!(
            event,
            ClusterEvent::NodeDeleted(_) | ClusterEvent::ResyncDone(_)
        );
        let changed = self.fleet.apply(event, self.now);
        if shrinks {
            let count = self.visible_nodes().len();
            if self.selected >= count && count > 0 {
                self.selected = count - 1;
            }
        }
        changed
    }

    /// The 1 s tick: ages advance, heartbeat classes may change.
    pub fn on_tick(&mut self, now: Timestamp) {
        self.fleet.tick(now);
        self.on_clock(now);
    }

    /// The clock advanced: the screen's time, and flashes expire. In control
    /// mode the rollout's controller ticks the fleet itself.
    pub fn on_clock(&mut self, now: Timestamp) {
        self.now = now;
        if self
            .flash
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at).as_secs() >= FLASH_SECONDS)
        {
            self.flash = None;
        }
    }

    /// Quits, unless the rollout is moving: then asks first, since quitting
    /// leaves a node mid-phase (cordoned, or between install and soak).
    fn quit_or_ask(&mut self) {
        let busy = self
            .rollout
            .as_ref()
            .filter(|r| matches!(r.state, RolloutState::Running | RolloutState::Pausing));
        match busy {
            Some(r) => {
                let at = r
                    .current
                    .as_deref()
                    .map(|n| format!(" at {n}"))
                    .unwrap_or_default();
                self.confirm = Some(Confirm {
                    question: format!(
                        "the rollout is {}{at}: quit and leave it so (--resume continues)? y = yes, any other key = no",
                        r.state.label()
                    ),
                    request: Request::Quit,
                });
            }
            None => self.quit = true,
        }
    }

    /// What B asks for: the cluster-wide restore when servers on etcd
    /// crossed a minor (the rolling path would be refused), else the
    /// rolling rollback.
    fn way_back(&self) -> Command {
        match &self.rollout {
            Some(r) if r.needs_datastore_restore => Command::ClusterRestore,
            _ => Command::Rollback,
        }
    }

    pub fn say(&mut self, text: String) {
        self.flash = Some((text, self.now));
    }

    /// Handles one key. Returns true when the screen must be redrawn.
    pub fn on_key(&mut self, key: KeyEvent) -> bool {
        if let Some(confirm) = self.confirm.take() {
            match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => self.requests.push(confirm.request),
                _ => self.say("cancelled".into()),
            }
            return true;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => return false,
            }
            self.selected = 0;
            return true;
        }
        let Some(binding) = keymap::lookup(&key) else {
            return false;
        };
        if binding.mutating && self.read_only {
            self.say(format!(
                "read-only: \"{}\" refused. Watch mode never changes the cluster (use `k3s-cockpit upgrade` to act)",
                binding.help
            ));
            return true;
        }
        if self.page == Page::Log && self.log_key(binding.action) {
            return true;
        }
        let count = self.visible_nodes().len();
        match binding.action {
            KeyAction::Down if count > 0 => self.selected = (self.selected + 1).min(count - 1),
            KeyAction::Up => self.selected = self.selected.saturating_sub(1),
            KeyAction::Top => self.selected = 0,
            KeyAction::Bottom => self.selected = count.saturating_sub(1),
            KeyAction::Detail => {
                if let Some(node) = self.selected_node() {
                    self.page = Page::Detail(node);
                }
            }
            KeyAction::Back => {
                if self.page == Page::Nodes {
                    self.filter.clear();
                }
                self.page = Page::Nodes;
            }
            KeyAction::Filter => {
                self.page = Page::Nodes;
                self.editing_filter = true;
            }
            KeyAction::Help => {
                self.page = if self.page == Page::Help {
                    Page::Nodes
                } else {
                    Page::Help
                };
            }
            KeyAction::Log => self.page = Page::Log,
            KeyAction::Quit => self.quit_or_ask(),
            // Only a local file is written, so read-only mode allows it.
            KeyAction::WriteReport => self.requests.push(Request::WriteReport),
            KeyAction::Down => {}
            _ => self.control_key(binding),
        }
        true
    }

    /// In the full log view the movement keys scroll by pages (tui-logger
    /// scrolls no finer); Esc leaves it at the newest records again.
    fn log_key(&mut self, action: KeyAction) -> bool {
        use tui_logger::TuiWidgetEvent;
        let event = match action {
            KeyAction::Up => TuiWidgetEvent::PrevPageKey,
            KeyAction::Down => TuiWidgetEvent::NextPageKey,
            KeyAction::Back | KeyAction::Log => {
                self.log_view.transition(TuiWidgetEvent::EscapeKey);
                self.page = Page::Nodes;
                return true;
            }
            _ => return false,
        };
        self.log_view.transition(event);
        true
    }

    /// Rollout and node keys: only in control mode, some after a "y".
    fn control_key(&mut self, binding: &Binding) {
        let Some(rollout) = &self.rollout else {
            self.say(format!(
                "\"{}\" is available in `k3s-cockpit upgrade` (control mode)",
                binding.help
            ));
            return;
        };
        let node = self.selected_node();
        let on_node = |m: Manual| node.clone().map(|n| Request::Manual(m, n));
        let paused = matches!(
            rollout.state,
            RolloutState::Paused | RolloutState::Halted(_)
        );
        let request = match binding.action {
            KeyAction::Cordon => on_node(Manual::Cordon),
            KeyAction::Uncordon => on_node(Manual::Uncordon),
            KeyAction::Drain => on_node(Manual::Drain),
            KeyAction::RestartK3s => on_node(Manual::RestartK3s),
            KeyAction::Start => Some(Request::Engine(Command::Start)),
            KeyAction::Canary => Some(Request::Engine(Command::Canary)),
            KeyAction::AcceptCanary => Some(Request::Engine(Command::ConfirmCanary)),
            KeyAction::PauseResume if paused => Some(Request::Engine(Command::Resume)),
            KeyAction::PauseResume => Some(Request::Engine(Command::Pause)),
            KeyAction::Step => Some(Request::Engine(Command::Step)),
            KeyAction::Abort => Some(Request::Engine(Command::Abort)),
            KeyAction::Retry => Some(Request::Engine(Command::Retry)),
            KeyAction::Skip => node.clone().map(|n| Request::Engine(Command::Skip(n))),
            KeyAction::Rollback => Some(Request::Engine(self.way_back())),
            KeyAction::EndFinalWatch => Some(Request::Engine(Command::EndFinalWatch)),
            _ => None,
        };
        let Some(request) = request else {
            self.say("select a node first".into());
            return;
        };
        if binding.confirm {
            let what = match &request {
                Request::Manual(m, n) => format!("{} {n}", m.label()),
                Request::Engine(Command::Rollback) => {
                    "roll back every upgraded node, newest first".to_string()
                }
                // One confirmation for the whole restore: once the first
                // server is stopped the cluster is down, and there is no
                // safer place to stop than the end; each step shows on the
                // timeline, and abort stops after the current one.
                Request::Engine(Command::ClusterRestore) => {
                    "run the CLUSTER RESTORE listed above, to its end".to_string()
                }
                Request::Engine(c) => c.label(),
                Request::WriteReport => "write the incident report".to_string(),
                Request::Quit => "quit".to_string(),
            };
            self.confirm = Some(Confirm {
                question: format!("{what}? y = yes, any other key = no"),
                request,
            });
        } else {
            self.requests.push(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fleet::{NodeInfo, ResourceKind};
    use crossterm::event::KeyModifiers;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn app_with_nodes(names: &[&str]) -> App {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut app = App::new("lab", "http://127.0.0.1:1", true, now);
        app.on_cluster(ClusterEvent::ResyncStart(ResourceKind::Nodes));
        for n in names {
            app.on_cluster(ClusterEvent::Node(NodeInfo::bare(n, "v1.33.6+k3s1")));
        }
        app
    }

    #[test]
    fn the_full_log_opens_with_l_keeps_j_k_for_itself_and_closes_with_esc() {
        let mut app = app_with_nodes(&["a", "b"]);
        assert!(app.on_key(key('L')));
        assert_eq!(app.page, Page::Log);
        // j pages the log; the node selection stays.
        assert!(app.on_key(key('j')));
        assert_eq!((app.page.clone(), app.selected), (Page::Log, 0));
        assert!(app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
        assert_eq!(app.page, Page::Nodes);
        assert!(app.on_key(key('j')));
        assert_eq!(app.selected, 1);
    }

    #[test]
    fn mutating_keys_are_refused_in_read_only_mode() {
        let mut app = app_with_nodes(&["a"]);
        for c in ['c', 'u', 'd', 'R'] {
            app.flash = None;
            assert!(app.on_key(key(c)));
            let (text, _) = app.flash.clone().unwrap();
            assert!(text.starts_with("read-only"), "{c}: {text}");
        }
    }

    #[test]
    fn report_key_asks_for_the_report_even_read_only() {
        let mut app = app_with_nodes(&["a"]);
        assert!(app.read_only);
        app.on_key(key('W'));
        assert_eq!(app.requests, vec![Request::WriteReport]);
    }

    #[test]
    fn navigation_and_filter() {
        let mut app = app_with_nodes(&["alpha", "beta", "gamma"]);
        app.on_key(key('j'));
        app.on_key(key('j'));
        app.on_key(key('j'));
        assert_eq!(app.selected_node().as_deref(), Some("gamma"));
        app.on_key(key('/'));
        for c in "bet".chars() {
            app.on_key(key(c));
        }
        app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        assert_eq!(app.visible_nodes(), vec!["beta"]);
        assert_eq!(app.visible_count(), 1);
        app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
        assert_eq!(app.page, Page::Detail("beta".into()));
        app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        assert_eq!(app.page, Page::Nodes);
        app.on_key(key('q'));
        assert!(app.quit);
    }

    fn control_app() -> App {
        let mut app = app_with_nodes(&["A", "B"]);
        app.read_only = false;
        let engine = crate::upgrade::Engine::new(crate::upgrade::testkit::abc());
        app.rollout = Some(engine.view(app.now));
        app
    }

    #[test]
    fn quitting_a_moving_rollout_asks_first() {
        let mut app = control_app();
        app.on_key(key('q'));
        assert!(app.quit, "an idle rollout quits at once");

        let mut app = control_app();
        let mut view = app.rollout.clone().unwrap();
        view.state = RolloutState::Running;
        view.current = Some("A".into());
        app.rollout = Some(view);
        app.on_key(key('q'));
        assert!(!app.quit);
        let question = app.confirm.clone().unwrap().question;
        assert!(
            question.starts_with("the rollout is running at A: quit"),
            "{question}"
        );
        app.on_key(key('y'));
        assert_eq!(app.requests, vec![Request::Quit]);
    }

    #[test]
    fn destructive_rollout_keys_ask_first_and_only_y_confirms() {
        let mut app = control_app();
        app.on_key(key('s'));
        assert!(app.requests.is_empty());
        let question = app.confirm.clone().unwrap().question;
        assert!(question.starts_with("start?"), "{question}");
        app.on_key(key('y'));
        assert_eq!(app.requests, vec![Request::Engine(Command::Start)]);
        assert!(app.confirm.is_none());

        app.requests.clear();
        app.on_key(key('B'));
        app.on_key(key('n'));
        assert!(app.requests.is_empty());
        assert_eq!(app.flash.clone().unwrap().0, "cancelled");
    }

    /// When the rollback needs the datastore restore, B asks once for the
    /// whole restore, saying that the cluster goes down; y sends it.
    #[test]
    fn b_asks_once_for_the_whole_cluster_restore_when_one_is_needed() {
        let mut app = control_app();
        let mut view = app.rollout.clone().unwrap();
        view.needs_datastore_restore = true;
        view.restore_plan = vec![
            "1. A: stop K3s".into(),
            format!(
                "2. A: k3s server --cluster-reset --cluster-reset-restore-path=/var/lib/rancher/k3s/server/db/snapshots/{}",
                "x".repeat(90)
            ),
            "3. B: rm -rf /var/lib/rancher/k3s/server/db".into(),
        ];
        app.rollout = Some(view);
        app.on_key(key('B'));
        let question = app.confirm.clone().unwrap().question;
        assert!(question.contains("CLUSTER RESTORE"), "{question}");
        assert!(
            question.ends_with("y = yes, any other key = no"),
            "{question}"
        );
        // The steps are on screen while the question is asked.
        let mut terminal =
            ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
        terminal
            .draw(|f| crate::tui::view::render(&app, f))
            .unwrap();
        let screen = format!("{}", terminal.backend());
        for wanted in [
            "Roll back by restoring the etcd snapshot?",
            "the cluster and its services are down until the first server is back",
            "  1. A: stop K3s",
            "  2. A: k3s server --cluster-reset",
            "  3. B: rm -rf /var/lib/rancher/k3s/server/db",
            "y runs the whole restore",
        ] {
            assert!(screen.contains(wanted), "{wanted}:\n{screen}");
        }
        app.on_key(key('y'));
        assert_eq!(app.requests, vec![Request::Engine(Command::ClusterRestore)]);
    }

    #[test]
    fn node_keys_act_on_the_selected_node_and_pause_needs_no_confirmation() {
        let mut app = control_app();
        app.on_key(key('j'));
        app.on_key(key('R'));
        let question = app.confirm.clone().unwrap().question;
        assert!(question.starts_with("restart K3s B?"), "{question}");
        app.on_key(key('Y'));
        assert_eq!(
            app.requests,
            vec![Request::Manual(Manual::RestartK3s, "B".into())]
        );
        app.requests.clear();
        app.on_key(key('p'));
        assert_eq!(app.requests, vec![Request::Engine(Command::Pause)]);
    }

    #[test]
    fn rollout_keys_outside_control_mode_explain_where_they_work() {
        let mut app = app_with_nodes(&["a"]);
        app.read_only = false;
        app.on_key(key('s'));
        assert!(app.requests.is_empty() && app.confirm.is_none());
        assert!(app.flash.clone().unwrap().0.contains("control mode"));
    }
}
