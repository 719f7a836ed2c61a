//! Tables for people, JSON for programs (`-j/--json`).

use serde::Serialize;

/// Prints rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                out.push_str(&cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&mut header.iter().map(|h| (*h).to_owned()));
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().cloned()));
        out.push('\n');
    }
    out
}

/// The NAME, SIZE, CREATED, DESCRIPTION table of snapshots and volume copies.
pub fn snapshot_table(list: &[forkr_api_proto::wire::SnapshotView]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                human_size(s.size),
                s.created.clone(),
                s.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["NAME", "SIZE", "CREATED", "DESCRIPTION"], &rows)
}

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Bytes as people read them: 1.5 GiB, 12 MiB, 512 B.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_sizes_read_well() {
        let t = table(
            &["NAME", "SIZE"],
            &[
                vec!["a".into(), "1 B".into()],
                vec!["longer".into(), "2.0 MiB".into()],
            ],
        );
        assert_eq!(t, "NAME    SIZE\na       1 B\nlonger  2.0 MiB\n");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(200 << 20), "200 MiB");
    }
}

/// The outcome of deleting one of several named things.
#[derive(Serialize)]
pub struct Deleted {
    pub name: String,
    pub deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Deleted {
    pub fn new(name: String, outcome: Result<(), String>) -> Deleted {
        Deleted {
            name,
            deleted: outcome.is_ok(),
            error: outcome.err(),
        }
    }
}

/// One `<name>: deleted` or `<name>: error: <msg>` line per item (or their JSON). When any
/// failed, the report comes back as a [`crate::PartialFailure`], so 4kr prints it and exits 1.
pub fn delete_report(results: &[Deleted], as_json: bool) -> anyhow::Result<String> {
    let text = if as_json {
        json(&results)?
    } else {
        results
            .iter()
            .map(|r| match &r.error {
                None => format!("{}: deleted\n", r.name),
                Some(e) => format!("{}: error: {e}\n", r.name),
            })
            .collect()
    };
    if results.iter().any(|r| r.error.is_some()) {
        return Err(crate::PartialFailure(text).into());
    }
    Ok(text)
}
