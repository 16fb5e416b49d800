//! POSIX shell quoting, splitting and log redaction for remote commands.
//!
//! An SSH `exec` request carries one string that the remote login shell
//! parses, so every argument we build into a command must be quoted for a
//! POSIX `sh`. [`shell_quote`] does that; [`shell_split`] is its inverse for
//! the subset of shell syntax that quoting produces (used by the lab to parse
//! what a client sent); [`quote_at`] quotes a value for a given spot of a
//! command template; [`redact_command`] hides secret-looking environment
//! assignments before a command is logged.

use std::fmt;

/// Quote `s` so that a POSIX shell reads it back as exactly one word equal to `s`.
///
/// Words made only of characters that are never special (`A-Z a-z 0-9 _ @ % + = : , . / -`)
/// are returned unchanged; everything else is wrapped in single quotes, with each `'`
/// written as `'\''`. The empty string becomes `''`.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'@' | b'%' | b'+' | b'=' | b':' | b',' | b'.' | b'/' | b'-'
                )
        });
    if plain {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quote every word with [`shell_quote`] and join them with spaces.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The quoting a POSIX shell is in at some point of a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quoting {
    Bare,
    Single,
    Double,
}

/// Reads `text` as a shell would, up to its end: the quoting it ends in and
/// the decoded text of the word it ends in (quotes removed, escapes applied).
/// Covers the quoting rules only; `$(...)`, comments and here-documents are
/// read as plain text.
fn scan_last_word(text: &str) -> (Quoting, String) {
    let mut quoting = Quoting::Bare;
    let mut word = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quoting, c) {
            (Quoting::Single, '\'') | (Quoting::Double, '"') => quoting = Quoting::Bare,
            (Quoting::Double, '\\') => match chars.next() {
                Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                Some('\n') => {}
                Some(other) => {
                    word.push('\\');
                    word.push(other);
                }
                None => word.push('\\'),
            },
            (Quoting::Single | Quoting::Double, c) => word.push(c),
            (Quoting::Bare, '\'') => quoting = Quoting::Single,
            (Quoting::Bare, '"') => quoting = Quoting::Double,
            (Quoting::Bare, '\\') => word.extend(chars.next().filter(|c| *c != '\n')),
            (Quoting::Bare, c) if c.is_whitespace() || ";&|<>()".contains(c) => word.clear(),
            (Quoting::Bare, c) => word.push(c),
        }
    }
    (quoting, word)
}

/// Escapes `s` for the inside of a double-quoted string.
fn escape_double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Quote `value` for insertion right after `prefix`, a partial command line,
/// so that the shell reads it as literal text whatever quoting `prefix` left
/// open: bare, it is [`shell_quote`]d; inside `'...'` or `"..."` it is escaped
/// for that quoting.
///
/// A quoted string may itself be a script for a second shell (the default
/// install command is `sh -c '... INSTALL_K3S_VERSION="{version}" ...'`), and
/// nothing in the text says whether it is. So inside quotes the value is first
/// quoted for the shell that would read the string's content, then escaped
/// for the outer quoting: inert at every level. A value of plain characters
/// (the usual node names, versions and services) comes out unchanged; any
/// other value inside a string that is not a script shows its quotes, which is
/// harmless.
pub fn quote_at(prefix: &str, value: &str) -> String {
    let (quoting, word) = scan_last_word(prefix);
    match quoting {
        Quoting::Bare => shell_quote(value),
        Quoting::Single => quote_at(&word, value).replace('\'', "'\\''"),
        Quoting::Double => escape_double_quoted(&quote_at(&word, value)),
    }
}

/// Why [`shell_split`] could not split a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitError {
    /// A `'` or `"` quote was opened and never closed.
    UnterminatedQuote,
    /// The line ends with a lone backslash.
    TrailingBackslash,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitError::UnterminatedQuote => f.write_str("unterminated quote"),
            SplitError::TrailingBackslash => f.write_str("trailing backslash"),
        }
    }
}

impl std::error::Error for SplitError {}

