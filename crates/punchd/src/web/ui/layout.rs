//! The page frame and the building blocks every UI page uses: [`page`] (header, navigation, flash, main),
//! form fields with their error beside them ([`field`], [`select`], [`FormErrors`]), buttons that post with the
//! CSRF token ([`post_button`]), tables ([`table`]), flash messages carried over a redirect
//! ([`redirect_with_flash`]), and the security headers of every UI response ([`security_headers`]).
//!
//! Accessibility: every field has a `<label>`; an error is tied to its field with `aria-describedby` and
//! `aria-invalid`; the navigation marks the current page with `aria-current`; a skip link leads to the content.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use super::UiCtx;
use crate::domain::Scope;

/// The sections of the UI, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/ui`: terminals, delivery, sources and attendance at a glance.
    Dashboard,
    /// `/ui/live`: punches as they arrive.
    Live,
    /// `/ui/terminals`: approve, block, settings, commands.
    Terminals,
    /// `/ui/people`: employees and PIN mapping.
    People,
    /// `/ui/unmapped`: PINs without an employee.
    Unmapped,
    /// `/ui/shifts`: shifts and the roster.
    Shifts,
    /// `/ui/policy`: the punch-state policy.
    Policy,
    /// `/ui/review`: the monthly review and sign-off.
    Review,
    /// `/ui/delivery`: sinks, backlog, parked events.
    Delivery,
    /// `/ui/sources`: webhooks, imports, BioTime readers.
    Sources,
    /// `/ui/accounts`: UI accounts (admin only; the link is shown to admins only).
    Accounts,
    /// A page outside the navigation (sign-in, errors).
    None,
}

impl Nav {
    /// Every section with a link, in order ([`Nav::Accounts`] is shown to admins only).
    pub const ALL: [Nav; 11] = [
        Nav::Dashboard,
        Nav::Live,
        Nav::Terminals,
        Nav::People,
        Nav::Unmapped,
        Nav::Shifts,
        Nav::Policy,
        Nav::Review,
        Nav::Delivery,
        Nav::Sources,
        Nav::Accounts,
    ];

    /// The section's path.
    pub fn href(self) -> &'static str {
        match self {
            Nav::Dashboard => "/ui",
            Nav::Live => "/ui/live",
            Nav::Terminals => "/ui/terminals",
            Nav::People => "/ui/people",
            Nav::Unmapped => "/ui/unmapped",
            Nav::Shifts => "/ui/shifts",
            Nav::Policy => "/ui/policy",
            Nav::Review => "/ui/review",
            Nav::Delivery => "/ui/delivery",
            Nav::Sources => "/ui/sources",
            Nav::Accounts => "/ui/accounts",
            Nav::None => "/ui",
        }
    }

    /// The section's name in the navigation.
    pub fn label(self) -> &'static str {
        match self {
            Nav::Dashboard => "Dashboard",
            Nav::Live => "Live",
            Nav::Terminals => "Terminals",
            Nav::People => "People",
            Nav::Unmapped => "Unmapped",
            Nav::Shifts => "Shifts",
            Nav::Policy => "Policy",
            Nav::Review => "Review",
            Nav::Delivery => "Delivery",
            Nav::Sources => "Sources",
            Nav::Accounts => "Accounts",
            Nav::None => "",
        }
    }
}

/// A rendered page as a response (`text/html; charset=utf-8`).
pub fn html(markup: Markup) -> Html<String> {
    Html(markup.into_string())
}

/// The `<head>`; `refresh_secs`: the browser loads the page again after that many seconds (a `<meta>` refresh,
/// which the CSP allows where an inline script would not run).
fn head(title: &str, refresh_secs: Option<u32>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if let Some(secs) = refresh_secs {
                meta http-equiv="refresh" content=(secs);
            }
            title { (title) " · punchd" }
            link rel="stylesheet" href="/ui/assets/ui.css";
            script src="/ui/assets/ui.js" defer {}
        }
    }
}

/// The whole page: header with the signed-in user and sign-out, the navigation (`nav` marked current), the
/// flash message, a `<h1>` with `title`, then `body`.
pub fn page(ctx: &UiCtx, title: &str, nav: Nav, body: Markup) -> Markup {
    frame(ctx, title, nav, body, None)
}

/// [`page`] that the browser loads again every `refresh_secs` seconds (for a page whose content is still being
/// computed; no script needed).
pub fn refreshing_page(
    ctx: &UiCtx,
    title: &str,
    nav: Nav,
    body: Markup,
    refresh_secs: u32,
) -> Markup {
    frame(ctx, title, nav, body, Some(refresh_secs))
}

