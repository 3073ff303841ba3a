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

    #[test]
    fn dates_are_german() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 9).expect("valid date");
        assert_eq!(date(d), "09.03.2026");
        assert_eq!(Lang::De.t("nav-review"), "Prüfung");
        assert_eq!(Lang::En.t("nav-review"), "Review");
    }
}
