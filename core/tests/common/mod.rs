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

/// Sentences as street workers write them, for notes of running prose. [`note`] draws from a
/// small word list, which deflate compresses better than real notes; the store bench measures
/// its bytes per contact with these too (`store_bytes_per_contact_2000_prose`).
const PROSE: &[&str] = &[
    "Herr M. am Bahnhofsvorplatz getroffen, wirkte erschöpft und hatte seit gestern nichts gegessen.",
    "Er hat seit zwei Wochen keinen festen Schlafplatz mehr, nachdem ihm die Wohnung gekündigt wurde.",
    "Wir haben über die Notunterkunft in der Lindenstraße gesprochen, er will es sich überlegen.",
    "Der Termin beim Jobcenter ist am Dienstag; er hat Angst, dass die Leistungen gekürzt werden.",
    "Zwei Jugendliche im Stadtpark, eine davon zum ersten Mal gesehen.",
    "Sie erzählt von Streit mit der Mutter und übernachtet seit Tagen bei einer Freundin.",
    "Ob sie noch zur Schule geht, blieb unklar; sie wollte darüber nicht reden.",
    "Visitenkarte der Beratungsstelle mitgegeben, sie meldet sich vielleicht.",
    "Gruppe von fünf Personen am Brunnen, Stimmung gereizt, einer stark alkoholisiert.",
    "Kurzes Gespräch über Substitution; Frau K. fragt nach einem Platz in der Suchtberatung.",
    "Sie möchte nicht, dass ihr Name weitergegeben wird, deshalb nur anonym nachgefragt.",
    "Kondome und heißen Tee ausgegeben, die Polizei war kurz vorher da gewesen.",
    "J. berichtet von Schulden bei einem Bekannten und fühlt sich unter Druck gesetzt.",
    "Verabredet, dass er morgen in die offene Sprechstunde kommt, um die Briefe vom Inkassobüro anzuschauen.",
    "Offene Wunde am Unterschenkel, Verweis an die Straßenambulanz; er geht nur hin, wenn wir ihn begleiten.",
    "Die Familie lebt zu fünft in zwei Zimmern, der Vermieter droht mit Räumung.",
    "Der Hund ist krank, das Geld für den Tierarzt fehlt, wir fragen bei der Tiertafel nach.",
    "Ausweis und Krankenkassenkarte wurden gestohlen, Termin beim Bürgeramt für Donnerstag gemacht.",
    "Kaum Kontakt möglich, er schlief im Hauseingang; Schlafsack und Isomatte daneben gelegt.",
    "Die Mutter von L. rief an, sie macht sich Sorgen, weil er nicht mehr nach Hause kommt.",
    "Am Kiosk erzählt S., dass sie die Ausbildung abgebrochen hat und jetzt jobbt.",
    "Beim Ordnungsamt nachgefragt, warum das Zelt unter der Brücke geräumt wurde.",
    "Naloxon erklärt und ein Set übergeben, er kannte es schon aus der Substitutionspraxis.",
    "Ruhiger Abend, viele bekannte Gesichter, nur Grüße ausgetauscht.",
    "Es ist sehr kalt, wir haben auf den Kältebus und die Wärmestube hingewiesen.",
    "Kontakt zur Familienberatung hergestellt, der erste Termin ist in zwei Wochen.",
    "Er wirkt verwirrt und spricht von Stimmen; mit seinem Einverständnis den sozialpsychiatrischen Dienst informiert.",
    "Nach dem Streit gestern Abend ist die Gruppe vom Marktplatz an den Fluss gezogen.",
    "Wir haben ihr beim Ausfüllen des Antrags auf Wohngeld geholfen.",
    "Sie hat einen Schlafplatz bei ihrer Schwester gefunden, vorerst bis Ende des Monats.",
];

/// A note of 100 to 600 characters of running prose from [`PROSE`].
pub fn prose_note(rng: &mut Rng) -> String {
    let target = 100 + rng.below(501) as usize;
    let mut s = String::new();
    while s.chars().count() < target {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(rng.pick::<&str>(PROSE));
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
