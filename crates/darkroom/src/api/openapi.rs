//! `GET /api/openapi.json`: the OpenAPI document of everything Darkroom serves.
//!
//! It is the published Comfy API v2 contract with Darkroom's additions laid over it, both
//! kept as YAML under `openapi/` and turned into JSON at build time. The merge happens once,
//! on first use.

use std::sync::LazyLock;

use axum::Json;
use serde_json::Value;

const CONTRACT: &str = include_str!(concat!(env!("OUT_DIR"), "/comfy-api-v2.json"));
const ADDITIONS: &str = include_str!(concat!(env!("OUT_DIR"), "/darkroom.json"));

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    // Both were parsed by build.rs already; a failure here cannot happen at run time.
    let mut document: Value = serde_json::from_str(CONTRACT).unwrap_or_default();
    let additions: Value = serde_json::from_str(ADDITIONS).unwrap_or_default();
    overlay(&mut document, additions);
    document["info"]["x-darkroom-version"] = Value::from(env!("CARGO_PKG_VERSION"));
    document
});

/// Serves the document.
pub async fn document() -> Json<Value> {
    Json(DOCUMENT.clone())
}

/// Lays `top` over `base`: objects merge key by key; any other value replaces.
fn overlay(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(base), Value::Object(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) => overlay(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn additions_merge_into_objects_and_replace_the_rest() {
        let mut base = json!({"paths": {"/a": {"post": {}}}, "servers": [1, 2], "x": 1});
        overlay(
            &mut base,
            json!({"paths": {"/a": {"get": {}}}, "servers": [3]}),
        );
        assert_eq!(
            base,
            json!({"paths": {"/a": {"post": {}, "get": {}}}, "servers": [3], "x": 1})
        );
    }

    #[test]
    fn the_document_is_the_contract_plus_darkroom() {
        assert_eq!(DOCUMENT["openapi"], "3.0.3");
        assert!(DOCUMENT["paths"]["/api/v2/jobs"]["post"].is_object());
        assert!(DOCUMENT["paths"]["/api/v2/jobs"]["get"].is_object());
        assert!(DOCUMENT["components"]["schemas"]["Job"]["properties"]["state"].is_object());
    }
}
