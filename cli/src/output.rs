//! Printing: tables for people, JSON for scripts, progress bars only on a terminal.
//!
//! The printers that more than one part of the client shows (a contact, a list of contacts, the
//! team's catalogs, the statistics) live here too, so the commands and the demo print the same
//! way without importing each other.

use std::io::IsTerminal as _;
use std::str::FromStr as _;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use streetsync_core::{Catalog, Contact, ContactSummary, DeviceId, Role, Team};
use streetsync_core::{Dimension, Statistics};

use crate::error::CliResult;

/// A table with the client's look.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> CliResult<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Whether progress bars should be drawn (stderr is a terminal).
pub fn interactive_stderr() -> bool {
    std::io::stderr().is_terminal()
}

/// Whether prompts can be asked (stdin and stderr are terminals).
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A progress bar on stderr, or a hidden one when piped or with `--json`.
pub fn progress(json: bool, message: &str) -> indicatif::ProgressBar {
    if json || !interactive_stderr() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:30.cyan/blue}] {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}

/// The first 8 characters of an id, enough to name it on the command line.
pub fn short(id: &impl std::fmt::Display) -> String {
    id.to_string().chars().take(8).collect()
}

/// A date and time of unix milliseconds, local time.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// A text cut to `n` characters on one line.
pub fn clip(s: &str, n: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > n {
        let mut c: String = one.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    } else {
        one
    }
}

/// The member name of a device id as stored in a record (`author`), or its first characters
/// when the device is not on the roster.
pub fn member_of(team: &Team, author: &str) -> String {
    DeviceId::from_str(author)
        .ok()
        .and_then(|d| team.device(&d).map(|d| d.member.clone()))
        .unwrap_or_else(|| short(&author))
}

/// A role as the terminal names it.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Lead => "lead",
        Role::Worker => "worker",
    }
}

/// Prints the ids and names of the team's areas, topics and materials (what `--area`,
/// `--topic` and `--material` accept).
pub fn print_catalogs(team: &Team) {
    for (title, list) in [
        ("Areas (--area)", &team.areas),
        ("Topics (--topic)", &team.topics),
        ("Materials (--material id=count)", &team.materials),
    ] {
        let ids: Vec<String> = list
            .iter()
            .filter(|e| !e.retired)
            .map(|e| format!("{} ({})", e.id, e.name))
            .collect();
        println!("{title}: {}", ids.join(", "));
    }
}

/// Prints a page of contacts as a table, and how many there are in all.
pub fn print_list(team: &Team, items: &[ContactSummary], total: usize) {
    let mut t = table(&[
        "id", "date", "time", "area", "place", "pers.", "review", "!", "note",
    ]);
    for s in items {
        t.add_row(vec![
            short(&s.id),
            s.date.to_string(),
            s.start_time.format("%H:%M").to_string(),
            team.name_of(Catalog::Area, &s.area_id),
            clip(&s.place, 24),
            s.persons.to_string(),
            s.review.as_str().to_owned(),
            if s.safeguarding {
                "§8a".into()
            } else {
                String::new()
            },
            clip(&s.note, 40),
        ]);
    }
    println!("{t}");
    println!("{} of {total} contact(s)", items.len());
}

