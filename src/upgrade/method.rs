//! How a node gets its new K3s: the remote scripts of the two upgrade
//! methods, as command templates with a `{version}` placeholder.
//!
//! The binary method replaces only `/usr/local/bin/k3s`: unit, env file and
//! config.yaml stay as they are, so the node keeps every flag it was
//! installed with by construction. The install-script method re-runs the
//! K3s install script, which rewrites the unit's `ExecStart` from
//! `INSTALL_K3S_EXEC` plus its arguments (k3s-io/k3s install.sh,
//! setup_env), so it must be given the node's original arguments.

use serde::{Deserialize, Serialize};

use crate::remote::quote::{shell_join, shell_quote};

/// Where the K3s project publishes release binaries and their sha256 lists
/// (`sha256sum-ARCH.txt`), as install.sh downloads them.
pub const GITHUB_RELEASES: &str = "https://github.com/k3s-io/k3s/releases/download";
/// Where the binary method installs K3s (install.sh's default BIN_DIR).
pub const K3S_BIN: &str = "/usr/local/bin/k3s";
/// First line of the binary method's script.
pub const BINARY_MARKER: &str = "# k3s-cockpit binary upgrade";
/// Where a release copied from the operator's artifacts directory is
/// staged on the node (`VERSION/ASSET`, `VERSION/sha256sum-ARCH.txt`), for
/// the binary method to verify and install from.
pub const ARTIFACTS_STAGE: &str = "/var/lib/k3s-cockpit/artifacts";
/// Every binary the binary method replaces is kept beside it as
/// `BIN.cockpit-VERSION`, one file per version: a node that went through
/// several hops can go back to any version it ran, hop by hop or straight
/// to the rollout's start (the cluster restore). Nothing removes them.
/// (Cockpits that kept one copy only named it `BIN.cockpit-old`; the
/// reinstate script still takes that file when it is the wanted version.)
pub const KEPT_INFIX: &str = ".cockpit-";

/// Where the binary method keeps `bin` of `version` for a rollback.
pub fn kept_binary(bin: &str, version: &str) -> String {
    format!("{bin}{KEPT_INFIX}{version}")
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Stage the release binary, verify its sha256, swap it; touch nothing else.
    #[default]
    Binary,
    /// Re-run the K3s install script with the node's rebuilt arguments.
    InstallScript,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Binary => "binary",
            Method::InstallScript => "install-script",
        }
    }
}

/// `uname -m` → (the release's arch name, the binary's asset name), as
/// install.sh maps them (k3s-io/k3s install.sh, setup_verify_arch).
pub fn release_asset(uname_m: &str) -> Option<(&'static str, &'static str)> {
    match uname_m {
        "x86_64" | "amd64" => Some(("amd64", "k3s")),
        "aarch64" | "arm64" => Some(("arm64", "k3s-arm64")),
        m if m.starts_with("arm") => Some(("arm", "k3s-armhf")),
        _ => None,
    }
}

/// The binary method's script for one node. `release` is the URL of the
/// releases (`.../download`) or a directory on the node laid out the same
/// way (`DIR/VERSION/k3s`, `DIR/VERSION/sha256sum-amd64.txt`).
pub fn binary_script(release: &str, bin: &str) -> String {
    let mut s = String::new();
    s.push_str(BINARY_MARKER);
    s.push_str(
        ": stage, verify, keep the old binary under its version, swap. Unit, env file and config.yaml stay.\n",
    );
    s.push_str("set -eu\nversion={version}\n");
    s.push_str(&format!("release={}\n", shell_quote(release)));
    s.push_str(&format!("bin={}\n", shell_quote(bin)));
    s.push_str(BINARY_BODY);
    s
}

/// The steps; the parameters above are the only thing that varies. The
/// arch mapping and the sha256 list follow install.sh (setup_verify_arch,
/// download_hash). The temp file sits beside the binary so `mv` is a rename.
const BINARY_BODY: &str = r#"fail() { echo "k3s-cockpit: $*" >&2; exit 1; }
for tool in uname sha256sum awk cut cp mv chmod; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing on this node"
done
case "$(uname -m)" in
    x86_64|amd64) arch=amd64 asset=k3s ;;
    aarch64|arm64) arch=arm64 asset=k3s-arm64 ;;
    arm*) arch=arm asset=k3s-armhf ;;
    *) fail "unsupported architecture $(uname -m)" ;;
esac
# The replaced binary is kept under the version it reports, read before
# anything is fetched: a rollback looks for exactly that name.
have=$("$bin" --version 2>/dev/null | awk 'NR == 1 && $1 == "k3s" && $2 == "version" { print $3 }')
case "$have" in
    v[0-9]*) ;;
    *) fail "cannot read the version of $bin (\`$bin --version\` gives no \"k3s version vX\" line): it must be kept under its version for a rollback; $bin left as it was" ;;
esac
case "$have" in
    *[!A-Za-z0-9.+_-]*) fail "$bin reports the version \"$have\", which cannot name its kept copy; $bin left as it was" ;;
