//! One cockpit drives a cluster at a time: a Lease in `kube-system` is the
//! lock, as leader election does it. A live lock held by someone else is
//! refused with who holds it; a stale one (not renewed within its
//! duration) is shown and taken over only with `--break-lock`.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

pub const LOCK_NAMESPACE: &str = "kube-system";
pub const LOCK_NAME: &str = "k3s-cockpit-rollout";
const LOCK_SECONDS: i32 = 60;
const RENEW_EVERY: Duration = Duration::from_secs(15);

/// Who this cockpit is, as the lock shows it: `user@host pid N`.
pub fn identity() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host} pid {}", std::process::id())
}

/// A holder on this machine whose process no longer runs (a crash or
/// `kill -9`): its lock is stale even before it expires.
fn holder_is_gone(holder: &str) -> bool {
    let mine = identity();
    let host = |id: &str| id.split(" pid ").next().map(str::to_string);
    let pid = holder
        .rsplit(" pid ")
        .next()
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) if host(holder) == host(&mine) && pid != std::process::id() => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

pub struct RolloutLock {
    api: Api<Lease>,
    holder: String,
}

fn lease_object(holder: &str, resource_version: Option<String>, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(LOCK_NAME.into()),
            namespace: Some(LOCK_NAMESPACE.into()),
            resource_version,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(LOCK_SECONDS),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

fn where_() -> String {
    format!("lease {LOCK_NAMESPACE}/{LOCK_NAME}")
}

impl RolloutLock {
    /// Takes the lock, or explains who has it.
    pub async fn acquire(client: &Client, holder: &str, break_lock: bool) -> Result<Self, String> {
        let api: Api<Lease> = Api::namespaced(client.clone(), LOCK_NAMESPACE);
        let now = Timestamp::now();
        let existing = api
            .get_opt(LOCK_NAME)
            .await
            .map_err(|e| format!("reading the rollout lock ({}): {e}", where_()))?;
        let Some(current) = existing else {
            api.create(&PostParams::default(), &lease_object(holder, None, now))
                .await
                .map_err(|e| format!("taking the rollout lock ({}): {e}", where_()))?;
            return Ok(RolloutLock {
                api,
                holder: holder.into(),
            });
        };
        let spec = current.spec.clone().unwrap_or_default();
        let other = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LOCK_SECONDS));
        let age = renewed.map(|t| now.duration_since(t).as_secs());
        let gone = holder_is_gone(&other);
        let stale = gone || age.is_none_or(|a| a > duration);
        let mut age_text = age.map_or("never renewed".to_string(), |a| format!("renewed {a}s ago"));
        if gone {
            age_text.push_str(", and that process is gone");
        }
        if other != holder && !stale {
            return Err(format!(
                "another cockpit drives this cluster: {other} holds the rollout lock ({}, {age_text}). \
                 Wait for it to finish, or stop it first",
                where_()
            ));
        }
        if other != holder && !break_lock {
            return Err(format!(
                "a stale rollout lock is held by {other} ({}, {age_text}, longer than its {duration}s). \
                 If that cockpit is gone, pass --break-lock to take it over",
                where_()
            ));
        }
        api.replace(
            LOCK_NAME,
            &PostParams::default(),
            &lease_object(holder, current.metadata.resource_version.clone(), now),
        )
        .await
        .map_err(|e| format!("taking over the rollout lock ({}): {e}", where_()))?;
        if other != holder {
            tracing::warn!(target: "upgrade", "broke the stale rollout lock held by {other} ({age_text})");
        }
        Ok(RolloutLock {
            api,
            holder: holder.into(),
        })
    }

    /// Renews the lock every 15 s for as long as the returned task lives.
    pub fn keep_alive(&self) -> tokio::task::JoinHandle<()> {
        let api = self.api.clone();
        let holder = self.holder.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RENEW_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let current = match api.get(LOCK_NAME).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(target: "upgrade", "cannot renew the rollout lock: {e}");
                        continue;
                    }
                };
                let spec = current.spec.clone().unwrap_or_default();
                if spec.holder_identity.as_deref() != Some(holder.as_str()) {
                    tracing::error!(
                        target: "upgrade",
                        "the rollout lock was taken by {}; another cockpit may be driving this cluster",
                        spec.holder_identity.unwrap_or_default()
                    );
                    return;
                }
                let mut renewed = lease_object(
                    &holder,
                    current.metadata.resource_version.clone(),
                    Timestamp::now(),
                );
                if let Some(spec) = renewed.spec.as_mut() {
                    spec.acquire_time = current.spec.and_then(|s| s.acquire_time);
                }
                if let Err(e) = api
                    .replace(LOCK_NAME, &PostParams::default(), &renewed)
                    .await
                {
                    tracing::warn!(target: "upgrade", "cannot renew the rollout lock: {e}");
                }
            }
        })
    }

    /// Gives the lock back (only if still ours).
    pub async fn release(self) {
        if let Ok(current) = self.api.get(LOCK_NAME).await
            && current.spec.and_then(|s| s.holder_identity).as_deref() == Some(self.holder.as_str())
            && let Err(e) = self.api.delete(LOCK_NAME, &DeleteParams::default()).await
        {
            tracing::warn!(target: "upgrade", "cannot release the rollout lock: {e}");
        }
    }
}
