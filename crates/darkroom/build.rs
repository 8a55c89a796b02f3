//! Turns the OpenAPI sources in `openapi/` (YAML, as the contract is published) into JSON
//! in `OUT_DIR`, so the server embeds them without parsing YAML at run time.

use std::path::Path;

const SOURCES: &[&str] = &["comfy-api-v2", "darkroom"];

fn main() {
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in SOURCES {
        let source = format!("openapi/{name}.yaml");
        println!("cargo::rerun-if-changed={source}");
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|error| panic!("cannot read {source}: {error}"));
        let document: serde_json::Value = serde_norway::from_str(&text)
            .unwrap_or_else(|error| panic!("{source} is not valid YAML: {error}"));
        let target = Path::new(&out_dir).join(format!("{name}.json"));
        std::fs::write(&target, document.to_string())
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", target.display()));
    }
}
