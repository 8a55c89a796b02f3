//! Behaviour that differs by ComfyUI version adapts to the probed version: against an
//! older server (the simulator told to report 0.3.40) the client lets the server choose
//! prompt ids and refuses a targeted interrupt it cannot honour.

#![allow(clippy::unwrap_used)]

use comfy::{ComfyError, ComfyUiClient, PromptId, PromptRequest, Version};

#[tokio::test]
async fn an_old_server_chooses_prompt_ids_and_has_only_global_interrupts() {
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    sim.set_knobs(|knobs| knobs.comfyui_version = "0.3.40".to_owned());
    let client = ComfyUiClient::new(&sim.base_url()).unwrap();

    let capabilities = client.capabilities().await.unwrap().clone();
    assert_eq!(capabilities.version, Some(Version(0, 3, 40)));
    assert!(!capabilities.client_prompt_id && !capabilities.interrupt_by_id);

    let graph = testkit::graphs::empty_image_saved(1, "old/server");
    let request = PromptRequest::new(
        graph.as_object().unwrap().clone(),
        comfy::ClientId::random("t"),
    );
    let ours = request.prompt_id.clone().unwrap();
    let accepted = client.queue_prompt(&request).await.unwrap();
    assert_ne!(
        accepted.prompt_id, ours,
        "the id was not sent to a server that ignores it"
    );

    let error = client.interrupt(&PromptId::random()).await.unwrap_err();
    assert!(matches!(error, ComfyError::Unsupported { .. }), "{error}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_current_server_keeps_our_prompt_id() {
    let sim = comfy_sim::Simulator::builder().start().await.unwrap();
    let client = ComfyUiClient::new(&sim.base_url()).unwrap();
    let graph = testkit::graphs::empty_image_saved(2, "new/server");
    let request = PromptRequest::new(
        graph.as_object().unwrap().clone(),
        comfy::ClientId::random("t"),
    );
    let accepted = client.queue_prompt(&request).await.unwrap();
    assert_eq!(Some(accepted.prompt_id), request.prompt_id);
    client.interrupt(&PromptId::random()).await.unwrap();
    sim.shutdown().await;
}
