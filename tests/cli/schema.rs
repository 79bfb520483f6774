//! The committed JSON Schema is what the binary prints and what the code accepts.

use crate::harness::{repo, Test};

#[test]
fn schema_command_prints_the_committed_schema() {
    let committed = std::fs::read_to_string(repo().join("schemas/workflow.schema.json")).expect("schema file");
    Test::new().args(&["schema"]).stdout(&committed).run();
}

#[test]
fn schema_is_valid_draft_2020_12() {
    let committed = std::fs::read_to_string(repo().join("schemas/workflow.schema.json")).expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&committed).expect("schema is JSON");
    assert!(jsonschema::meta::is_valid(&schema));
}

#[test]
fn every_key_workflow_uses_every_key_of_the_schema() {
    // A key added to the schema must be added to `every_key.yaml` (and so to the
    // parser, whose unit test reads every field of that file).
    let committed = std::fs::read_to_string(repo().join("schemas/workflow.schema.json")).expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&committed).expect("schema is JSON");
    let text = std::fs::read_to_string(repo().join("tests/corpus/valid/every_key.yaml")).expect("every_key.yaml");
    let mut objects = vec![schema["properties"].clone()];
    for def in ["defaults", "trigger", "retry", "compensate", "step"] {
        objects.push(schema["$defs"][def]["properties"].clone());
    }
    for props in objects {
        for key in props.as_object().expect("properties").keys() {
            assert!(text.contains(&format!("{key}:")), "every_key.yaml does not use `{key}`");
        }
    }
}
