//! One function per command: read the arguments, call the core, print a table or JSON.
//!
//! Every input is checked before anything is written (the core validates drafts the same way), so
//! a refused command changes nothing.

use std::str::FromStr as _;

use chrono::{Local, NaiveDate, Timelike as _};
use serde::Serialize;
use serde_json::json;
use streetsync_core::stats::{self, Dimension, StatsQuery};
use streetsync_core::vocab::{
    AgeBand, CommentKind, Gender, Housing, Intervention, ReviewState, Setting,
};
use streetsync_core::{
    ClientDraft, ClientFilter, Consent, Contact, ContactDraft, ContactFilter, ContactSummary,
    DeviceId, MaterialCount, PartnerDraft, RecordId, Referral, Role, SyncListener, SyncProgress,
    SyncReport, SyncStatus, Team, TeamSetup, Workspace,
};

use crate::args::*;
use crate::context::{Context, NewStoreGuard, runtime};
use crate::error::{CliError, CliResult};
use crate::output::{self, clip, short, when};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> CliResult<()> {
    let ctx = Context { global: cli.global };
    match cli.command {
        Command::Init(a) => init(&ctx, a),
        Command::Invite(a) => invite(&ctx, a),
        Command::Join(a) => join(&ctx, a),
        Command::Members => members(&ctx),
        Command::Revoke(a) => revoke(&ctx, a),
        Command::Contact(c) => match c {
            ContactCommand::Add(f) => contact_add(&ctx, f),
            ContactCommand::List(a) => contact_list(&ctx, a),
            ContactCommand::Show(a) => contact_show(&ctx, &a.id),
            ContactCommand::Edit(a) => contact_edit(&ctx, a),
            ContactCommand::Submit(a) => review(&ctx, &a.id, |ws, id| ws.submit_contact(id)),
        },
        Command::Approve(a) => review(&ctx, &a.id, |ws, id| ws.approve_contact(id)),
        Command::Ask(a) => review(&ctx, &a.id, |ws, id| ws.request_changes(id, &a.text)),
        Command::Comment(a) => review(&ctx, &a.id, |ws, id| ws.comment_contact(id, &a.text)),
        Command::Answer(a) => review(&ctx, &a.id, |ws, id| ws.answer_contact(id, &a.text)),
        Command::Inbox => inbox(&ctx),
        Command::Clients(c) => clients(&ctx, c),
        Command::Referral(c) => referral(&ctx, c),
        Command::Directory(c) => directory(&ctx, c),
        Command::Stats(a) => stats_cmd(&ctx, a),
        Command::Export(a) => export(&ctx, a),
        Command::Sync => sync(&ctx),
        Command::Erase(a) => erase(&ctx, a),
        Command::History(a) => history(&ctx, &a.id),
        Command::Demo => crate::demo::run(),
    }
}

// ---- parsing helpers -----------------------------------------------------------------------

fn vocab<T: Copy>(
    flag: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    all: &[T],
    name: fn(T) -> &'static str,
) -> CliResult<T> {
    parse(value.trim()).ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        CliError::invalid(format!(
            "--{flag} '{value}' is not known; use one of: {}",
            known.join(", ")
        ))
    })
}

fn setting(v: &str) -> CliResult<Setting> {
    vocab(
        "setting",
        v,
        Setting::from_key,
        Setting::ALL,
        Setting::as_str,
    )
}
fn age(v: &str) -> CliResult<AgeBand> {
    vocab("age", v, AgeBand::from_key, AgeBand::ALL, AgeBand::as_str)
}
fn gender(v: &str) -> CliResult<Gender> {
    vocab("gender", v, Gender::from_key, Gender::ALL, Gender::as_str)
}
fn housing(v: &str) -> CliResult<Housing> {
    vocab(
        "housing",
        v,
        Housing::from_key,
        Housing::ALL,
        Housing::as_str,
    )
}
fn intervention(v: &str) -> CliResult<Intervention> {
    vocab(
        "intervention",
        v,
        Intervention::from_key,
        Intervention::ALL,
        Intervention::as_str,
    )
}
fn review_state(v: &str) -> CliResult<ReviewState> {
    vocab(
        "review",
        v,
        ReviewState::from_key,
        ReviewState::ALL,
        ReviewState::as_str,
    )
}

fn material(v: &str) -> CliResult<MaterialCount> {
    let (id, count) = v.split_once('=').ok_or_else(|| {
        CliError::invalid(format!(
            "--material '{v}' needs a count, written as id=count (e.g. essen=2)"
        ))
    })?;
    let count: i64 = count.trim().parse().map_err(|_| {
        CliError::invalid(format!("--material '{v}': '{count}' is not a whole number"))
    })?;
    Ok(MaterialCount {
        material_id: id.trim().to_owned(),
        count,
    })
}

/// Finds a contact by its id or the first characters of it.
fn resolve_contact(ws: &Workspace, text: &str) -> CliResult<RecordId> {
    let t = text.trim().to_lowercase();
    if let Ok(id) = RecordId::from_str(&t) {
        return Ok(id);
    }
    if t.len() < 4 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CliError::invalid(format!(
            "'{text}' is not a contact id; give at least the first 4 characters shown by `contact list`"
        )));
    }
    let hits: Vec<RecordId> = ws
        .contact_summaries()?
        .into_iter()
        .map(|s| s.id)
        .filter(|id| id.to_string().starts_with(&t))
        .collect();
    match hits.as_slice() {
        [id] => Ok(*id),
        [] => Err(CliError::not_found(format!("no contact with id '{text}'"))),
        _ => Err(CliError::invalid(format!(
            "'{text}' matches {} contacts; give more characters of the id",
            hits.len()
        ))),
    }
}

