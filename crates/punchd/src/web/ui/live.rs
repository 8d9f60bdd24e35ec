//! Live punches (`/ui/live`): the newest punches, and new ones as they arrive over server-sent events.

use axum::Router;

use crate::app::App;

/// The live page's routes.
pub fn routes() -> Router<App> {
    Router::new()
}
