//! Shared fixtures for core tests and benchmarks: stores in temp dirs and realistic field data
//! (German place and topic names, notes of 100 to 600 characters).
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use chrono::{Datelike, NaiveDate, NaiveTime};
use streetsync_core::{
    AgeBand, ContactDraft, Gender, Housing, Intervention, KeySource, MaterialCount, Setting,
    StorageKey, TeamSetup, Workspace,
};

pub const AREAS: &[&str] = &[
    "Hauptbahnhof",
    "Stadtpark",
    "Marktplatz",
    "Südstadt",
    "Nordfriedhof",
    "Kaiserplatz",
    "Rheinufer",
    "Altstadt",
];
pub const PLACES: &[&str] = &[
    "Hauptbahnhof Nordausgang",
    "Spielplatz Lindenallee",
    "Brunnen am Marktplatz",
    "Unterführung Bahnhofstraße",
    "Skatepark Südstadt",
    "Bushaltestelle Kaiserplatz",
    "Treppe am Rheinufer",
    "Parkbank am Weiher",
    "Einkaufszentrum Eingang West",
    "Anlaufstelle Café Auszeit",
];
const WORDS: &[&str] = &[
    "Gespräch",
    "über",
    "Wohnungssuche",
    "Jobcenter",
    "Termin",
    "verpasst",
    "Schlafplatz",
    "Notunterkunft",
    "Suchtberatung",
    "Substitution",
    "Schulden",
    "Mutter",
    "Freundin",
    "Schule",
    "abgebrochen",
    "Ausbildung",
    "Polizei",
    "Kontrolle",
    "Hund",
    "krank",
    "Krankenversicherung",
    "Ausweis",
    "verloren",
    "Begleitung",
    "nächste",
    "Woche",
    "vereinbart",
    "wirkt",
    "erschöpft",
    "hat",
    "gegessen",
    "Schlafsack",
    "bekommen",
    "Naloxon",
    "erklärt",
    "Familienberatung",
    "Kontakt",
    "hergestellt",
    "möchte",
    "nicht",
    "erzählen",
    "Streit",
    "Gruppe",
    "ruhig",
    "Winter",
    "kalt",
    "Zelt",
    "geräumt",
    "Ordnungsamt",
    "Beratungsstelle",
];

pub fn key(n: u8) -> KeySource {
    KeySource::Key(StorageKey::from_bytes(&[n; 32]).unwrap())
}

pub fn setup() -> TeamSetup {
    TeamSetup {
        team_name: "Streetwork Mitte".into(),
        member_name: "Lea (Leitung)".into(),
        areas: AREAS.iter().map(|s| s.to_string()).collect(),
        topics: vec![],
        materials: vec![],
    }
}

/// A store in `dir` with a team founded on it.
pub fn lead_store(dir: &std::path::Path) -> Workspace {
    let ws = Workspace::open(dir.join("lead.db"), key(1)).unwrap();
    ws.create_team(setup()).unwrap();
    ws
}

/// Tiny deterministic generator so fixtures need no extra crate.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

pub fn note(rng: &mut Rng) -> String {
    let target = 100 + rng.below(501) as usize;
    let mut s = String::new();
    while s.chars().count() < target {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(rng.pick::<&str>(WORDS));
    }
    s.chars().take(target).collect()
}

/// A realistic contact of day `day` (0 = 2025-01-01) valid for the default catalogs.
pub fn draft(rng: &mut Rng, day: u32) -> ContactDraft {
    let date = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(day as u64);
    let hour = 9 + rng.below(12) as u32;
    let start = NaiveTime::from_hms_opt(hour, (rng.below(4) * 15) as u32, 0).unwrap();
    let area = streetsync_core::slug(rng.pick::<&str>(AREAS));
    let mut d = ContactDraft::new(date, start, area);
    d.end_time = Some(NaiveTime::from_hms_opt(hour, 50, 0).unwrap());
    d.place = rng.pick(PLACES).to_string();
    d.setting = *rng.pick(Setting::ALL);
    d.persons = 1 + rng.below(4) as i64;
    d.first_contact = rng.below(5) == 0;
    d.age_band = *rng.pick(AgeBand::ALL);
    d.gender = *rng.pick(Gender::ALL);
    d.housing = *rng.pick(Housing::ALL);
    let topics = [
        "wohnen",
        "sucht",
        "arbeit-jobcenter",
        "geld-schulden",
        "gesundheit",
        "familie",
        "schule",
    ];
    d.topics = vec![rng.pick(&topics).to_string()];
    if rng.below(2) == 0 {
        d.topics.push(rng.pick(&topics).to_string());
    }
    d.interventions = vec![Intervention::Conversation];
    if rng.below(3) == 0 {
        d.materials = vec![MaterialCount {
            material_id: rng
                .pick(&["spritzen", "kondome", "essen", "naloxon"])
                .to_string(),
            count: 1 + rng.below(10) as i64,
        }];
    }
    if rng.below(4) == 0 {
        d.client_code = Some(format!(
            "{}-{}",
            ["MA", "KE", "JO", "SA"][rng.below(4) as usize],
            1970 + rng.below(40)
        ));
    }
    d.safeguarding = rng.below(50) == 0;
    d.note = note(rng);
    let _ = date.weekday();
    d
}
