//! The review loop between a worker and the team lead: submit, approve, ask, comment and answer
//! ([`apply`]), and the `inbox` of what waits for this device.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;
use streetsync_core::{CommentKind, ReviewState};
use streetsync_core::{Contact, ContactFilter, RecordId, Role, Workspace};

use super::parse::resolve_contact;
use crate::context::Context;
use crate::error::CliResult;
use crate::output::{self, clip, member_of, role_name, short};

/// One review step on a contact (`contact submit`, `approve`, `ask`, `comment`, `answer`):
/// `f` is the core call; prints the new review state.
pub(super) fn apply(
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

/// One line of the inbox, as `inbox --json` shows it.
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

/// `streetsync inbox`: for a lead, what waits for review (child-protection concerns first); for
/// everyone, the questions on their own contacts.
pub(super) fn inbox(ctx: &Context) -> CliResult<()> {
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
