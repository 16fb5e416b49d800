//! The one keymap table: key handling and the help overlay both read it, so
//! the help can never drift from what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Down,
    Up,
    Top,
    Bottom,
    Detail,
    Back,
    Filter,
    Help,
    Log,
    Quit,
    WriteReport,
    Cordon,
    Uncordon,
    Drain,
    RestartK3s,
    Start,
    Canary,
    AcceptCanary,
    PauseResume,
    Step,
    Abort,
    Retry,
    Skip,
    Rollback,
    EndFinalWatch,
}

pub struct Binding {
    pub keys: &'static str,
    pub codes: &'static [KeyCode],
    pub action: KeyAction,
    pub help: &'static str,
    /// Changes the cluster: refused in read-only mode.
    pub mutating: bool,
    /// Asks "are you sure?" first.
    pub confirm: bool,
}

const fn bind(
    keys: &'static str,
    codes: &'static [KeyCode],
    action: KeyAction,
    help: &'static str,
    mutating: bool,
) -> Binding {
    Binding {
        keys,
        codes,
        action,
        help,
        mutating,
        confirm: false,
    }
}

/// A mutating binding that asks for confirmation.
const fn guarded(
    keys: &'static str,
    code: &'static [KeyCode],
    action: KeyAction,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        codes: code,
        action,
        help,
        mutating: true,
        confirm: true,
    }
}

pub const KEYMAP: &[Binding] = &[
    bind(
        "j ↓",
        &[KeyCode::Char('j'), KeyCode::Down],
        KeyAction::Down,
        "next node",
        false,
    ),
    bind(
        "k ↑",
        &[KeyCode::Char('k'), KeyCode::Up],
        KeyAction::Up,
        "previous node",
        false,
    ),
    bind(
        "g",
        &[KeyCode::Char('g'), KeyCode::Home],
        KeyAction::Top,
        "first node",
        false,
    ),
    bind(
        "G",
        &[KeyCode::Char('G'), KeyCode::End],
        KeyAction::Bottom,
        "last node",
        false,
    ),
    bind(
        "Enter",
        &[KeyCode::Enter],
        KeyAction::Detail,
        "node detail: conditions, lease, taints, events",
        false,
    ),
    bind(
        "Esc",
        &[KeyCode::Esc],
        KeyAction::Back,
        "back / clear filter",
        false,
    ),
    bind(
        "/",
        &[KeyCode::Char('/')],
        KeyAction::Filter,
        "filter nodes by name",
        false,
    ),
    bind(
        "?",
        &[KeyCode::Char('?')],
        KeyAction::Help,
        "this help",
        false,
    ),
    bind(
        "L",
        &[KeyCode::Char('L')],
        KeyAction::Log,
        "full log: every record, kube and SSH warnings too (j/k pages)",
        false,
    ),
    bind("q", &[KeyCode::Char('q')], KeyAction::Quit, "quit", false),
    bind(
        "W",
        &[KeyCode::Char('W')],
        KeyAction::WriteReport,
        "write this session's incident report (Markdown, beside the session journal)",
        false,
    ),
    guarded(
        "c",
        &[KeyCode::Char('c')],
        KeyAction::Cordon,
        "cordon the selected node",
    ),
    guarded(
        "u",
        &[KeyCode::Char('u')],
        KeyAction::Uncordon,
        "uncordon the selected node",
    ),
    guarded(
        "d",
        &[KeyCode::Char('d')],
        KeyAction::Drain,
        "drain the selected node",
    ),
    guarded(
        "R",
        &[KeyCode::Char('R')],
        KeyAction::RestartK3s,
        "restart K3s on the selected node",
    ),
    guarded(
        "s",
        &[KeyCode::Char('s')],
        KeyAction::Start,
        "start the rollout",
    ),
    guarded(
        "C",
        &[KeyCode::Char('C')],
        KeyAction::Canary,
        "canary: upgrade the first node only, soak it longer, then wait",
    ),
    guarded(
        "A",
        &[KeyCode::Char('A')],
        KeyAction::AcceptCanary,
        "accept the canary and continue with the other nodes",
    ),
    bind(
        "p",
        &[KeyCode::Char('p')],
        KeyAction::PauseResume,
        "pause at the next safe point / resume",
        true,
    ),
    bind(
        "n",
        &[KeyCode::Char('n')],
        KeyAction::Step,
        "step: one more node, then pause",
        true,
    ),
    bind(
        "r",
        &[KeyCode::Char('r')],
        KeyAction::Retry,
        "retry the failed phase",
        true,
    ),
    guarded(
        "S",
        &[KeyCode::Char('S')],
        KeyAction::Skip,
        "skip the selected node for the rest of the rollout",
    ),
    guarded(
        "X",
        &[KeyCode::Char('X')],
        KeyAction::Abort,
        "abort the rollout",
    ),
    guarded(
        "B",
        &[KeyCode::Char('B')],
        KeyAction::Rollback,
        "roll back upgraded nodes, newest first",
    ),
    guarded(
        "F",
        &[KeyCode::Char('F')],
        KeyAction::EndFinalWatch,
        "end the final stability watch now and call the rollout done",
    ),
];

pub fn lookup(key: &KeyEvent) -> Option<&'static Binding> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return None;
    }
    KEYMAP.iter().find(|b| b.codes.contains(&key.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        let mut seen = Vec::new();
        for b in KEYMAP {
            for c in b.codes {
                assert!(!seen.contains(c), "{c:?} bound twice");
                seen.push(*c);
            }
        }
    }
}
