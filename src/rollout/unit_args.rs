//! The arguments K3s is started with, as the unit file says. install.sh
//! writes them into `ExecStart` one quoted word per continuation line
//! (k3s-io/k3s install.sh, `create_systemd_service_file`); `systemctl cat`
//! prints the unit and any drop-ins, where a later `ExecStart=` replaces
//! the earlier one. Comparing them before and after an install catches a
//! rewrite that drops a flag before K3s is restarted with it.

use crate::remote::quote::shell_split;

/// The words after the binary in the effective `ExecStart` of `systemctl
/// cat` output (`server --disable servicelb ...`); None without one.
pub fn exec_start_args(unit: &str) -> Option<Vec<String>> {
    let mut last = None;
    let mut lines = unit.lines();
    while let Some(line) = lines.next() {
        let Some(first) = line.trim_start().strip_prefix("ExecStart=") else {
            continue;
        };
        let mut text = String::new();
        let mut current = first.to_string();
        loop {
            match current.trim_end().strip_suffix('\\') {
                Some(head) => {
                    text.push_str(head);
                    text.push(' ');
                    current = lines.next().unwrap_or_default().to_string();
                }
                None => {
                    text.push_str(&current);
                    break;
                }
            }
        }
        // `ExecStart=` alone resets the list (a drop-in's first line).
        let words = shell_split(text.trim()).ok()?;
        last = (!words.is_empty()).then(|| words[1..].to_vec());
    }
    last
}

/// What changed between two argument lists, in words for a halt:
/// `lost --disable servicelb; gained --flannel-iface eth1`.
pub fn describe_change(before: &[String], after: &[String]) -> Option<String> {
    if before == after {
        return None;
    }
    let lost = pairs(before, after);
    let gained = pairs(after, before);
    let mut parts = Vec::new();
    if !lost.is_empty() {
        parts.push(format!("lost {}", lost.join(", ")));
    }
    if !gained.is_empty() {
        parts.push(format!("gained {}", gained.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!("reordered: {}", after.join(" ")));
    }
    Some(parts.join("; "))
}

/// Flags (with their values) in `before` that `after` no longer has.
pub fn lost(before: &[String], after: &[String]) -> Vec<String> {
    pairs(before, after)
}

/// Flags (with their value, when the next word is not a flag) in `a` and
/// not in `b`.
fn pairs(a: &[String], b: &[String]) -> Vec<String> {
    let group = |words: &[String]| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for w in words {
            match out.last_mut() {
                Some(last)
                    if last.starts_with('-') && !last.contains(' ') && !w.starts_with('-') =>
                {
                    last.push(' ');
                    last.push_str(w);
                }
                _ => out.push(w.clone()),
            }
        }
        out
    };
    let theirs = group(b);
    group(a)
        .into_iter()
        .filter(|f| !theirs.contains(f))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const UNIT: &str = "# /etc/systemd/system/k3s.service\n[Service]\nType=notify\n\
        ExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--disable' \\\n\t'servicelb' \\\n\t'--tls-san' \\\n\t'nas.lan' \\\n\n";

    fn words(s: &[&str]) -> Vec<String> {
        s.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn reads_install_sh_style_exec_start() {
        assert_eq!(
            exec_start_args(UNIT).unwrap(),
            words(&["server", "--disable", "servicelb", "--tls-san", "nas.lan"])
        );
        assert_eq!(exec_start_args("[Service]\nType=notify\n"), None);
    }

    #[test]
    fn a_drop_in_replaces_the_exec_start() {
        let unit = format!(
            "{UNIT}# /etc/systemd/system/k3s.service.d/override.conf\n[Service]\nExecStart=\nExecStart=/usr/local/bin/k3s server --node-ip 10.0.0.5\n"
        );
        assert_eq!(
            exec_start_args(&unit).unwrap(),
            words(&["server", "--node-ip", "10.0.0.5"])
        );
    }

    #[test]
    fn names_lost_and_gained_flags_with_their_values() {
        let before = words(&["server", "--disable", "servicelb", "--tls-san", "nas.lan"]);
        let after = words(&[
            "server",
            "--tls-san",
            "nas.lan",
            "--write-kubeconfig-mode",
            "644",
        ]);
        assert_eq!(
            describe_change(&before, &after).unwrap(),
            "lost --disable servicelb; gained --write-kubeconfig-mode 644"
        );
        assert_eq!(describe_change(&before, &before), None);
        assert_eq!(lost(&before, &after), ["--disable servicelb"]);
    }
}
