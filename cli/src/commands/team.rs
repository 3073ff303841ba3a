//! Team membership: found a team (`init`), bring devices in (`invite`, `join`), see who is on it
//! (`members`) and cut a device off (`revoke`).
//!
//! `init` and `join` create the store; if they fail, [`NewStoreGuard`] deletes it again, so a
//! refused command leaves no half-made store behind.

use serde::Serialize;
use serde_json::json;
use streetsync_core::{DeviceId, Role, SyncClient, TeamSetup};

use crate::args::{InitArgs, InviteArgs, InvitesArgs, JoinArgs, RevokeArgs};
use crate::context::{Context, NewStoreGuard, runtime};
use crate::error::{CliError, CliResult};
use crate::output::{self, print_catalogs, role_name, short, when};

/// `streetsync init`: founds a team; this device becomes its lead.
pub(super) fn init(ctx: &Context, a: InitArgs) -> CliResult<()> {
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

/// `streetsync invite`: a one-time code for a new device.
pub(super) fn invite(ctx: &Context, a: InviteArgs) -> CliResult<()> {
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

/// `streetsync invites [--cancel ID]`: this lead's open invites, from its own store; cancelling
/// one makes sure nothing redeemed with it is ever put on the roster.
pub(super) fn invites(ctx: &Context, a: InvitesArgs) -> CliResult<()> {
    let ws = ctx.open(false)?;
    ws.my_role()?;
    let (client, url) = ctx.sync_client(&ws)?;
    let open = client.invites()?;
    if let Some(prefix) = a.cancel {
        let prefix = prefix.trim().to_lowercase();
        let matching: Vec<_> = open
            .iter()
            .filter(|i| i.id.to_string().starts_with(&prefix))
            .collect();
        let invite = match matching.as_slice() {
            [one] => *one,
            [] => {
                return Err(CliError::not_found(format!(
                    "no open invite starts with {prefix}"
                )));
            }
            _ => {
                return Err(CliError::invalid(format!(
                    "{} open invites start with {prefix}; give more of the id",
                    matching.len()
                )));
            }
        };
        runtime()?.block_on(client.cancel_invite(invite.id))?;
        ctx.remember_relay(&url)?;
        if ctx.global.json {
            return output::json(invite);
        }
        println!(
            "Cancelled the invite for {} ({}). Its code will not add anyone to the team.",
            invite.member,
            role_name(invite.role)
        );
        return Ok(());
    }
    if ctx.global.json {
        return output::json(&open);
    }
    if open.is_empty() {
        println!("No open invites.");
        return Ok(());
    }
    for i in &open {
        println!(
            "{}  {} ({}), valid until {}",
            &i.id.to_string()[..8],
            i.member,
            role_name(i.role),
            when(i.expires_at_ms)
        );
    }
    Ok(())
}

/// `streetsync join CODE`: joins a team with an invite code.
pub(super) fn join(ctx: &Context, a: JoinArgs) -> CliResult<()> {
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
    let client = SyncClient::new(ws.clone(), &url)?;
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

/// One device of the roster, as `members --json` shows it.
#[derive(Serialize)]
struct MemberRow {
    member: String,
    role: &'static str,
    device: DeviceId,
    revoked: bool,
    this_device: bool,
}

/// `streetsync members`: the roster and the team's catalogs.
pub(super) fn members(ctx: &Context) -> CliResult<()> {
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

/// `streetsync revoke`: cuts a member's device off.
pub(super) fn revoke(ctx: &Context, a: RevokeArgs) -> CliResult<()> {
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
