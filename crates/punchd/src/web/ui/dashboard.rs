//! The dashboard (`/ui`): terminals, delivery, sources and attendance at a glance, each figure a link to where
//! it is dealt with, and a chart of punches per hour.

use axum::extract::State;
use axum::response::Response;
use axum::Router;

use super::layout::{self, Nav};
use super::{UiCtx, UiError, UiUser};
use crate::app::App;

/// The dashboard's routes (the page itself is `/ui`, mounted in [`super::routes`]).
pub fn routes() -> Router<App> {
    Router::new()
}

/// `GET /ui`: the dashboard.
pub async fn page(State(_app): State<App>, _user: UiUser, ctx: UiCtx) -> Result<Response, UiError> {
    use axum::response::IntoResponse;
    Ok(layout::html(layout::page(
        &ctx,
        "Dashboard",
        Nav::Dashboard,
        maud::html! {},
    ))
    .into_response())
}
