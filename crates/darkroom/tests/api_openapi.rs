//! `GET /api/openapi.json` describes exactly what Darkroom serves: every route of the
//! router is in the document, and every operation in the document is routed.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::TestServer;

async fn document(server: &TestServer) -> Value {
    let (status, document) = server.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    document
}

#[tokio::test]
async fn every_route_of_the_router_is_documented() {
    let server = TestServer::start().await;
    let document = document(&server).await;
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    assert!(schemes.contains_key("bearerAuth") && schemes.contains_key("sessionCookie"));
    for (method, path, access) in darkroom::api::endpoints() {
        let operation = &document["paths"][path][method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} is served but not documented"
        );
        // Public routes say they need no key; every other route inherits the keys.
        let public = operation["security"] == serde_json::json!([{}]);
        assert_eq!(
            public,
            access == darkroom::api::Access::Public,
            "{method} {path} is {access:?} but its documented security says otherwise"
        );
        assert!(
            operation["responses"].is_object(),
            "{method} {path} documents no responses"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start().await;
    let document = document(&server).await;
    let paths = document["paths"].as_object().unwrap();
    for (path, operations) in paths {
        let concrete = path
            .replace("{id}", "7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b")
            .replace("{hash}", "blake3:0");
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let response = server
                .http
                .request(method.clone(), server.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let (_, body) = support::read_json(response).await;
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("no route"),
                "{method} {path} is documented but not routed"
            );
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_document_is_the_v2_contract_with_darkroom_fields() {
    let server = TestServer::start().await;
    let document = document(&server).await;
    assert_eq!(document["info"]["version"], "2.0.0");
    let job = &document["components"]["schemas"]["Job"]["properties"];
    assert!(job["status"].is_object() && job["state"].is_object());
    assert!(document["paths"]["/api/v2/jobs"]["get"]["tags"][0] == "darkroom");
    server.stop().await;
}
