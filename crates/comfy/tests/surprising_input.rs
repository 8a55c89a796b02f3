//! Bad or surprising input from a server: typed errors or kept-raw values, never panics.

// A failed unwrap is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use comfy::events::{MessageError, parse_message};
use comfy::frames::{BinaryFrame, FrameError, ImageFormat, decode_frame};
use comfy::history::{RunOutcome, parse_history_body};
use comfy::outputs::{MediaKind, Output, parse_node_outputs};
use comfy::{NodeId, PromptId, ServerMessage};
use serde_json::json;

fn frame(parts: &[&[u8]]) -> Bytes {
    Bytes::from(parts.concat())
}

#[test]
fn legacy_preview_header_is_eight_bytes() {
    let jpeg = [0xff, 0xd8, 0xff, 0xe0, 1, 2, 3];
    let decoded = decode_frame(frame(&[&1u32.to_be_bytes(), &1u32.to_be_bytes(), &jpeg])).unwrap();
    let BinaryFrame::Preview(preview) = decoded else {
        panic!("not a preview")
    };
    assert_eq!(preview.format, ImageFormat::Jpeg);
    assert_eq!(preview.image.as_ref(), &jpeg);
    assert!(preview.metadata.is_none());

    let png = [0x89, b'P', b'N', b'G'];
    let decoded = decode_frame(frame(&[&1u32.to_be_bytes(), &2u32.to_be_bytes(), &png])).unwrap();
    let BinaryFrame::Preview(preview) = decoded else {
        panic!("not a preview")
    };
    assert_eq!(preview.format, ImageFormat::Png);
    assert_eq!(preview.image.as_ref(), &png);
}

#[test]
fn metadata_preview_names_prompt_and_node() {
    let metadata = br#"{"node_id":"3","prompt_id":"p1","display_node_id":"3","parent_node_id":null,"real_node_id":"3","image_type":"image/png"}"#;
    let image = [0x89, b'P', b'N', b'G', 9];
    let len = u32::try_from(metadata.len()).unwrap().to_be_bytes();
    let decoded = decode_frame(frame(&[&4u32.to_be_bytes(), &len, metadata, &image])).unwrap();
    let BinaryFrame::Preview(preview) = decoded else {
        panic!("not a preview")
    };
    assert_eq!(preview.format, ImageFormat::Png);
    assert_eq!(preview.image.as_ref(), &image);
    let metadata = preview.metadata.unwrap();
    assert_eq!(metadata.prompt_id, Some(PromptId::new("p1")));
    assert_eq!(metadata.node_id, Some(NodeId::new("3")));
}

#[test]
fn text_frame_splits_node_id_and_text() {
    let decoded = decode_frame(frame(&[
        &3u32.to_be_bytes(),
        &2u32.to_be_bytes(),
        b"12",
        b"step 1/3",
    ]))
    .unwrap();
    assert_eq!(
        decoded,
        BinaryFrame::Text {
            node_id: NodeId::new("12"),
            text: "step 1/3".to_owned()
        }
    );
}

#[test]
fn truncated_frames_are_errors() {
    assert_eq!(
        decode_frame(Bytes::from_static(&[0, 0])),
        Err(FrameError::Truncated { len: 2, needed: 4 })
    );
    assert_eq!(
        decode_frame(frame(&[&1u32.to_be_bytes(), &[0, 0]])),
        Err(FrameError::Truncated { len: 6, needed: 8 })
    );
    // A metadata length pointing past the end of the frame.
    let error =
        decode_frame(frame(&[&4u32.to_be_bytes(), &1000u32.to_be_bytes(), b"{}"])).unwrap_err();
    assert_eq!(
        error,
        FrameError::Truncated {
            len: 10,
            needed: 1008
        }
    );
    // A length near u32::MAX must not overflow.
    let error = decode_frame(frame(&[&3u32.to_be_bytes(), &u32::MAX.to_be_bytes()])).unwrap_err();
    assert!(matches!(error, FrameError::Truncated { .. }));
}

#[test]
fn invalid_frame_fields_are_errors() {
    let unknown_format = decode_frame(frame(&[&1u32.to_be_bytes(), &7u32.to_be_bytes(), b"x"]));
    assert_eq!(unknown_format, Err(FrameError::UnknownImageFormat(7)));
    let bad_json = decode_frame(frame(&[
        &4u32.to_be_bytes(),
        &2u32.to_be_bytes(),
        b"{x",
        b"img",
    ]));
    assert!(matches!(bad_json, Err(FrameError::BadMetadata(_))));
    let bad_text = decode_frame(frame(&[
        &3u32.to_be_bytes(),
        &1u32.to_be_bytes(),
        b"1",
        &[0xff, 0xfe],
    ]));
    assert_eq!(bad_text, Err(FrameError::BadText));
}

#[test]
fn unknown_frame_type_is_kept() {
    let decoded = decode_frame(frame(&[&9u32.to_be_bytes(), b"abc"])).unwrap();
    assert_eq!(
        decoded,
        BinaryFrame::Unknown {
            event_type: 9,
            payload: Bytes::from_static(b"abc")
        }
    );
}

