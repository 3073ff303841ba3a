//! Contacts, the field notes themselves: `contact add` (with prompts on a terminal), `contact
//! list`, `contact show`, `contact edit`, and `history` (who changed a contact, when, from which
//! device).

use serde_json::json;
use streetsync_core::{AgeBand, Gender, RetentionClass, ReviewState};
use streetsync_core::{Catalog, ContactDraft, ContactFilter, Team};

use super::parse::{
    age, gender, housing, intervention, material, now_time, resolve_contact, review_state, setting,
    today,
};
use crate::args::{ContactFields, EditArgs, ListArgs};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output::{self, member_of, print_list, short, show_contact, when};

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
        d.retention = RetentionClass::Safeguarding;
    }
    if let Some(v) = &f.note {
        d.note = v.clone();
    }
    Ok(())
}

/// A cancelled prompt (Ctrl-C, closed terminal) as an error that says nothing was saved.
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

/// `streetsync contact add`: logs a contact, asking for missing fields on a terminal.
pub(super) fn add(ctx: &Context, mut f: ContactFields) -> CliResult<()> {
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
        team.name_of(Catalog::Area, &contact.fields.area_id),
        if contact.fields.safeguarding {
            ": child-protection concern flagged for your team lead"
        } else {
            ""
        }
    );
    Ok(())
}

/// `streetsync contact list`: contacts by filter, or the review queue.
pub(super) fn list(ctx: &Context, a: ListArgs) -> CliResult<()> {
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
        team.check_catalog_id(Catalog::Area, "area", area, true)
            .map_err(streetsync_core::Error::from)?;
    }
    if let Some(topic) = &a.topic {
        team.check_catalog_id(Catalog::Topic, "topic", topic, true)
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

/// `streetsync contact show`: one contact in full.
pub(super) fn show(ctx: &Context, id: &str) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    let id = resolve_contact(&ws, id)?;
    let c = ws.get_contact(id)?;
    if ctx.global.json {
        return output::json(&c);
    }
    show_contact(&team, &c);
    Ok(())
}

/// `streetsync contact edit`: changes the given fields of a contact.
pub(super) fn edit(ctx: &Context, a: EditArgs) -> CliResult<()> {
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

/// `streetsync history`: who changed a contact, when, from which device.
pub(super) fn history(ctx: &Context, id: &str) -> CliResult<()> {
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
