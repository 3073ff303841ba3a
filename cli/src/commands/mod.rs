//! The commands: [`run`] sends a parsed command line to the file of its command group; each
//! group reads its arguments, calls the core, and prints a table or JSON.
//!
//! Every input is checked before anything is written (the core validates drafts the same way), so
//! a refused command changes nothing. Printers shared with the demo live in `crate::output`, so
//! imports point one way: the commands use the rest of the client (the demo too), and only
//! `main_entry` at the crate root calls into them.

mod clients;
mod contact;
mod desk;
mod directory;
mod erase;
mod parse;
mod referral;
mod retention;
mod review;
mod stats;
mod sync;
mod team;

use crate::args::{Cli, Command, ContactCommand};
use crate::context::Context;
use crate::error::CliResult;

/// Runs one parsed command line.
pub fn run(cli: Cli) -> CliResult<()> {
    let ctx = Context { global: cli.global };
    match cli.command {
        Command::Init(a) => team::init(&ctx, a),
        Command::Invite(a) => team::invite(&ctx, a),
        Command::Invites(a) => team::invites(&ctx, a),
        Command::Join(a) => team::join(&ctx, a),
        Command::Members => team::members(&ctx),
        Command::Revoke(a) => team::revoke(&ctx, a),
        Command::Contact(c) => match c {
            ContactCommand::Add(f) => contact::add(&ctx, f),
            ContactCommand::List(a) => contact::list(&ctx, a),
            ContactCommand::Show(a) => contact::show(&ctx, &a.id),
            ContactCommand::Edit(a) => contact::edit(&ctx, a),
            ContactCommand::Submit(a) => review::apply(&ctx, &a.id, |ws, id| ws.submit_contact(id)),
        },
        Command::Approve(a) => review::apply(&ctx, &a.id, |ws, id| ws.approve_contact(id)),
        Command::Ask(a) => review::apply(&ctx, &a.id, |ws, id| ws.request_changes(id, &a.text)),
        Command::Comment(a) => review::apply(&ctx, &a.id, |ws, id| ws.comment_contact(id, &a.text)),
        Command::Answer(a) => review::apply(&ctx, &a.id, |ws, id| ws.answer_contact(id, &a.text)),
        Command::Inbox => review::inbox(&ctx),
        Command::Clients(c) => clients::run(&ctx, c),
        Command::Referral(c) => referral::run(&ctx, c),
        Command::Directory(c) => directory::run(&ctx, c),
        Command::Stats(a) => stats::run(&ctx, a),
        Command::Export(a) => stats::export(&ctx, a),
        Command::Sync => sync::run(&ctx),
        Command::Erase(a) => erase::run(&ctx, a),
        Command::Retention(c) => retention::run(&ctx, c),
        Command::History(a) => contact::history(&ctx, &a.id),
        Command::Demo(a) => crate::demo::run(a),
        Command::Desk(a) => desk::run(&ctx, a),
    }
}
