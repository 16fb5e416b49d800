//! Telling a silent API server from a quiet cluster. A hung API server
//! (stopped, overloaded, its etcd stuck) keeps the watch connections open
//! and sends nothing: no error reaches the watchers, and without this the
//! cockpit would stay "connected" and blame every kubelet for the server's
//! silence. So the watchers' events pass through here, and when nothing has
//! arrived for a while a cheap `GET /version` on a short deadline asks
//! whether the server still answers. On its return every watcher starts
//! over, so that ages, Ready-since and announcers come from a fresh list,
//! not from the backlog of the silence.

use std::time::Duration;

use kube::Client;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};

use super::watch::spawn_watchers;
use crate::model::fleet::ClusterEvent;

/// How long without any event before the server is asked. Kubelets renew
/// every 10 s, so a live cluster of a few nodes is rarely this quiet.
const QUIET: Duration = Duration::from_secs(5);
/// How long `GET /version` may take before the server counts as silent.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Starts every watcher behind the silence check; events arrive on `tx`.
/// The tasks end when the receiver is dropped.
pub fn spawn_all(client: &Client, tx: &UnboundedSender<ClusterEvent>) {
    let (inner_tx, inner) = mpsc::unbounded_channel();
    let watchers = spawn_watchers(client, &inner_tx);
    let mut check = Liveness {
        client: client.clone(),
        inner_tx,
        inner,
        out: tx.clone(),
        watchers,
        silent: false,
        failing: false,
    };
    tokio::spawn(async move { check.run().await });
}

struct Liveness {
    client: Client,
    inner_tx: UnboundedSender<ClusterEvent>,
    inner: UnboundedReceiver<ClusterEvent>,
    out: UnboundedSender<ClusterEvent>,
    watchers: Vec<JoinHandle<()>>,
    /// The server was declared silent and has not spoken since.
    silent: bool,
    /// A watcher failed and none has delivered since.
    failing: bool,
}

/// What a `GET /version` on a deadline found.
enum Answer {
    Answered,
    /// No answer in time: the server is there but silent.
    Silent,
    /// It failed at once (refused, reset): the watchers report that.
    Failed,
}

impl Liveness {
    async fn run(&mut self) {
        let mut heard = Instant::now();
        loop {
            let ask_at = heard + if self.silent { ANSWER_WITHIN } else { QUIET };
            tokio::select! {
                ev = self.inner.recv() => {
                    let Some(ev) = ev else { return };
                    heard = Instant::now();
                    // During a silence, the first event means the server is
                    // back; it and its backlog give way to fresh lists. After
                    // failures, the watchers' own "ok again" does the same.
                    let sent = match ev {
                        _ if self.silent => self.recovered(),
                        ClusterEvent::ApiOk if self.failing => self.recovered(),
                        ev => {
                            self.failing |= matches!(ev, ClusterEvent::ApiError(_));
                            self.out.send(ev).is_ok()
                        }
                    };
                    if !sent {
                        return;
                    }
                }
                _ = sleep_until(ask_at) => {
                    let answer = self.ask().await;
                    heard = Instant::now();
                    if !self.judge(answer) {
                        return;
                    }
                }
            }
        }
    }

    async fn ask(&self) -> Answer {
        match timeout(ANSWER_WITHIN, self.client.apiserver_version()).await {
            Ok(Ok(_)) => Answer::Answered,
            Ok(Err(_)) => Answer::Failed,
            Err(_) => Answer::Silent,
        }
    }

    /// Acts on an answer; false when the receiver is gone.
    fn judge(&mut self, answer: Answer) -> bool {
        match answer {
            Answer::Silent if !self.silent => {
                self.silent = true;
                let why = format!(
                    "no watch event for {}s and no answer to GET /version within {}s",
                    QUIET.as_secs(),
                    ANSWER_WITHIN.as_secs()
                );
                self.out.send(ClusterEvent::ApiSilent(why)).is_ok()
            }
            Answer::Answered if self.silent => self.recovered(),
            _ => true,
        }
    }

    /// The server speaks again: every watcher lists afresh. False when the
    /// receiver is gone.
    fn recovered(&mut self) -> bool {
        self.silent = false;
        self.failing = false;
        for w in self.watchers.drain(..) {
            w.abort();
        }
        // What the old watchers still queued is the silence's backlog.
        while self.inner.try_recv().is_ok() {}
        self.watchers = spawn_watchers(&self.client, &self.inner_tx);
        self.out.send(ClusterEvent::ApiOk).is_ok()
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
    }
}
