//! The lab's object store: what an API server keeps in etcd, reduced to what
//! list/watch clients need.
//!
//! Every write bumps one global resourceVersion, is kept in a bounded history
//! (so a watch can resume from an older version, or get `410 Gone` when it is
//! too old), and is broadcast to live watches. Objects are JSON values so the
//! HTTP layer can patch and serve them without a typed schema per kind.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// The resources the lab serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Node,
    Lease,
    Service,
    Pod,
    Event,
    DaemonSet,
    ServiceL2Status,
    PodDisruptionBudget,
    PersistentVolumeClaim,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Node,
        Kind::Lease,
        Kind::Service,
        Kind::Pod,
        Kind::Event,
        Kind::DaemonSet,
        Kind::ServiceL2Status,
        Kind::PodDisruptionBudget,
        Kind::PersistentVolumeClaim,
    ];

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Lease => "leases",
            Kind::Service => "services",
            Kind::Pod => "pods",
            Kind::Event => "events",
            Kind::DaemonSet => "daemonsets",
            Kind::ServiceL2Status => "servicel2statuses",
            Kind::PodDisruptionBudget => "poddisruptionbudgets",
            Kind::PersistentVolumeClaim => "persistentvolumeclaims",
        }
    }

    pub fn kind_name(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Lease => "Lease",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Event => "Event",
            Kind::DaemonSet => "DaemonSet",
            Kind::ServiceL2Status => "ServiceL2Status",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
            Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
        }
    }

    /// API group ("" for core) and version.
    pub fn group_version(self) -> (&'static str, &'static str) {
        match self {
            Kind::Node | Kind::Service | Kind::Pod | Kind::Event | Kind::PersistentVolumeClaim => {
                ("", "v1")
            }
            Kind::PodDisruptionBudget => ("policy", "v1"),
            Kind::Lease => ("coordination.k8s.io", "v1"),
            Kind::DaemonSet => ("apps", "v1"),
            Kind::ServiceL2Status => ("metallb.io", "v1beta1"),
        }
    }

    pub fn api_version(self) -> String {
        match self.group_version() {
            ("", v) => v.to_string(),
            (g, v) => format!("{g}/{v}"),
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Node)
    }

    pub fn from_plural(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.plural() == plural && k.group_version().0 == group)
    }
}

/// One committed change, pre-serialised once as a watch line so that every
/// watch sends the same bytes without re-encoding.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub event_type: &'static str,
    pub object: Arc<Value>,
    pub line: bytes::Bytes,
}

/// Why a watch could not start.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchError {
    /// The requested resourceVersion is older than the kept history.
    Gone { oldest: u64 },
}

type ObjectKey = (String, String);

struct Inner {
    rv: u64,
    objects: BTreeMap<Kind, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_cap: usize,
    next_uid: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    /// `--commit-log`: commit instants for benchmarks (usually unset).
    commit_log: OnceLock<super::commit_log::CommitLog>,
}

