//! Micro-benchmarks of the pure core with criterion: one frame of the watch
//! view into ratatui's `TestBackend`, and the model's per-event and per-tick
//! work, at 100, 1,000 and 5,000 nodes.
//!
//! ```sh
//! cargo bench --bench render
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use k3s_cockpit::model::ClusterEvent;
use k3s_cockpit::model::fleet::{
    Condition, L2Info, LeaseInfo, NodeInfo, ResourceKind, ServiceInfo, Tri,
};
use k3s_cockpit::tui::app::{App, LogPanel, Page};
use k3s_cockpit::tui::log_panel::{PanelLayer, PanelLog};
use k3s_cockpit::tui::view;

const SIZES: [usize; 3] = [100, 1_000, 5_000];

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn name(i: usize) -> String {
    format!("lab-node-{i:04}")
}

fn node(i: usize) -> ClusterEvent {
    ClusterEvent::Node(NodeInfo {
        name: name(i),
        roles: if i < 3 {
            vec!["control-plane".into(), "etcd".into(), "master".into()]
        } else {
            vec![]
        },
        version: "v1.33.6+k3s1".into(),
        unschedulable: false,
        taints: vec![],
        conditions: vec![Condition {
            kind: "Ready".into(),
            status: Tri::True,
            reason: "KubeletReady".into(),
            message: String::new(),
            last_transition: Some(t0()),
            last_heartbeat: Some(t0()),
        }],
        boot_id: format!("boot-{i}"),
        internal_ip: None,
        node_args: None,
        lb_excluded: false,
    })
}

fn lease(i: usize, renewed: Timestamp) -> ClusterEvent {
    ClusterEvent::Lease(LeaseInfo {
        node: name(i),
        holder: name(i),
        renewed: Some(renewed),
        duration: Duration::from_secs(40),
    })
}

fn app(nodes: usize) -> App {
    let mut app = App::new("bench", "http://127.0.0.1:6443", true, t0());
    app.log_panel = LogPanel::Timeline;
    app.tz = jiff::tz::TimeZone::UTC;
    app.on_cluster(ClusterEvent::ApiOk);
    app.on_cluster(ClusterEvent::ResyncStart(ResourceKind::Nodes));
    for i in 0..nodes {
        app.on_cluster(node(i));
        app.on_cluster(lease(i, t0()));
    }
    app.on_cluster(ClusterEvent::ResyncDone(ResourceKind::Nodes));
    app.on_cluster(ClusterEvent::Service(ServiceInfo {
        namespace: "web".into(),
        name: "web".into(),
        ips: vec!["127.77.0.20".into()],
        ports: vec![80],
        selector: Default::default(),
    }));
    app.on_cluster(ClusterEvent::L2(L2Info {
        object: "metallb-system/l2-a".into(),
        node: name(0),
        service: ("web".into(), "web".into()),
    }));
    app.on_tick(t0() + jiff::SignedDuration::from_secs(5));
    app
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render 120x40");
    for n in SIZES {
        let app = app(n);
        let Ok(mut terminal) = Terminal::new(TestBackend::new(120, 40));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let _ = terminal.draw(|f| view::render(black_box(&app), f));
            })
        });
    }
    group.finish();
}

/// The log panel with a long history: the records ring (what the terminal
/// shows), the model's own timeline (what the snapshot tests render), and
/// tui-logger's widget (the full log view, `L`).
fn log_panel(c: &mut Criterion) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let records = PanelLog::default();
    tui_logger::set_default_level(tui_logger::LevelFilter::Info);
    let _ = tracing_subscriber::registry()
        .with(PanelLayer::new(records.clone(), jiff::tz::TimeZone::UTC))
        .with(tui_logger::TuiTracingSubscriberLayer)
        .try_init();
    let mut app = app(3);
    for i in 0..2_000 {
        // Timeline::push also logs the entry through tracing (tui-logger).
        app.on_cluster(ClusterEvent::Node(NodeInfo {
            unschedulable: i % 2 == 0,
            ..match node(i % 3) {
                ClusterEvent::Node(n) => n,
                _ => continue,
            }
        }));
    }
    tui_logger::move_events();
    let mut group = c.benchmark_group("render 120x40, 3 nodes, log panel");
    let panels = [
        ("records", LogPanel::Records(records), Page::Nodes),
        ("timeline", LogPanel::Timeline, Page::Nodes),
        ("full log view (tui-logger)", LogPanel::Timeline, Page::Log),
    ];
    for (name, panel, screen) in panels {
        app.log_panel = panel;
        app.page = screen;
        let Ok(mut terminal) = Terminal::new(TestBackend::new(120, 40));
        group.bench_function(name, |b| {
            b.iter(|| {
                let _ = terminal.draw(|f| view::render(black_box(&app), f));
            })
        });
    }
    group.finish();
}

fn lease_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("App::on_cluster(lease)");
    for n in SIZES {
        let mut app = app(n);
        let mut i = 0usize;
        let mut at = t0();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 7) % n;
                at += jiff::SignedDuration::from_millis(1);
                black_box(app.on_cluster(lease(i, at)))
            })
        });
    }
    group.finish();
}

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("App::on_tick");
    for n in SIZES {
        let mut app = app(n);
        let mut at = t0();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                at += jiff::SignedDuration::from_millis(1);
                app.on_tick(black_box(at));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, render, log_panel, lease_event, tick);
criterion_main!(benches);
