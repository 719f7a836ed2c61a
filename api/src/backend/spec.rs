//! Spec changes both backends make the same way.

use forkr_crds::BoxSpec;
use forkr_crds::validation::BoxUpdate;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Applies the allowlisted settings of `4kr update`: PORT, CPU, MEMORY, the grace period, tags.
pub fn apply_update(spec: &mut BoxSpec, update: BoxUpdate) {
    if let Some(port) = update.port {
        spec.port = Some(i32::from(port));
    }
    if let Some(cpu) = update.cpu {
        spec.cpu = Some(Quantity(cpu));
    }
    if let Some(memory) = update.memory {
        spec.memory = Some(Quantity(memory));
    }
    if let Some(grace) = update.termination_grace_period_seconds {
        spec.termination_grace_period_seconds = Some(grace);
    }
    if let Some(tags) = update.tags {
        spec.tags.extend(tags);
    }
}
