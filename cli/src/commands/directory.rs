//! `streetsync directory`: the team's directory of partner organisations that contacts are
//! referred to.

use streetsync_core::PartnerDraft;

use crate::args::DirectoryCommand;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output;

/// Runs one `directory` subcommand (list, add, edit).
pub(super) fn run(ctx: &Context, c: DirectoryCommand) -> CliResult<()> {
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
