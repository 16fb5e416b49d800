//! The strict node shell, end to end inside the lab: what the upgrade's
//! commands do to a node's unit, binary and API objects. On tokio's paused
//! clock, so the install's minutes take no time.

use std::sync::Arc;
use std::time::Duration;

use super::host::{self, BIN};
use super::scenario::Scenario;
use super::shell::run_on_node;
use super::sim::{Sim, SimHandle};
use super::store::{Kind, Store};
use crate::upgrade::method::{self, GITHUB_RELEASES, K3S_BIN};

const NODE: &str = "pumped-piglet";
const METALLB_ARGS: &str =
    r#"["--disable", "servicelb", "--disable", "traefik", "--tls-san", "k3s.home.lan"]"#;

/// The role-only install command k3s-cockpit sent by default before the
/// binary method: the install script with `server` and nothing else.
pub const ROLE_ONLY_INSTALL: &str = "nohup sh -c 'set -a; f=/etc/systemd/system/k3s.service.env; if [ -r \"$f\" ]; then . \"$f\"; fi; set +a; curl -sfL https://get.k3s.io -o /tmp/k3s-cockpit-install.sh && INSTALL_K3S_VERSION=\"v1.34.3+k3s1\" sh /tmp/k3s-cockpit-install.sh server' >>/var/log/k3s-cockpit-install.log 2>&1 </dev/null";

fn lab(node_extra: &str, extra: &str) -> (Arc<Store>, SimHandle) {
    let text = format!(
        "name='t'\n{extra}\n[timing]\ninstall='2s'\nrestart_down='1s'\nkubelet_startup='1s'\n\
         [[nodes]]\nname='{NODE}'\nrole='server'\nversion='v1.33.6+k3s1'\nargs={METALLB_ARGS}\n{node_extra}\n\
         [[services]]\nnamespace='frigate'\nname='frigate'\nip='127.77.0.40'\nport=5000\npod_node='{NODE}'\n"
    );
    let scenario = Scenario::parse(&text, "t.toml").unwrap();
    let store = Arc::new(Store::new(1024));
    let sim = Sim::start(store.clone(), &scenario);
    tokio::spawn(sim.clone().run());
    (store, sim)
}

