//! List/watch query parameters as kube-rs and kubectl send them, and the
//! label/field selectors they carry.

use std::collections::HashMap;

use serde_json::Value;

use super::store::Kind;

/// Parsed query string. kube-rs starts query strings with `?&`, so empty
/// pairs are skipped rather than rejected.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub watch: bool,
    pub resource_version: Option<u64>,
    pub timeout_seconds: Option<u64>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub label_selector: Option<Selector>,
    pub field_selector: Option<Selector>,
}

impl ListQuery {
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut q = ListQuery::default();
        let pairs: HashMap<String, String> = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        q.watch = pairs.get("watch").is_some_and(|v| v == "true" || v == "1");
        q.bookmarks = pairs
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
        q.send_initial_events = pairs.get("sendInitialEvents").is_some_and(|v| v == "true");
        if let Some(rv) = pairs.get("resourceVersion").filter(|v| !v.is_empty()) {
            q.resource_version = Some(
                rv.parse()
                    .map_err(|_| format!("invalid resourceVersion {rv:?}"))?,
            );
        }
        if let Some(t) = pairs.get("timeoutSeconds") {
            q.timeout_seconds = Some(
                t.parse()
                    .map_err(|_| format!("invalid timeoutSeconds {t:?}"))?,
            );
        }
        if let Some(s) = pairs.get("labelSelector").filter(|v| !v.is_empty()) {
            q.label_selector = Some(Selector::parse(s, SelectorKind::Label)?);
        }
        if let Some(s) = pairs.get("fieldSelector").filter(|v| !v.is_empty()) {
            q.field_selector = Some(Selector::parse(s, SelectorKind::Field)?);
        }
        Ok(q)
    }

    /// Refuses a field selector on a field `kind` cannot be selected by, as
    /// the API server's field label conversion does (`field label not
    /// supported: F`, a 400).
    pub fn check_fields(self, kind: Kind) -> Result<Self, String> {
        if let Some(unsupported) = self
            .field_selector
            .iter()
            .flat_map(Selector::keys)
            .find(|k| !super::schema::selectable(kind, k))
        {
            return Err(format!("field label not supported: {unsupported}"));
        }
        Ok(self)
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.label_selector
            .as_ref()
            .is_none_or(|s| s.matches(object))
            && self
                .field_selector
                .as_ref()
                .is_none_or(|s| s.matches(object))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    Label,
    Field,
}

#[derive(Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug)]
pub struct Selector {
    kind: SelectorKind,
    requirements: Vec<Requirement>,
}

impl Selector {
    pub fn parse(text: &str, kind: SelectorKind) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, set)) = term.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), parse_set(set)?)
            } else if let Some((k, set)) = term.split_once(" in ") {
                Requirement::In(k.trim().into(), parse_set(set)?)
            } else if kind == SelectorKind::Label {
                match term.strip_prefix('!') {
                    Some(k) => Requirement::NotExists(k.trim().into()),
                    None => Requirement::Exists(term.into()),
                }
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            };
            if kind == SelectorKind::Label {
                check_label_requirement(&req)?;
            }
            requirements.push(req);
        }
        Ok(Selector { kind, requirements })
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| match r {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::NotExists(k) => k.as_str(),
        })
    }

    fn value<'a>(&self, object: &'a Value, key: &str) -> Option<&'a str> {
        match self.kind {
            SelectorKind::Label => object["metadata"]["labels"][key].as_str(),
            SelectorKind::Field => {
                let mut v = object;
                for part in key.split('.') {
                    v = v.get(part)?;
                }
                v.as_str()
            }
        }
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, want) => self.value(object, k).unwrap_or("") == want,
            Requirement::NotEquals(k, want) => self.value(object, k).unwrap_or("") != want,
            Requirement::In(k, set) => self
                .value(object, k)
                .is_some_and(|v| set.iter().any(|s| s == v)),
            Requirement::NotIn(k, set) => self
                .value(object, k)
                .is_none_or(|v| !set.iter().any(|s| s == v)),
            Requirement::Exists(k) => self.value(object, k).is_some(),
            Requirement::NotExists(k) => self.value(object, k).is_none(),
        })
    }
}

