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

use askama::Template;

use super::session::{Chrome, MessagePage, render};
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

#[derive(Template)]
#[template(path = "setup/invalid_link.html")]
struct InvalidLinkPage {
    chrome: Chrome,
}

fn invalid_link() -> Response {
    render(
        StatusCode::FORBIDDEN,
        &InvalidLinkPage {
            chrome: Chrome::anonymous("Setup link not valid"),
        },
    )
}

#[derive(Template)]
#[template(path = "setup/form.html")]
struct SetupPage<'a> {
    chrome: Chrome,
    token: &'a str,
    shop_name: &'a str,
    email: &'a str,
    min: usize,
    errors: &'a [FieldError],
}

impl SetupPage<'_> {
    fn has(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }

    /// The messages of `field` as the rules wrote them, one paragraph each.
    fn messages(&self, field: &str) -> Vec<&str> {
        self.errors
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect()
    }
}

fn form(f: &SetupForm, errors: &[FieldError]) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    render(
        status,
        &SetupPage {
            chrome: Chrome::anonymous("Set up"),
            token: &f.token,
            shop_name: &f.shop_name,
            email: &f.email,
            min: Password::MIN_LEN,
            errors,
        },
    )
}

#[derive(Template)]
#[template(path = "setup/done.html")]
struct DonePage<'a> {
    chrome: Chrome,
    shop_name: &'a str,
    shop_id: &'a str,
    email: &'a str,
}

/// A page that only says what went wrong: there is no shop yet to go back to.
fn refusal(status: StatusCode, title: &str, heading: &str, text: &str) -> Response {
    render(
        status,
        &MessagePage {
            chrome: Chrome::anonymous(title),
            heading: heading.to_owned(),
            text: text.to_owned(),
            link: None,
        },
    )
}

async fn token_ok(shops: &ShopService, token: &str) -> Result<bool, Response> {
    shops
        .setup_token_valid(token)
        .await
        .map_err(|e| unavailable(&e))
}

fn unavailable(e: &ServiceError) -> Response {
    tracing::error!(error = %e, "setup: store error");
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "Something went wrong",
        "The database did not answer. Try again in a moment.",
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
        return refusal(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The form could not be read",
            "Go back and submit it again.",
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
    render(
        StatusCode::CREATED,
        &DonePage {
            chrome: Chrome::anonymous("Shop created"),
            shop_name: &shop.name,
            shop_id: &shop.id,
            email: owner.email.as_str(),
        },
    )
}
