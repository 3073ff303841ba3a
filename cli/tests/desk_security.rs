//! The desk's guards, driven through its real router (`tower::ServiceExt::oneshot`) over a real
//! SQLite store: the token, the Host and Origin checks, CSRF, the security headers, the idle lock,
//! and the pages a lead uses. No part of the core is mocked.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use chrono::{NaiveDate, NaiveTime};
use futures_util::StreamExt as _;
use streetsync_cli::desk::{CSP, DeskConfig, DeskState, Opener, TOKEN_COOKIE, router};
use streetsync_core::{
    ContactDraft, KeySource, MaterialCount, RecordId, ReviewState, TeamSetup, Workspace,
};
use tower::ServiceExt as _;

const PORT: u16 = 41_999;
const PASS: &str = "desk test passphrase";

fn key(p: &str) -> KeySource {
    KeySource::Passphrase {
        passphrase: zeroize::Zeroizing::new(p.to_owned()),
        iterations: 1_000,
    }
}

struct Desk {
    _dir: tempfile::TempDir,
    state: DeskState,
    contact: RecordId,
}

/// A real store with a team and two contacts (one a child-protection concern), and the desk on it.
fn desk_with(idle: Duration) -> Desk {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lead.db");
    let ws = Workspace::open(&path, key(PASS)).expect("open store");
    ws.create_team(TeamSetup {
        team_name: "Streetwork Mitte".into(),
        member_name: "Lea".into(),
        areas: vec!["Hauptbahnhof".into(), "Stadtpark".into()],
        topics: vec![],
        materials: vec![],
    })
    .expect("team");
    let team = ws.team().expect("team");
    let area = team.areas[0].id.clone();
    let mut d = ContactDraft::new(
        NaiveDate::from_ymd_opt(2026, 3, 9).expect("date"),
        NaiveTime::from_hms_opt(14, 30, 0).expect("time"),
        area.clone(),
    );
    d.place = "Nordausgang".into();
    d.note = "Jugendlicher, seit zwei Nächten draußen".into();
    d.safeguarding = true;
    d.client_code = Some("AB-12".into());
    d.materials = vec![MaterialCount {
        material_id: team.materials[0].id.clone(),
        count: 2,
    }];
    let c = ws.create_contact(d).expect("contact");
    ws.submit_contact(c.id).expect("submit");
    let mut d2 = ContactDraft::new(
        NaiveDate::from_ymd_opt(2026, 3, 10).expect("date"),
        NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        area,
    );
    d2.place = "Stadtpark Süd".into();
    d2.note = "Gespräch über Wohnungssuche".into();
    let c2 = ws.create_contact(d2).expect("contact");
    ws.submit_contact(c2.id).expect("submit");
    let p2 = path.clone();
    let opener: Opener = Arc::new(move |p: &str| Workspace::open(&p2, key(p)));
    let state = DeskState::new(
        DeskConfig {
            port: PORT,
            relay: None,
            idle_lock: idle,
        },
        Arc::new(ws),
        opener,
    )
    .expect("desk");
    Desk {
        _dir: dir,
        state,
        contact: c.id,
    }
}

fn desk() -> Desk {
    desk_with(Duration::from_secs(900))
}

fn host() -> String {
    format!("127.0.0.1:{PORT}")
}

fn origin() -> String {
    format!("http://127.0.0.1:{PORT}")
}

impl Desk {
    fn cookie(&self) -> String {
        format!("{TOKEN_COOKIE}={}", self.state.token())
    }

    async fn send(&self, req: Request<Body>) -> Response<Body> {
        router(self.state.clone())
            .oneshot(req)
            .await
            .expect("the router answers")
    }

