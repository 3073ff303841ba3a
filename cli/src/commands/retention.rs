//! `streetsync retention`: the contacts due for deletion by the team's retention periods and the
//! day each is due, their erasure (a lead's confirmation; the same erasure as `erase`), the
//! periods themselves, marking statistics as reported, and this computer's audit trail.

use chrono::{Days, NaiveDate};
use serde_json::json;
use streetsync_core::{RetentionMode, RetentionPolicy, Role};

use crate::args::{DueArgs, PolicyArgs, RetentionCommand};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output::{self, short};

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Runs one `retention` subcommand.
pub(super) fn run(ctx: &Context, c: RetentionCommand) -> CliResult<()> {
    match c {
        RetentionCommand::Due(a) => due(ctx, a),
        RetentionCommand::Erase(a) => erase(ctx, a.yes),
        RetentionCommand::Policy(a) => policy(ctx, a),
        RetentionCommand::Reported(a) => {
            let ws = ctx.open(false)?;
            let mark = ws.mark_statistics_reported(a.from, a.to)?;
            if ctx.global.json {
                return output::json(&mark);
            }
            println!(
                "Statistics of {} to {} marked as reported. Contacts of class `short` from those days are now due for deletion (`streetsync retention due`).",
                mark.from, mark.to
            );
            Ok(())
        }
        RetentionCommand::Log => {
            let ws = ctx.open(false)?;
            let log = ws.retention_log()?;
            if ctx.global.json {
                return output::json(&log);
            }
            if log.is_empty() {
                println!("No contacts were erased by retention on this computer.");
                return Ok(());
            }
            let mut t = output::table(&[
                "when (UTC)",
                "why",
                "standard",
                "safeguarding",
                "short",
                "records",
            ]);
            for e in &log {
                let when = chrono::DateTime::from_timestamp_millis(e.at_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                let ids: Vec<String> = e.records.iter().map(short).collect();
                t.add_row(vec![
                    when,
                    e.trigger.as_str().to_owned(),
                    e.standard.to_string(),
                    e.safeguarding.to_string(),
                    e.short.to_string(),
                    ids.join(" "),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}

fn due(ctx: &Context, a: DueArgs) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let team = ws.team()?;
    let today = today();
    let until = today
        .checked_add_days(Days::new(u64::from(a.within_days)))
        .unwrap_or(NaiveDate::MAX);
    let due = ws.retention_due(until)?;
    if ctx.global.json {
        return output::json(&json!({
            "today": today,
            "mode": team.retention.mode,
            "due": due,
        }));
    }
    if due.is_empty() {
        println!("Nothing is due for deletion until {until}.");
        return Ok(());
    }
    let mut t = output::table(&["contact", "date", "class", "due on", ""]);
    for d in &due {
        t.add_row(vec![
            short(&d.id),
            d.date.to_string(),
            d.class.as_str().to_owned(),
            d.due_on.to_string(),
            if d.due_on <= today { "due now" } else { "" }.to_owned(),
        ]);
    }
    println!(
        "Due for deletion (retention periods of team '{}'):\n{t}",
        team.name
    );
    let now = due.iter().filter(|d| d.due_on <= today).count();
    match team.retention.mode {
        RetentionMode::Automatic => println!(
            "{now} due now; a team lead's computer erases them on its first sync of the day."
        ),
        RetentionMode::AfterConfirmation => println!(
            "{now} due now; a team lead erases them with `streetsync retention erase --yes`."
        ),
    }
    Ok(())
}

fn erase(ctx: &Context, yes: bool) -> CliResult<()> {
    let ws = ctx.open(false)?;
    if ws.my_role()? != Role::Lead {
        return Err(CliError::not_allowed(
            "only a team lead can erase records past their retention period",
        ));
    }
    let n = ws.retention_due(today())?.len();
    if !yes {
        return Err(CliError::invalid(format!(
            "{n} contact(s) are due for deletion; erasing cannot be undone. Check them with `streetsync retention due`, then run again with --yes"
        )));
    }
    let entry = ws.erase_due_records()?;
    if ctx.global.json {
        return output::json(&json!({ "erased": entry }));
    }
    match entry {
        None => println!("Nothing is due for deletion today."),
        Some(e) => println!(
            "{} contact(s) erased here ({} standard, {} safeguarding, {} short). Run `streetsync sync`: the relay and every device then delete them too.",
            e.records.len(),
            e.standard,
            e.safeguarding,
            e.short
        ),
    }
    Ok(())
}

fn policy(ctx: &Context, a: PolicyArgs) -> CliResult<()> {
    let ws = ctx.open(false)?;
    let mut p: RetentionPolicy = ws.team()?.retention;
    let change = a.standard_days.is_some()
        || a.safeguarding_days.is_some()
        || a.short_days.is_some()
        || a.mode.is_some();
    if change {
        if let Some(d) = a.standard_days {
            p.standard_days = d;
        }
        if let Some(d) = a.safeguarding_days {
            p.safeguarding_days = d;
        }
        if let Some(d) = a.short_days {
            p.short_days = d;
        }
        if let Some(m) = &a.mode {
            p.mode = if m == "automatic" {
                RetentionMode::Automatic
            } else {
                RetentionMode::AfterConfirmation
            };
        }
        ws.set_retention_policy(p)?;
    }
    if ctx.global.json {
        return output::json(&p);
    }
    let defaults = if p.is_default() {
        " (the defaults: a starting point, not legal advice)"
    } else {
        ""
    };
    println!("Retention periods{defaults}:");
    println!("  standard      {} days after the contact", p.standard_days);
    println!(
        "  safeguarding  {} days after the contact (also any contact flagged as a child-protection concern)",
        p.safeguarding_days
    );
    println!(
        "  short         until its period's statistics are marked as reported, at most {} days",
        p.short_days
    );
    println!(
        "  erasure       {}",
        match p.mode {
            RetentionMode::Automatic => "automatic, on a team lead's first sync of the day",
            RetentionMode::AfterConfirmation =>
                "after a team lead confirms (`streetsync retention erase --yes`)",
        }
    );
    Ok(())
}
