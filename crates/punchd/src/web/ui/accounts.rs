//! UI accounts (`/ui/accounts`, role admin only): what `punchd ui-users` does, in the browser — list the
//! accounts (name, role, state, last sign-in), add one, change its role, disable or enable it, set a new
//! password, and sign it out everywhere.
//!
//! The rules are the CLI's: names and passwords are checked by [`check_account_name`] and
//! [`check_new_password`], hashes are argon2id ([`hash_password`]), a new password or disabling ends the
//! account's sessions (the store does that). Every change is written to the audit log
//! ([`crate::store::ui_accounts::UiAccountsStore::audit_ui_account`], actions `ui_account.add`,
//! `ui_account.role`, `ui_account.disable`, `ui_account.enable`, `ui_account.password`,
//! `ui_account.sign_out`; author `ui:<name>`, as the CLI writes `cli`). Passwords never reach the log.
//!
//! One guard the CLI does not have: the page refuses to demote or disable the last enabled admin, so the UI
//! cannot lock every admin out (the CLI on the server stays the way back in).
//!
//! Every route needs scope `admin` (a viewer or HR user gets 403, and the link is not in their navigation).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, ago, badge, csrf_field, enc, text, Flash, FormErrors};
use super::people::author;
use super::session::{check_account_name, check_new_password, hash_password};
use super::{require, Nav, UiCtx, UiError, UiUser};
use crate::app::App;
use crate::domain::{Role, Scope};
use crate::store::attendance::AuditRecord;
use crate::store::ui_accounts::UiAccount;
use crate::store::StoreError;

/// The routes (relative to `/ui`).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/accounts", get(list).post(add))
        .route("/accounts/{name}", get(show))
        .route("/accounts/{name}/role", post(set_role))
        .route("/accounts/{name}/password", post(set_password))
        .route("/accounts/{name}/disable", post(disable))
        .route("/accounts/{name}/enable", post(enable))
        .route("/accounts/{name}/sign-out", post(sign_out))
}

fn account_url(name: &str) -> String {
    format!("/ui/accounts/{}", enc(name))
}

fn role_options() -> Vec<(String, String)> {
    vec![
        ("viewer".into(), "viewer — reads everything".into()),
        (
            "hr".into(),
            "hr — people, mapping, shifts, review, sign-off".into(),
        ),
        ("admin".into(), "admin — everything".into()),
    ]
}

fn state_badge(a: &UiAccount) -> Markup {
    if a.disabled {
        badge("muted", "disabled")
    } else {
        badge("ok", "enabled")
    }
}

fn utc(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn audit(user: &UiUser, action: &str, subject: &str, detail: serde_json::Value) -> AuditRecord {
    AuditRecord {
        author: author(user),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail,
    }
}

/// Write the audit entry of an account change made by `user`, then send the browser to `url` with `flash`.
async fn audited(
    app: &App,
    user: &UiUser,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
    url: &str,
    flash: Flash,
) -> Result<Response, UiError> {
    app.store
        .audit_ui_account(audit(user, action, subject, detail))
        .await?;
    Ok(layout::redirect_with_flash(url, flash))
}

/// The add form as typed (the password is never echoed back).
#[derive(Debug, Default, Deserialize)]
pub struct AddForm {
    /// Sign-in name.
    #[serde(default)]
    pub name: String,
    /// `viewer`, `hr` or `admin`.
    #[serde(default)]
    pub role: String,
    /// The initial password.
    #[serde(default)]
    pub password: String,
    /// The same again.
    #[serde(default)]
    pub password2: String,
}

fn list_page(ctx: &UiCtx, accounts: &[UiAccount], form: &AddForm, errors: &FormErrors) -> Markup {
    let now = Utc::now();
    let rows: Vec<Vec<Markup>> = accounts
        .iter()
        .map(|a| {
            vec![
                layout::link(&account_url(&a.name), &a.name),
                text(a.role.as_str()),
                state_badge(a),
                text(
                    a.last_login_at
                        .map(|t| format!("{} ({} ago)", utc(t), ago(now - t)))
                        .unwrap_or_else(|| "never".into()),
                ),
                text(utc(a.created_at)),
            ]
        })
        .collect();
    let mut roles = vec![(String::new(), "Choose…".to_owned())];
    roles.extend(role_options());
    let body = html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        p { "Who may sign in to this UI, and with which role. The same as "
            code { "punchd ui-users" } " on the server; every change is in the audit log." }
        (layout::table("Accounts", &["Name", "Role", "State", "Last sign-in", "Created"], rows, "No accounts."))
        h2 #add { "Add an account" }
        form.card method="post" action="/ui/accounts" {
            (csrf_field(ctx))
            (layout::field("Name", "name", "text", &form.name, errors.get("name"), Some("letters, digits, '.', '_', '-', '@'; at most 64")))
            (layout::select("Role", "role", &roles, &form.role, errors.get("role")))
            (layout::field("Initial password", "password", "password", "", errors.get("password"), Some("at least 10 characters; tell it to the person, who can ask an admin for a new one")))
            (layout::field("Password again", "password2", "password", "", errors.get("password2"), None))
            button type="submit" { "Add account" }
        }
    };
    layout::page(ctx, "Accounts", Nav::Accounts, body)
}

