//! First run: `/setup?token=…` creates the shop and its owner. The token is
//! printed by `serve` on an empty database, stored only as a hash, and works
//! once. It also guards the form against cross-site posts: a forged form cannot
//! know it.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::{esc, page};
use crate::app::AppState;
use crate::domain::user::Password;
use crate::http::error::{FieldError, ServiceError};
use crate::service::shops::{CreatedShop, NewShopInput, ShopService};

pub fn router() -> Router<AppState> {
    Router::new().route("/setup", get(show).post(submit))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize, Default)]
struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    shop_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

fn invalid_link() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Setup link not valid",
        "<div class=\"card\"><h1>This setup link is not valid</h1>\
         <p class=\"lead\">It was already used, or a newer link replaced it, or the shop is already set up.</p>\
         <p>If the shop is not set up yet, restart <code>latchkey serve</code>: it prints a new link.</p></div>",
    )
}

fn field_error(errors: &[FieldError], field: &str) -> String {
    errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"{field}-error\">{}</p>",
                esc(&e.message)
            )
        })
        .collect()
}

fn form(f: &SetupForm, errors: &[FieldError]) -> Response {
    let invalid = |field: &str| {
        if errors.iter().any(|e| e.field == field) {
            format!(" aria-invalid=\"true\" aria-describedby=\"{field}-error\"")
        } else {
            String::new()
        }
    };
    let summary = if errors.is_empty() {
        String::new()
    } else {
        "<div class=\"alert bad\" role=\"alert\">Please correct the fields marked below.</div>"
            .to_owned()
    };
    let body = format!(
        "<div class=\"card\"><h1>Set up latchkey</h1>\
         <p class=\"lead\">Create your shop and its owner account. You will manage API keys with it.</p>{summary}\
         <form method=\"post\" action=\"/setup\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <label for=\"shop_name\">Shop name</label>\
         <input type=\"text\" id=\"shop_name\" name=\"shop_name\" value=\"{shop}\" required maxlength=\"100\" autocomplete=\"organization\"{inv_shop}>{err_shop}\
         <label for=\"email\">Owner email</label>\
         <input type=\"email\" id=\"email\" name=\"email\" value=\"{email}\" required autocomplete=\"email\"{inv_email}>{err_email}\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" required minlength=\"{min}\" autocomplete=\"new-password\" aria-describedby=\"password-hint\"{inv_pw}>\
         <p class=\"hint\" id=\"password-hint\">At least {min} characters. A few unrelated words make a strong password.</p>{err_pw}\
         <label for=\"password_confirm\">Repeat the password</label>\
         <input type=\"password\" id=\"password_confirm\" name=\"password_confirm\" required autocomplete=\"new-password\"{inv_pc}>{err_pc}\
         <button type=\"submit\">Create shop</button></form></div>",
        token = esc(&f.token),
        shop = esc(&f.shop_name),
        email = esc(&f.email),
        min = Password::MIN_LEN,
        inv_shop = invalid("name"),
        err_shop = field_error(errors, "name"),
        inv_email = invalid("owner_email"),
        err_email = field_error(errors, "owner_email"),
        inv_pw = invalid("password"),
        err_pw = field_error(errors, "password"),
        inv_pc = invalid("password_confirm"),
        err_pc = field_error(errors, "password_confirm"),
    );
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(status, "Set up", &body)
}

async fn token_ok(shops: &ShopService, token: &str) -> Result<bool, Response> {
    shops
        .setup_token_valid(token)
        .await
        .map_err(|e| unavailable(&e))
}

fn unavailable(e: &ServiceError) -> Response {
    tracing::error!(error = %e, "setup: store error");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "<div class=\"card\"><h1>Something went wrong</h1><p>The database did not answer. Try again in a moment.</p></div>",
    )
}

async fn show(
    State(shops): State<Arc<ShopService>>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let token = query.ok().and_then(|Query(q)| q.token).unwrap_or_default();
    match token_ok(&shops, &token).await {
        Ok(true) => form(
            &SetupForm {
                token,
                ..Default::default()
            },
            &[],
        ),
        Ok(false) => invalid_link(),
        Err(r) => r,
    }
}

async fn submit(
    State(shops): State<Arc<ShopService>>,
    form_data: Result<Form<SetupForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form_data else {
        return page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "<div class=\"card\"><h1>The form could not be read</h1><p>Go back and submit it again.</p></div>",
        );
    };
    match token_ok(&shops, &f.token).await {
        Ok(true) => {}
        Ok(false) => return invalid_link(),
        Err(r) => return r,
    }
    let mut password = Password::parse(f.password.clone());
    if password.is_ok() && f.password != f.password_confirm {
        password = Err("the two passwords differ".into());
    }
    let input = NewShopInput {
        name: &f.shop_name,
        owner_email: &f.email,
        password,
    };
    let CreatedShop { shop, owner } = match shops.complete_setup(&f.token, input).await {
        Ok(created) => created,
        Err(ServiceError::Validation(errors)) => return form(&f, &errors),
        Err(ServiceError::NotFound) => return invalid_link(),
        Err(ServiceError::Conflict(m)) => {
            return form(&f, &[FieldError::new("owner_email", m)]);
        }
        Err(e) => return unavailable(&e),
    };
    tracing::info!(shop_id = %shop.id, owner_id = %owner.id, "setup complete");
    let body = format!(
        "<div class=\"card\"><div class=\"alert ok\" role=\"status\">Your shop is set up.</div>\
         <h1>{name}</h1><dl><dt>Shop id</dt><dd><code>{shop_id}</code></dd>\
         <dt>Owner</dt><dd>{email}</dd></dl>\
         <p>Log in with the owner's email and password to create your first API key.</p>\
         <p><a class=\"button\" href=\"/login?next=%2Fsettings%2Fapi-keys%2Fnew\">Log in</a></p></div>",
        name = esc(&shop.name),
        shop_id = esc(&shop.id),
        email = esc(owner.email.as_str()),
    );
    page(StatusCode::CREATED, "Shop created", &body)
}
