//! The templates resource: list, describe (with the JSON Schema of the parameters),
//! create, reload, and run a template as a job.
//!
//! A template job is checked before it is accepted: every parameter against its type,
//! bounds and choices, image assets against the store, and the filled-in graph against the
//! backends' `/object_info`. Every refusal names the parameter, never a node id, unless the
//! problem lies where no parameter lands. The job is then created exactly as
//! `POST /api/v2/jobs` creates one, with the same answer.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::jobs::{self, Created};
use super::links::Origin;
use super::node_classes::NodeCatalog;
use super::{ApiError, AppState, body};
use crate::auth::Caller;
use crate::jobs::requirements::Requirements;
use crate::templates::{Manifest, ParameterError, ParameterSpec, Template, TemplateError, Unfit};

/// Body of `POST /api/templates/{name}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    #[serde(default)]
    params: Map<String, Value>,
    #[serde(default)]
    keep_previews: bool,
    #[serde(default)]
    priority: Option<Value>,
}

/// Body of `POST /api/templates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    name: String,
    workflow: Value,
    #[serde(default)]
    manifest: Manifest,
}

/// `GET /api/templates`: every template in the folder, with the error of any that did not
/// load.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let catalog = state.node_classes.catalog(&state.backends).await;
    let info = catalog.as_deref().map(NodeCatalog::object_info);
    let templates: Vec<Value> = state
        .templates
        .list(info)
        .into_iter()
        .map(|(name, template)| match template {
            Ok(template) => summary(&template, unrunnable(&state, &template)),
            Err(error) => json!({"name": name, "error": error.to_string()}),
        })
        .collect();
    Json(json!({"templates": templates}))
}

/// `GET /api/templates/{name}`: the template, its parameters and their JSON Schema.
///
/// # Errors
///
/// `404 not_found`; `422 invalid_template` for a template that did not load.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.node_classes.catalog(&state.backends).await;
    let info = catalog.as_deref().map(NodeCatalog::object_info);
    let template = state.templates.template(&name, info)?;
    let unrunnable = unrunnable(&state, &template);
    Ok(Json(detail(&template, &template.specs(info), unrunnable)))
}

/// `POST /api/templates`: compiles the template, then writes it into the template folder.
///
/// # Errors
///
/// `409 template_exists`; `422 invalid_template` naming the binding or parameter at
/// fault; `422 invalid_request` for a bad name.
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<Value>), ApiError> {
    let request: NewTemplate = body::json(body, "invalid_template", &state.config.limits)?;
    let catalog = state.node_classes.catalog(&state.backends).await;
    let info = catalog.as_deref().map(NodeCatalog::object_info);
    let template = state
        .templates
        .create(&request.name, request.workflow, request.manifest, info)
        .await?;
    let location = format!("/api/templates/{}", template.name);
    let detail = detail(
        &template,
        &template.specs(info),
        unrunnable(&state, &template),
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(detail),
    ))
}

/// `POST /api/templates/reload`: reads the template folder again.
///
/// # Errors
///
/// `500` when the folder cannot be read.
pub async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let catalog = state.node_classes.catalog(&state.backends).await;
    let info = catalog.as_deref().map(NodeCatalog::object_info);
    let loaded = state.templates.reload(info).await?;
    let templates: Vec<Value> = loaded
        .iter()
        .map(|loaded| json!({"name": loaded.name, "error": loaded.error}))
        .collect();
    let failed = loaded
        .iter()
        .filter(|loaded| loaded.error.is_some())
        .count();
    Ok(Json(
        json!({"loaded": loaded.len() - failed, "failed": failed, "templates": templates}),
    ))
}

/// `POST /api/templates/{name}/jobs`: runs the template with `params`, answering as
/// `POST /api/v2/jobs` does.
///
/// # Errors
///
/// `422 invalid_parameter` or `missing_asset` naming the parameter; `422 invalid_workflow`
/// when the template does not fit the backends; `404`; `queue_full`.
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    origin: Origin,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Created, ApiError> {
    let idempotency_key = jobs::idempotency_key(&headers)?;
    let request: JobRequest = body::json(body, "invalid_request", &state.config.limits)?;
    let catalog = state.node_classes.catalog(&state.backends).await;
    let info = catalog.as_deref().map(NodeCatalog::object_info);
    let template = state.templates.template(&name, info)?;

    let specs = template.specs(info);
    let instance = template
        .instantiate(&specs, &request.params)
        .map_err(|errors| invalid_parameters(&errors))?;
    check_assets(&state, &caller, &instance.assets).await?;
    // Without an answer from any backend, ComfyUI's own check at dispatch decides.
    if let Some(info) = info {
        template
            .check(&instance.graph, info)
            .map_err(|unfit| unfitting(&template, unfit))?;
    }

    let mut job = jobs::new_job(&state, Value::Object(instance.graph));
    job.original_workflow = Value::Object(template.graph.clone());
    job.template = Some(template.name.clone());
    job.parameters = Some(Value::Object(instance.parameters));
    job.idempotency_key = idempotency_key;
    job.keep_previews = request.keep_previews;
    job.priority = jobs::priority(request.priority.as_ref())?;
    jobs::accept(&state, &caller, job, &origin).await
}

