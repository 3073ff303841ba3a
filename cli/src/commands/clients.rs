//! `streetsync clients`: the pseudonymous clients (a code, an alias, age band and gender) and the
//! contacts logged under a client's code.

use serde_json::json;
use streetsync_core::{ClientDraft, ClientFilter, ContactFilter};

use super::parse::{age, gender};
use crate::args::ClientsCommand;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output::{self, print_list};

/// Runs one `clients` subcommand (list, add, show).
pub(super) fn run(ctx: &Context, c: ClientsCommand) -> CliResult<()> {
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