/// Split a command line into words the way a POSIX shell would, for the quoting subset:
/// whitespace separates words; `'...'` is literal; `"..."` is literal except that `\`
/// escapes `"`, `\`, `$` and `` ` ``; outside quotes `\` escapes the next character.
/// No expansion of any kind is performed (`$VAR`, globs, `;` and `|` stay literal text).
pub fn shell_split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnterminatedQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(SplitError::UnterminatedQuote),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SplitError::UnterminatedQuote),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(SplitError::TrailingBackslash),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Hide the values of secret-looking environment assignments (`K3S_TOKEN=...`,
/// `*PASSWORD*=`, `*SECRET*=`, `*_KEY=`) and of `--token`/`--password` style flags,
/// so a command can be logged or journaled. Best effort: works on the text, keeps the
/// shape of the command.
pub fn redact_command(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let mut redact_next = false;
    // Inside a redacted value that opened a quote: swallow words until it closes.
    let mut skip_until: Option<char> = None;
    let mut first = true;
    for word in command.split(' ') {
        if let Some(q) = skip_until {
            if word.contains(q) {
                skip_until = None;
            }
            continue;
        }
        if !first {
            out.push(' ');
        }
        first = false;
        if redact_next && !word.is_empty() {
            out.push_str("***");
            redact_next = false;
            continue;
        }
        // A word may be prefixed by quotes or `export`-style syntax; look at the part
        // before '=' without leading quote characters.
        let trimmed = word.trim_start_matches(['\'', '"']);
        if let Some(eq) = trimmed.find('=') {
            let name = &trimmed[..eq];
            let flag_name = name.trim_start_matches('-');
            if is_secret_name(flag_name) {
                let prefix_len = word.len() - trimmed.len() + eq + 1;
                out.push_str(&word[..prefix_len]);
                out.push_str("***");
                skip_until = ['\'', '"']
                    .into_iter()
                    .find(|q| word.matches(*q).count() % 2 == 1);
                continue;
            }
        } else if word.starts_with("--") && is_secret_name(word.trim_start_matches('-')) {
            redact_next = true;
        }
        out.push_str(word);
    }
    out
}

fn is_secret_name(name: &str) -> bool {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return false;
    }
    let upper = name.to_ascii_uppercase().replace('-', "_");
    upper.contains("TOKEN")
        || upper.contains("PASSWORD")
        || upper.contains("PASSWD")
        || upper.contains("SECRET")
        || upper.ends_with("_KEY")
        || upper == "KEY"
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const NASTY: &[&str] = &[
        "",
        "plain",
        "with space",
        "it's",
        "''",
        "\"double\"",
        "$HOME `id` $(id) \\n",
        "a;b|c&d>e<f",
        "*?[x]~{a,b}",
        "tab\tnew\nline",
        "unicode ✓ é",
        "'\\''",
        "-n",
    ];

    #[test]
    fn plain_words_are_unchanged() {
        assert_eq!(shell_quote("v1.34.2+k3s1"), "v1.34.2+k3s1");
        assert_eq!(shell_quote("/usr/local/bin/k3s"), "/usr/local/bin/k3s");
        assert_eq!(
            shell_quote("INSTALL_K3S_VERSION=v1.34.2+k3s1"),
            "INSTALL_K3S_VERSION=v1.34.2+k3s1"
        );
    }

    #[test]
    fn special_words_are_single_quoted() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$x"), "'$x'");
    }

    #[test]
    fn split_inverts_quote() {
        for s in NASTY {
            assert_eq!(
                shell_split(&shell_quote(s)).unwrap(),
                vec![s.to_string()],
                "{s:?}"
            );
        }
        let joined = shell_join(NASTY);
        assert_eq!(shell_split(&joined).unwrap(), NASTY.to_vec());
    }

    #[test]
    fn split_handles_double_quotes_and_escapes() {
        assert_eq!(
            shell_split(r#"a "b c" d\ e "x\"y\\z\$" 'q'"r"s"#).unwrap(),
            vec!["a", "b c", "d e", "x\"y\\z$", "qrs"]
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_split("''").unwrap(), vec![""]);
        assert_eq!(
            shell_split("'abc").unwrap_err(),
            SplitError::UnterminatedQuote
        );
        assert_eq!(
            shell_split("abc\\").unwrap_err(),
            SplitError::TrailingBackslash
        );
    }

    /// The real proof: /bin/sh reads our quoting back as the original bytes.
    #[test]
    fn real_shell_reads_quoted_words_back() {
        for s in NASTY {
            let script = format!("printf '%s' {}", shell_quote(s));
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}");
            assert_eq!(String::from_utf8(out.stdout).unwrap(), *s, "{script}");
        }
        // Nested: a quoted command run by `sh -c`, itself quoted (the Proxmox case).
        let inner = format!("printf '%s|' {}", shell_join(NASTY));
        let outer = format!("sh -c {}", shell_quote(&inner));
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&outer)
            .output()
            .unwrap();
        let expected: String = NASTY.iter().map(|s| format!("{s}|")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    }

    fn sh_output(script: &str) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Renders `before VALUE after` with `quote_at` and runs it.
    fn run_at(before: &str, value: &str, after: &str) -> String {
        sh_output(&format!("{before}{}{after}", quote_at(before, value)))
    }

    #[test]
    fn plain_values_are_unchanged_in_any_quoting() {
        for before in ["echo ", "echo '", "echo \"", "sh -c 'echo \"", "x=a'b\"c"] {
            assert_eq!(quote_at(before, "v1.34.2+k3s1"), "v1.34.2+k3s1", "{before}");
        }
    }

    /// Each value reads back exactly when it is a word of the script that
    /// runs it: bare, or bare inside an `sh -c` script in either quoting.
    #[test]
    fn values_read_back_exactly_as_words_at_any_depth() {
        let contexts = [
            ("printf '%s|' ", ""),
            ("printf '%s|' x", "y"),
            ("sh -c 'printf \"%s|\" ", "'"),
            ("sh -c \"printf '%s|' ", "\""),
            ("sh -c 'sh -c \"printf %s\\| ", "\"'"),
        ];
        for (before, after) in contexts {
            for s in NASTY {
                let expected = if before.ends_with('x') {
                    format!("x{s}y|")
                } else {
                    format!("{s}|")
                };
                assert_eq!(run_at(before, s, after), expected, "{before}{s}{after}");
            }
        }
    }

    /// Inside a string that is not a script the value keeps its quotes, and
    /// nothing in it runs.
    #[test]
    fn values_inside_plain_strings_stay_inert() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let hostile = format!(
            "a$(touch {m})`touch {m}`;touch {m}'\"",
            m = marker.display()
        );
        for (before, after) in [("printf '%s' 'node ", "'"), ("printf '%s' \"node ", "\"")] {
            let out = run_at(before, &hostile, after);
            assert!(out.contains("touch"), "{out}");
            assert!(!marker.exists(), "{before}{hostile}{after} ran a command");
        }
    }

    #[test]
    fn redaction_hides_secrets_only() {
        assert_eq!(
            redact_command(
                "curl -sfL https://get.k3s.io | K3S_TOKEN=abc123 INSTALL_K3S_VERSION=v1.34.2+k3s1 sh -"
            ),
            "curl -sfL https://get.k3s.io | K3S_TOKEN=*** INSTALL_K3S_VERSION=v1.34.2+k3s1 sh -"
        );
        assert_eq!(
            redact_command("k3s server --token s3cr3t --foo"),
            "k3s server --token *** --foo"
        );
        assert_eq!(
            redact_command("x --agent-token=abc y"),
            "x --agent-token=*** y"
        );
        assert_eq!(redact_command("'DB_PASSWORD=x y' z"), "'DB_PASSWORD=*** z");
        assert_eq!(
            redact_command("systemctl restart k3s"),
            "systemctl restart k3s"
        );
        assert_eq!(redact_command("echo a=b"), "echo a=b");
    }
}
