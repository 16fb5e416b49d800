//! Command templates with `{placeholder}` substitution.
//!
//! Plans carry shell commands written by the operator, and shell text is full
//! of braces (`${VAR}`, `{a,b}`), so the rule is narrow on purpose: only
//! `{word}` with a lowercase ASCII word and not preceded by `$` is a
//! placeholder. Every placeholder must be one the template knows, so a typo
//! such as `{verison}` is a plan error at load time instead of a literal
//! `{verison}` sent to forty nodes; an unclosed `{service` is refused the same
//! way.
//!
//! Values are data (a node name is whatever the API server says), so each is
//! shell-quoted for the spot it lands in, see [`quote_at`].

use crate::remote::quote::quote_at;

/// Placeholders in `template` as (byte offset of `{`, name).
pub fn placeholders(template: &str) -> Vec<(usize, &str)> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let name_len = name_len(&template[i + 1..]);
            let close = i + 1 + name_len;
            if name_len > 0 && bytes.get(close) == Some(&b'}') {
                out.push((i, &template[i + 1..close]));
                i = close + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Length of the placeholder-name characters `rest` starts with.
fn name_len(rest: &str) -> usize {
    rest.bytes()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
        .count()
}

/// Checks that every `{` is closed and every placeholder in `template` is in
/// `allowed`; the error carries the byte offset of the offending `{` and a
/// message quoting the template.
pub fn validate(template: &str, allowed: &[&str]) -> Result<(), (usize, String)> {
    if let Some(offset) = unclosed(template, allowed) {
        let opened = opening_word(template, offset);
        return Err((
            offset,
            format!(
                "{opened:?} is never closed in {template:?} (a placeholder is written {{name}})"
            ),
        ));
    }
    for (offset, name) in placeholders(template) {
        if !allowed.contains(&name) {
            let known: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
            return Err((
                offset,
                format!(
                    "unknown placeholder {{{name}}} in {template:?}; this command knows {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The offset of the first `{` that is not closed: a known placeholder name
/// not followed by `}` (`{service ...`), or a brace with no partner at all.
/// Shell braces (`${HOME}`, `{a,b}`, `f() { :; }`) are balanced and pass.
fn unclosed(template: &str, allowed: &[&str]) -> Option<usize> {
    let mut open = Vec::new();
    for (i, b) in template.bytes().enumerate() {
        match b {
            b'{' if opens_unclosed_placeholder(&template[i + 1..], allowed) => return Some(i),
            b'{' => open.push(i),
            b'}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.first().copied()
}

/// True when `rest`, the text after a `{`, starts with a known placeholder
/// name that is not closed right after it.
fn opens_unclosed_placeholder(rest: &str, allowed: &[&str]) -> bool {
    let len = name_len(rest);
    len > 0 && allowed.contains(&&rest[..len]) && !rest[len..].starts_with('}')
}

/// The `{` at `offset` and the name after it, for messages.
fn opening_word(template: &str, offset: usize) -> &str {
    &template[offset..offset + 1 + name_len(&template[offset + 1..])]
}

/// Replaces each known placeholder with its value, shell-quoted for the
/// quoting the template has open at that spot ([`quote_at`]); unknown ones
/// stay as written (plans are validated at load time, so none are left by
/// then).
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for (offset, name) in placeholders(template) {
        if let Some((_, value)) = values.iter().find(|(k, _)| *k == name) {
            out.push_str(&template[last..offset]);
            let quoted = quote_at(&out, value);
            out.push_str(&quoted);
            last = offset + name.len() + 2;
        }
    }
    out.push_str(&template[last..]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_plain_placeholders() {
        let t = "a {version} ${HOME} ${x} {a,b} {} {Upper} {service}";
        let names: Vec<&str> = placeholders(t).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["version", "service"]);
    }

    #[test]
    fn renders_and_leaves_shell_braces_alone() {
        let t = "X={version} sh -c 'echo ${HOME}' {service}";
        assert_eq!(
            render(t, &[("version", "v1.34.3+k3s1"), ("service", "k3s")]),
            "X=v1.34.3+k3s1 sh -c 'echo ${HOME}' k3s"
        );
    }

    #[test]
    fn validate_reports_offset_of_unknown() {
        let err = validate("systemctl restart {servce}", &["service"]).unwrap_err();
        assert_eq!(err.0, 18);
        assert!(err.1.contains("{servce}"), "{}", err.1);
        assert!(validate("systemctl restart {service}", &["service"]).is_ok());
    }

    #[test]
    fn validate_refuses_unclosed_braces() {
        let err = validate("systemctl restart {service", &["service"]).unwrap_err();
        assert_eq!(err.0, 18);
        assert!(err.1.contains(r#""{service" is never closed"#), "{}", err.1);
        assert!(err.1.contains("systemctl restart {service"), "{}", err.1);
        let err = validate("echo {service ${HOME}", &["service"]).unwrap_err();
        assert_eq!(err.0, 5, "{}", err.1);
        let err = validate("echo { x", &["service"]).unwrap_err();
        assert_eq!(err.0, 5, "{}", err.1);
        for ok in [
            "echo ${HOME} {a,b} {service}",
            "awk '{print $1}'",
            "f() { :; }",
        ] {
            assert!(validate(ok, &["service"]).is_ok(), "{ok}");
        }
    }

    #[test]
    fn values_are_quoted_for_their_spot() {
        let v = [("node", "a$(id) b")];
        assert_eq!(render("echo {node}", &v), "echo 'a$(id) b'");
        assert_eq!(
            render("sh -c 'echo {node}'", &v),
            r#"sh -c 'echo '\''a$(id) b'\'''"#
        );
        assert_eq!(render(r#"echo "{node}""#, &v), r#"echo "'a\$(id) b'""#);
        assert_eq!(
            render("echo {node}", &[("node", "fun-bedbug")]),
            "echo fun-bedbug"
        );
    }
}