/// A watch: the changes after the requested version that are already in
/// history, then the live receiver (subscribed under the same lock, so no
/// change can fall between the two).
pub struct WatchStart {
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    pub current_rv: u64,
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(history_cap.max(1024));
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_cap,
                next_uid: 1,
            }),
            tx,
            commit_log: OnceLock::new(),
        }
    }

    /// Logs every commit from now on (see [`super::commit_log`]).
    pub fn log_commits(&self, log: super::commit_log::CommitLog) {
        let _ = self.commit_log.set(log);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write
        // is a single insert), so recovering from poisoning is safe.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Creates or replaces an object; metadata (resourceVersion, uid,
    /// creationTimestamp) is filled in like an API server would.
    pub fn upsert(&self, kind: Kind, object: Value) -> Arc<Value> {
        let mut inner = self.lock();
        self.insert_locked(&mut inner, kind, object)
    }

    fn insert_locked(&self, inner: &mut Inner, kind: Kind, mut object: Value) -> Arc<Value> {
        let key = object_key(&object);
        let existing = inner.objects.get(&kind).and_then(|m| m.get(&key)).cloned();
        inner.rv += 1;
        let rv = inner.rv;
        let meta = &mut object["metadata"];
        match &existing {
            Some(old) => {
                meta["uid"] = old["metadata"]["uid"].clone();
                meta["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
            }
            None => {
                let uid = inner.next_uid;
                inner.next_uid += 1;
                meta["uid"] = json!(format!("00000000-0000-4000-8000-{uid:012x}"));
                if meta.get("creationTimestamp").is_none_or(Value::is_null) {
                    meta["creationTimestamp"] = json!(now_rfc3339());
                }
            }
        }
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        object["kind"] = json!(kind.kind_name());
        object["apiVersion"] = json!(kind.api_version());
        let object = Arc::new(object);
        inner
            .objects
            .entry(kind)
            .or_default()
            .insert(key, object.clone());
        let event_type = if existing.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.commit(inner, kind, event_type, object.clone());
        object
    }

    /// Applies `edit` to a copy of the object and stores it if it changed.
    /// Returns the new object, or None when the object does not exist.
    pub fn update(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Option<Arc<Value>> {
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&kind)?
            .get(&(namespace.to_string(), name.to_string()))?
            .clone();
        let mut next = (*current).clone();
        edit(&mut next);
        if next == *current {
            return Some(current);
        }
        Some(self.insert_locked(&mut inner, kind, next))
    }

    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let mut inner = self.lock();
        let removed = inner
            .objects
            .get_mut(&kind)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        inner.rv += 1;
        let mut gone = (*removed).clone();
        gone["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
        let gone = Arc::new(gone);
        self.commit(&mut inner, kind, "DELETED", gone.clone());
        Some(gone)
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(&kind)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of a kind (optionally in one namespace) and the version
    /// the list is consistent at.
    pub fn list(&self, kind: Kind, namespace: Option<&str>) -> (u64, Vec<Arc<Value>>) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(&kind)
            .map(|m| {
                m.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        (inner.rv, items)
    }

    /// Starts a watch of all kinds after `from_rv` (the caller filters).
    pub fn watch(&self, from_rv: u64) -> Result<WatchStart, WatchError> {
        let inner = self.lock();
        let oldest = inner.history.front().map_or(inner.rv, |c| c.rv);
        // A version before the oldest kept change (minus one: a watch "from"
        // rv N wants changes > N) cannot be served exactly.
        if from_rv + 1 < oldest && from_rv < inner.rv {
            return Err(WatchError::Gone { oldest });
        }
        let backlog = inner
            .history
            .iter()
            .filter(|c| c.rv > from_rv)
            .cloned()
            .collect();
        Ok(WatchStart {
            backlog,
            live: self.tx.subscribe(),
            current_rv: inner.rv,
        })
    }

    fn commit(&self, inner: &mut Inner, kind: Kind, event_type: &'static str, object: Arc<Value>) {
        let line = watch_line(event_type, &object);
        let change = Arc::new(Change {
            rv: inner.rv,
            kind,
            event_type,
            object,
            line,
        });
        if inner.history.len() >= inner.history_cap {
            inner.history.pop_front();
        }
        inner.history.push_back(change.clone());
        // No receivers is normal (no watch open yet).
        let _ = self.tx.send(change.clone());
        if let Some(log) = self.commit_log.get() {
            log.record(&change);
        }
    }
}

/// `{"type":…,"object":…}` and a newline, with `type` first as the API
/// server writes it: a client can then decode the object as it reads
/// (kube-rs buffers the whole object when `object` comes first), and the
/// object is serialised in place rather than cloned into a wrapper.
pub fn watch_line(event_type: &str, object: &Value) -> bytes::Bytes {
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(b"{\"type\":");
    let _ = serde_json::to_writer(&mut buf, event_type);
    buf.extend_from_slice(b",\"object\":");
    let _ = serde_json::to_writer(&mut buf, object);
    buf.extend_from_slice(b"}\n");
    buf.into()
}

fn object_key(object: &Value) -> ObjectKey {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_string(),
        meta["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// RFC 3339 with second precision, the format of `metav1.Time`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// RFC 3339 with microseconds, the format of `metav1.MicroTime` (lease renewTime).
pub fn now_rfc3339_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {}})
    }

    #[test]
    fn versions_increase_and_watch_replays_from_version() {
        let store = Store::new(100);
        store.upsert(Kind::Node, node("a"));
        let rv_after_a = store.current_rv();
        store.upsert(Kind::Node, node("b"));
        store.update(Kind::Node, "", "a", |n| {
            n["spec"]["unschedulable"] = json!(true)
        });
        let w = store.watch(rv_after_a).unwrap();
        let names: Vec<_> = w
            .backlog
            .iter()
            .map(|c| {
                (
                    c.event_type,
                    c.object["metadata"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![("ADDED", "b".to_string()), ("MODIFIED", "a".to_string())]
        );
        assert!(w.backlog[0].rv < w.backlog[1].rv);
    }

    #[test]
    fn too_old_version_is_gone() {
        let store = Store::new(2);
        for i in 0..5 {
            store.upsert(Kind::Node, node(&format!("n{i}")));
        }
        assert!(matches!(store.watch(1), Err(WatchError::Gone { .. })));
        assert!(store.watch(store.current_rv()).is_ok());
    }

    #[test]
    fn watch_lines_put_the_type_first() {
        let line = watch_line("MODIFIED", &json!({"metadata": {"name": "a\"b"}}));
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\\\"b\"}}}\n"
        );
    }

    #[test]
    fn unchanged_update_does_not_bump_version() {
        let store = Store::new(10);
        store.upsert(Kind::Node, node("a"));
        let rv = store.current_rv();
        store.update(Kind::Node, "", "a", |_| {});
        assert_eq!(store.current_rv(), rv);
    }
}