/// `GET /ui/accounts`: every account and the add form.
async fn list(State(app): State<App>, user: UiUser, ctx: UiCtx) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    let accounts = app.store.list_ui_accounts().await?;
    Ok(layout::html(list_page(
        &ctx,
        &accounts,
        &AddForm::default(),
        &FormErrors::new(),
    ))
    .into_response())
}

/// Check a new password and its repetition; errors go to `field` and `field2`.
fn check_password_pair(
    password: &str,
    again: &str,
    field: &str,
    field2: &str,
    errors: &mut FormErrors,
) {
    if let Err(e) = check_new_password(password) {
        errors.add(field, e);
    } else if password != again {
        errors.add(field2, "the two passwords differ");
    }
}

async fn hash(password: String) -> Result<String, UiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| UiError::Internal(format!("hashing the password: {e}")))?
        .map_err(UiError::from)
}

/// `POST /ui/accounts`: add an account (name, role, initial password).
async fn add(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Form(mut form): Form<AddForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    form.name = form.name.trim().to_owned();
    let mut errors = FormErrors::new();
    if let Err(e) = check_account_name(&form.name) {
        errors.add("name", e);
    }
    let role = Role::parse(&form.role);
    if role.is_none() {
        errors.add("role", "choose viewer, hr or admin");
    }
    check_password_pair(
        &form.password,
        &form.password2,
        "password",
        "password2",
        &mut errors,
    );
    let invalid = |errors: &FormErrors, accounts: &[UiAccount], form: &AddForm| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            layout::html(list_page(&ctx, accounts, form, errors)),
        )
            .into_response()
    };
    let Some(role) = role.filter(|_| errors.is_empty()) else {
        let accounts = app.store.list_ui_accounts().await?;
        return Ok(invalid(&errors, &accounts, &form));
    };
    let password_hash = hash(std::mem::take(&mut form.password)).await?;
    match app
        .store
        .create_ui_account(&form.name, role, &password_hash, Utc::now())
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            errors.add(
                "name",
                "an account with this name exists; pick another name",
            );
            let accounts = app.store.list_ui_accounts().await?;
            return Ok(invalid(&errors, &accounts, &form));
        }
        Err(e) => return Err(e.into()),
    }
    app.store
        .audit_ui_account(audit(
            &user,
            "ui_account.add",
            &form.name,
            serde_json::json!({ "role": role.as_str() }),
        ))
        .await?;
    tracing::info!(account = %crate::logfmt::escape_field(&form.name, 64), %role, by = %user.name, "UI account added");
    Ok(layout::redirect_with_flash(
        &account_url(&form.name),
        Flash::ok(format!("Account {} ({role}) added.", form.name)),
    ))
}

/// What the account page's forms show: the chosen role and field errors of the role and password forms.
#[derive(Debug, Default)]
struct AccountForms {
    role: Option<String>,
    errors: FormErrors,
}

fn account_page(ctx: &UiCtx, a: &UiAccount, forms: &AccountForms) -> Markup {
    let now = Utc::now();
    let href = account_url(&a.name);
    let role = forms
        .role
        .clone()
        .unwrap_or_else(|| a.role.as_str().to_owned());
    let is_self = ctx.user.as_ref().is_some_and(|u| u.name == a.name);
    let body = html! {
        link rel="stylesheet" href="/ui/assets/pages.css";
        p { a href="/ui/accounts" { "← All accounts" } }
        dl.facts {
            dt { "Role" } dd { (a.role.as_str()) }
            dt { "State" } dd { (state_badge(a)) }
            dt { "Last sign-in" } dd { (a.last_login_at.map(|t| format!("{} ({} ago)", utc(t), ago(now - t))).unwrap_or_else(|| "never".into())) }
            dt { "Created" } dd { (utc(a.created_at)) }
            dt { "Last changed" } dd { (utc(a.updated_at)) }
        }
        p.actions {
            @if a.disabled {
                (layout::post_button(ctx, &format!("{href}/enable"), "Enable", ""))
            } @else {
                form.inline method="post" action={(href) "/disable"}
                    data-confirm={"Disable " (a.name) "? The account can no longer sign in and its sessions end now."} {
                    (csrf_field(ctx))
                    button.secondary type="submit" { "Disable" }
                }
                form.inline method="post" action={(href) "/sign-out"}
                    data-confirm={"Sign " (a.name) " out everywhere?"} {
                    (csrf_field(ctx))
                    button.secondary type="submit" { "Sign out everywhere" }
                }
            }
        }
        h2 #role { "Role" }
        form.card method="post" action={(href) "/role"} {
            (csrf_field(ctx))
            (layout::select("Role", "role", &role_options(), &role, forms.errors.get("role")))
            button type="submit" { "Change role" }
        }
        h2 #password { "New password" }
        @if is_self { p.hint { "This is your own account: a new password signs you out." } }
        form.card method="post" action={(href) "/password"} {
            (csrf_field(ctx))
            (layout::field("New password", "password", "password", "", forms.errors.get("password"), Some("at least 10 characters; every session of the account ends")))
            (layout::field("New password again", "password2", "password", "", forms.errors.get("password2"), None))
            button type="submit" { "Set password" }
        }
    };
    layout::page(ctx, &format!("Account {}", a.name), Nav::Accounts, body)
}