fn member_of(team: &Team, author: &str) -> String {
    DeviceId::from_str(author)
        .ok()
        .and_then(|d| team.device(&d).map(|d| d.member.clone()))
        .unwrap_or_else(|| short(&author))
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Lead => "lead",
        Role::Worker => "worker",
    }
}

// ---- team --------------------------------------------------------------------------------

fn init(ctx: &Context, a: InitArgs) -> CliResult<()> {
    let areas: Vec<String> = a
        .areas
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if areas.is_empty() {
        return Err(CliError::invalid(
            "name at least one area (Sozialraum) with --area",
        ));
    }
    if ctx.global.store.exists() {
        let ws = ctx.open(false)?;
        if ws.team_id()?.is_some() {
            return Err(CliError::not_allowed(format!(
                "the store {} already belongs to a team",
                ctx.global.store.display()
            )));
        }
    }
    let relay = ctx
        .global
        .relay
        .is_some()
        .then(|| ctx.relay())
        .transpose()?;
    let guard = NewStoreGuard::new(&ctx.global.store);
    let ws = ctx.open(true)?;
    let team = ws.create_team(TeamSetup {
        team_name: a.team,
        member_name: a.name,
        areas,
        topics: a.topics,
        materials: a.materials,
    })?;
    drop(ws);
    guard.disarm();
    if let Some(url) = relay {
        ctx.remember_relay(&url)?;
    }
    if ctx.global.json {
        return output::json(&team);
    }
    println!(
        "Team '{}' created. You are its team lead.\nStore: {}",
        team.name,
        ctx.global.store.display()
    );
    print_catalogs(&team);
    println!(
        "\nNext: `streetsync --relay URL sync` to connect to your relay, then `streetsync invite --name NAME`."
    );
    Ok(())
}

fn print_catalogs(team: &Team) {
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

fn invite(ctx: &Context, a: InviteArgs) -> CliResult<()> {
    if a.valid_hours == 0 || a.valid_hours > 168 {
        return Err(CliError::invalid(
            "--valid-hours must be between 1 and 168 (7 days)",
        ));
    }
    if a.name.trim().is_empty() {
        return Err(CliError::invalid("--name must not be empty"));
    }
    let ws = ctx.open(false)?;
    ws.my_role()?;
    let (client, url) = ctx.sync_client(&ws)?;
    let role = if a.lead { Role::Lead } else { Role::Worker };
    let invite = runtime()?.block_on(client.create_invite(&a.name, role, a.valid_hours * 3600))?;
    ctx.remember_relay(&url)?;
    if ctx.global.json {
        return output::json(&invite);
    }
    println!(
        "Invite for {} ({}):\n\n    {}\n\nValid until {}. Hand it over in person; it works once.\nOn the new device: streetsync --relay {url} join {}",
        invite.member,
        role_name(invite.role),
        invite.code,
        when(invite.expires_at_ms),
        invite.code
    );
    Ok(())
}

fn join(ctx: &Context, a: JoinArgs) -> CliResult<()> {
    let url = ctx.relay()?;
    if ctx.global.store.exists() {
        let ws = ctx.open(false)?;
        if ws.team_id()?.is_some() {
            return Err(CliError::not_allowed(format!(
                "the store {} already belongs to a team",
                ctx.global.store.display()
            )));
        }
    }
    let guard = NewStoreGuard::new(&ctx.global.store);
    let ws = ctx.open(true)?;
    let client = streetsync_core::SyncClient::new(ws.clone(), &url)?;
    let report = runtime()?.block_on(client.join_with_invite(&a.code));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            drop(client);
            drop(ws);
            drop(guard);
            return Err(e.into());
        }
    };
    guard.disarm();
    ctx.remember_relay(&url)?;
    let team = ws.team()?;
    if ctx.global.json {
        return output::json(&json!({
            "team": team.name,
            "device": ws.device_id(),
            "report": report,
        }));
    }
    println!(
        "Joined team '{}'. This device: {}.\nYour team lead's device confirms you at its next sync; then your notes reach the team.",
        team.name,
        short(&ws.device_id())
    );
    Ok(())
}

#[derive(Serialize)]
struct MemberRow {
    member: String,
    role: &'static str,
    device: DeviceId,
    revoked: bool,
    this_device: bool,
}

fn members(ctx: &Context) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    let me = ws.device_id();
    let rows: Vec<MemberRow> = team
        .roster
        .iter()
        .map(|d| MemberRow {
            member: d.member.clone(),
            role: role_name(d.role),
            device: d.device_id,
            revoked: d.revoked,
            this_device: d.device_id == me,
        })
        .collect();
    if ctx.global.json {
        return output::json(&json!({ "team": team.name, "members": rows,
            "areas": team.areas, "topics": team.topics, "materials": team.materials }));
    }
    println!("Team '{}'", team.name);
    let mut t = output::table(&["member", "role", "device", "status"]);
    for r in &rows {
        t.add_row(vec![
            r.member.clone(),
            r.role.to_owned(),
            short(&r.device),
            match (r.revoked, r.this_device) {
                (true, _) => "removed".into(),
                (false, true) => "this device".into(),
                _ => "active".to_owned(),
            },
        ]);
    }
    println!("{t}");
    print_catalogs(&team);
    Ok(())
}

