//! Cockpit state and its update function: pure, so every key and every
//! cluster event can be tested without a terminal.

use crossterm::event::{KeyCode, KeyEvent};
use jiff::Timestamp;

use super::keymap::{self, Action};
use crate::model::{ClusterEvent, Fleet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Nodes,
    Detail(String),
    Help,
}

/// Which widget draws the log panel: tui-logger in the real terminal, the
/// model's own timeline where output must be deterministic (snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogPanel {
    TuiLogger,
    Timeline,
}

pub struct App {
    pub fleet: Fleet,
    pub screen: Screen,
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
    pub color: bool,
    /// Zone for clocks on screen (the operator's; tests pin UTC).
    pub tz: jiff::tz::TimeZone,
}

const FLASH_SECONDS: i64 = 5;

impl App {
    pub fn new(context: &str, server: &str, read_only: bool, now: Timestamp) -> Self {
        App {
            fleet: Fleet::new(),
            screen: Screen::Nodes,
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
            log_panel: LogPanel::TuiLogger,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            tz: jiff::tz::TimeZone::system(),
        }
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
        self.now = now;
        self.fleet.tick(now);
        if self
            .flash
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at).as_secs() >= FLASH_SECONDS)
        {
            self.flash = None;
        }
    }

    fn say(&mut self, text: String) {
        self.flash = Some((text, self.now));
    }

    /// Handles one key. Returns true when the screen must be redrawn.
    pub fn on_key(&mut self, key: KeyEvent) -> bool {
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
        let count = self.visible_nodes().len();
        match binding.action {
            Action::Down if count > 0 => self.selected = (self.selected + 1).min(count - 1),
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Top => self.selected = 0,
            Action::Bottom => self.selected = count.saturating_sub(1),
            Action::Detail => {
                if let Some(node) = self.selected_node() {
                    self.screen = Screen::Detail(node);
                }
            }
            Action::Back => {
                if self.screen == Screen::Nodes {
                    self.filter.clear();
                }
                self.screen = Screen::Nodes;
            }
            Action::Filter => {
                self.screen = Screen::Nodes;
                self.editing_filter = true;
            }
            Action::Help => {
                self.screen = if self.screen == Screen::Help {
                    Screen::Nodes
                } else {
                    Screen::Help
                };
            }
            Action::Quit => self.quit = true,
            Action::Down => {}
            Action::Cordon | Action::Uncordon | Action::Drain | Action::RestartK3s => {
                self.say(format!(
                    "\"{}\" is available in `k3s-cockpit upgrade` (control mode)",
                    binding.help
                ));
            }
        }
        true
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
            app.on_cluster(ClusterEvent::Node(NodeInfo {
                name: n.to_string(),
                roles: vec![],
                version: "v1.33.6+k3s1".into(),
                unschedulable: false,
                taints: vec![],
                conditions: vec![],
                boot_id: String::new(),
            }));
        }
        app
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
        assert_eq!(app.screen, Screen::Detail("beta".into()));
        app.on_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
        assert_eq!(app.screen, Screen::Nodes);
        app.on_key(key('q'));
        assert!(app.quit);
    }
}
