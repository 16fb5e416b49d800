//! Pure data: what the cockpit knows about the cluster, and facts derived
//! from it and `now`. No I/O here, so everything is testable with a fixed
//! clock.

pub mod fleet;
pub mod health;
pub mod heartbeat_seen;
pub mod metallb;
pub mod outage;
pub mod probe;
pub mod timeline;

pub use fleet::{ClusterEvent, Fleet};
