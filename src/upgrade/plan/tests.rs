use super::*;

fn v(s: &str) -> K3sVersion {
    s.parse().unwrap()
}

fn cluster() -> Vec<ClusterNode> {
    vec![
        ClusterNode {
            name: "still-fawn".into(),
            role: Role::Agent,
            version: v("v1.33.6+k3s1"),
            node_args: None,
            etcd: false,
        },
        ClusterNode {
            name: "pumped-piglet".into(),
            role: Role::Server,
            version: v("v1.33.6+k3s1"),
            node_args: None,
            etcd: true,
        },
        ClusterNode {
            name: "fun-bedbug".into(),
            role: Role::Agent,
            version: v("v1.33.6+k3s1"),
            node_args: None,
            etcd: false,
        },
    ]
}

fn err(text: &str) -> PlanError {
    Plan::from_str(text, "plan.toml").unwrap_err()
}

#[test]
fn example_plan_parses_and_resolves() {
    let text = include_str!("../../../assets/plans/example.toml");
    let plan = Plan::from_str(text, "example.toml").unwrap();
    let r = resolve(&plan, &cluster()).unwrap();
    assert_eq!(r.path, vec![v("v1.34.3+k3s1"), v("v1.35.0+k3s1")]);
    let names: Vec<&str> = r.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["pumped-piglet", "fun-bedbug", "still-fawn"]);
    let shown = r.to_string();
    assert!(shown.contains("v1.34.3+k3s1 -> v1.35.0+k3s1"), "{shown}");
    assert!(shown.contains("systemctl restart k3s-agent"), "{shown}");
}

#[test]
fn minimal_plan_gets_documented_defaults() {
    let plan = Plan::from_str(
        "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\n",
        "p",
    )
    .unwrap();
    assert_eq!(plan.timings, Timings::default());
    assert!(plan.gates.global_gate);
    let r = resolve(&plan, &cluster()).unwrap();
    let server = r.node("pumped-piglet").unwrap();
    assert_eq!(server.restart_command(), "systemctl restart k3s");
    assert_eq!(
        r.node("still-fawn").unwrap().restart_command(),
        "systemctl restart k3s-agent"
    );
    // The default method swaps the binary and leaves the unit alone.
    assert_eq!(r.method, Method::Binary);
    let install = server.install_command(&v("v1.34.3+k3s1"));
    assert!(
        install.starts_with(crate::upgrade::method::BINARY_MARKER),
        "{install}"
    );
    assert!(install.contains("\nversion=v1.34.3+k3s1\n"), "{install}");
    assert!(!install.contains("install.sh"), "{install}");
    assert_eq!(
        server.transport,
        Transport::Ssh(SshTarget {
            host: "pumped-piglet".into(),
            port: 22,
            user: "root".into(),
            key: None,
            known_hosts: None,
            accept_unknown_host_keys: false
        })
    );
    assert_eq!(r.snapshot_node().unwrap().name, "pumped-piglet");
    assert_eq!(
        server.snapshot_command("k3s-cockpit-x"),
        "k3s etcd-snapshot save --name k3s-cockpit-x"
    );
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = err("target = \"v1.35.0+k3s1\"\n[timings\nsoak = \"5m\"\n");
    assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
    assert!(e.to_string().starts_with("plan.toml:2:"), "{e}");
}

#[test]
fn unknown_field_has_line_and_column() {
    let e = err("target = \"v1.35.0+k3s1\"\n\n[timings]\nsoak = \"5m\"\nsaok = \"1m\"\n");
    assert_eq!(e.location, Some((5, 1)), "{e}");
    assert!(e.message.contains("saok"), "{e}");
}