/// Prints one contact with its referrals, review state and comments.
pub fn show_contact(team: &Team, c: &Contact) {
    let f = &c.fields;
    let area = team.name_of(Catalog::Area, &f.area_id);
    println!("Contact {}", c.id);
    println!(
        "  when:      {} {}{}",
        f.date,
        f.start_time.format("%H:%M"),
        f.end_time
            .map(|e| format!("-{}", e.format("%H:%M")))
            .unwrap_or_default()
    );
    println!("  where:     {area}, {} ({})", f.place, f.setting.label());
    println!(
        "  who:       {} person(s), {}, {}, {}{}",
        f.persons,
        f.age_band.label(),
        f.gender.label(),
        if f.first_contact {
            "first contact"
        } else {
            "known"
        },
        f.client_code
            .as_ref()
            .map(|c| format!(", client {c}"))
            .unwrap_or_default()
    );
    println!("  housing:   {}", f.housing.label());
    let topics: Vec<String> = f
        .topics
        .iter()
        .map(|t| team.name_of(Catalog::Topic, t))
        .collect();
    println!("  topics:    {}", topics.join(", "));
    let iv: Vec<&str> = f.interventions.iter().map(|i| i.label()).collect();
    println!("  work done: {}", iv.join(", "));
    let mats: Vec<String> = f
        .materials
        .iter()
        .map(|m| {
            format!(
                "{} × {}",
                m.count,
                team.name_of(Catalog::Material, &m.material_id)
            )
        })
        .collect();
    println!("  materials: {}", mats.join(", "));
    for r in &f.referrals {
        let partner = team
            .partners
            .iter()
            .find(|p| p.id == r.partner_id)
            .map_or(r.partner_id.clone(), |p| p.name.clone());
        let consent = match &r.consent {
            None => "anonymous, no consent".to_owned(),
            Some(c) => format!(
                "consent {} to {} for {} ({}){}",
                c.scope,
                c.recipient,
                c.purpose,
                c.given_on,
                c.revoked_on
                    .map(|d| format!(", REVOKED {d}"))
                    .unwrap_or_default()
            ),
        };
        println!(
            "  referral:  [{}] {partner}: {} ({}; {consent})",
            r.id,
            r.reason,
            r.outcome.label()
        );
    }
    if f.safeguarding {
        println!("  !! child-protection concern (§ 8a SGB VIII)");
    }
    println!(
        "  review:    {} · logged by {} · changed {}",
        c.review.label(),
        member_of(team, &c.author),
        when(c.updated_at)
    );
    println!("  note:\n    {}", f.note.replace('\n', "\n    "));
    for cm in &c.comments {
        println!(
            "  {:<8} {} ({}): {}",
            cm.kind.label(),
            member_of(team, &cm.author),
            when(cm.at),
            cm.text
        );
    }
}

/// Prints statistics as tables.
pub fn print_stats(s: &Statistics) {
    println!(
        "Statistics of team '{}', {} to {} (persons counted once per day per client code; below 3 shown as <3)",
        s.team, s.from, s.to
    );
    println!(
        "All contacts: {} contacts, {} persons",
        s.total.contacts, s.total.persons
    );
    if s.disclosure.secondary > 0 {
        println!(
            "{} further number(s) shown as {} so that no <3 can be worked out by subtraction (docs/statistics.md).",
            s.disclosure.secondary,
            streetsync_core::SECONDARY_SUPPRESSED
        );
    }
    for table in &s.tables {
        if table.withheld && !s.total.persons.is_suppressed() {
            println!(
                "\n{}: withheld (its small numbers could not be protected otherwise)",
                table.dimension.title()
            );
            continue;
        }
        if table.rows.is_empty() {
            continue;
        }
        println!("\n{}", table.dimension.title());
        let mut header = vec!["", "contacts", "persons"];
        if let Some(l) = table.dimension.amount_label() {
            header.push(l);
        }
        let mut t = self::table(&header);
        for r in &table.rows {
            let mut row = vec![
                if table.dimension == Dimension::Month {
                    r.key.clone()
                } else {
                    r.label.clone()
                },
                r.contacts.to_string(),
                r.persons.to_string(),
            ];
            if let Some(a) = r.amount {
                row.push(a.to_string());
            }
            t.add_row(row);
        }
        println!("{t}");
    }
}

/// A security alert from a sync, as a sentence a team lead can act on.
pub(crate) fn alert(a: &streetsync_core::SecurityAlert) -> String {
    use streetsync_core::SecurityAlert as A;
    match a {
        A::ForgedEnrolment { invite, device } => format!(
            "invite {invite} was redeemed by device {device}, which cannot prove it has the code. It was NOT added to the team. Make a new invite, and tell the relay's operator."
        ),
        A::InviteForExistingDevice { invite, device } => format!(
            "invite {invite} was redeemed in the name of device {device}, which is already on the team. Its entry was left unchanged."
        ),
        A::ForgedGrant { from } => format!(
            "a key message said to come from device {from} is not signed by a team lead and was ignored."
        ),
        A::DroppedChanges { count } => format!(
            "the relay lost {count} change(s) it had confirmed; they are kept here and sent again."
        ),
        A::LogRolledBack { cursor, head } => format!(
            "the relay's log went back from {cursor} to {head} (restored from a backup?); everything this device has is sent again."
        ),
    }
}
