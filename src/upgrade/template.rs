//! Command templates with `{placeholder}` substitution.
//!
//! Plans carry shell commands written by the operator, and shell text is full
//! of braces (`${VAR}`, `{a,b}`), so the rule is narrow on purpose: only
//! `{word}` with a lowercase ASCII word and not preceded by `$` is a
//! placeholder. Every placeholder must be one the template knows, so a typo
//! such as `{verison}` is a plan error at load time instead of a literal
//! `{verison}` sent to forty nodes.

/// Placeholders in `template` as (byte offset of `{`, name).
pub fn placeholders(template: &str) -> Vec<(usize, &str)> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let name_len = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase() || **b == b'_')
                .count();
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

/// Checks that every placeholder in `template` is in `allowed`; the error
/// carries the byte offset of the offending placeholder.
pub fn validate(template: &str, allowed: &[&str]) -> Result<(), (usize, String)> {
    for (offset, name) in placeholders(template) {
        if !allowed.contains(&name) {
            let known: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
            return Err((
                offset,
                format!(
                    "unknown placeholder {{{name}}}; this command knows {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Replaces each known placeholder with its value; unknown ones stay as
/// written (plans are validated at load time, so none are left by then).
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for (offset, name) in placeholders(template) {
        if let Some((_, value)) = values.iter().find(|(k, _)| *k == name) {
            out.push_str(&template[last..offset]);
            out.push_str(value);
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
}