fn revoke(ctx: &Context, a: RevokeArgs) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    let needle = a.device.trim().to_lowercase();
    if needle.is_empty() {
        return Err(CliError::invalid("name the member or device to remove"));
    }
    let by_name: Vec<_> = team
        .roster
        .iter()
        .filter(|d| !d.revoked && d.member.to_lowercase() == needle)
        .collect();
    let by_id: Vec<_> = team
        .roster
        .iter()
        .filter(|d| d.device_id.to_string().starts_with(&needle) && needle.len() >= 4)
        .collect();
    let device = match (by_name.as_slice(), by_id.as_slice()) {
        ([d], _) => d.device_id,
        ([], [d]) => d.device_id,
        ([], []) => {
            return Err(CliError::not_found(format!(
                "no member or device '{}' on the team (see `streetsync members`)",
                a.device
            )));
        }
        _ => {
            return Err(CliError::invalid(format!(
                "'{}' names more than one device; give the device id from `streetsync members`",
                a.device
            )));
        }
    };
    if team.device(&device).is_some_and(|d| d.revoked) {
        return Err(CliError::invalid(format!(
            "device {} was already removed",
            short(&device)
        )));
    }
    ws.my_role()?;
    let (client, url) = ctx.sync_client(&ws)?;
    let rt = runtime()?;
    rt.block_on(client.revoke_device(device))?;
    let _ = rt.block_on(client.sync_once(None));
    ctx.remember_relay(&url)?;
    let member = team
        .device(&device)
        .map(|d| d.member.clone())
        .unwrap_or_default();
    if ctx.global.json {
        return output::json(&json!({ "revoked": device, "member": member }));
    }
    println!(
        "Device {} of {member} is cut off: the relay refuses it from now on, and new notes use a key it never gets.",
        short(&device)
    );
    Ok(())
}

// ---- contacts ----------------------------------------------------------------------------

fn today() -> NaiveDate {
    Local::now().date_naive()
}

fn now_time() -> chrono::NaiveTime {
    let t = Local::now().time();
    chrono::NaiveTime::from_hms_opt(t.hour(), t.minute(), 0).unwrap_or(t)
}

/// Applies the given fields onto a draft.
fn apply_fields(d: &mut ContactDraft, f: &ContactFields) -> CliResult<()> {
    if let Some(v) = f.date {
        d.date = v;
    }
    if let Some(v) = f.time {
        d.start_time = v;
    }
    if let Some(v) = f.end {
        d.end_time = Some(v);
    }
    if let Some(v) = &f.area {
        d.area_id = v.trim().to_owned();
    }
    if let Some(v) = &f.place {
        d.place = v.clone();
    }
    if let Some(v) = &f.setting {
        d.setting = setting(v)?;
    }
    if let Some(v) = f.persons {
        d.persons = v;
    }
    if f.first {
        d.first_contact = true;
    }
    if let Some(v) = &f.age {
        d.age_band = age(v)?;
    }
    if let Some(v) = &f.gender {
        d.gender = gender(v)?;
    }
    if let Some(v) = &f.code {
        d.client_code = Some(v.trim().to_owned());
    }
    if let Some(v) = &f.housing {
        d.housing = housing(v)?;
    }
    if !f.topics.is_empty() {
        d.topics = f.topics.iter().map(|t| t.trim().to_owned()).collect();
    }
    if !f.interventions.is_empty() {
        d.interventions = f
            .interventions
            .iter()
            .map(|i| intervention(i))
            .collect::<CliResult<_>>()?;
    }
    if !f.materials.is_empty() {
        d.materials = f
            .materials
            .iter()
            .map(|m| material(m))
            .collect::<CliResult<_>>()?;
    }
    if f.safeguarding {
        d.safeguarding = true;
        d.retention = streetsync_core::vocab::RetentionClass::Safeguarding;
    }
    if let Some(v) = &f.note {
        d.note = v.clone();
    }
    Ok(())
}

fn prompt_err(e: dialoguer::Error) -> CliError {
    CliError::invalid(format!("input cancelled ({e}); nothing was saved"))
}

