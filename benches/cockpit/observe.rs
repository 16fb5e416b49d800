//! A stream of states (a terminal screen, a line of kubectl output) and
//! expectations on it: each expectation is checked by the thread that
//! applies the update, so the instant recorded is the instant the bytes that
//! made it true arrived, however late the waiting thread wakes.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

type Predicate<S> = Box<dyn Fn(&S) -> bool + Send>;

pub struct Observed<S> {
    inner: Mutex<Inner<S>>,
}

struct Inner<S> {
    state: S,
    pending: Vec<(Predicate<S>, Sender<u128>)>,
}

/// A registered expectation: resolves to the Unix time (ns) of the update
/// that first satisfied it.
pub struct Expectation {
    rx: Receiver<u128>,
}

impl Expectation {
    pub fn wait(&self, timeout: Duration) -> Option<u128> {
        self.rx.recv_timeout(timeout).ok()
    }

    pub fn try_get(&self) -> Option<u128> {
        self.rx.try_recv().ok()
    }
}

impl<S> Observed<S> {
    pub fn new(state: S) -> Self {
        Observed {
            inner: Mutex::new(Inner {
                state,
                pending: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies an update that arrived at `at_ns` and resolves every
    /// expectation it satisfies.
    pub fn update(&self, at_ns: u128, apply: impl FnOnce(&mut S)) {
        let mut inner = self.lock();
        apply(&mut inner.state);
        let Inner { state, pending } = &mut *inner;
        pending.retain(|(pred, tx)| {
            if pred(state) {
                let _ = tx.send(at_ns);
                false
            } else {
                true
            }
        });
    }

    /// Registers `pred`; `None` when it already holds (the caller's change
    /// would not be observable).
    pub fn expect(&self, pred: impl Fn(&S) -> bool + Send + 'static) -> Option<Expectation> {
        let mut inner = self.lock();
        if pred(&inner.state) {
            return None;
        }
        let (tx, rx) = mpsc::channel();
        inner.pending.push((Box::new(pred), tx));
        Some(Expectation { rx })
    }

    pub fn with<T>(&self, read: impl FnOnce(&S) -> T) -> T {
        read(&self.lock().state)
    }

    /// Drops expectations nobody waits for any more.
    pub fn clear(&self) {
        self.lock().pending.clear();
    }
}
