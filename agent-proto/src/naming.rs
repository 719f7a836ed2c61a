//! Names the agent gives, which a caller that makes the same objects another way gives too.

/// The next automatic checkpoint name: `v<N+1>` above the highest `vN`, or `v0`.
pub fn next_auto_name<S: AsRef<str>>(existing: &[S]) -> String {
    let highest = existing
        .iter()
        .filter_map(|n| n.as_ref().strip_prefix('v')?.parse::<u64>().ok())
        .max();
    match highest {
        Some(n) => format!("v{}", n + 1),
        None => "v0".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_names_count_up_from_the_highest() {
        assert_eq!(next_auto_name::<&str>(&[]), "v0");
        assert_eq!(next_auto_name(&["v0", "v7", "before", "v3"]), "v8");
        assert_eq!(next_auto_name(&["vx", "release"]), "v0");
    }
}
