//! Leader election through a `coordination.k8s.io/v1` Lease, so that two replicas are safe:
//! only the holder runs the controllers, and a holder that cannot renew stops.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

/// Seconds a lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 15;

pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
}

/// What the holder of a lease may do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Ours (taken or renewed).
    Held,
    /// Someone else's and still fresh.
    Taken(String),
}

/// Whether `lease` may be taken by `me` at `now`: free, ours, or expired.
pub fn claimable(lease: &LeaseSpec, me: &str, now: Timestamp) -> bool {
    let holder = lease.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return true;
    }
    let secs = i64::from(lease.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    match &lease.renew_time {
        Some(MicroTime(t)) => *t + SignedDuration::from_secs(secs) < now,
        None => true,
    }
}

impl LeaseLock {
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
        }
    }

    /// One attempt to take or renew the lease; conflicts mean another replica won the race.
    pub async fn try_acquire(&self) -> Result<Claim, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Claim::Held),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Claim::Taken("?".into())),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if !claimable(&spec, &self.identity, now) {
            return Ok(Claim::Taken(spec.holder_identity.unwrap_or_default()));
        }
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let acquired = if ours {
            spec.acquire_time.map_or(now, |t| t.0)
        } else {
            now
        };
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        lease.spec = Some(self.spec(acquired, now, transitions));
        // The resourceVersion makes this a compare-and-swap.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Claim::Held),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Claim::Taken("?".into())),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the lease up (on a graceful stop), so a replica takes over without waiting for it
    /// to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            renew_time: None,
            ..spec
        });
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(drop)
    }

    /// Waits until the lease is ours.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(Claim::Held) => return,
                Ok(Claim::Taken(h)) => tracing::info!(holder = %h, "waiting for the leader lease"),
                Err(e) => tracing::warn!(error = %e, "leader lease"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Renews until renewal fails past the lease's validity; then returns (the caller stops).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(
                u64::try_from(LEASE_SECONDS / 3).unwrap_or(5),
            ))
            .await;
            match self.try_acquire().await {
                Ok(Claim::Held) => last_ok = tokio::time::Instant::now(),
                Ok(Claim::Taken(h)) => {
                    tracing::error!(holder = %h, "leader lease lost");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the leader lease"),
            }
            if last_ok.elapsed() > Duration::from_secs(u64::try_from(LEASE_SECONDS).unwrap_or(15)) {
                tracing::error!("could not renew the leader lease in time");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_or_own_leases_are_claimable() {
        let t = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
        let lease = LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(t(100))),
            ..LeaseSpec::default()
        };
        assert!(claimable(&lease, "a", t(101)));
        assert!(!claimable(&lease, "b", t(110)));
        assert!(claimable(&lease, "b", t(116)));
        assert!(claimable(&LeaseSpec::default(), "b", t(0)));
    }
}
