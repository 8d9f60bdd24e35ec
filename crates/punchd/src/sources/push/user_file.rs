//! `POST /iclock/fdata?SN=…&PIN=<user PIN>` with raw bytes: a file uploaded for a user (a user photo, as integration
//! guides describe fdata), kept as the user's file and served by `GET /api/v1/devices/{sn}/users/{pin}/files`.
//!
//! The capture-photo form of fdata (push.md §7.3: `PIN=<YYYYMMDDHHMMSS>-<PIN>.jpg` or a `table=ATTPHOTO` query,
//! and a body framed `…CMD=uploadphoto\0<JPEG>`) is left to the ATTPHOTO handler; what is not that is a user file.

use axum::response::Response;
use sha2::{Digest, Sha256};
use zk_push::query::Query;

use super::{ok, storage_failed, Ctx};
use crate::store::{Batch, Photo};

/// The user PIN an fdata request uploads a file for, when it is a user file and not a capture photo.
pub(super) fn user_file_pin(query: &Query, body: &[u8]) -> Option<String> {
    if query.get("table").is_some() || body.is_empty() {
        return None;
    }
    let pin = query.get("PIN")?.trim();
    // A capture photo names a file (`20081119172119-4.jpg`); a user PIN has no dot.
    if pin.is_empty() || pin.contains('.') || pin.len() > 64 {
        return None;
    }
    let head = &body[..body.len().min(512)];
    let framed = head.windows(4).any(|w| w.eq_ignore_ascii_case(b"CMD="));
    (!framed).then(|| pin.to_owned())
}

/// A file name for the bytes: the `FileName=` query value when given (path parts dropped), else
/// `<PIN>-<first 16 hex of SHA-256>.<jpg|png|bin>`, so a re-sent file is stored once and a new one is kept
/// next to the old.
fn file_name(query: &Query, pin: &str, body: &[u8]) -> String {
    if let Some(name) = query
        .get("FileName")
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or("").trim())
        .filter(|n| !n.is_empty() && n.len() <= 128)
    {
        return name.to_owned();
    }
    let ext = if body.starts_with(&[0xFF, 0xD8]) {
        "jpg"
    } else if body.starts_with(b"\x89PNG") {
        "png"
    } else {
        "bin"
    };
    let digest = Sha256::digest(body);
    format!("{pin}-{}.{ext}", &hex::encode(digest)[..16])
}

/// Store the body as the user's file (and the request in the raw journal, in one transaction); `OK` after the
/// commit, `503` when the store failed (the terminal retries).
pub(super) async fn store(ctx: &mut Ctx, query: &Query, pin: &str) -> Response {
    let name = file_name(query, pin, &ctx.body);
    let mut batch = Batch::new(ctx.raw("fdata", Vec::new()));
    let content = batch.raw.body.clone();
    let n_bytes = content.len();
    batch.photos.push(Photo {
        device_sn: ctx.sn.clone(),
        kind: "userfile".into(),
        pin: Some(pin.to_owned()),
        file_name: name.clone(),
        taken_at: None,
        content,
    });
    match ctx.app.ingest.ingest(ctx.delivery(batch, Vec::new())).await {
        Ok(_) => {
            tracing::info!(sn = %ctx.sn, pin, file = %name, bytes = n_bytes, "user file stored");
            ok(zk_push::reply::OK)
        }
        Err(e) => storage_failed(&ctx.app, &ctx.sn, "user file", &e),
    }
}
