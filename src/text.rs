//! Text from the cluster (or from a journal written from it), made safe to
//! show on a terminal or in a file someone will `cat`.
//!
//! Any string an API server hands over can hold bytes a terminal acts on
//! instead of showing: ESC starts an escape sequence (`ESC]0;title BEL`
//! retitles the window, others move the cursor or rewrite the screen), CR
//! overwrites the line, and C1 controls such as CSI do the same on terminals
//! that honour 8-bit controls. ratatui drops them when it draws a cell; every
//! other path (the report, the log file) goes through [`printable`].

use std::borrow::Cow;

/// `s` on one line with no control characters: tabs and line breaks become
/// spaces (they separate words), every other C0 control, DEL and every C1
/// control is dropped. Borrowed when there was nothing to change.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .filter_map(|c| match c {
                '\t' | '\n' | '\r' => Some(' '),
                c if c.is_control() => None,
                c => Some(c),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_dropped_and_breaks_become_spaces() {
        assert_eq!(
            printable("Kubelet\u{1b}]0;evil\u{7}Stopped"),
            "Kubelet]0;evilStopped"
        );
        assert_eq!(printable("a\u{9b}31mb\u{7f}c\u{0}"), "a31mbc");
        assert_eq!(printable("two\nlines\r\tand tab"), "two lines  and tab");
        assert!(matches!(
            printable("plain ✓ text"),
            Cow::Borrowed("plain ✓ text")
        ));
    }
}
