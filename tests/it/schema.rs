//! The published JSON Schema of the rules file is the one the code describes.

use hotlead_tests::repo_file;

#[test]
fn the_committed_rules_schema_matches_the_rules_types() {
    let generated = serde_json::to_string_pretty(&hotlead_core::rules::json_schema())
        .expect("schema serialises")
        + "\n";
    let path = repo_file("schemas/rules.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; regenerate it with: cargo run -q -p hotlead -- rules schema > schemas/rules.schema.json",
        path.display()
    );
}

#[test]
fn the_schema_describes_every_top_level_section() {
    let schema = hotlead_core::rules::json_schema();
    let properties = schema["properties"].as_object().expect("an object schema");
    for key in [
        "name", "version", "bands", "grade", "groups", "lists", "filters", "rules", "alerts",
    ] {
        assert!(properties.contains_key(key), "schema lacks {key}");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        required.contains(&"bands")
            && required.contains(&"groups")
            && required.contains(&"version")
    );
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&hotlead_core::rules::json_schema())
        .expect("the schema is a valid JSON Schema")
}

fn as_json(toml_text: &str) -> serde_json::Value {
    let value: toml::Value = toml::from_str(toml_text).expect("valid TOML");
    serde_json::to_value(value).expect("TOML converts to JSON")
}

#[test]
fn editors_validating_with_the_schema_accept_the_shipped_examples() {
    let validator = validator();
    for file in ["examples/rules/seed.toml", "examples/rules/saas.toml"] {
        let text = std::fs::read_to_string(repo_file(file)).expect("example exists");
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&text))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
}

#[test]
fn editors_validating_with_the_schema_flag_misspelt_fields() {
    let text = std::fs::read_to_string(repo_file("examples/rules/seed.toml"))
        .expect("example exists")
        .replace("max_band = \"cold\"", "max_bnd = \"cold\"");
    assert!(!validator().is_valid(&as_json(&text)));
}