/// `GET /ui/accounts/{name}`: one account with its buttons and forms.
async fn show(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    let account = app.store.get_ui_account(&name).await?;
    Ok(layout::html(account_page(&ctx, &account, &AccountForms::default())).into_response())
}

/// Whether changing `account` (to a role that is not admin, or disabled) would leave no enabled admin.
async fn is_last_admin(app: &App, account: &UiAccount) -> Result<bool, UiError> {
    if account.role != Role::Admin || account.disabled {
        return Ok(false);
    }
    let others = app
        .store
        .list_ui_accounts()
        .await?
        .into_iter()
        .filter(|a| a.role == Role::Admin && !a.disabled && a.id != account.id)
        .count();
    Ok(others == 0)
}

/// The role form.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    /// `viewer`, `hr` or `admin`.
    #[serde(default)]
    pub role: String,
}

/// `POST /ui/accounts/{name}/role`: change the role (live sessions go on with the new role).
async fn set_role(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Path(name): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    let account = app.store.get_ui_account(&name).await?;
    let mut forms = AccountForms {
        role: Some(form.role.clone()),
        errors: FormErrors::new(),
    };
    let last_admin = is_last_admin(&app, &account).await?;
    match Role::parse(&form.role) {
        None => forms.errors.add("role", "choose viewer, hr or admin"),
        Some(role) if role != Role::Admin && last_admin => forms.errors.add(
            "role",
            "this is the only enabled admin: make another account admin first",
        ),
        Some(role) => {
            let before = account.role;
            app.store.set_ui_role(&name, role, Utc::now()).await?;
            return audited(
                &app,
                &user,
                "ui_account.role",
                &name,
                serde_json::json!({ "from": before.as_str(), "to": role.as_str() }),
                &account_url(&name),
                Flash::ok(format!("{name} is now {role}.")),
            )
            .await;
        }
    }
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        layout::html(account_page(&ctx, &account, &forms)),
    )
        .into_response())
}

/// The new-password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    /// The new password.
    #[serde(default)]
    pub password: String,
    /// The same again.
    #[serde(default)]
    pub password2: String,
}

/// `POST /ui/accounts/{name}/password`: set a new password (ends the account's sessions).
async fn set_password(
    State(app): State<App>,
    user: UiUser,
    ctx: UiCtx,
    Path(name): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    let account = app.store.get_ui_account(&name).await?;
    let mut errors = FormErrors::new();
    check_password_pair(
        &form.password,
        &form.password2,
        "password",
        "password2",
        &mut errors,
    );
    if !errors.is_empty() {
        let forms = AccountForms { role: None, errors };
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            layout::html(account_page(&ctx, &account, &forms)),
        )
            .into_response());
    }
    let password_hash = hash(form.password).await?;
    app.store
        .set_ui_password(&name, &password_hash, Utc::now())
        .await?;
    audited(
        &app,
        &user,
        "ui_account.password",
        &name,
        serde_json::json!({}),
        &account_url(&name),
        Flash::ok(format!("New password of {name} set; its sessions ended.")),
    )
    .await
}

/// `POST /ui/accounts/{name}/disable`: the account can no longer sign in; its sessions end.
async fn disable(
    State(app): State<App>,
    user: UiUser,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    let account = app.store.get_ui_account(&name).await?;
    if is_last_admin(&app, &account).await? {
        return Ok(layout::redirect_with_flash(
            &account_url(&name),
            Flash::error(format!(
                "{name} is the only enabled admin and stays enabled: make another account admin first."
            )),
        ));
    }
    app.store.set_ui_disabled(&name, true, Utc::now()).await?;
    audited(
        &app,
        &user,
        "ui_account.disable",
        &name,
        serde_json::json!({}),
        &account_url(&name),
        Flash::ok(format!("{name} disabled; its sessions ended.")),
    )
    .await
}

/// `POST /ui/accounts/{name}/enable`: the account may sign in again.
async fn enable(
    State(app): State<App>,
    user: UiUser,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    app.store.set_ui_disabled(&name, false, Utc::now()).await?;
    audited(
        &app,
        &user,
        "ui_account.enable",
        &name,
        serde_json::json!({}),
        &account_url(&name),
        Flash::ok(format!("{name} enabled.")),
    )
    .await
}

/// `POST /ui/accounts/{name}/sign-out`: end every session of the account (it must sign in again).
async fn sign_out(
    State(app): State<App>,
    user: UiUser,
    Path(name): Path<String>,
) -> Result<Response, UiError> {
    require(&user, Scope::Admin)?;
    let n = app.store.end_ui_sessions(&name).await?;
    audited(
        &app,
        &user,
        "ui_account.sign_out",
        &name,
        serde_json::json!({ "sessions": n }),
        &account_url(&name),
        Flash::ok(format!("{name} signed out: {n} sessions ended.")),
    )
    .await
}