/// Asks for the fields not given on the command line.
fn prompt_fields(team: &Team, f: &mut ContactFields) -> CliResult<()> {
    use dialoguer::{Confirm, Input, MultiSelect, Select};
    let areas: Vec<_> = team.areas.iter().filter(|e| !e.retired).collect();
    if f.area.is_none() {
        let names: Vec<&str> = areas.iter().map(|e| e.name.as_str()).collect();
        let i = Select::new()
            .with_prompt("Area (Sozialraum)")
            .items(&names)
            .default(0)
            .interact()
            .map_err(prompt_err)?;
        f.area = areas.get(i).map(|e| e.id.clone());
    }
    if f.place.is_none() {
        f.place = Some(
            Input::<String>::new()
                .with_prompt("Place")
                .allow_empty(true)
                .interact_text()
                .map_err(prompt_err)?,
        );
    }
    if f.persons.is_none() {
        f.persons = Some(
            Input::<i64>::new()
                .with_prompt("Persons")
                .default(1)
                .interact_text()
                .map_err(prompt_err)?,
        );
    }
    if f.age.is_none() {
        let labels: Vec<&str> = AgeBand::ALL.iter().map(|a| a.label()).collect();
        let i = Select::new()
            .with_prompt("Age band")
            .items(&labels)
            .default(AgeBand::ALL.len() - 1)
            .interact()
            .map_err(prompt_err)?;
        f.age = AgeBand::ALL.get(i).map(|a| a.as_str().to_owned());
    }
    if f.gender.is_none() {
        let labels: Vec<&str> = Gender::ALL.iter().map(|a| a.label()).collect();
        let i = Select::new()
            .with_prompt("Gender")
            .items(&labels)
            .default(Gender::ALL.len() - 1)
            .interact()
            .map_err(prompt_err)?;
        f.gender = Gender::ALL.get(i).map(|a| a.as_str().to_owned());
    }
    if f.topics.is_empty() {
        let topics: Vec<_> = team.topics.iter().filter(|e| !e.retired).collect();
        let names: Vec<&str> = topics.iter().map(|e| e.name.as_str()).collect();
        let picked = MultiSelect::new()
            .with_prompt("Topics (space to pick, enter to go on)")
            .items(&names)
            .interact()
            .map_err(prompt_err)?;
        f.topics = picked
            .into_iter()
            .filter_map(|i| topics.get(i).map(|e| e.id.clone()))
            .collect();
    }
    if !f.safeguarding {
        f.safeguarding = Confirm::new()
            .with_prompt("Child-protection concern (§ 8a SGB VIII)?")
            .default(false)
            .interact()
            .map_err(prompt_err)?;
    }
    if f.note.is_none() {
        f.note = Some(
            Input::<String>::new()
                .with_prompt("Note (confidential)")
                .allow_empty(true)
                .interact_text()
                .map_err(prompt_err)?,
        );
    }
    Ok(())
}

fn contact_add(ctx: &Context, mut f: ContactFields) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    if f.area.is_none() {
        if output::can_prompt() && !ctx.global.json {
            prompt_fields(&team, &mut f)?;
        } else {
            let known: Vec<&str> = team
                .areas
                .iter()
                .filter(|e| !e.retired)
                .map(|e| e.id.as_str())
                .collect();
            return Err(CliError::invalid(format!(
                "--area is required (known areas: {})",
                known.join(", ")
            )));
        }
    }
    let mut draft = ContactDraft::new(today(), now_time(), "");
    apply_fields(&mut draft, &f)?;
    let mut contact = ws.create_contact(draft)?;
    if f.submit {
        contact = ws.submit_contact(contact.id)?;
    }
    if ctx.global.json {
        return output::json(&contact);
    }
    println!(
        "Saved contact {} ({} {}, {}){}",
        short(&contact.id),
        contact.fields.date,
        contact.fields.start_time.format("%H:%M"),
        team.name_of(streetsync_core::Catalog::Area, &contact.fields.area_id),
        if contact.fields.safeguarding {
            ": child-protection concern flagged for your team lead"
        } else {
            ""
        }
    );
    Ok(())
}

fn print_list(team: &Team, items: &[ContactSummary], total: usize) {
    let mut t = output::table(&[
        "id", "date", "time", "area", "place", "pers.", "review", "!", "note",
    ]);
    for s in items {
        t.add_row(vec![
            short(&s.id),
            s.date.to_string(),
            s.start_time.format("%H:%M").to_string(),
            team.name_of(streetsync_core::Catalog::Area, &s.area_id),
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

fn contact_list(ctx: &Context, a: ListArgs) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    if a.limit == 0 || a.limit > 1000 {
        return Err(CliError::invalid("--limit must be between 1 and 1000"));
    }
    let filter = ContactFilter {
        from: a.from,
        to: a.to,
        area_id: a.area.clone(),
        topic_id: a.topic.clone(),
        author: a.mine.then(|| ws.device_id().to_string()),
        review: a.review.as_deref().map(review_state).transpose()?,
        client_code: a.code.clone(),
        safeguarding: a.safeguarding.then_some(true),
        text: a.search.clone(),
        safeguarding_first: a.review_queue,
        offset: if a.review_queue { 0 } else { a.offset },
        limit: if a.review_queue { 1000 } else { a.limit },
    };
    if let Some(area) = &a.area {
        team.check_catalog_id(streetsync_core::Catalog::Area, "area", area, true)
            .map_err(streetsync_core::Error::from)?;
    }
    if let Some(topic) = &a.topic {
        team.check_catalog_id(streetsync_core::Catalog::Topic, "topic", topic, true)
            .map_err(streetsync_core::Error::from)?;
    }
    let mut page = ws.list_contacts(&filter)?;
    if a.review_queue {
        page.items.retain(|s| s.review != ReviewState::Approved);
        page.total = page.items.len();
        page.items = page
            .items
            .into_iter()
            .skip(a.offset)
            .take(a.limit)
            .collect();
    }
    if ctx.global.json {
        let items: Vec<serde_json::Value> = page
            .items
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("author_name".into(), json!(member_of(&team, &s.author)));
                }
                v
            })
            .collect();
        return output::json(&json!({ "total": page.total, "items": items }));
    }
    print_list(&team, &page.items, page.total);
    Ok(())
}

fn show_contact(ws: &Workspace, team: &Team, c: &Contact) {
    let f = &c.fields;
    let area = team.name_of(streetsync_core::Catalog::Area, &f.area_id);
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
        .map(|t| team.name_of(streetsync_core::Catalog::Topic, t))
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
                team.name_of(streetsync_core::Catalog::Material, &m.material_id)
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
    let _ = ws;
}

