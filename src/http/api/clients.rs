//! `/api/v1/clients`: the shop's clients.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Id;
use super::common::{idempotent, scope};
use super::paging::{ListParams, Meta};
use crate::app::AppState;
use crate::domain::client::{Client, ClientInput};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::json::{JsonBody, JsonWithBytes, Query};
use crate::service::idempotency::IdempotencyService;
use crate::service::resources::ResourceService;
use crate::store::resources::Cursor;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
}

#[derive(Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<Client>,
    pub meta: Meta,
}

#[derive(Serialize, ToSchema)]
pub struct ClientEnvelope {
    pub client: Client,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientSearch {
    /// Matches first or last name, business name, email or phone (substring,
    /// case-insensitive).
    #[param(example = "patel")]
    pub q: Option<String>,
}

pub fn position(c: &Client) -> Cursor {
    Cursor {
        updated_at: c.updated_at,
        id: c.id.clone(),
    }
}

/// List clients.
#[utoipa::path(get, path = "/clients", tag = "Clients", operation_id = "listClients",
    params(ListParams, ClientSearch),
    responses((status = 200, description = "A page of clients", body = ClientList)))]
async fn list(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Query(params): Query<ListParams>,
    Query(search): Query<ClientSearch>,
) -> Result<Json<ClientList>, ApiError> {
    let query = params.parse()?;
    let paged = resources
        .list_clients(&scope(&caller), search.q.as_deref(), &query)
        .await?;
    let meta = Meta::of_listing(&query, paged.total, &paged.items, position);
    Ok(Json(ClientList {
        clients: paged.items,
        meta,
    }))
}

/// Create a client.
///
/// Honours `Idempotency-Key`: a retry with the same key and body returns the
/// first answer instead of creating a duplicate.
#[utoipa::path(post, path = "/clients", tag = "Clients", operation_id = "createClient",
    request_body(content = ClientInput, example = json!({"first_name": "Sam", "last_name": "Patel", "email": "sam@example.com", "phone": "+44 20 7946 0958"})),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body give the first answer (kept 24 h)")),
    responses((status = 201, description = "Created", body = ClientEnvelope,
        headers(("Location" = String, description = "The new client's URL")))))]
async fn create(
    State(resources): State<Arc<ResourceService>>,
    State(idempotency): State<Arc<IdempotencyService>>,
    caller: Caller,
    headers: HeaderMap,
    JsonWithBytes(input, bytes): JsonWithBytes<ClientInput>,
) -> Result<Response, ApiError> {
    let scope = scope(&caller);
    idempotent(
        &idempotency,
        &scope,
        &headers,
        "/clients",
        &bytes,
        || async {
            let client = resources.create_client(&scope, input).await?;
            let location = format!("/api/v1/clients/{}", client.id);
            Ok((location, serde_json::json!({ "client": client })))
        },
    )
    .await
}

/// Get a client.
#[utoipa::path(get, path = "/clients/{id}", tag = "Clients", operation_id = "getClient",
    params(("id" = String, Path, description = "Client id")),
    responses((status = 200, description = "The client", body = ClientEnvelope)))]
async fn show(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<ClientEnvelope>, ApiError> {
    let client = resources.get_client(&scope(&caller), &id).await?;
    Ok(Json(ClientEnvelope { client }))
}

/// Update a client (JSON merge patch: absent fields stay, `null` clears).
#[utoipa::path(patch, path = "/clients/{id}", tag = "Clients", operation_id = "updateClient",
    params(("id" = String, Path, description = "Client id")),
    request_body(content = ClientInput, content_type = "application/merge-patch+json", example = json!({"phone": "+44 161 496 0000", "notes": null})),
    responses((status = 200, description = "The updated client", body = ClientEnvelope)))]
async fn update(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
    JsonBody(patch): JsonBody<ClientInput>,
) -> Result<Json<ClientEnvelope>, ApiError> {
    let client = resources.update_client(&scope(&caller), &id, patch).await?;
    Ok(Json(ClientEnvelope { client }))
}

/// Delete a client. Refused (409) while the client has orders or devices of
/// its own.
#[utoipa::path(delete, path = "/clients/{id}", tag = "Clients", operation_id = "deleteClient",
    params(("id" = String, Path, description = "Client id")),
    responses((status = 204, description = "Deleted"),
        (status = 409, description = "`conflict`: the client still has orders or devices of its own", body = crate::http::openapi::Problem, content_type = "application/problem+json")))]
async fn delete(
    State(resources): State<Arc<ResourceService>>,
    caller: Caller,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    resources.delete_client(&scope(&caller), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