fn node_args(store: &Store) -> String {
    let n = store.get(Kind::Node, "", NODE).unwrap();
    n["metadata"]["annotations"]["k3s.io/node-args"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn servicelb_events(store: &Store) -> Vec<String> {
    store
        .list(Kind::Event, None)
        .1
        .iter()
        .filter(|e| e["reason"] == "AppliedDaemonSet")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits (on the paused clock) until the node runs `version`.
async fn wait_version(sim: &SimHandle, version: &str) {
    for _ in 0..200 {
        if sim.lock().nodes[0].version == version {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{NODE} never ran {version}");
}

const BEFORE: &str =
    r#"["server","--disable","servicelb","--disable","traefik","--tls-san","k3s.home.lan"]"#;

#[tokio::test(start_paused = true)]
async fn role_only_install_drops_the_flags_and_brings_servicelb_back() {
    let (store, sim) = lab("", "");
    assert_eq!(node_args(&store), BEFORE);
    let out = run_on_node(&sim, NODE, "root", ROLE_ONLY_INSTALL).await;
    assert_eq!(out.exit_status, 0, "{out:?}");
    wait_version(&sim, "v1.34.3+k3s1").await;
    assert_eq!(node_args(&store), r#"["server"]"#);
    let events = servicelb_events(&store);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].starts_with("Applied LoadBalancer DaemonSet kube-system/svclb-frigate-"));
}

#[tokio::test(start_paused = true)]
async fn binary_method_keeps_unit_and_args_and_the_old_binary() {
    let (store, sim) = lab("", "");
    let unit_before = sim
        .with_host(NODE, |h| super::node_exec::unit_file(h))
        .unwrap();
    let script = crate::upgrade::template::render(
        &method::binary_script(GITHUB_RELEASES, K3S_BIN),
        &[("version", "v1.34.3+k3s1")],
    );
    let out = run_on_node(&sim, NODE, "root", &script).await;
    assert_eq!(out.exit_status, 0, "{out:?}");
    assert!(out.stdout.contains("is now v1.34.3+k3s1"), "{out:?}");
    // Nothing restarted yet: the engine restarts the unit once, itself.
    assert_eq!(sim.lock().nodes[0].restarts, 0);
    let restart = run_on_node(&sim, NODE, "root", "systemctl restart k3s").await;
    assert_eq!(restart.exit_status, 0, "{restart:?}");
    wait_version(&sim, "v1.34.3+k3s1").await;
    assert_eq!(node_args(&store), BEFORE);
    assert_eq!(
        sim.with_host(NODE, |h| super::node_exec::unit_file(h))
            .unwrap(),
        unit_before
    );
    let old = sim
        .with_host(NODE, |h| {
            h.files.get(&format!("{BIN}.cockpit-v1.33.6+k3s1")).cloned()
        })
        .unwrap();
    assert_eq!(old, Some(host::fake_binary("v1.33.6+k3s1", "k3s")));
    assert!(servicelb_events(&store).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_corrupted_artifact_is_refused_before_the_swap() {
    let (_store, sim) = lab("", "");
    let dir = "/var/lib/k3s-cockpit/artifacts";
    sim.with_host(NODE, |h| {
        let v = "v1.34.3+k3s1";
        let list = host::release_file(v, "sha256sum-amd64.txt").unwrap();
        h.files
            .insert(format!("{dir}/{v}/sha256sum-amd64.txt"), list);
        h.files
            .insert(format!("{dir}/{v}/k3s"), b"truncated".to_vec());
    })
    .unwrap();
    let script = crate::upgrade::template::render(
        &method::binary_script(dir, K3S_BIN),
        &[("version", "v1.34.3+k3s1")],
    );
    let out = run_on_node(&sim, NODE, "root", &script).await;
    assert_eq!(out.exit_status, 1, "{out:?}");
    assert!(
        out.stderr.contains("sha256 mismatch for k3s v1.34.3+k3s1"),
        "{out:?}"
    );
    let version = sim.with_host(NODE, |h| h.binary_version()).unwrap();
    assert_eq!(version.as_deref(), Some("v1.33.6+k3s1"));
}

#[tokio::test(start_paused = true)]
async fn airgapped_nodes_cannot_download() {
    let (_store, sim) = lab("", "airgap = true");
    let script = crate::upgrade::template::render(
        &method::binary_script(GITHUB_RELEASES, K3S_BIN),
        &[("version", "v1.34.3+k3s1")],
    );
    let out = run_on_node(&sim, NODE, "root", &script).await;
    assert_eq!(out.exit_status, 1, "{out:?}");
    assert!(out.stderr.contains("Could not resolve host"), "{out:?}");
    assert!(
        out.stderr.contains("k3s-cockpit: cannot download"),
        "{out:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn sudo_without_nopasswd_refuses_and_a_plain_user_cannot_restart() {
    let (_store, sim) = lab("root_login=false\nsudo='password'", "");
    let out = run_on_node(&sim, NODE, "ops", "sudo -n true").await;
    assert_eq!(
        (out.exit_status, out.stderr.as_str()),
        (1, "sudo: a password is required\n")
    );
    let out = run_on_node(&sim, NODE, "ops", "systemctl restart k3s").await;
    assert_eq!(out.exit_status, 1, "{out:?}");
    assert!(
        out.stderr.contains("Interactive authentication required"),
        "{out:?}"
    );
    let (_store, sim) = lab("root_login=false", "");
    let out = run_on_node(&sim, NODE, "ops", "sudo -n sh -c 'systemctl restart k3s'").await;
    assert_eq!(out.exit_status, 0, "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn snapshot_line_is_on_stderr_and_unknown_commands_exit_127() {
    let (_store, sim) = lab("", "");
    let out = run_on_node(&sim, NODE, "root", "k3s etcd-snapshot save --name pre").await;
    assert_eq!(out.exit_status, 0, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr.contains(&format!("msg=\"Snapshot pre-{NODE}-")),
        "{out:?}"
    );
    let ls = run_on_node(&sim, NODE, "root", "k3s etcd-snapshot ls").await;
    assert!(ls.stdout.contains(&format!("pre-{NODE}-")), "{ls:?}");
    let out = run_on_node(&sim, NODE, "root", "frobnicate --now").await;
    assert_eq!(out.exit_status, 127, "{out:?}");
    let out = run_on_node(&sim, NODE, "root", "systemctl restart k3s-agent").await;
    assert_eq!(out.exit_status, 5, "{out:?}");
}

#[tokio::test]
async fn cat_writes_stdin_to_a_file_as_root_only_and_rm_removes_only_staged_files() {
    let (_store, sim) = lab("", "");
    let stage = format!("{}/v1.34.3+k3s1", crate::upgrade::method::ARTIFACTS_STAGE);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(b"first ".to_vec()).unwrap();
    tx.send(b"second".to_vec()).unwrap();
    drop(tx);
    let mut stdin = super::ssh::LabStdin::from_receiver(rx);
    let cmd = format!("sudo -n sh -c 'mkdir -p {stage} && cat > {stage}/k3s'");
    let out = super::shell::run_with_stdin(&sim, NODE, "root", &cmd, &mut stdin).await;
    assert_eq!(out.exit_status, 0, "{out:?}");
    let file = format!("{stage}/k3s");
    let written = sim
        .with_host(NODE, |h| h.files.get(&file).cloned())
        .unwrap();
    assert_eq!(written.as_deref(), Some(&b"first second"[..]));
    let out = run_on_node(&sim, NODE, "ops", &format!("cat > {stage}/x")).await;
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    let out = run_on_node(&sim, NODE, "root", "rm -rf /").await;
    assert_eq!(out.exit_status, 127, "{out:?}");
    let out = run_on_node(&sim, NODE, "root", &format!("rm -rf {stage}")).await;
    assert_eq!(out.exit_status, 0, "{out:?}");
    assert!(
        sim.with_host(NODE, |h| !h.files.contains_key(&file))
            .unwrap()
    );
}

/// Runs the binary method's script to `version`, or its reinstate script.
async fn binary_step(
    sim: &SimHandle,
    reinstate: bool,
    version: &str,
) -> super::ssh::CommandOutcome {
    let script = if reinstate {
        method::reinstate_script(K3S_BIN)
    } else {
        method::binary_script(GITHUB_RELEASES, K3S_BIN)
    };
    let script = crate::upgrade::template::render(&script, &[("version", version)]);
    run_on_node(sim, NODE, "root", &script).await
}

fn binary_now(sim: &SimHandle) -> Option<String> {
    sim.with_host(NODE, |h| h.binary_version()).unwrap()
}

/// Two hops keep two binaries, one per version: the start version comes
/// back straight (the cluster restore) or hop by hop (a rolling rollback);
/// a version never kept is refused and the binary stays.
#[tokio::test(start_paused = true)]
async fn two_hops_keep_a_binary_per_version_for_either_way_back() {
    let (_store, sim) = lab("", "");
    for v in ["v1.34.3+k3s1", "v1.35.0+k3s1"] {
        let out = binary_step(&sim, false, v).await;
        assert_eq!(out.exit_status, 0, "{out:?}");
    }
    let out = binary_step(&sim, true, "v1.32.9+k3s1").await;
    assert_eq!(out.exit_status, 1, "{out:?}");
    assert!(
        out.stderr.contains("k3s.cockpit-v1.32.9+k3s1 is missing"),
        "{out:?}"
    );
    assert_eq!(binary_now(&sim).as_deref(), Some("v1.35.0+k3s1"));
    let straight = binary_step(&sim, true, "v1.33.6+k3s1").await;
    assert_eq!(straight.exit_status, 0, "{straight:?}");
    assert_eq!(binary_now(&sim).as_deref(), Some("v1.33.6+k3s1"));
    // As the node was before the way back: the kept copies stay.
    sim.with_host(NODE, |h| {
        h.files
            .insert(BIN.into(), host::fake_binary("v1.35.0+k3s1", "k3s"))
    })
    .unwrap();
    for v in ["v1.34.3+k3s1", "v1.33.6+k3s1"] {
        let out = binary_step(&sim, true, v).await;
        assert_eq!(out.exit_status, 0, "{out:?}");
        assert_eq!(binary_now(&sim).as_deref(), Some(v));
    }
}

/// A node upgraded by a cockpit that kept one copy only: its
/// `k3s.cockpit-old` is taken when it is the wanted version, and a kept
/// file that reports another version is refused with the binary unchanged.
#[tokio::test(start_paused = true)]
async fn the_single_old_copy_serves_its_own_version_only() {
    let (_store, sim) = lab("", "");
    let put = |path: String, v: &str| {
        sim.with_host(NODE, |h| h.files.insert(path, host::fake_binary(v, "k3s")))
            .unwrap();
    };
    put(BIN.into(), "v1.34.3+k3s1");
    put(format!("{BIN}.cockpit-old"), "v1.33.6+k3s1");
    put(format!("{BIN}.cockpit-v1.32.9+k3s1"), "v1.31.1+k3s1");
    let wrong = binary_step(&sim, true, "v1.32.9+k3s1").await;
    assert_eq!(wrong.exit_status, 1, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("reports v1.31.1+k3s1, not v1.32.9+k3s1"),
        "{wrong:?}"
    );
    assert_eq!(binary_now(&sim).as_deref(), Some("v1.34.3+k3s1"));
    let old = binary_step(&sim, true, "v1.33.6+k3s1").await;
    assert_eq!(old.exit_status, 0, "{old:?}");
    assert!(
        old.stdout.contains("from /usr/local/bin/k3s.cockpit-old"),
        "{old:?}"
    );
    assert_eq!(binary_now(&sim).as_deref(), Some("v1.33.6+k3s1"));
}