fn contact_show(ctx: &Context, id: &str) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    let id = resolve_contact(&ws, id)?;
    let c = ws.get_contact(id)?;
    if ctx.global.json {
        return output::json(&c);
    }
    show_contact(&ws, &team, &c);
    Ok(())
}

fn contact_edit(ctx: &Context, a: EditArgs) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let id = resolve_contact(&ws, &a.id)?;
    let c = ws.get_contact(id)?;
    let f = &a.fields;
    let nothing = f.date.is_none()
        && f.time.is_none()
        && f.end.is_none()
        && f.area.is_none()
        && f.place.is_none()
        && f.setting.is_none()
        && f.persons.is_none()
        && !f.first
        && f.age.is_none()
        && f.gender.is_none()
        && f.code.is_none()
        && f.housing.is_none()
        && f.topics.is_empty()
        && f.interventions.is_empty()
        && f.materials.is_empty()
        && !f.safeguarding
        && f.note.is_none()
        && !f.submit
        && a.append_note.is_none()
        && !a.no_code
        && !a.no_safeguarding;
    if nothing {
        return Err(CliError::invalid(
            "nothing to change: give the fields to change, e.g. --persons 2 or --append-note TEXT",
        ));
    }
    if a.no_code && f.code.is_some() {
        return Err(CliError::invalid(
            "--code and --no-code contradict each other",
        ));
    }
    let mut draft = c.fields.clone();
    apply_fields(&mut draft, f)?;
    if let Some(extra) = &a.append_note {
        if !draft.note.is_empty() && !draft.note.ends_with('\n') {
            draft.note.push('\n');
        }
        draft.note.push_str(extra);
    }
    if a.no_code {
        draft.client_code = None;
    }
    if a.no_safeguarding {
        draft.safeguarding = false;
    }
    let mut updated = if draft != c.fields {
        ws.update_contact(id, draft)?
    } else {
        c
    };
    if f.submit {
        updated = ws.submit_contact(id)?;
    }
    if ctx.global.json {
        return output::json(&updated);
    }
    println!("Contact {} changed.", short(&id));
    Ok(())
}

// ---- review ------------------------------------------------------------------------------

fn review(
    ctx: &Context,
    id: &str,
    f: impl FnOnce(&Workspace, RecordId) -> streetsync_core::Result<Contact>,
) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let id = resolve_contact(&ws, id)?;
    let c = f(&ws, id)?;
    if ctx.global.json {
        return output::json(&c);
    }
    let what = match c.comments.last() {
        Some(cm) if c.updated_at == cm.at || c.review == ReviewState::ChangesRequested => {
            format!("{} added", cm.kind.label())
        }
        _ => String::new(),
    };
    println!(
        "Contact {}: review is now '{}'{}. Run `streetsync sync` to send it to the team.",
        short(&c.id),
        c.review.label(),
        if what.is_empty() {
            String::new()
        } else {
            format!(", {what}")
        }
    );
    Ok(())
}

#[derive(Serialize)]
struct InboxItem {
    id: RecordId,
    date: NaiveDate,
    place: String,
    safeguarding: bool,
    review: ReviewState,
    author: String,
    question: Option<String>,
}

