//! `streetsync erase`: deleting a client or a contact everywhere, the one change that cannot be
//! undone; only a team lead may do it, and only with `--yes`.

use serde_json::json;
use streetsync_core::{ClientFilter, Role};

use super::parse::resolve_contact;
use crate::args::EraseArgs;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output::{self, short};

/// Erases a client (by code) or a contact (by id) here; the next sync erases it everywhere.
pub(super) fn run(ctx: &Context, a: EraseArgs) -> CliResult<()> {
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