fn frame(ctx: &UiCtx, title: &str, nav: Nav, body: Markup, refresh_secs: Option<u32>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, refresh_secs))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "punchd" }
                    nav aria-label="Sections" {
                        ul {
                            @for item in Nav::ALL.into_iter().filter(|n| *n != Nav::Accounts || ctx.may(Scope::Admin)) {
                                li {
                                    @if item == nav {
                                        a href=(item.href()) aria-current="page" { (item.label()) }
                                    } @else {
                                        a href=(item.href()) { (item.label()) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(user) = &ctx.user {
                        div.who {
                            span { (user.name) " " span.role { "(" (user.role) ")" } }
                            form method="post" action="/ui/logout" {
                                (csrf_field(ctx))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    @if let Some(flash) = &ctx.flash {
                        (flash_box(flash))
                    }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare_page(title: &str, text: &str) -> Markup {
    bare(
        title,
        html! {
            p { (text) }
            p { a href="/ui" { "Back to the dashboard" } }
        },
    )
}

/// A page without navigation saying `text` that loads itself again every `refresh_secs` (something the page
/// needs is still being prepared).
pub fn bare_refreshing(title: &str, text: &str, refresh_secs: u32) -> Markup {
    bare_with(
        title,
        html! {
            p role="status" { (text) }
        },
        Some(refresh_secs),
    )
}

/// A page without navigation around `body`.
pub fn bare(title: &str, body: Markup) -> Markup {
    bare_with(title, body, None)
}

fn bare_with(title: &str, body: Markup, refresh_secs: Option<u32>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, refresh_secs))
            body.bare {
                main #main {
                    p.brand { "punchd" }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// What a flash message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// Something was done.
    Ok,
    /// Something failed.
    Error,
    /// For information.
    Info,
}

/// A message shown once on the page a redirect leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// Success, failure or information.
    pub kind: FlashKind,
    /// The text.
    pub text: String,
}

impl Flash {
    /// A success message.
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Ok,
            text: text.into(),
        }
    }

    /// A failure message.
    pub fn error(text: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Error,
            text: text.into(),
        }
    }

    /// An informational message.
    pub fn info(text: impl Into<String>) -> Flash {
        Flash {
            kind: FlashKind::Info,
            text: text.into(),
        }
    }
}

/// A flash message as a status box (`role=status`, or `role=alert` for errors, so screen readers announce it).
pub fn flash_box(flash: &Flash) -> Markup {
    match flash.kind {
        FlashKind::Ok => html! { div.flash.ok role="status" { (flash.text) } },
        FlashKind::Info => html! { div.flash.info role="status" { (flash.text) } },
        FlashKind::Error => html! { div.flash.error role="alert" { (flash.text) } },
    }
}

/// The cookie that carries a flash message over one redirect.
const FLASH_COOKIE: &str = "pd_flash";

/// `303 See Other` to `to` with `flash` shown there once.
pub fn redirect_with_flash(to: &str, flash: Flash) -> Response {
    let kind = match flash.kind {
        FlashKind::Ok => "ok",
        FlashKind::Error => "error",
        FlashKind::Info => "info",
    };
    let text: String = flash.text.chars().take(500).collect();
    let value = format!(
        "{FLASH_COOKIE}={kind}:{}; Path=/ui; Max-Age=60; HttpOnly; SameSite=Lax",
        utf8_percent_encode(&text, NON_ALPHANUMERIC)
    );
    let mut response = axum::response::Redirect::to(to).into_response();
    *response.status_mut() = axum::http::StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The flash message the request carries, if any.
pub fn read_flash(headers: &HeaderMap) -> Option<Flash> {
    let value = cookie(headers, FLASH_COOKIE)?;
    let (kind, text) = value.split_once(':')?;
    let kind = match kind {
        "ok" => FlashKind::Ok,
        "error" => FlashKind::Error,
        _ => FlashKind::Info,
    };
    let text = percent_decode_str(text).decode_utf8_lossy().into_owned();
    (!text.is_empty()).then_some(Flash { kind, text })
}

/// The Content-Security-Policy of every UI response: nothing inline, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// Middleware of every UI response: CSP and the other security headers, `Cache-Control: no-store` for pages,
/// and the flash cookie cleared once a page showed it.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let had_flash = cookie(request.headers(), FLASH_COOKIE).is_some();
    let is_get = request.method() == Method::GET;
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if had_flash && is_get && is_html && !headers.contains_key(header::SET_COOKIE) {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_static("pd_flash=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Lax"),
        );
    }
    response
}

/// Field errors of a form, by field name, to render the form again with each message beside its field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormErrors(pub Vec<(String, String)>);

impl FormErrors {
    /// No errors yet.
    pub fn new() -> FormErrors {
        FormErrors::default()
    }

    /// Record `message` for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Whether the form is valid.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The hidden field with the session's CSRF token; every `method="post"` form includes it.
pub fn csrf_field(ctx: &UiCtx) -> Markup {
    html! { input type="hidden" name=(super::session::CSRF_FIELD) value=(ctx.csrf()); }
}

/// A labelled input. `kind` is the input type (`text`, `number`, `password`, `date`, …); `error` is shown
/// beside the field and marks it invalid; `hint` is a short help text under it.
pub fn field(
    label: &str,
    name: &str,
    kind: &str,
    value: &str,
    error: Option<&str>,
    hint: Option<&str>,
) -> Markup {
    let id = format!("f-{name}");
    let described = describedby(&id, error.is_some(), hint.is_some());
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            input id=(id) name=(name) type=(kind) value=(value)
                aria-invalid=[error.map(|_| "true")] aria-describedby=[described];
            @if let Some(hint) = hint { small.hint id={(id) "-hint"} { (hint) } }
            @if let Some(error) = error { span.error id={(id) "-error"} { (error) } }
        }
    }
}

/// A labelled `<select>` of (value, label) options with `selected` chosen; `error` beside it.
pub fn select(
    label: &str,
    name: &str,
    options: &[(String, String)],
    selected: &str,
    error: Option<&str>,
) -> Markup {
    let id = format!("f-{name}");
    let described = describedby(&id, error.is_some(), false);
    html! {
        div.field.invalid[error.is_some()] {
            label for=(id) { (label) }
            select id=(id) name=(name) aria-invalid=[error.map(|_| "true")] aria-describedby=[described] {
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
            @if let Some(error) = error { span.error id={(id) "-error"} { (error) } }
        }
    }
}

fn describedby(id: &str, error: bool, hint: bool) -> Option<String> {
    let mut ids = Vec::new();
    if hint {
        ids.push(format!("{id}-hint"));
    }
    if error {
        ids.push(format!("{id}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

/// A one-button form that posts to `action` with the CSRF token (approve, block, retry …). `class` styles the
/// button (`""`, `"danger"`, `"secondary"`).
pub fn post_button(ctx: &UiCtx, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(ctx))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A table with a caption (for screen readers and the eye) and a header row; rows are cells of markup. Wide
/// tables scroll sideways inside their box on narrow screens. An empty table shows `empty` instead.
pub fn table(caption: &str, headers: &[&str], rows: Vec<Vec<Markup>>, empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (empty) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label=(caption) {
                table {
                    caption { (caption) }
                    thead { tr { @for h in headers { th scope="col" { (h) } } } }
                    tbody {
                        @for row in rows {
                            tr { @for cell in row { td { (cell) } } }
                        }
                    }
                }
            }
        }
    }
}

/// A plain-text cell.
pub fn text(s: impl AsRef<str>) -> Markup {
    html! { (s.as_ref()) }
}

/// A link cell.
pub fn link(href: &str, s: impl AsRef<str>) -> Markup {
    html! { a href=(href) { (s.as_ref()) } }
}

/// A small coloured badge (`ok`, `warn`, `bad`, `muted`) with text (colour is never the only signal: the text
/// says it).
pub fn badge(kind: &str, s: impl AsRef<str>) -> Markup {
    html! { span class={"badge " (kind)} { (s.as_ref()) } }
}

/// A duration for people: `42 s`, `5 min`, `3 h 10 min`, `2 d 4 h`.
pub fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Percent-encode a value for a query string or path segment.
pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// Raw, trusted markup (an SVG built here); never for user input.
pub fn trusted(s: String) -> Markup {
    PreEscaped(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_with_an_error_is_marked_and_described() {
        let html = field("Alias", "alias", "text", "<x>", Some("too long"), None).into_string();
        assert_eq!(
            html,
            "<div class=\"field invalid\"><label for=\"f-alias\">Alias</label>\
             <input id=\"f-alias\" name=\"alias\" type=\"text\" value=\"&lt;x&gt;\" aria-invalid=\"true\" \
             aria-describedby=\"f-alias-error\"><span class=\"error\" id=\"f-alias-error\">too long</span></div>"
        );
    }

    #[test]
    fn flash_survives_the_cookie_round_trip() {
        let response = redirect_with_flash("/ui/terminals", Flash::ok("Terminal A1; approved ✓"));
        assert_eq!(response.status(), 303);
        let set = response
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("cookie");
        let pair = set.split(';').next().expect("pair");
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(pair).expect("value"));
        assert_eq!(
            read_flash(&headers),
            Some(Flash::ok("Terminal A1; approved ✓"))
        );
    }

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(ago(chrono::Duration::seconds(42)), "42 s");
        assert_eq!(ago(chrono::Duration::seconds(3 * 3600 + 600)), "3 h 10 min");
        assert_eq!(
            ago(chrono::Duration::seconds(2 * 86_400 + 4 * 3600)),
            "2 d 4 h"
        );
    }
}