fn inbox(ctx: &Context) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    let role = ws.my_role()?;
    let mut items = Vec::new();
    if role == Role::Lead {
        let page = ws.list_contacts(&ContactFilter {
            safeguarding_first: true,
            limit: 1000,
            ..Default::default()
        })?;
        for s in page.items.into_iter().filter(|s| {
            s.review == ReviewState::Submitted
                || (s.safeguarding && s.review != ReviewState::Approved)
        }) {
            let c = ws.get_contact(s.id)?;
            let last = c
                .comments
                .iter()
                .rev()
                .find(|c| c.kind == CommentKind::Answer);
            items.push(InboxItem {
                id: s.id,
                date: s.date,
                place: s.place,
                safeguarding: s.safeguarding,
                review: s.review,
                author: member_of(&team, &s.author),
                question: last.map(|c| format!("answer: {}", c.text)),
            });
        }
    }
    let mine = ws.list_contacts(&ContactFilter {
        review: Some(ReviewState::ChangesRequested),
        author: Some(ws.device_id().to_string()),
        limit: 1000,
        safeguarding_first: true,
        ..Default::default()
    })?;
    for s in mine.items {
        let c = ws.get_contact(s.id)?;
        let q = c
            .comments
            .iter()
            .rev()
            .find(|c| c.kind == CommentKind::Question)
            .map(|c| c.text.clone());
        items.push(InboxItem {
            id: s.id,
            date: s.date,
            place: s.place,
            safeguarding: s.safeguarding,
            review: s.review,
            author: member_of(&team, &s.author),
            question: q,
        });
    }
    if ctx.global.json {
        return output::json(&json!({ "role": role_name(role), "items": items }));
    }
    if items.is_empty() {
        println!("Nothing waits for you.");
        return Ok(());
    }
    let mut t = output::table(&[
        "id",
        "date",
        "place",
        "!",
        "review",
        "by",
        "question / answer",
    ]);
    for i in &items {
        t.add_row(vec![
            short(&i.id),
            i.date.to_string(),
            clip(&i.place, 24),
            if i.safeguarding {
                "§8a".into()
            } else {
                String::new()
            },
            i.review.label().to_owned(),
            i.author.clone(),
            i.question.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    println!("Answer a question with `streetsync answer ID TEXT`; review with `approve` or `ask`.");
    Ok(())
}

// ---- clients -----------------------------------------------------------------------------

fn clients(ctx: &Context, c: ClientsCommand) -> CliResult<()> {
    let ws = ctx.open(false)?;
    match c {
        ClientsCommand::List { search } => {
            ws.team()?;
            let list = ws.list_clients(&ClientFilter { text: search })?;
            if ctx.global.json {
                return output::json(&list);
            }
            let mut t = output::table(&["code", "alias", "age", "gender", "consents"]);
            for c in &list {
                t.add_row(vec![
                    c.code.clone(),
                    c.alias.clone().unwrap_or_default(),
                    c.age_band.label().to_owned(),
                    c.gender.label().to_owned(),
                    c.active_consents.to_string(),
                ]);
            }
            println!("{t}\n{} client(s)", list.len());
        }
        ClientsCommand::Add {
            code,
            alias,
            age: a,
            gender: g,
        } => {
            let mut d = ClientDraft::new(code.trim());
            d.alias = alias;
            if let Some(a) = a {
                d.age_band = age(&a)?;
            }
            if let Some(g) = g {
                d.gender = gender(&g)?;
            }
            let client = ws.create_client(d)?;
            if ctx.global.json {
                return output::json(&client);
            }
            println!("Client {} added.", client.fields.code);
        }
        ClientsCommand::Show { code } => {
            ws.team()?;
            let found = ws
                .list_clients(&ClientFilter::default())?
                .into_iter()
                .find(|c| c.code.eq_ignore_ascii_case(code.trim()))
                .ok_or_else(|| CliError::not_found(format!("no client with code '{code}'")))?;
            let client = ws.get_client(found.id)?;
            let contacts = ws.list_contacts(&ContactFilter {
                client_code: Some(client.fields.code.clone()),
                limit: 1000,
                ..Default::default()
            })?;
            if ctx.global.json {
                return output::json(&json!({ "client": client, "contacts": contacts.items }));
            }
            println!(
                "Client {}{} · {} · {}",
                client.fields.code,
                client
                    .fields
                    .alias
                    .as_ref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default(),
                client.fields.age_band.label(),
                client.fields.gender.label()
            );
            if !client.fields.notes.is_empty() {
                println!("  notes: {}", client.fields.notes);
            }
            print_list(&ws.team()?, &contacts.items, contacts.total);
        }
    }
    Ok(())
}

// ---- referrals ---------------------------------------------------------------------------

fn new_referral_id() -> String {
    format!("r-{}", &RecordId::random().to_string()[..6])
}

fn referral(ctx: &Context, c: ReferralCommand) -> CliResult<()> {
    let ws = ctx.open(false)?;
    match c {
        ReferralCommand::Add(a) => {
            let id = resolve_contact(&ws, &a.contact)?;
            let contact = ws.get_contact(id)?;
            let team = ws.team()?;
            team.check_partner("--partner", a.partner.trim())
                .map_err(|e| CliError::invalid(format!("{e} (see `streetsync directory list`)")))?;
            let any_consent = a.scope.is_some()
                || a.recipient.is_some()
                || a.purpose.is_some()
                || a.consent_date.is_some();
            let consent = if a.anonymous {
                if let Some(code) = &contact.fields.client_code {
                    return Err(CliError::invalid(format!(
                        "this contact has the client code {code}, so the referral needs the client's consent (--scope, --recipient, --purpose); --anonymous is only for contacts without a client code"
                    )));
                }
                if any_consent {
                    return Err(CliError::invalid(
                        "--anonymous means no consent was recorded; leave out --scope, --recipient, --purpose and --consent-date",
                    ));
                }
                None
            } else {
                match (&a.scope, &a.recipient, &a.purpose) {
                    (Some(s), Some(r), Some(p)) => Some(Consent {
                        scope: s.clone(),
                        recipient: r.clone(),
                        purpose: p.clone(),
                        given_on: a.consent_date.unwrap_or_else(today),
                        revoked_on: None,
                    }),
                    _ => {
                        return Err(CliError::invalid(
                            "a referral needs the client's consent (§ 67b SGB X): give --scope (which data), --recipient (to whom) and --purpose (for what); only a contact without client code may be referred with --anonymous",
                        ));
                    }
                }
            };
            let mut draft = contact.fields.clone();
            let rid = new_referral_id();
            draft.referrals.push(Referral {
                id: rid.clone(),
                partner_id: a.partner.trim().to_owned(),
                reason: a.reason.clone(),
                consent,
                outcome: streetsync_core::vocab::ReferralOutcome::Open,
            });
            if !draft.interventions.contains(&Intervention::Referral) {
                draft.interventions.push(Intervention::Referral);
            }
            let updated = ws.update_contact(id, draft)?;
            if ctx.global.json {
                return output::json(&updated);
            }
            println!(
                "Referral {rid} recorded on contact {}{}.",
                short(&id),
                if a.anonymous {
                    " (anonymous, without consent)"
                } else {
                    " with the client's consent"
                }
            );
        }
        ReferralCommand::RevokeConsent {
            contact,
            referral,
            date,
        } => {
            let id = resolve_contact(&ws, &contact)?;
            let c = ws.get_contact(id)?;
            let mut draft = c.fields.clone();
            let r = draft
                .referrals
                .iter_mut()
                .find(|r| r.id == referral.trim())
                .ok_or_else(|| {
                    CliError::not_found(format!(
                        "contact {} has no referral '{referral}' (see `streetsync contact show`)",
                        short(&id)
                    ))
                })?;
            let consent = r.consent.as_mut().ok_or_else(|| {
                CliError::invalid("this referral was anonymous: there is no consent to revoke")
            })?;
            if let Some(d) = consent.revoked_on {
                return Err(CliError::invalid(format!(
                    "the consent was already revoked on {d}"
                )));
            }
            let on = date.unwrap_or_else(today);
            consent.revoked_on = Some(on);
            let updated = ws.update_contact(id, draft)?;
            if ctx.global.json {
                return output::json(&updated);
            }
            println!(
                "Consent of referral {} revoked on {on}; it is kept on record as revoked.",
                referral.trim()
            );
        }
    }
    Ok(())
}

// ---- directory ---------------------------------------------------------------------------

fn directory(ctx: &Context, c: DirectoryCommand) -> CliResult<()> {
    let ws = ctx.open(false)?;
    match c {
        DirectoryCommand::List => {
            let list = ws.partners()?;
            if ctx.global.json {
                return output::json(&list);
            }
            let mut t = output::table(&["id", "name", "offers", "contact", "phone", "address"]);
            for p in &list {
                t.add_row(vec![
                    p.id.clone(),
                    if p.retired {
                        format!("{} (closed)", p.name)
                    } else {
                        p.name.clone()
                    },
                    p.offers.join(", "),
                    p.contact_person.clone(),
                    p.phone.clone(),
                    p.address.clone(),
                ]);
            }
            println!("{t}\n{} partner organisation(s)", list.len());
        }
        DirectoryCommand::Add(a) => {
            let name = a.name.clone().ok_or_else(|| {
                CliError::invalid("--name is required for a new partner organisation")
            })?;
            let p = ws.add_partner(PartnerDraft {
                name,
                offers: a.offers,
                contact_person: a.person.unwrap_or_default(),
                phone: a.phone.unwrap_or_default(),
                address: a.address.unwrap_or_default(),
                notes: a.notes.unwrap_or_default(),
            })?;
            if ctx.global.json {
                return output::json(&p);
            }
            println!("Partner '{}' added with id {}.", p.name, p.id);
        }
        DirectoryCommand::Edit { id, fields: a } => {
            let old = ws
                .partners()?
                .into_iter()
                .find(|p| p.id == id.trim())
                .ok_or_else(|| {
                    CliError::not_found(format!(
                        "no partner organisation '{id}' (see `streetsync directory list`)"
                    ))
                })?;
            if a.name.is_none()
                && a.offers.is_empty()
                && a.person.is_none()
                && a.phone.is_none()
                && a.address.is_none()
                && a.notes.is_none()
            {
                return Err(CliError::invalid(
                    "nothing to change: give e.g. --phone or --notes",
                ));
            }
            let p = ws.update_partner(
                &old.id,
                PartnerDraft {
                    name: a.name.unwrap_or(old.name),
                    offers: if a.offers.is_empty() {
                        old.offers
                    } else {
                        a.offers
                    },
                    contact_person: a.person.unwrap_or(old.contact_person),
                    phone: a.phone.unwrap_or(old.phone),
                    address: a.address.unwrap_or(old.address),
                    notes: a.notes.unwrap_or(old.notes),
                },
            )?;
            if ctx.global.json {
                return output::json(&p);
            }
            println!("Partner '{}' ({}) changed.", p.name, p.id);
        }
    }
    Ok(())
}

// ---- statistics and export ---------------------------------------------------------------

/// Prints statistics as tables.
pub(crate) fn print_stats(s: &stats::Statistics) {
    println!(
        "Statistics of team '{}', {} to {} (persons counted once per day per client code; below 3 shown as <3)",
        s.team, s.from, s.to
    );
    println!(
        "All contacts: {} contacts, {} persons",
        s.total.contacts, s.total.persons
    );
    for table in &s.tables {
        if table.rows.is_empty() {
            continue;
        }
        println!("\n{}", table.dimension.title());
        let mut header = vec!["", "contacts", "persons"];
        if let Some(l) = table.dimension.amount_label() {
            header.push(l);
        }
        let mut t = output::table(&header);
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

fn stats_cmd(ctx: &Context, a: StatsArgs) -> CliResult<()> {
    let q = StatsQuery {
        from: a.from,
        to: a.to,
    };
    q.validate().map_err(streetsync_core::Error::from)?;
    if let Some(svg) = &a.svg
        && svg.is_dir()
    {
        return Err(CliError::invalid(format!(
            "--svg {} is a folder; give a file name",
            svg.display()
        )));
    }
    let ws = ctx.open(false)?;
    let s = stats::compute(&ws, &q).map_err(streetsync_core::Error::from)?;
    let mut wrote = Vec::new();
    if let Some(svg) = &a.svg {
        crate::chart::draw(&s, svg)?;
        wrote.push(svg.display().to_string());
    }
    match &a.csv {
        Some(None) => {
            streetsync_core::export::write_statistics(&s, std::io::stdout().lock())?;
            return Ok(());
        }
        Some(Some(path)) => {
            let file = std::fs::File::create(path)
                .map_err(|e| CliError::invalid(format!("cannot write {}: {e}", path.display())))?;
            streetsync_core::export::write_statistics(&s, file)?;
            wrote.push(path.display().to_string());
        }
        None => {}
    }
    if ctx.global.json {
        return output::json(&s);
    }
    print_stats(&s);
    for w in wrote {
        println!("\nWrote {w}");
    }
    Ok(())
}

fn export(ctx: &Context, a: ExportArgs) -> CliResult<()> {
    if let (Some(f), Some(t)) = (a.from, a.to)
        && t < f
    {
        return Err(CliError::invalid(format!("--to {t} is before --from {f}")));
    }
    let ws = ctx.open(false)?;
    let spec = streetsync_core::export::ContactExport {
        from: a.from,
        to: a.to,
        include_notes: a.include_notes,
    };
    let to_stdout = a.out.as_os_str() == "-";
    let bar = output::progress(ctx.global.json || to_stdout, "export");
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let n = if to_stdout {
        streetsync_core::export::export_contacts(
            &ws,
            &spec,
            std::io::stdout().lock(),
            &mut progress,
        )?
    } else {
        // Write to a temporary file next to the target, then rename: no half-written export.
        let dir = a
            .out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| CliError::invalid(format!("cannot write into {}: {e}", dir.display())))?;
        let n = streetsync_core::export::export_contacts(&ws, &spec, &tmp, &mut progress)?;
        tmp.persist(&a.out).map_err(|e| {
            CliError::invalid(format!("cannot write {}: {}", a.out.display(), e.error))
        })?;
        n
    };
    bar.finish_and_clear();
    if to_stdout {
        return Ok(());
    }
    if ctx.global.json {
        return output::json(&json!({ "file": a.out, "contacts": n, "notes": a.include_notes }));
    }
    println!(
        "Exported {n} contact(s) to {}{}",
        a.out.display(),
        if a.include_notes {
            " WITH confidential notes: keep this file within the team"
        } else {
            " (without notes)"
        }
    );
    Ok(())
}

// ---- sync, erase, history ----------------------------------------------------------------

struct BarListener(indicatif::ProgressBar);

impl SyncListener for BarListener {
    fn on_status(&self, _status: SyncStatus) {}

    fn on_progress(&self, p: SyncProgress) {
        let phase = match p.phase {
            streetsync_core::SyncPhase::Pushing => "sending",
            streetsync_core::SyncPhase::Pulling => "receiving",
            streetsync_core::SyncPhase::Compacting => "tidying",
        };
        self.0.set_message(phase);
        self.0.set_length(p.total.max(p.done));
        self.0.set_position(p.done);
    }
}

/// One sync with a progress bar on a terminal.
pub(crate) fn sync_with_bar(
    client: &streetsync_core::SyncClient,
    json: bool,
) -> CliResult<SyncReport> {
    let bar = output::progress(json, "sync");
    let listener = BarListener(bar.clone());
    let report = runtime()?.block_on(client.sync_once(Some(&listener)));
    bar.finish_and_clear();
    Ok(report?)
}

fn sync(ctx: &Context) -> CliResult<()> {
    let ws = ctx.open(false)?;
    ws.team()?;
    let (client, url) = ctx.sync_client(&ws)?;
    let report = sync_with_bar(&client, ctx.global.json)?;
    ctx.remember_relay(&url)?;
    if ctx.global.json {
        return output::json(&report);
    }
    println!(
        "Synced with {url}: sent {}, received {} ({} merged){}{}.",
        report.pushed,
        report.pulled,
        report.applied,
        if report.devices_enrolled > 0 {
            format!(", {} new device(s) confirmed", report.devices_enrolled)
        } else {
            String::new()
        },
        if report.erased > 0 {
            format!(", {} erased record(s) removed", report.erased)
        } else {
            String::new()
        }
    );
    if !report.quarantined.is_empty() {
        println!(
            "{} change(s) were refused and kept aside (e.g. from a device not yet confirmed); they are retried at every sync.",
            report.quarantined.len()
        );
    }
    Ok(())
}

fn erase(ctx: &Context, a: EraseArgs) -> CliResult<()> {
    let ws = ctx.open(false)?;
    ws.team()?;
    // A client code names a client; anything else is a contact id.
    let client = ws
        .list_clients(&ClientFilter::default())?
        .into_iter()
        .find(|c| c.code.eq_ignore_ascii_case(a.id.trim()));
    let (id, what) = match client {
        Some(c) => (c.id, format!("client {}", c.code)),
        None => {
            let id = resolve_contact(&ws, &a.id)?;
            ws.get_contact(id)?;
            (id, format!("contact {}", short(&id)))
        }
    };
    if ws.my_role()? != Role::Lead {
        return Err(CliError::not_allowed("only a team lead can erase records"));
    }
    if !a.yes {
        return Err(CliError::invalid(format!(
            "erasing {what} cannot be undone; run again with --yes to confirm"
        )));
    }
    ws.erase_record(id)?;
    if ctx.global.json {
        return output::json(&json!({ "erased": id }));
    }
    println!(
        "{what} erased here. Run `streetsync sync`: the relay and every device then delete it too."
    );
    Ok(())
}

fn history(ctx: &Context, id: &str) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let id = resolve_contact(&ws, id)?;
    let h = ws.history(id)?;
    if ctx.global.json {
        return output::json(&h);
    }
    let mut t = output::table(&["when", "who", "what", "fields"]);
    for e in &h {
        t.add_row(vec![
            when(e.at_ms),
            e.member
                .clone()
                .or_else(|| e.device.map(|d| short(&d)))
                .unwrap_or_default(),
            e.message.clone(),
            e.fields.join(", "),
        ]);
    }
    println!("{t}");
    Ok(())
}
