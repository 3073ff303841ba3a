//! # The desk (issue 15)
//!
//! A local web app for team leads at an office desk: the review queue, contacts, clients, the
//! partner directory, referrals with consent, statistics and the team, in a browser, on
//! `127.0.0.1` only. It is a thin layer over `streetsync-core`, like the terminal commands:
//!
//! - `state`: the open store (or none while locked), live sync, the run's secrets, the idle clock;
//! - `security`: the Host, token, Origin and CSRF checks and the security headers;
//! - `i18n`: the one localization layer (Fluent, German and English);
//! - `pages`: server-rendered pages (maud), one file per section;
//! - `live`: server-sent events that make open pages refresh their live regions;
//! - `assets`: CSS, the small script and the icon, compiled into the binary.
//!
//! For tests and benches: [`DeskState::new`] over an open [`streetsync_core::Workspace`] and
//! [`router`] give the whole app in-process (drive it with `tower::ServiceExt::oneshot`, sending
//! `Host: 127.0.0.1:<port>`, the cookie `desk_token=<token>` and, on POST, `Origin` and `csrf`).

mod assets;
mod i18n;
mod live;
mod pages;
mod security;
mod state;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use streetsync_core::Workspace;

pub use i18n::Lang;
pub use security::CSP;
pub use state::{DeskConfig, DeskState, LiveEvent, Opener, SyncView};

use crate::error::{CliError, CliResult};
use pages::{clients, contacts, lock, partners, referrals, review, statistics, team};

/// The cookie name of the run's token, for clients that drive the router in-process.
pub const TOKEN_COOKIE: &str = security::TOKEN_COOKIE;

/// The whole desk as an axum router, with every guard in front of every route.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/", get(review::home))
        .route("/review", get(review::queue))
        .route("/contacts", get(contacts::list))
        .route("/contacts/{id}", get(review::contact))
        .route("/contacts/{id}/ask", post(review::ask))
        .route("/contacts/{id}/comment", post(review::comment))
        .route("/contacts/{id}/approve", post(review::approve))
        .route("/contacts/{id}/erase", post(review::erase))
        .route("/contacts/{id}/referrals", post(referrals::add))
        .route("/clients", get(clients::list))
        .route("/clients/{id}", get(clients::show))
        .route("/clients/{id}/erase", post(clients::erase))
        .route("/partners", get(partners::list).post(partners::add))
        .route("/partners/{id}", get(partners::edit).post(partners::save))
        .route("/referrals", get(referrals::list))
        .route(
            "/referrals/{contact_id}/{referral_id}/consent",
            post(referrals::consent),
        )
        .route(
            "/referrals/{contact_id}/{referral_id}/withdraw",
            post(referrals::withdraw),
        )
        .route("/statistics", get(statistics::show))
        .route("/statistics.csv", get(statistics::csv))
        .route("/team", get(team::show))
        .route("/team/invite", post(team::invite))
        .route("/team/devices/{id}/revoke", post(team::revoke))
        .route("/events", get(live::events))
        .route("/lock", post(lock::lock))
        .route("/unlock", get(lock::unlock_form).post(lock::unlock))
        .route("/assets/{name}", get(assets::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(state)
}

async fn not_found(lang: Lang) -> axum::response::Response {
    pages::layout::fail(lang, axum::http::StatusCode::NOT_FOUND, "error-not-found")
}

/// How `streetsync desk` was asked to run.
pub struct ServeOptions {
    /// The port (0: any free one).
    pub port: u16,
    /// The relay, when the store knows one.
    pub relay: Option<String>,
    /// Idle time before the lock.
    pub idle_lock: Duration,
    /// Open the browser.
    pub open_browser: bool,
}

/// Whether a browser can be shown here (a desktop session).
fn has_display() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
}

/// Serves the desk until Ctrl-C: binds `127.0.0.1`, prints the one line
/// `Desk: http://127.0.0.1:<port>/?token=<token>`, opens the browser, syncs live and locks when
/// idle. On the way out the store is closed.
pub async fn serve(ws: Arc<Workspace>, opener: Opener, options: ServeOptions) -> CliResult<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| {
            CliError::other(format!("cannot listen on 127.0.0.1:{}: {e}", options.port))
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::other(format!("no local address: {e}")))?
        .port();
    let state = DeskState::new(
        DeskConfig {
            port,
            relay: options.relay,
            idle_lock: options.idle_lock,
        },
        ws,
        opener,
    )?;
    let url = format!("http://127.0.0.1:{port}/?token={}", state.token());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "Desk: {url}")?;
        out.flush()?;
    }
    if options.open_browser && has_display() && webbrowser::open(&url).is_err() {
        eprintln!("streetsync: could not open a browser; open the address above yourself");
    }
    tokio::spawn(state.clone().idle_lock_loop());
    let app = router(state.clone());
    let stop = Arc::new(tokio::sync::Notify::new());
    let signal = stop.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.notify_waiters();
    });
    // Open pages hold a server-sent-event stream each, which a graceful shutdown would wait for
    // forever: after Ctrl-C they get two seconds, then the desk stops anyway.
    let grace = async {
        stop.notified().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    tokio::select! {
        r = server => r.map_err(|e| CliError::other(format!("the desk stopped: {e}")))?,
        () = grace => {}
    }
    state.lock().await;
    Ok(())
}
