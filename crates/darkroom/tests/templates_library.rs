//! The template folder as a library: loading, the second compile once a backend's
//! `/object_info` is at hand (UI-format workflows wait for it), creation into the folder,
//! and names that must stay plain file names.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

use std::path::PathBuf;

use comfy::server_info::ObjectInfo;
use darkroom::templates::{Library, Manifest, TemplateError, WorkflowFormat};
use serde_json::{Value, json};

fn object_info() -> ObjectInfo {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/object_info.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `EmptyImage -> SaveImage` as the editor saves it, the image node titled "Card".
fn ui_card() -> Value {
    json!({
        "last_node_id": 2, "last_link_id": 1,
        "nodes": [
            {"id": 1, "type": "EmptyImage", "pos": [0, 0], "size": [315, 130], "flags": {},
             "order": 0, "mode": 0, "inputs": [], "title": "Card", "properties": {},
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
             "widgets_values": [24, 12, 1, 65280]},
            {"id": 2, "type": "SaveImage", "pos": [400, 0], "size": [315, 270], "flags": {},
             "order": 1, "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
             "outputs": [], "properties": {}, "widgets_values": ["card"]}
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "groups": [], "config": {}, "extra": {}, "version": 0.4
    })
}

#[tokio::test]
async fn a_ui_format_template_waits_for_object_info_then_converts() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("card.json"), ui_card().to_string()).unwrap();
    let manifest = "[parameters.width]\nbind = \"Card.width\"\n";
    std::fs::write(folder.path().join("card.toml"), manifest).unwrap();

    let library = Library::open(folder.path().to_path_buf(), None)
        .await
        .unwrap();
    let waiting = library.template("card", None).unwrap_err();
    assert!(
        matches!(waiting, TemplateError::NeedsObjectInfo { .. }),
        "{waiting}"
    );

    let info = object_info();
    let template = library.template("card", Some(&info)).unwrap();
    assert_eq!(template.format, WorkflowFormat::Ui);
    assert_eq!(template.parameters[0].name, "width");
    assert_eq!(template.parameters[0].bindings[0].to_string(), "1.width");
    // Compiled once with object_info, it stays compiled.
    assert!(library.template("card", None).is_ok());
}

#[tokio::test]
async fn a_missing_folder_is_created_and_created_templates_land_in_it() {
    let parent = tempfile::tempdir().unwrap();
    let folder = parent.path().join("templates");
    let library = Library::open(folder.clone(), None).await.unwrap();
    assert!(folder.is_dir());

    let workflow = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}, "_meta": {"title": "width"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}
    });
    let created = library
        .create("card", workflow, Manifest::default(), None)
        .await
        .unwrap();
    assert_eq!(created.parameters[0].name, "width");
    assert!(folder.join("card.json").exists() && folder.join("card.toml").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A fresh library reads the same template back from the files.
    let again = Library::open(folder, None).await.unwrap();
    assert_eq!(
        again.template("card", None).unwrap().parameters,
        created.parameters
    );
}

#[tokio::test]
async fn names_stay_plain_file_names() {
    let folder = tempfile::tempdir().unwrap();
    let library = Library::open(folder.path().to_path_buf(), None)
        .await
        .unwrap();
    let workflow = json!({"1": {"class_type": "EmptyImage", "inputs": {}}});
    for name in [
        "../escape",
        "a/b",
        ".hidden",
        "",
        "Upper",
        "reload",
        &"x".repeat(65),
    ] {
        let error = library
            .create(name, workflow.clone(), Manifest::default(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, TemplateError::InvalidName { .. }),
            "{name:?}: {error}"
        );
    }
    assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 0);
}