#[test]
fn bad_values_point_at_the_value() {
    let e = err("target = \"v1.35.0\"\n");
    assert_eq!(e.location, Some((1, 10)), "{e}");
    assert!(e.message.contains("+k3sN"), "{e}");

    let e = err("target = \"v1.35.0+k3s1\"\n[timings]\n  soak = \"5 minutes\"\n");
    assert_eq!(e.location, Some((3, 10)), "{e}");
    assert!(e.message.contains("unknown unit"), "{e}");

    let e = err("target = \"v1.35.0+k3s1\"\n[timings]\ndrain_timeout = \"0s\"\n");
    assert_eq!(e.location.map(|l| l.0), Some(3), "{e}");

    let e = err("target = \"v1.35.0+k3s1\"\norder = \"agents-first\"\n");
    assert_eq!(e.location, Some((2, 9)), "{e}");

    let e = err("target = \"v1.35.0+k3s1\"\n[transport]\nkind = \"telnet\"\n");
    assert_eq!(e.location.map(|l| l.0), Some(3), "{e}");
}

#[test]
fn unknown_placeholder_points_into_the_command() {
    let e =
        err("target = \"v1.35.0+k3s1\"\n[commands]\nrestart = \"systemctl restart {servce}\"\n");
    assert_eq!(e.location, Some((3, 30)), "{e}");
    assert!(e.message.contains("{servce}"), "{e}");
    let e = err("target = \"v1.35.0+k3s1\"\n[commands]\nrestart = \"echo {version}\"\n");
    assert!(e.message.contains("{version}"), "{e}");
}

#[test]
fn cross_field_errors() {
    let e = err("channel = \"stable\"\n");
    assert_eq!(e.location, Some((1, 11)), "{e}");
    assert!(e.message.contains("hops"), "{e}");
    let e = err("hops = []\n");
    assert_eq!(e.location, Some((1, 1)), "{e}");
    let e = err("target = \"v1.35.0+k3s1\"\nchannel = \"stable\"\n");
    assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
    let e = err("target = \"v1.35.0+k3s1\"\norder = \"explicit\"\n");
    assert!(e.message.contains("nodes"), "{e}");
    let e = err("target = \"v1.35.0+k3s1\"\nnodes = [\"a\", \"a\"]\n");
    assert_eq!(e.location, Some((2, 15)), "{e}");
    let e = err("target = \"v1.35.0+k3s1\"\n[gates]\nservices = [\"frigate\"]\n");
    assert_eq!(e.location, Some((3, 13)), "{e}");
    let e = err(
        "target = \"v1.35.0+k3s1\"\n[[gates.probes]]\nservice = \"a/b\"\nkind = \"tcp\"\nport = 80\npath = \"/\"\n",
    );
    assert_eq!(e.location, Some((6, 8)), "{e}");
}

#[test]
fn channel_plan_targets_the_last_hop() {
    let plan = Plan::from_str(
        "channel = \"stable\"\nhops = [\"v1.35.0+k3s1\", \"v1.34.3+k3s1\"]\n",
        "p",
    )
    .unwrap();
    let r = resolve(&plan, &cluster()).unwrap();
    assert_eq!(r.target, v("v1.35.0+k3s1"));
    assert_eq!(r.path, vec![v("v1.34.3+k3s1"), v("v1.35.0+k3s1")]);
}

