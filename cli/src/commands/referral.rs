//! `streetsync referral`: referring a contact to a partner organisation, with the client's consent
//! (§ 67b SGB X) or anonymously, and revoking that consent later.

use streetsync_core::{Consent, RecordId, Referral};
use streetsync_core::{Intervention, ReferralOutcome};

use super::parse::{resolve_contact, today};
use crate::args::ReferralCommand;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output::{self, short};

/// A short id for a new referral, unique within its contact.
fn new_referral_id() -> String {
    format!("r-{}", &RecordId::random().to_string()[..6])
}

/// Runs one `referral` subcommand (add, revoke-consent).
pub(super) fn run(ctx: &Context, c: ReferralCommand) -> CliResult<()> {
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
                outcome: ReferralOutcome::Open,
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