/// Every image parameter must name a live asset of the caller's whose bytes are a
/// picture, whatever its name or declared type says.
async fn check_assets(
    state: &AppState,
    caller: &Caller,
    assets: &[(String, crate::jobs::model::AssetId)],
) -> Result<(), ApiError> {
    let now = OffsetDateTime::now_utc();
    let (mut missing, mut not_images) = (Vec::new(), Vec::new());
    for (parameter, id) in assets {
        let id = id.to_string();
        let Some(asset) = jobs::usable_asset(state.store.as_ref(), caller, Some(&id), now).await?
        else {
            missing.push(ParameterError::MissingAsset {
                parameter: parameter.clone(),
                asset_id: id,
            });
            continue;
        };
        let head = super::assets::sniff::head(state.blobs.as_ref(), &asset.hash).await?;
        if !super::assets::sniff::is_image(&head) {
            not_images.push(ParameterError::NotAnImage {
                parameter: parameter.clone(),
                asset_id: id,
            });
        }
    }
    if !missing.is_empty() {
        let mut error = invalid_parameters(&missing);
        error.code = "missing_asset";
        return Err(error);
    }
    if !not_images.is_empty() {
        return Err(invalid_parameters(&not_images));
    }
    Ok(())
}

/// `422 invalid_parameter`: the first problem as the message, all in `details.parameters`.
fn invalid_parameters(errors: &[ParameterError]) -> ApiError {
    let mut message = errors.first().map(ToString::to_string).unwrap_or_default();
    if errors.len() > 1 {
        message.push_str(&super::jobs::validate::more_problems(errors.len() - 1));
    }
    let details: Vec<Value> = errors
        .iter()
        .map(|error| {
            json!({
                "name": error.parameter(),
                "reason": error.reason(),
                "message": error.to_string(),
                "expected": error.expected(),
            })
        })
        .collect();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
        message,
    )
    .with_details(json!({"parameters": details}))
}

/// Problems where parameters land are the client's; the rest say the template does not
/// suit the backends it would run on.
fn unfitting(template: &Template, unfit: Unfit) -> ApiError {
    if !unfit.parameters.is_empty() {
        return invalid_parameters(&unfit.parameters);
    }
    let first = unfit.template.first().cloned().unwrap_or_default();
    let message = format!(
        "template {:?} does not fit the backends: {first}",
        template.name
    );
    ApiError::invalid_workflow(message).with_details(json!({"problems": unfit.template}))
}

impl From<TemplateError> for ApiError {
    fn from(error: TemplateError) -> Self {
        let message = error.to_string();
        match error {
            TemplateError::NotFound { .. } => ApiError::not_found(message),
            TemplateError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "template_exists", message)
            }
            TemplateError::InvalidName { .. } => ApiError::invalid_request(message),
            TemplateError::NeedsObjectInfo { .. } => ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backend_unavailable",
                    message,
                )
            },
            TemplateError::Io { .. } => ApiError::internal(&error),
            _ => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_template",
                message,
            ),
        }
    }
}

/// Why no backend can run `template`, whatever its parameters are set to, or `None` when
/// one can, or may (a backend not yet probed may). Inputs bound to a parameter are left
/// out: there the client may choose what a backend has (a checkpoint among its files).
/// What is left, node classes and fixed model files, is what a job of it is refused for at
/// submission, and a client learns it here before filling in a form.
fn unrunnable(state: &AppState, template: &Template) -> Option<String> {
    let mut fixed = template.graph.clone();
    for binding in template.parameters.iter().flat_map(|p| &p.bindings) {
        if let Some(inputs) = fixed
            .get_mut(&binding.node_id)
            .and_then(|node| node.get_mut("inputs"))
            .and_then(Value::as_object_mut)
        {
            inputs.remove(&binding.input);
        }
    }
    state
        .scheduler
        .check_runnable(&Requirements::of(&Value::Object(fixed)))
        .err()
        .map(|unrunnable| unrunnable.to_string())
}

fn summary(template: &Template, unrunnable: Option<String>) -> Value {
    let parameters: Vec<&str> = template
        .parameters
        .iter()
        .map(|parameter| parameter.name.as_str())
        .collect();
    json!({
        "name": template.name,
        "title": template.title,
        "description": template.description,
        "format": template.format,
        "parameters": parameters,
        "error": null,
        "runnable": unrunnable.is_none(),
        "unrunnable": unrunnable,
    })
}

fn detail(template: &Arc<Template>, specs: &[ParameterSpec], unrunnable: Option<String>) -> Value {
    let parameters: Vec<Value> = specs.iter().map(parameter).collect();
    let hidden: Vec<&str> = template
        .hidden
        .iter()
        .map(|parameter| parameter.name.as_str())
        .collect();
    json!({
        "name": template.name,
        "title": template.title,
        "description": template.description,
        "format": template.format,
        "parameters": parameters,
        "schema": template.json_schema(specs),
        "hidden": hidden,
        "notes": template.notes,
        "runnable": unrunnable.is_none(),
        "unrunnable": unrunnable,
    })
}

fn parameter(spec: &ParameterSpec) -> Value {
    let bindings: Vec<String> = spec.bindings.iter().map(ToString::to_string).collect();
    json!({
        "name": spec.name,
        "type": spec.kind,
        "description": spec.description,
        "default": spec.default,
        "required": spec.default.is_none(),
        "minimum": spec.min,
        "maximum": spec.max,
        "choices": spec.choices,
        "multiline": spec.multiline,
        "bindings": bindings,
    })
}