#[test]
fn resolve_errors_name_the_problem() {
    let plan = Plan::from_str("target = \"v1.35.0+k3s1\"\n", "p").unwrap();
    let e = resolve(&plan, &cluster()).unwrap_err();
    assert!(e.message.contains("v1.34"), "{e}");
    assert_eq!(e.location, Some((1, 10)));

    let plan = Plan::from_str("target = \"v1.33.7+k3s1\"\nnodes = [\"nope\"]\n", "p").unwrap();
    let e = resolve(&plan, &cluster()).unwrap_err();
    assert_eq!(e.location, Some((2, 10)), "{e}");

    let plan = Plan::from_str(
        "target = \"v1.33.7+k3s1\"\norder = \"explicit\"\nnodes = [\"fun-bedbug\", \"pumped-piglet\"]\n",
        "p",
    )
    .unwrap();
    let e = resolve(&plan, &cluster()).unwrap_err();
    assert!(
        e.message
            .contains("agent fun-bedbug before server pumped-piglet"),
        "{e}"
    );

    let plan = Plan::from_str(
        "target = \"v1.33.7+k3s1\"\n[transport]\nkind = \"proxmox\"\nhost = \"pve\"\n",
        "p",
    )
    .unwrap();
    let e = resolve(&plan, &cluster()).unwrap_err();
    assert!(e.message.contains("vmid"), "{e}");

    let plan = Plan::from_str("target = \"v1.33.5+k3s1\"\n", "p").unwrap();
    let e = resolve(&plan, &cluster()).unwrap_err();
    assert!(e.message.contains("downgrade"), "{e}");
    assert!(e.message.contains("still-fawn"), "{e}");

    let plan = Plan::from_str(
        "target = \"v1.33.7+k3s1\"\n[node.ghost.transport]\nhost = \"x\"\n",
        "p",
    )
    .unwrap();
    let e = resolve(&plan, &cluster()).unwrap_err();
    assert!(e.message.contains("ghost"), "{e}");
}

