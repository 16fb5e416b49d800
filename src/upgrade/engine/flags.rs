//! The flag check: a node's K3s arguments (`k3s.io/node-args`) before and
//! after its upgrade, compared flag by flag. An upgrade must not change
//! how K3s runs; a lost `--disable servicelb` hands MetalLB's services to
//! K3s's own load balancer.

/// `--flag value`, `--flag=value` and bare `--flag` as (flag, value); the
/// command (`server`/`agent`) and other words as (word, "").
fn items(args: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if !a.starts_with('-') {
            out.push((a.clone(), String::new()));
            continue;
        }
        if let Some((flag, value)) = a.split_once('=') {
            out.push((flag.to_string(), value.to_string()));
        } else if i < args.len() && !args[i].starts_with('-') {
            out.push((a.clone(), args[i].clone()));
            i += 1;
        } else {
            out.push((a.clone(), String::new()));
        }
    }
    out
}

fn show((flag, value): &(String, String)) -> String {
    if value.is_empty() {
        flag.clone()
    } else {
        format!("{flag} {value}")
    }
}

/// What differs between `before` and `after`, in words, or None when the
/// node runs with the same arguments.
pub fn changed(before: &[String], after: &[String]) -> Option<String> {
    let (mut lost, mut gained) = (items(before), items(after));
    let common: Vec<(String, String)> = lost
        .iter()
        .filter(|x| gained.contains(x))
        .cloned()
        .collect();
    for c in &common {
        if let Some(p) = lost.iter().position(|x| x == c) {
            lost.remove(p);
        }
        if let Some(p) = gained.iter().position(|x| x == c) {
            gained.remove(p);
        }
    }
    let list = |v: &[(String, String)]| v.iter().map(show).collect::<Vec<_>>().join(", ");
    match (lost.is_empty(), gained.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!("lost {}", list(&lost))),
        (true, false) => Some(format!("gained {}", list(&gained))),
        (false, false) => Some(format!("lost {}; gained {}", list(&lost), list(&gained))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_lost_and_gained_flags() {
        let before = a(&[
            "server",
            "--disable",
            "servicelb",
            "--tls-san=k3s.lan",
            "--cluster-init",
        ]);
        assert_eq!(changed(&before, &before), None);
        assert_eq!(
            changed(&before, &a(&["server"])).as_deref(),
            Some("lost --disable servicelb, --tls-san k3s.lan, --cluster-init")
        );
        assert_eq!(
            changed(
                &a(&["agent", "--node-ip", "10.0.0.5"]),
                &a(&["agent", "--node-ip", "10.0.0.6"])
            )
            .as_deref(),
            Some("lost --node-ip 10.0.0.5; gained --node-ip 10.0.0.6")
        );
    }
}
