//! Terminals (`/ui/terminals`): list and search, approve and block, settings, commands and their results,
//! users and templates on the terminal.

use axum::Router;

use crate::app::App;

/// The terminal pages' routes.
pub fn routes() -> Router<App> {
    Router::new()
}
