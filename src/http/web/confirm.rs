//! The page that asks before something that cannot be undone. The page's
//! script asks in the browser and sends `confirm=yes`; without the script the
//! form arrives without it and the server asks with this page instead.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::session::{Chrome, WebUser, render};

/// What to ask, and where the answer goes.
pub struct Question<'a> {
    /// The button that does it, also the page title: "Revoke key".
    pub button: &'a str,
    pub heading: String,
    /// What happens, in full.
    pub text: &'a str,
    /// Where the confirmed form is posted.
    pub action: String,
    /// Where Cancel leads.
    pub back: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    chrome: Chrome,
    q: Question<'a>,
}

/// The confirmation page for `q`, in the navigation section `active`.
pub fn ask(user: &WebUser, active: &'static str, q: Question<'_>) -> Response {
    render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: user.chrome(q.button, active),
            q,
        },
    )
}
