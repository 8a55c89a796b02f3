//! Every golden transcript recorded from a real ComfyUI (`fixtures/transcripts/`, made by
//! `record-transcripts`) is read by the client's parsers without a loss.

// A failed unwrap is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use bytes::Bytes;
use comfy::events::parse_message;
use comfy::frames::{BinaryFrame, ImageFormat, decode_frame};
use comfy::history::{RunOutcome, parse_history_body};
use comfy::outputs::{MediaKind, Output};
use comfy::{FileType, PromptId, ServerMessage};
use serde_json::Value;

fn transcript(name: &str) -> Value {
    let path = testkit::repo_root().join(format!("fixtures/transcripts/{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn all_transcripts() -> Vec<(String, Value)> {
    let dir: PathBuf = testkit::repo_root().join("fixtures/transcripts");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    assert!(
        names.len() >= 9,
        "expected every scenario recorded, found {names:?}"
    );
    names
        .into_iter()
        .map(|name| (name.clone(), transcript(&name)))
        .collect()
}

fn messages(transcript: &Value) -> Vec<ServerMessage> {
    transcript["ws"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry.get("text"))
        .map(|text| {
            parse_message(&text.to_string()).unwrap_or_else(|error| panic!("{error}: {text}"))
        })
        .collect()
}

fn frames(transcript: &Value) -> Vec<BinaryFrame> {
    transcript["ws"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry.get("binary"))
        .map(|frame| {
            let bytes = testkit::scenarios::unhex(frame["hex"].as_str().unwrap()).unwrap();
            decode_frame(Bytes::from(bytes)).unwrap()
        })
        .collect()
}

fn history_entries(transcript: &Value) -> Vec<comfy::HistoryEntry> {
    transcript["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|body| {
            let prompt_id = body.as_object()?.keys().next()?.clone();
            Some(
                parse_history_body(&PromptId::new(prompt_id), body)
                    .unwrap()
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_recorded_message_has_a_known_type() {
    for (name, transcript) in all_transcripts() {
        for message in messages(&transcript) {
            assert!(
                !matches!(message, ServerMessage::Unknown { .. }),
                "{name}: core message type {} read as unknown",
                message.kind()
            );
        }
        assert_eq!(
            frames(&transcript).len(),
            transcript["ws"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e.get("binary").is_some())
                .count()
        );
    }
}

#[test]
fn legacy_preview_frames_from_ksampler_are_jpeg() {
    let previews = frames(&transcript("txt2img_with_previews"));
    assert_eq!(previews.len(), 4, "one latent preview per sampler step");
    for frame in previews {
        let BinaryFrame::Preview(preview) = frame else {
            panic!("expected a preview")
        };
        assert_eq!(preview.format, ImageFormat::Jpeg);
        assert!(preview.metadata.is_none());
        assert!(
            preview.image.starts_with(&[0xff, 0xd8, 0xff]),
            "JPEG magic at byte 8"
        );
        assert!(
            preview.image.ends_with(&[0xff, 0xd9]),
            "whole JPEG, nothing cut"
        );
    }
}

#[test]
fn metadata_preview_frames_name_their_prompt_and_text_frames_their_node() {
    let transcript = transcript("previews_with_metadata");
    let prompt_id = transcript["http"][0]["response"]["prompt_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let decoded = frames(&transcript);
    let previews: Vec<_> = decoded
        .iter()
        .filter_map(|frame| match frame {
            BinaryFrame::Preview(preview) => Some(preview),
            _ => None,
        })
        .collect();
    let texts: Vec<_> = decoded
        .iter()
        .filter_map(|frame| match frame {
            BinaryFrame::Text { node_id, text } => Some((node_id.as_str(), text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(previews.len(), 3);
    for preview in previews {
        let metadata = preview
            .metadata
            .as_ref()
            .expect("type-4 frames carry metadata");
        assert_eq!(
            metadata.prompt_id.as_ref().map(PromptId::as_str),
            Some(prompt_id.as_str())
        );
        assert_eq!(
            metadata.node_id.as_ref().map(comfy::NodeId::as_str),
            Some("1")
        );
        assert_eq!(preview.format, ImageFormat::Jpeg);
        assert!(preview.image.starts_with(&[0xff, 0xd8, 0xff]));
    }
    assert_eq!(texts.len(), 3);
    assert!(
        texts
            .iter()
            .all(|(node, text)| *node == "1" && !text.is_empty())
    );
}

#[test]
fn txt2img_history_holds_the_saved_image() {
    let [entry] = history_entries(&transcript("txt2img_with_previews"))
        .try_into()
        .unwrap();
    assert_eq!(entry.outcome, RunOutcome::Success);
    let [Output::File(file)] = entry.outputs.as_slice() else {
        panic!("{:?}", entry.outputs)
    };
    assert_eq!(file.node_id.as_str(), "9");
    assert_eq!(file.file.subfolder, "e2e");
    assert_eq!(file.file.file_type, FileType::Output);
    assert_eq!(file.media, MediaKind::Image);
    assert!(entry.started_at_ms.is_some() && entry.finished_at_ms >= entry.started_at_ms);
}

#[test]
fn execution_error_is_read_from_history_with_node_and_exception() {
    let [entry] = history_entries(&transcript("execution_error"))
        .try_into()
        .unwrap();
    let RunOutcome::Failed(error) = entry.outcome else {
        panic!("{:?}", entry.outcome)
    };
    assert_eq!(error.node_id.as_str(), "1");
    assert_eq!(error.node_type, "DarkroomFail");
    assert_eq!(error.exception_type, "RuntimeError");
    assert!(error.exception_message.contains("boom requested by test"));
    assert!(entry.outputs.is_empty());
}

#[test]
fn interrupt_is_read_from_history_as_interrupted() {
    let [entry] = history_entries(&transcript("interrupt"))
        .try_into()
        .unwrap();
    let RunOutcome::Interrupted(interrupted) = entry.outcome else {
        panic!("{:?}", entry.outcome)
    };
    assert_eq!(
        interrupted.node_type.as_deref(),
        Some("DarkroomUntilInterrupted")
    );
}

#[test]
fn validation_refusal_keeps_every_node_error() {
    let transcript = transcript("validation_error");
    let refusal = &transcript["http"][0];
    assert_eq!(refusal["status"], 400);
    let rejection: comfy::PromptRejection =
        serde_json::from_value(refusal["response"].clone()).unwrap();
    assert_eq!(rejection.error.kind, "prompt_outputs_failed_validation");
    let width = &rejection.node_errors[&comfy::NodeId::new("1")];
    assert_eq!(width.class_type, "EmptyImage");
    assert_eq!(width.errors[0].kind, "value_bigger_than_max");
    assert_eq!(width.errors[0].input_name(), Some("width"));
    assert!(rejection.to_string().contains("input \"width\""));
}

#[test]
fn cached_resubmission_reports_the_same_files() {
    let transcript = transcript("cached_resubmission");
    let entries = history_entries(&transcript);
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].outputs, entries[1].outputs,
        "no new files, same outputs"
    );
    assert_eq!(
        entries[1].cached_nodes.len(),
        2,
        "every node served from cache"
    );
}

#[test]
fn preview_image_outputs_are_temp_files() {
    let [entry] = history_entries(&transcript("preview_image_temp"))
        .try_into()
        .unwrap();
    assert_eq!(entry.outputs.len(), 2);
    assert!(entry.outputs.iter().all(
        |output| matches!(output, Output::File(file) if file.file.file_type == FileType::Temp)
    ));
}

#[test]
fn several_output_nodes_give_images_text_and_audio() {
    let [entry] = history_entries(&transcript("several_output_nodes"))
        .try_into()
        .unwrap();
    let mut kinds: Vec<String> = entry
        .outputs
        .iter()
        .map(|output| match output {
            Output::File(file) => format!("{}:{:?}", file.node_id, file.media),
            Output::Text { node_id, text, .. } => format!("{node_id}:text:{text}"),
            Output::Unrecognized { node_id, key, .. } => format!("{node_id}:raw:{key}"),
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "2:Image",
            "3:Audio",
            "3:Image",
            "3:text:several outputs",
            "4:text:just text"
        ]
    );
}

#[test]
fn deleted_pending_prompt_never_gets_a_history_entry() {
    let transcript = transcript("queue_delete");
    let history = transcript["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[1],
        serde_json::json!({}),
        "the deleted prompt has no history"
    );
}