    async fn get(&self, uri: &str) -> Response<Body> {
        self.send(
            Request::get(uri)
                .header(header::HOST, host())
                .header(header::COOKIE, self.cookie())
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    /// A POST as the desk's own page sends it: cookie, Origin, the CSRF field.
    async fn post(&self, uri: &str, form: &str) -> Response<Body> {
        let body = if form.is_empty() {
            format!("csrf={}", self.state.csrf())
        } else {
            format!("csrf={}&{form}", self.state.csrf())
        };
        self.send(
            Request::post(uri)
                .header(header::HOST, host())
                .header(header::COOKIE, self.cookie())
                .header(header::ORIGIN, origin())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
    }

    fn review(&self) -> ReviewState {
        self.state
            .workspace()
            .expect("unlocked")
            .get_contact(self.contact)
            .expect("contact")
            .review
    }
}

async fn text(res: Response<Body>) -> String {
    let b = axum::body::to_bytes(res.into_body(), 4 << 20)
        .await
        .expect("body");
    String::from_utf8(b.to_vec()).expect("utf-8")
}

fn location(res: &Response<Body>) -> String {
    res.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_request_without_the_token_is_refused_with_403_and_a_localized_page() {
    let d = desk();
    let res = d
        .send(
            Request::get("/review")
                .header(header::HOST, host())
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = text(res).await;
    assert!(body.contains("Zugang verweigert"), "{body}");
    assert!(!body.contains("Nordausgang"), "no data on a refusal page");

    let res = d
        .send(
            Request::get("/review?lang=en")
                .header(header::HOST, host())
                .header(header::COOKIE, format!("{TOKEN_COOKIE}=not-the-token"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(text(res).await.contains("Access refused"));
}

#[tokio::test]
async fn the_url_token_is_traded_for_a_strict_httponly_cookie_and_dropped_from_the_url() {
    let d = desk();
    let res = d
        .send(
            Request::get(format!("/?token={}", d.state.token()))
                .header(header::HOST, host())
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    assert!(cookie.starts_with(&format!("{TOKEN_COOKIE}={}", d.state.token())));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));

    let wrong = d
        .send(
            Request::get("/?token=guessed")
                .header(header::HOST, host())
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_foreign_host_header_is_refused_even_with_the_token() {
    let d = desk();
    for h in [
        format!("evil.example:{PORT}"),
        "127.0.0.1:1".to_owned(),
        "127.0.0.1".to_owned(),
        format!("127.0.0.1.nip.io:{PORT}"),
    ] {
        let res = d
            .send(
                Request::get("/review")
                    .header(header::HOST, h.clone())
                    .header(header::COOKIE, d.cookie())
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST, "{h}");
        assert!(!text(res).await.contains("Nordausgang"));
    }
    let ok = d
        .send(
            Request::get("/review")
                .header(header::HOST, format!("localhost:{PORT}"))
                .header(header::COOKIE, d.cookie())
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_post_from_a_foreign_origin_or_without_origin_changes_nothing() {
    let d = desk();
    let uri = format!("/contacts/{}/approve", d.contact);
    for o in [Some("http://evil.example"), Some("null"), None] {
        let mut b = Request::post(&uri)
            .header(header::HOST, host())
            .header(header::COOKIE, d.cookie())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(o) = o {
            b = b.header(header::ORIGIN, o);
        }
        let res = d
            .send(
                b.body(Body::from(format!("csrf={}", d.state.csrf())))
                    .expect("request"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{o:?}");
        assert_eq!(d.review(), ReviewState::Submitted);
    }
}

#[tokio::test]
async fn a_post_without_the_csrf_token_changes_nothing_and_with_it_works() {
    let d = desk();
    let uri = format!("/contacts/{}/ask", d.contact);
    for body in [
        "text=Jugendamt%3F".to_owned(),
        "csrf=wrong&text=x".to_owned(),
    ] {
        let res = d
            .send(
                Request::post(&uri)
                    .header(header::HOST, host())
                    .header(header::COOKIE, d.cookie())
                    .header(header::ORIGIN, origin())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .expect("request"),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(text(res).await.contains("Formular"));
        assert_eq!(d.review(), ReviewState::Submitted);
    }
    // The header form (fetch, htmx) is accepted too.
    let res = d
        .send(
            Request::post(&uri)
                .header(header::HOST, host())
                .header(header::COOKIE, d.cookie())
                .header(header::ORIGIN, origin())
                .header("x-csrf-token", d.state.csrf())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("text=Wurde+das+Jugendamt+informiert%3F"))
                .expect("request"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("/contacts/{}", d.contact));
    assert_eq!(d.review(), ReviewState::ChangesRequested);
    let page = text(d.get(&format!("/contacts/{}", d.contact)).await).await;
    assert!(page.contains("Wurde das Jugendamt informiert?"));
    assert!(page.contains(r#"data-testid="thread-message""#));
}

#[tokio::test]
async fn every_response_carries_the_strict_csp_and_the_other_security_headers() {
    let d = desk();
    let refused = d
        .send(
            Request::get("/review")
                .header(header::HOST, "evil.example")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    for res in [
        d.get("/review").await,
        d.get("/statistics").await,
        d.get("/assets/desk.css").await,
        refused,
    ] {
        let h = res.headers();
        assert_eq!(
            h.get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok()),
            Some(CSP)
        );
        assert_eq!(
            h.get(header::X_CONTENT_TYPE_OPTIONS)
                .and_then(|v| v.to_str().ok()),
            Some("nosniff")
        );
        assert_eq!(
            // Not `no-referrer`: under it Chromium sends `Origin: null` on form POSTs.
            h.get(header::REFERRER_POLICY).and_then(|v| v.to_str().ok()),
            Some("same-origin")
        );
    }
    let page = d.get("/review").await;
    assert_eq!(
        page.headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe-inline"));
    // No inline script or style in a page, and nothing loaded from another host.
    let html = text(page).await;
    assert!(!html.contains("<script>") && !html.contains("style="));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
}

#[tokio::test]
async fn the_review_queue_puts_child_protection_first_and_pages_render_in_both_languages() {
    let d = desk();
    let html = text(d.get("/review").await).await;
    let sg = html.find("Nordausgang").expect("the concern");
    let other = html.find("Stadtpark Süd").expect("the submitted one");
    assert!(sg < other, "child protection first");
    assert!(html.contains(r#"lang="de""#) && html.contains("Prüfung"));
    assert_eq!(html.matches(r#"data-testid="review-row""#).count(), 2);
    let en = text(d.get("/review?lang=en").await).await;
    assert!(en.contains(r#"lang="en""#) && en.contains("Child protection first"));
    for p in [
        "/contacts",
        "/contacts?q=wohnungssuche",
        "/contacts?from=2026-03-10&to=2026-03-31&state=submitted",
        "/clients",
        "/partners",
        "/referrals",
        "/statistics?from=2026-01-01&to=2026-12-31",
        "/team",
        &format!("/contacts/{}", d.contact),
    ] {
        let res = d.get(p).await;
        assert_eq!(res.status(), StatusCode::OK, "{p}");
    }
    let found = text(d.get("/contacts?q=wohnungssuche").await).await;
    assert!(found.contains("Stadtpark Süd") && !found.contains("Nordausgang"));
    let dated = text(d.get(&format!("/contacts/{}", d.contact)).await).await;
    assert!(dated.contains("09.03.2026"), "German date");
}

#[tokio::test]
async fn statistics_mark_suppressed_cells_and_the_csv_is_a_download() {
    let d = desk();
    let html = text(d.get("/statistics?from=2026-01-01&to=2026-12-31").await).await;
    assert!(html.contains(r#"data-testid="stat-cell" data-suppressed="true""#));
    assert!(html.contains("&lt;3"));
    assert!(html.contains(r#"data-testid="csv-download""#));
    let res = d.get("/statistics.csv?from=2026-01-01&to=2026-12-31").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("attachment"))
    );
    let csv = text(res).await;
    assert!(csv.starts_with("dimension,key,label,contacts,persons,amount"));
    assert!(csv.contains("<3"));
}

#[tokio::test]
async fn erasing_needs_the_shown_word() {
    let d = desk();
    let uri = format!("/contacts/{}/erase", d.contact);
    let res = d.post(&uri, "confirm=yes").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        d.state
            .workspace()
            .expect("open")
            .get_contact(d.contact)
            .is_ok()
    );
    let word: String = d.contact.to_string().chars().take(8).collect();
    let res = d.post(&uri, &format!("confirm={word}")).await;
    assert_eq!(location(&res), "/contacts");
    assert!(
        d.state
            .workspace()
            .expect("open")
            .get_contact(d.contact)
            .is_err()
    );
}

#[tokio::test]
async fn locking_closes_the_store_and_only_the_passphrase_opens_it_again() {
    let d = desk();
    let res = d.post("/lock", "").await;
    assert_eq!(location(&res), "/unlock");
    assert!(d.state.is_locked() && d.state.workspace().is_none());
    let res = d.get("/review").await;
    assert_eq!(location(&res), "/unlock");
    let res = d.post("/unlock", "passphrase=wrong").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(d.state.is_locked());
    let res = d.post("/unlock", "passphrase=desk+test+passphrase").await;
    assert_eq!(location(&res), "/review");
    assert!(!d.state.is_locked());
    assert_eq!(d.get("/review").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn after_the_idle_time_the_next_request_finds_the_store_closed() {
    let d = desk_with(Duration::from_millis(50));
    assert_eq!(d.get("/review").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(120)).await;
    let res = d.get("/review").await;
    assert_eq!(location(&res), "/unlock");
    assert!(d.state.is_locked());
}

#[tokio::test]
async fn a_change_in_the_store_reaches_open_pages_as_a_server_sent_event() {
    let d = desk();
    let res = d.get("/events").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.into_body().into_data_stream();
    let ws = d.state.workspace().expect("open");
    ws.comment_contact(d.contact, "Danke").expect("comment");
    let frame = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            let s = String::from_utf8_lossy(&chunk).to_string();
            if s.contains("event: change") {
                return s;
            }
        }
    })
    .await
    .expect("an event arrives");
    assert!(frame.contains(&format!("contact:{}", d.contact)), "{frame}");
}

#[tokio::test]
async fn partners_are_added_and_edited_and_referrals_get_and_lose_consent() {
    let d = desk();
    let res = d
        .post(
            "/partners",
            "name=Jobcenter+Mitte&offers=U25%2C+Beratung&contact_person=Frau+K.&phone=030+123&address=&notes=",
        )
        .await;
    assert_eq!(location(&res), "/partners");
    let ws = d.state.workspace().expect("open");
    let p = ws.partners().expect("partners");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].offers, vec!["U25".to_owned(), "Beratung".to_owned()]);
    let res = d
        .post(
            &format!("/partners/{}", p[0].id),
            "name=Jobcenter+Mitte+Nord&offers=U25&contact_person=&phone=&address=&notes=",
        )
        .await;
    assert_eq!(location(&res), "/partners");
    assert_eq!(
        ws.partners().expect("partners")[0].name,
        "Jobcenter Mitte Nord"
    );
    assert!(
        text(d.get("/partners").await)
            .await
            .contains("Jobcenter Mitte Nord")
    );

    // The contact has a client code: an anonymous referral is refused, nothing is written.
    let uri = format!("/contacts/{}/referrals", d.contact);
    let pid = &p[0].id;
    let res = d.post(&uri, &format!("partner={pid}&reason=U25")).await;
    assert_eq!(location(&res), format!("/contacts/{}", d.contact));
    assert!(
        ws.get_contact(d.contact)
            .expect("contact")
            .fields
            .referrals
            .is_empty()
    );
    let page = text(d.get(&format!("/contacts/{}", d.contact)).await).await;
    assert!(page.contains("abgelehnt"), "the refusal is shown");

    let res = d
        .post(
            &uri,
            &format!("partner={pid}&reason=U25&scope=Name&recipient=Jobcenter&purpose=Termin&given_on=2026-03-09"),
        )
        .await;
    assert_eq!(location(&res), format!("/contacts/{}", d.contact));
    let r = ws.get_contact(d.contact).expect("contact").fields.referrals;
    assert_eq!(r.len(), 1);
    let consent = r[0].consent.clone().expect("consent");
    assert_eq!(
        consent.given_on,
        NaiveDate::from_ymd_opt(2026, 3, 9).expect("date")
    );
    assert!(
        text(d.get("/referrals").await)
            .await
            .contains("erteilt am 09.03.2026")
    );

    let res = d
        .post(
            &format!("/referrals/{}/{}/withdraw", d.contact, r[0].id),
            "on=2026-04-01",
        )
        .await;
    assert_eq!(location(&res), "/referrals");
    let after = ws.get_contact(d.contact).expect("contact").fields.referrals;
    assert_eq!(
        after[0].consent.as_ref().and_then(|c| c.revoked_on),
        NaiveDate::from_ymd_opt(2026, 4, 1)
    );
    assert!(
        text(d.get("/referrals").await)
            .await
            .contains("widerrufen am 01.04.2026")
    );
    // Twice is refused and changes nothing.
    d.post(
        &format!("/referrals/{}/{}/withdraw", d.contact, r[0].id),
        "on=2026-05-01",
    )
    .await;
    assert_eq!(
        ws.get_contact(d.contact).expect("contact").fields.referrals[0]
            .consent
            .as_ref()
            .and_then(|c| c.revoked_on),
        NaiveDate::from_ymd_opt(2026, 4, 1)
    );
}

#[tokio::test]
async fn approving_from_the_contact_page_and_the_queue_follows() {
    let d = desk();
    let res = d
        .post(&format!("/contacts/{}/approve", d.contact), "")
        .await;
    assert_eq!(location(&res), format!("/contacts/{}", d.contact));
    assert_eq!(d.review(), ReviewState::Approved);
    let page = text(d.get(&format!("/contacts/{}", d.contact)).await).await;
    assert!(page.contains(r#"data-testid="review-state" data-state="approved""#));
    let queue = text(d.get("/review").await).await;
    assert!(!queue.contains("Nordausgang"), "approved leaves the queue");
    let clients = text(d.get("/contacts?client=ab-12").await).await;
    assert!(clients.contains("Nordausgang"));
}

/// One raw HTTP/1.1 request to the running desk; the status line and headers come back.
async fn raw_get(port: u16, path: &str, host: &str, cookie: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the desk listens");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn streetsync_desk_prints_one_line_and_serves_the_guarded_desk_on_127_0_0_1() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("lead.db");
    let bin = env!("CARGO_BIN_EXE_streetsync");
    let init = std::process::Command::new(bin)
        .args(["--store"])
        .arg(&store)
        .args(["init", "--team", "T", "--name", "Lea", "--area", "Mitte"])
        .env("STREETSYNC_PASSPHRASE", PASS)
        .env("STREETSYNC_TEST_KDF_ITERATIONS", "1000")
        .env_remove("STREETSYNC_RELAY")
        .output()
        .expect("init runs");
    assert!(init.status.success(), "{init:?}");

    let refused = std::process::Command::new(bin)
        .arg("--store")
        .arg(&store)
        .args(["desk", "--no-browser", "--idle-lock-minutes", "0"])
        .env("STREETSYNC_PASSPHRASE", PASS)
        .output()
        .expect("desk runs");
    assert_eq!(refused.status.code(), Some(2));

    let mut child = tokio::process::Command::new(bin)
        .arg("--store")
        .arg(&store)
        .args(["desk", "--no-browser"])
        .env("STREETSYNC_PASSPHRASE", PASS)
        .env_remove("STREETSYNC_RELAY")
        .env_remove("DISPLAY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("desk starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("one line");
    let url = line.strip_prefix("Desk: ").expect("the Desk: line");
    let rest = url.strip_prefix("http://127.0.0.1:").expect("on 127.0.0.1");
    let (port, token) = rest.split_once("/?token=").expect("a token");
    let port: u16 = port.parse().expect("a port");
    assert_eq!(token.len(), 43, "32 bytes, base64url without padding");
    let host = format!("127.0.0.1:{port}");

    let first = raw_get(port, &format!("/?token={token}"), &host, None).await;
    assert!(first.starts_with("HTTP/1.1 303"), "{first}");
    assert!(first.contains("HttpOnly") && first.contains("SameSite=Strict"));
    let none = raw_get(port, "/review", &host, None).await;
    assert!(none.starts_with("HTTP/1.1 403"), "{none}");
    let cookie = format!("{TOKEN_COOKIE}={token}");
    let rebound = raw_get(port, "/review", "attacker.example", Some(&cookie)).await;
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    let ok = raw_get(port, "/review", &host, Some(&cookie)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains(r#"data-state="no_relay""#));
    // Nothing else on stdout: the browser tests read that one line.
    child.kill().await.expect("stop");
    let more = lines.next_line().await.ok().flatten();
    assert_eq!(more, None);
}

#[tokio::test]
async fn a_client_is_shown_with_its_contacts_and_erased_only_with_the_shown_word() {
    let d = desk();
    let ws = d.state.workspace().expect("open");
    let mut draft = streetsync_core::ClientDraft::new("AB-12");
    draft.alias = Some("Falke".into());
    let client = ws.create_client(draft).expect("client");
    let list = text(d.get("/clients?q=falke").await).await;
    assert!(list.contains(r#"data-testid="client-row""#) && list.contains("AB-12"));
    let page = text(d.get(&format!("/clients/{}", client.id)).await).await;
    assert!(
        page.contains("Nordausgang"),
        "the client's contact is listed"
    );
    assert!(!page.contains("Stadtpark Süd"));

    let uri = format!("/clients/{}/erase", client.id);
    d.post(&uri, "confirm=AB-12").await;
    assert!(
        ws.get_client(client.id).is_ok(),
        "a wrong word erases nothing"
    );
    let word: String = client.id.to_string().chars().take(8).collect();
    let res = d.post(&uri, &format!("confirm={word}")).await;
    assert_eq!(location(&res), "/clients");
    assert!(ws.get_client(client.id).is_err());
    assert!(ws.get_contact(d.contact).is_ok(), "its contacts stay");
}