/// Label keys and values as `labels.Parse` validates them: a key is an
/// optional DNS-subdomain prefix and `/`, then a name; a name or a value is
/// at most 63 alphanumerics, `-`, `_` and `.`, beginning and ending with an
/// alphanumeric (a value may be empty).
fn check_label_requirement(req: &Requirement) -> Result<(), String> {
    let (key, values): (&str, &[String]) = match req {
        Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, std::slice::from_ref(v)),
        Requirement::In(k, set) | Requirement::NotIn(k, set) => (k, set),
        Requirement::Exists(k) | Requirement::NotExists(k) => (k, &[]),
    };
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let prefix_ok = prefix.is_empty() && !key.contains('/')
        || prefix.len() <= 253
            && !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !prefix_ok || name.is_empty() || !label_word(name) {
        return Err(format!(
            "unable to parse requirement: invalid label key {key:?}: a qualified name is an optional DNS subdomain prefix and '/', then at most 63 alphanumeric characters, '-', '_' or '.', beginning and ending with an alphanumeric"
        ));
    }
    match values.iter().find(|v| !v.is_empty() && !label_word(v)) {
        Some(v) => Err(format!(
            "unable to parse requirement: invalid label value {v:?}: at most 63 alphanumeric characters, '-', '_' or '.', beginning and ending with an alphanumeric"
        )),
        None => Ok(()),
    }
}

fn label_word(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Splits on commas that are not inside a `(...)` set.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("invalid set {text:?}"))?;
    Ok(inner.split(',').map(|s| s.trim().to_string()).collect())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kube_rs_query_with_leading_ampersand() {
        let q = ListQuery::parse(Some(
            "&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=42",
        ))
        .unwrap();
        assert!(q.watch && q.bookmarks);
        assert_eq!(q.resource_version, Some(42));
        assert_eq!(q.timeout_seconds, Some(290));
    }

    #[test]
    fn field_selector_as_kubectl_drain_sends_it() {
        let q = ListQuery::parse(Some("fieldSelector=spec.nodeName%3Dnode-a")).unwrap();
        assert!(q.matches(&json!({"spec": {"nodeName": "node-a"}})));
        assert!(!q.matches(&json!({"spec": {"nodeName": "node-b"}})));
    }

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "frigate", "tier": "web"}}});
        let sel = |s| Selector::parse(s, SelectorKind::Label).unwrap();
        assert!(sel("app=frigate,tier").matches(&obj));
        assert!(sel("app in (x,frigate)").matches(&obj));
        assert!(!sel("app notin (frigate)").matches(&obj));
        assert!(!sel("!tier").matches(&obj));
        assert!(sel("app!=other").matches(&obj));
    }

    #[test]
    fn malformed_label_selectors_and_unsupported_fields_are_refused() {
        for bad in [
            "a b=c",
            "app=has space",
            "x/y/z",
            "Bad.Prefix/app",
            "app in (x y)",
            "=v",
        ] {
            assert!(
                Selector::parse(bad, SelectorKind::Label).is_err(),
                "{bad:?} accepted"
            );
        }
        for good in [
            "app",
            "!app",
            "k8s.io/role=",
            "app.kubernetes.io/name in (a,b-c)",
        ] {
            assert!(
                Selector::parse(good, SelectorKind::Label).is_ok(),
                "{good:?}"
            );
        }
        let q = |s| ListQuery::parse(Some(s)).unwrap();
        assert!(
            q("fieldSelector=spec.nodeName%3Dn")
                .check_fields(Kind::Pod)
                .is_ok()
        );
        let e = q("fieldSelector=spec.nodeName%3Dn").check_fields(Kind::Node);
        assert_eq!(e.unwrap_err(), "field label not supported: spec.nodeName");
    }

    #[test]
    fn bad_resource_version_is_an_error() {
        assert!(ListQuery::parse(Some("resourceVersion=abc")).is_err());
    }
}
