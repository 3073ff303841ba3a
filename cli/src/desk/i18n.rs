//! The one localization layer of the desk: every word a lead reads comes from the Fluent files in
//! `cli/locales/{de,en}/desk.ftl`, compiled into the binary. German is the default (the teams work
//! in German); English is one click away. Dates are always in the German form (dd.mm.yyyy, HH:MM).

use std::borrow::Cow;
use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::NaiveDate;
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader as _, langid};

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "de",
        // No Unicode isolation marks around arguments: the pages are plain left-to-right text.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static DE: LanguageIdentifier = langid!("de");
static EN: LanguageIdentifier = langid!("en");

/// The cookie that remembers the chosen language.
pub(crate) const LANG_COOKIE: &str = "desk_lang";

/// A language of the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// German, the default.
    De,
    /// English.
    En,
}

impl Lang {
    /// Parses `de` / `en`; anything else is `None`.
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim() {
            "de" => Some(Lang::De),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The `lang` attribute and cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// The other language (for the switch).
    pub fn other(self) -> Self {
        match self {
            Lang::De => Lang::En,
            Lang::En => Lang::De,
        }
    }

    fn id(self) -> &'static LanguageIdentifier {
        match self {
            Lang::De => &DE,
            Lang::En => &EN,
        }
    }

    /// The text of `key`.
    pub fn t(self, key: &str) -> String {
        LOCALES.lookup(self.id(), key)
    }

    /// The text of `key`, or `None` when the files have no such key (for names that come from
    /// records, such as the fields a change touched).
    pub fn try_t(self, key: &str) -> Option<String> {
        LOCALES.try_lookup(self.id(), key)
    }

    /// The text of `key` with arguments.
    pub fn ta(self, key: &str, args: &[(&'static str, Arg)]) -> String {
        let map: HashMap<Cow<'static, str>, FluentValue> = args
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Arg::S(s) => FluentValue::from(s.clone()),
                    Arg::N(n) => FluentValue::from(*n),
                };
                (Cow::Borrowed(*k), v)
            })
            .collect();
        LOCALES.lookup_with_args(self.id(), key, &map)
    }

    /// The text of a vocabulary value: `prefix-<snake_case key>` (for example `review-approved`).
    pub fn vocab(self, prefix: &str, key: &str) -> String {
        self.t(&format!("{prefix}-{key}"))
    }

    /// The language of a request: `?lang=` first, then the cookie, else German.
    pub fn of_parts(parts: &Parts) -> Self {
        query_lang(parts.uri.query())
            .or_else(|| {
                super::security::cookie(&parts.headers, LANG_COOKIE)
                    .and_then(|v| Lang::from_code(&v))
            })
            .unwrap_or(Lang::De)
    }
}

/// The `lang=` of a query string, if it names a language.
pub(crate) fn query_lang(query: Option<&str>) -> Option<Lang> {
    query.and_then(|q| {
        form_pairs(q)
            .into_iter()
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::from_code(&v))
    })
}

/// Splits an `application/x-www-form-urlencoded` text into pairs.
pub(crate) fn form_pairs(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default()
}

/// An argument of a localized text.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text.
    S(String),
    /// A number.
    N(i64),
}

impl<S> FromRequestParts<S> for Lang
where
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of_parts(parts))
    }
}

