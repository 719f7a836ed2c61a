//! Standard conditions, computed by pure functions so that an unchanged world gives an equal
//! status (and therefore no write).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition of `type_`, keeping the previous `lastTransitionTime` while its status holds.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    // Empty strings serialize as null, which the CRD schema (message: string) refuses.
    let message = match message.into() {
        m if m.is_empty() => reason.to_owned(),
        m => m,
    };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// Whether `conditions` has `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let t0 = k8s_openapi::jiff::Timestamp::from_second(1_000)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let t1 = k8s_openapi::jiff::Timestamp::from_second(2_000)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let a = condition(&[], "Ready", false, "Creating", "", Some(1), t0);
        let b = condition(
            std::slice::from_ref(&a),
            "Ready",
            false,
            "Creating",
            "",
            Some(1),
            t1,
        );
        assert_eq!(a, b);
        let c = condition(&[b], "Ready", true, "Running", "", Some(1), t1);
        assert_eq!(c.last_transition_time, Time(t1));
    }
}
