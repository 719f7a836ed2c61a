//! The manifests shown in docs/crds.md are real: each deserializes into its type and passes the
//! same validation the controllers run.

#![allow(clippy::unwrap_used)]

use forkr_crds::{Base, BoxResource, DataVolume, ForkGrant, Snapshot};

fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn every_manifest_in_the_crd_reference_is_valid() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/crds.md")).unwrap();
    let mut kinds = Vec::new();
    for block in yaml_blocks(&doc) {
        let value: serde_json::Value = serde_yaml_ng::from_str(&block).unwrap();
        let kind = value["kind"].as_str().unwrap().to_owned();
        let result = match kind.as_str() {
            "Box" => serde_json::from_value::<BoxResource>(value)
                .unwrap()
                .validate(),
            "Snapshot" => serde_json::from_value::<Snapshot>(value)
                .unwrap()
                .validate(),
            "Base" => serde_json::from_value::<Base>(value).unwrap().validate(),
            "DataVolume" => serde_json::from_value::<DataVolume>(value)
                .unwrap()
                .validate(),
            "ForkGrant" => serde_json::from_value::<ForkGrant>(value)
                .unwrap()
                .validate(),
            other => panic!("unexpected kind {other} in docs/crds.md"),
        };
        assert!(result.is_ok(), "{kind} example in docs/crds.md: {result:?}");
        kinds.push(kind);
    }
    assert_eq!(
        kinds,
        ["Box", "Snapshot", "Base", "DataVolume", "ForkGrant"]
    );
}