#[test]
fn per_node_transport_and_commands_overlay_defaults() {
    let plan = Plan::from_str(
        r#"target = "v1.33.7+k3s1"
[transport]
user = "admin"
key = "/keys/id"
[node.still-fawn.transport]
kind = "proxmox"
host = "pve"
vmid = 105
[node.still-fawn.commands]
restart = "systemctl restart {service} && sleep 1"
"#,
        "p",
    )
    .unwrap();
    let r = resolve(&plan, &cluster()).unwrap();
    let n = r.node("still-fawn").unwrap();
    match &n.transport {
        Transport::Proxmox { host, vmid } => {
            assert_eq!(*vmid, 105);
            assert_eq!(host.host, "pve");
            assert_eq!(host.user, "admin");
            assert_eq!(host.key.as_deref(), Some(Path::new("/keys/id")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        n.restart_command(),
        "systemctl restart k3s-agent && sleep 1"
    );
    assert_eq!(
        r.node("fun-bedbug").unwrap().restart_command(),
        "systemctl restart k3s-agent"
    );
}

#[test]
fn nodes_list_limits_and_orders_servers_first() {
    let plan = Plan::from_str(
        "target = \"v1.33.7+k3s1\"\nnodes = [\"still-fawn\", \"pumped-piglet\"]\n",
        "p",
    )
    .unwrap();
    let r = resolve(&plan, &cluster()).unwrap();
    let names: Vec<&str> = r.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["pumped-piglet", "still-fawn"]);
    assert_eq!(r.excluded, ["fun-bedbug"]);
    let cfg = r.engine_config();
    assert_eq!(cfg.nodes.len(), 2);
    assert_eq!(cfg.path, vec![v("v1.33.7+k3s1")]);
}

#[test]
fn line_col_counts_characters() {
    let s = "ab\nçd\nx";
    assert_eq!(line_col(s, 0), (1, 1));
    assert_eq!(line_col(s, 3), (2, 1));
    assert_eq!(line_col(s, 5), (2, 2));
    assert_eq!(line_col(s, 100), (3, 2));
}

#[test]
fn probe_failures_defaults_to_three_is_read_from_gates_and_zero_is_refused() {
    let head = "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\n";
    let plan = Plan::from_str(head, "p").unwrap();
    assert_eq!(resolve(&plan, &cluster()).unwrap().gates.probe_failures, 3);
    let plan = Plan::from_str(&format!("{head}[gates]\nprobe_failures = 5\n"), "p").unwrap();
    assert_eq!(resolve(&plan, &cluster()).unwrap().gates.probe_failures, 5);
    let e = err(&format!("{head}[gates]\nprobe_failures = 0\n"));
    assert_eq!(e.location, Some((4, 18)), "{e}");
    assert!(e.message.contains("between 1 and 100"), "{e}");
}

fn with_args(args: Option<&[&str]>) -> Vec<ClusterNode> {
    let mut nodes = cluster();
    for n in &mut nodes {
        n.node_args = args.map(|a| a.iter().map(|s| s.to_string()).collect());
    }
    nodes
}

#[test]
fn install_script_method_gives_each_node_its_own_arguments_back() {
    let plan = Plan::from_str(
        "target = \"v1.34.3+k3s1\"\nmethod = \"install-script\"\n",
        "p",
    )
    .unwrap();
    let args = [
        "server",
        "--disable",
        "servicelb",
        "--tls-san",
        "k3s.home.lan",
    ];
    let r = resolve(&plan, &with_args(Some(&args))).unwrap();
    let install = r
        .node("pumped-piglet")
        .unwrap()
        .install_command(&v("v1.34.3+k3s1"));
    assert!(install.contains("INSTALL_K3S_SKIP_START=true"), "{install}");
    assert!(
        install
            .contains("k3s-cockpit-install.sh server --disable servicelb --tls-san k3s.home.lan"),
        "{install}"
    );
    let err = resolve(&plan, &with_args(None)).unwrap_err().to_string();
    assert!(err.contains("no k3s.io/node-args"), "{err}");
    assert!(err.contains("method = \"binary\""), "{err}");
    let err = resolve(&plan, &with_args(Some(&["agent", "--token", "********"])))
        .unwrap_err()
        .to_string();
    assert!(err.contains("redacted secrets (--token)"), "{err}");
}

#[test]
fn agents_follow_the_kubelet_skew_policy_straight_to_the_target() {
    let plan = Plan::from_str("target = \"v1.34.3+k3s1\"\n", "p").unwrap();
    let mut nodes = cluster();
    // Two minors behind the servers: a kubelet may be three behind.
    nodes[0].version = v("v1.31.9+k3s1");
    let r = resolve(&plan, &nodes).unwrap();
    assert_eq!(r.path, vec![v("v1.34.3+k3s1")]);
    let agent = r.node("still-fawn").unwrap();
    assert_eq!(agent.hops, vec![v("v1.34.3+k3s1")]);
    assert_eq!(agent.restart_command(), "systemctl restart k3s-agent");
    // Servers first, then agents.
    assert_eq!(r.nodes[0].role, Role::Server);
    let plan = Plan::from_str(
        "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\n",
        "p",
    )
    .unwrap();
    let err = resolve(&plan, &nodes).unwrap_err().to_string();
    assert!(
        err.contains("agent still-fawn runs v1.31.9+k3s1: its kubelet would be more than 3 minor versions older"),
        "{err}"
    );
}

#[test]
fn etcd_only_servers_are_servers() {
    let mut info = crate::model::fleet::NodeInfo::bare("n", "v1.33.6+k3s1");
    info.roles = vec!["etcd".into()];
    assert!(info.is_server());
    info.roles.clear();
    info.node_args = Some(vec!["server".into(), "--disable-apiserver".into()]);
    assert!(info.is_server());
    info.node_args = Some(vec!["agent".into()]);
    assert!(!info.is_server());
}

#[test]
fn the_datastore_is_detected_and_a_plan_saying_otherwise_is_refused() {
    let mut nodes = cluster();
    nodes[1].etcd = false;
    let plan = Plan::from_str("target = \"v1.34.3+k3s1\"\n", "p").unwrap();
    let r = resolve(&plan, &nodes).unwrap();
    assert_eq!(r.datastore, Datastore::Sqlite);
    assert!(r.snapshot_node().is_none());
    let plan = Plan::from_str("target = \"v1.34.3+k3s1\"\ndatastore = \"etcd\"\n", "p").unwrap();
    let err = resolve(&plan, &nodes).unwrap_err().to_string();
    assert!(
        err.contains("datastore = \"etcd\" but the cluster's datastore is sqlite: the only server, pumped-piglet, is no etcd member"),
        "{err}"
    );
    nodes[1].node_args = Some(vec![
        "server".into(),
        "--datastore-endpoint".into(),
        "postgres://db".into(),
    ]);
    let err = resolve(&plan, &nodes).unwrap_err().to_string();
    assert!(
        err.contains("is external: server pumped-piglet runs with --datastore-endpoint"),
        "{err}"
    );
    nodes[1].etcd = true;
    nodes[1].node_args = None;
    assert_eq!(resolve(&plan, &nodes).unwrap().datastore, Datastore::Etcd);
}

#[test]
fn agent_hops_every_walks_agents_through_each_hop() {
    let two_hops = "target = \"v1.35.0+k3s1\"\nhops = [\"v1.34.3+k3s1\"]\n";
    let straight = resolve(&Plan::from_str(two_hops, "p").unwrap(), &cluster()).unwrap();
    assert_eq!(
        straight.node("still-fawn").unwrap().hops,
        vec![v("v1.35.0+k3s1")]
    );
    assert!(
        straight
            .to_string()
            .contains("then agents, straight to the target")
    );
    let every = format!("{two_hops}agent_hops = \"every\"\n");
    let r = resolve(&Plan::from_str(&every, "p").unwrap(), &cluster()).unwrap();
    let hops = [v("v1.34.3+k3s1"), v("v1.35.0+k3s1")];
    assert_eq!(r.node("still-fawn").unwrap().hops, hops);
    assert_eq!(r.node("pumped-piglet").unwrap().hops, hops);
    assert_eq!(r.engine_config().agent_hops, AgentHops::Every);
    assert!(r.to_string().contains("then agents, through every hop"));
    let e = err(&format!("{two_hops}agent_hops = \"some\"\n"));
    assert!(e.message.contains("unknown variant `some`"), "{e}");
    assert_eq!(e.location.map(|l| l.0), Some(3));
}

#[test]
fn artifacts_replace_release_with_the_nodes_staging_directory() {
    let base = "target = \"v1.34.3+k3s1\"\n";
    let plan = Plan::from_str(&format!("{base}artifacts = \"/srv/k3s\"\n"), "p").unwrap();
    let r = resolve(&plan, &cluster()).unwrap();
    assert_eq!(r.artifacts.as_deref(), Some(Path::new("/srv/k3s")));
    assert_eq!(r.release, crate::upgrade::method::ARTIFACTS_STAGE);
    let install = &r.nodes[0].commands.install;
    assert!(
        install.contains("release=/var/lib/k3s-cockpit/artifacts"),
        "{install}"
    );
    assert!(r.to_string().contains("copied from /srv/k3s"));
    for (extra, why) in [
        ("release = \"https://x\"\n", "not both"),
        ("method = \"install-script\"\n", "needs method = \"binary\""),
        ("[commands]\ninstall = \"true\"\n", "custom install command"),
    ] {
        let e = err(&format!("{base}artifacts = \"/srv/k3s\"\n{extra}"));
        assert!(e.message.contains(why), "{extra}: {e}");
    }
    let e = err(&format!("{base}artifacts = \"srv\"\n"));
    assert!(e.message.contains("absolute path"), "{e}");
    // A VM behind a Proxmox host cannot receive them: refused offline, named.
    let text = format!(
        "{base}artifacts = \"/srv/k3s\"\n[node.fun-bedbug.transport]\nkind = \"proxmox\"\nhost = \"pve\"\nvmid = 106\n"
    );
    let e = resolve(&Plan::from_str(&text, "p").unwrap(), &cluster()).unwrap_err();
    assert!(
        e.message.starts_with("node fun-bedbug: artifacts cannot be copied to VM 106 through its Proxmox host: qm guest exec cannot stream"),
        "{e}"
    );
    assert_eq!(e.location.map(|l| l.0), Some(2));
}