/// A day in the German form.
pub fn date(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

/// Unix milliseconds as local date and time in the German form.
pub fn datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%d.%m.%Y %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_key_of_the_other() {
        let de = include_str!("../../locales/de/desk.ftl");
        let en = include_str!("../../locales/en/desk.ftl");
        let keys = |s: &str| -> std::collections::BTreeSet<String> {
            s.lines()
                .filter(|l| !l.starts_with([' ', '#', '\t']) && l.contains(" ="))
                .filter_map(|l| l.split(" =").next().map(str::to_owned))
                .collect()
        };
        let (d, e) = (keys(de), keys(en));
        assert!(d.len() > 50, "{} keys", d.len());
        assert_eq!(
            d.symmetric_difference(&e).collect::<Vec<_>>(),
            Vec::<&String>::new()
        );
    }

    fn ftl_keys() -> std::collections::BTreeSet<String> {
        include_str!("../../locales/de/desk.ftl")
            .lines()
            .filter(|l| !l.starts_with([' ', '#', '\t']) && l.contains(" ="))
            .filter_map(|l| l.split(" =").next().map(str::to_owned))
            .collect()
    }

    /// Every key a page asks for exists: the keys in `t("…")`, `ta("…"` and the page's other
    /// literal keys, and one key per value of every vocabulary the pages translate.
    #[test]
    fn every_key_the_pages_use_is_in_the_files() {
        let sources = [
            include_str!("pages/layout.rs"),
            include_str!("pages/review.rs"),
            include_str!("pages/contacts.rs"),
            include_str!("pages/clients.rs"),
            include_str!("pages/partners.rs"),
            include_str!("pages/referrals.rs"),
            include_str!("pages/statistics.rs"),
            include_str!("pages/team.rs"),
            include_str!("pages/lock.rs"),
            include_str!("security.rs"),
            include_str!("mod.rs"),
        ];
        let keys = ftl_keys();
        let mut used = Vec::new();
        for src in sources {
            for part in src.split('"').skip(1).step_by(2) {
                // Element ids (`thread-h`, `revoke-…`) are not keys either.
                let is_key = part.len() > 3
                    && part.contains('-')
                    && !part.ends_with("-h")
                    && !part.ends_with('-')
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                    })
                    && [
                        "nav-",
                        "error-",
                        "core-",
                        "sync-",
                        "status-",
                        "review-",
                        "field-",
                        "col-",
                        "done-",
                        "consent-",
                        "erase-",
                        "invite-",
                        "revoke-",
                        "role-",
                        "device-",
                        "stats-",
                        "partner-",
                        "partners-",
                        "clients-",
                        "client-",
                        "contacts-",
                        "filter-",
                        "unlock-",
                        "pager-",
                        "thread-",
                        "ask-",
                        "comment-",
                        "history-",
                        "lock-",
                        "lang-",
                        "app-",
                        "skip-",
                        "footer-",
                        "back-",
                        "referral-",
                        "referrals-",
                        "safeguarding-",
                        "contact-",
                        "bad-",
                        "team-",
                        "approve-",
                    ]
                    .iter()
                    .any(|p| part.starts_with(p));
                if is_key {
                    used.push(part.to_owned());
                }
            }
        }
        // Test hooks and live-region names look like keys but are not texts.
        let hooks = [
            "review-row",
            "review-state",
            "contact-note",
            "thread-message",
            "ask-text",
            "ask-submit",
            "approve-submit",
            "comment-submit",
            "erase-word",
            "erase-confirm",
            "erase-submit",
            "invite-role",
            "invite-submit",
            "invite-code",
            "invite-qr",
            "invite-name",
            "invite-hours",
            "device-row",
            "revoke-word",
            "revoke-confirm",
            "revoke-submit",
            "lang-switch",
            "history-row",
            "contact-row",
            "contact-head",
            "client-row",
            "client-contacts",
            "partner-row",
            "partner-name",
            "partner-submit",
            "referral-row",
            "consent-state",
            "consent-submit",
            "stats-chart",
            "filter-q",
            "filter-submit",
            "contacts-total",
            "unlock-error",
            "unlock-passphrase",
            "unlock-submit",
            "error-message",
            "sync-state",
            "last-sync",
            "stat-cell",
            "csv-download",
            "stats-dim",
            "team-title",
            "referral-partner",
            "referral-reason",
            "referral-submit",
        ];
        let missing: Vec<_> = used
            .iter()
            .filter(|k| !keys.contains(*k) && !hooks.contains(&k.as_str()))
            .collect();
        assert!(used.len() > 100, "found only {} keys", used.len());
        assert!(missing.is_empty(), "missing in the .ftl files: {missing:?}");

        use streetsync_core::*;
        let mut vocab: Vec<String> = Vec::new();
        vocab.extend(
            ReviewState::ALL
                .iter()
                .map(|v| format!("review-{}", v.as_str())),
        );
        vocab.extend(
            Setting::ALL
                .iter()
                .map(|v| format!("setting-{}", v.as_str())),
        );
        vocab.extend(AgeBand::ALL.iter().map(|v| format!("age-{}", v.as_str())));
        vocab.extend(Gender::ALL.iter().map(|v| format!("gender-{}", v.as_str())));
        vocab.extend(
            Housing::ALL
                .iter()
                .map(|v| format!("housing-{}", v.as_str())),
        );
        vocab.extend(
            Intervention::ALL
                .iter()
                .map(|v| format!("intervention-{}", v.as_str())),
        );
        vocab.extend(
            RetentionClass::ALL
                .iter()
                .map(|v| format!("retention-{}", v.as_str())),
        );
        vocab.extend(
            CommentKind::ALL
                .iter()
                .map(|v| format!("comment-{}", v.as_str())),
        );
        vocab.extend(
            ReferralOutcome::ALL
                .iter()
                .map(|v| format!("outcome-{}", v.as_str())),
        );
        vocab.extend(
            Dimension::ALL
                .iter()
                .map(|v| format!("stats-dim-{}", v.as_str())),
        );
        let missing: Vec<_> = vocab.iter().filter(|k| !keys.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "vocabulary missing in the .ftl files: {missing:?}"
        );
    }

    #[test]
    fn dates_are_german() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 9).expect("valid date");
        assert_eq!(date(d), "09.03.2026");
        assert_eq!(Lang::De.t("nav-review"), "Prüfung");
        assert_eq!(Lang::En.t("nav-review"), "Review");
    }
}