esac
fetch() {
    case "$release" in
        http://*|https://*)
            command -v curl >/dev/null 2>&1 || fail "curl is missing on this node"
            curl -sfL -o "$2" "$release/$version/$1" || fail "cannot download $release/$version/$1"
            ;;
        *) cp "$release/$version/$1" "$2" || fail "cannot copy $release/$version/$1" ;;
    esac
}
new="$bin.cockpit-new"
keep="$bin.cockpit-$have"
trap 'rm -f "$new" "$new.sha256" "$bin.cockpit-keep"' EXIT
fetch "sha256sum-$arch.txt" "$new.sha256"
want=$(awk -v a="$asset" '$2 == a { print $1 }' "$new.sha256")
[ -n "$want" ] || fail "no sha256 for $asset in sha256sum-$arch.txt of $version"
fetch "$asset" "$new"
got=$(sha256sum "$new" | cut -d ' ' -f 1)
[ "$got" = "$want" ] || fail "sha256 mismatch for $asset $version: expected $want, got $got; $bin left as it was"
chmod 755 "$new"
cp -p "$bin" "$bin.cockpit-keep"
mv -f "$bin.cockpit-keep" "$keep"
mv -f "$new" "$bin"
echo "k3s-cockpit: $bin is now $version ($asset, sha256 $got); the previous binary ($have) is kept as $keep"
"#;

/// First line of the binary method's rollback script.
pub const REINSTATE_MARKER: &str = "# k3s-cockpit binary reinstate";

/// Going back with the binary method: every upgrade kept the binary it
/// replaced as `BIN.cockpit-VERSION`; the one of `{version}` is put back
/// after checking it reports that version. Nothing is downloaded, so a
/// rollback works when the release server does not. The copy is renamed
/// into place, so a half-run script leaves either binary whole, and
/// running it again is harmless.
pub fn reinstate_script(bin: &str) -> String {
    let mut s = String::new();
    s.push_str(REINSTATE_MARKER);
    s.push_str(": put the kept binary of the version back, nothing downloaded.\n");
    s.push_str("set -eu\nversion={version}\n");
    s.push_str(&format!("bin={}\n", shell_quote(bin)));
    s.push_str(REINSTATE_BODY);
    s
}

/// A node upgraded by a cockpit that kept one copy only has its previous
/// binary at `BIN.cockpit-old`: taken when no per-version copy exists and
/// it reports the wanted version, so such a node can still go back one hop.
const REINSTATE_BODY: &str = r#"fail() { echo "k3s-cockpit: $*" >&2; exit 1; }
reports() { "$1" --version 2>/dev/null | awk 'NR == 1 { print $3 }'; }
kept="$bin.cockpit-$version"
legacy="$bin.cockpit-old"
if [ -f "$kept" ]; then
    have=$(reports "$kept")
    [ "$have" = "$version" ] || fail "$kept reports ${have:-no version}, not $version: put $version back by hand"
    from=$kept
elif [ -f "$legacy" ] && [ "$(reports "$legacy")" = "$version" ]; then
    from=$legacy
else
    fail "$kept is missing: no kept binary of $version on this node; put $version back by hand"
fi
trap 'rm -f "$bin.cockpit-new"' EXIT
cp -p "$from" "$bin.cockpit-new"
mv -f "$bin.cockpit-new" "$bin"
echo "k3s-cockpit: $bin is $version again (from $from)"
"#;

/// The install-script method for a node whose arguments are `args`
/// (`server --disable servicelb ...`, as `k3s.io/node-args` lists them).
/// The env file is sourced so `K3S_URL`/`K3S_TOKEN` survive (the script
/// rewrites it from the environment); `INSTALL_K3S_SKIP_START=true` because
/// the engine restarts the unit once itself. Arguments go after the script
/// rather than in `INSTALL_K3S_EXEC`, which the script splits on spaces.
pub fn install_script_command(service: &str, args: &[String]) -> String {
    format!(
        "set -e\n\
         set -a; f=/etc/systemd/system/{service}.service.env; if [ -r \"$f\" ]; then . \"$f\"; fi; set +a\n\
         curl -sfL https://get.k3s.io -o /tmp/k3s-cockpit-install.sh\n\
         INSTALL_K3S_VERSION={{version}} INSTALL_K3S_SKIP_START=true INSTALL_K3S_EXEC='' \
         nohup sh /tmp/k3s-cockpit-install.sh {} >>/var/log/k3s-cockpit-install.log 2>&1 </dev/null\n",
        shell_join(args)
    )
}

/// Why `args` (from `k3s.io/node-args`) cannot be given back to the
/// install script, if they cannot: K3s replaces secrets by `********`.
pub fn unrebuildable(args: &[String]) -> Option<String> {
    let redacted: Vec<&str> = args
        .windows(2)
        .filter(|w| w[1] == "********")
        .map(|w| w[0].as_str())
        .chain(
            args.iter()
                .filter_map(|a| a.strip_suffix("=********"))
                .map(|f| f.trim_end_matches('=')),
        )
        .collect();
    match args.first().map(String::as_str) {
        Some("server" | "agent") if redacted.is_empty() => None,
        Some("server" | "agent") => Some(format!(
            "its arguments hold redacted secrets ({}): K3s shows them as ******** in k3s.io/node-args",
            redacted.join(", ")
        )),
        _ => Some("k3s.io/node-args does not start with server or agent".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::upgrade::template;

    #[test]
    fn binary_script_has_only_the_version_placeholder() {
        let s = binary_script(GITHUB_RELEASES, K3S_BIN);
        assert!(template::validate(&s, &["version"]).is_ok());
        let names: Vec<&str> = template::placeholders(&s).iter().map(|p| p.1).collect();
        assert_eq!(names, ["version"]);
        assert!(s.starts_with(BINARY_MARKER));
    }

    #[test]
    fn redacted_arguments_cannot_be_rebuilt() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            unrebuildable(&a(&["server", "--disable", "servicelb"])),
            None
        );
        let why = unrebuildable(&a(&["agent", "--token", "********"])).unwrap();
        assert!(why.contains("--token"), "{why}");
        let why = unrebuildable(&a(&["server", "--token=********"])).unwrap();
        assert!(why.contains("--token"), "{why}");
    }
}