#[test]
fn unknown_message_types_are_kept_raw() {
    let message =
        parse_message(r#"{"type":"crystools.monitor","data":{"cpu_utilization":3}}"#).unwrap();
    assert_eq!(message.kind(), "crystools.monitor");
    assert!(matches!(message, ServerMessage::Unknown { data, .. } if data["cpu_utilization"] == 3));
}

#[test]
fn malformed_messages_are_typed_errors() {
    assert!(matches!(
        parse_message("not json"),
        Err(MessageError::NotJson(_))
    ));
    assert!(matches!(
        parse_message(r#"{"data":{}}"#),
        Err(MessageError::NoType)
    ));
    let missing_prompt = parse_message(r#"{"type":"execution_start","data":{"timestamp":1}}"#);
    assert!(
        matches!(missing_prompt, Err(MessageError::Malformed { kind, .. }) if kind == "execution_start")
    );
    let bad_status = parse_message(r#"{"type":"status","data":{"status":{}}}"#);
    assert!(matches!(bad_status, Err(MessageError::Malformed { .. })));
}

#[test]
fn executing_null_is_the_end_hint_only_with_a_prompt_id() {
    let done =
        parse_message(r#"{"type":"executing","data":{"node":null,"prompt_id":"p"}}"#).unwrap();
    assert!(done.hints_run_ended());
    // Sent on reconnect to the socket that owns the running prompt: not an end.
    let replay = parse_message(r#"{"type":"executing","data":{"node":"5"}}"#).unwrap();
    assert!(!replay.hints_run_ended());
    assert_eq!(replay.prompt_id(), None);
}

#[test]
fn every_output_key_is_read_and_nothing_is_dropped() {
    let ui = json!({
        "images": [{"filename": "a.webp", "subfolder": "anim", "type": "output"}],
        "animated": [true],
        "gifs": [{"filename": "v.mp4", "subfolder": "", "type": "output", "format": "video/h264-mp4", "frame_rate": 8.0}],
        "audio": [{"filename": "s.flac", "subfolder": "audio", "type": "output"}],
        "3d": [{"filename": "m.glb", "subfolder": "3d", "type": "output"}],
        "text": ["hello", "world"],
        "result": ["mesh.glb", {"camera": 1}, null],
        "weird": {"not": "a list"},
        "nofile": [{"name": "x"}],
        "strange_type": [{"filename": "x.png", "type": "elsewhere"}]
    });
    let outputs = parse_node_outputs(&NodeId::new("9"), &ui);

    let files: Vec<_> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::File(file) => Some((file.key.as_str(), file.media, file.animated)),
            _ => None,
        })
        .collect();
    assert_eq!(
        files,
        [
            ("images", MediaKind::Video, true),
            ("gifs", MediaKind::Video, true),
            ("audio", MediaKind::Audio, true),
            ("3d", MediaKind::Model3d, true),
        ]
    );
    let texts: Vec<_> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["hello", "world"]);
    let kept_raw: Vec<_> = outputs
        .iter()
        .filter_map(|output| match output {
            Output::Unrecognized { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        kept_raw,
        [
            "result",
            "result",
            "result",
            "weird",
            "nofile",
            "strange_type"
        ]
    );
}

#[test]
fn file_item_keeps_type_subfolder_and_extra_fields() {
    let ui = json!({"gifs": [{"filename": "v.mp4", "subfolder": "vids", "type": "temp", "frame_rate": 8}]});
    let outputs = parse_node_outputs(&NodeId::new("1"), &ui);
    let [Output::File(file)] = outputs.as_slice() else {
        panic!("one file expected")
    };
    assert_eq!(file.file.subfolder, "vids");
    assert_eq!(file.file.file_type, comfy::FileType::Temp);
    assert_eq!(file.extra["frame_rate"], 8);
    assert_eq!(file.mime_type(), "video/mp4");
}

#[test]
fn history_of_unknown_prompt_is_none_and_junk_is_an_error() {
    let prompt_id = PromptId::new("p");
    assert!(
        parse_history_body(&prompt_id, &json!({}))
            .unwrap()
            .is_none()
    );
    assert!(parse_history_body(&prompt_id, &json!([])).is_err());
    assert!(parse_history_body(&prompt_id, &json!({"p": {"outputs": 3}})).is_err());
}

#[test]
fn history_without_status_block_counts_as_success() {
    let body = json!({"p": {"outputs": {"9": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}}}});
    let entry = parse_history_body(&PromptId::new("p"), &body)
        .unwrap()
        .unwrap();
    assert_eq!(entry.outcome, RunOutcome::Success);
    assert_eq!(entry.outputs.len(), 1);
}

#[test]
fn error_status_without_messages_is_a_failure_without_detail() {
    let body = json!({"p": {"outputs": {}, "status": {"status_str": "error", "completed": false, "messages": []}}});
    let entry = parse_history_body(&PromptId::new("p"), &body)
        .unwrap()
        .unwrap();
    assert_eq!(entry.outcome, RunOutcome::FailedWithoutDetail);
}
