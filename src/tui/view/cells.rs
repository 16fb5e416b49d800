//! Fitting values into table cells: whole, or visibly cut.

use ratatui::text::Span;

/// Display width of `s` in terminal columns.
fn width_of(s: &str) -> usize {
    Span::raw(s).width()
}

/// `value` in at most `width` columns: whole, or cut with a trailing `…` so
/// the cut shows (a version or an address cut silently reads as another one).
pub(super) fn ellipsize(value: &str, width: usize) -> String {
    if width_of(value) <= width {
        return value.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in value.chars() {
        let w = width_of(c.encode_utf8(&mut [0; 4]));
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// `values` joined by `sep` in at most `width` columns, by whole values: as
/// many as fit in order, then ` +N` for the rest (`192.168.4.80 +1`); else
/// the first value that fits alone beside its ` +N`. Only when none does is
/// a value cut, with [`ellipsize`]'s `…`.
pub(super) fn fit_list<S: AsRef<str>>(values: &[S], sep: &str, width: usize) -> String {
    let values: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
    let more = |shown: usize| match values.len() - shown {
        0 => String::new(),
        n => format!(" +{n}"),
    };
    let fits = |text: &String| width_of(text) <= width;
    let prefix = (1..=values.len())
        .rev()
        .map(|shown| values[..shown].join(sep) + &more(shown))
        .find(fits);
    let single = || values.iter().map(|v| format!("{v}{}", more(1))).find(fits);
    prefix
        .or_else(single)
        .unwrap_or_else(|| match values.first() {
            None => String::new(),
            Some(first) => {
                let more = more(1);
                ellipsize(first, width.saturating_sub(width_of(&more))) + &more
            }
        })
}

/// Columns for a list of LoadBalancer IPs: the longest IPv4 address, or a
/// 12-character one and `+1`.
pub(super) const IPS_WIDTH: u16 = 15;
