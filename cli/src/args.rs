//! The command line: every command, flag and help text, in one place (clap derive).
//!
//! Help texts are written for social workers, not programmers: what the command is for, what
//! each flag means in the field's words, and examples under "Examples".

use std::path::PathBuf;

use chrono::{NaiveDate, NaiveTime};
use clap::{Args, Parser, Subcommand};

const ABOUT: &str = "streetsync: encrypted field notes for street outreach teams.

Log contacts, review your team's notes, send questions back to a worker's phone, keep the \
partner directory, and produce anonymous statistics. Everything is stored encrypted on this \
computer and synchronised through your team's relay, which cannot read anything.";

const AFTER: &str = "Getting started (team lead):
  export STREETSYNC_PASSPHRASE='a long passphrase only you know'
  streetsync --store office.db init --team 'Streetwork Mitte' --name Lea --area Hauptbahnhof --area Stadtpark
  streetsync --store office.db --relay http://relay.example:7878 sync
  streetsync --store office.db invite --name Sam

Try everything at once without setting anything up:
  streetsync demo

Exit codes: 0 ok, 1 other failure, 2 invalid input, 3 not allowed, 4 not found,
5 relay unreachable, 6 wrong passphrase.";

/// The `streetsync` command line.
#[derive(Debug, Parser)]
#[command(name = "streetsync", version, about = ABOUT, after_help = AFTER)]
pub struct Cli {
    #[command(flatten)]
    /// Options every command takes.
    pub global: Global,
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The encrypted store file on this computer.
    #[arg(
        long,
        global = true,
        env = "STREETSYNC_STORE",
        default_value = "streetsync.db",
        value_name = "PATH"
    )]
    pub store: PathBuf,

    /// Read the passphrase from this file (first line) instead of STREETSYNC_PASSPHRASE.
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Address of the team's relay; remembered next to the store once given.
    #[arg(long, global = true, env = "STREETSYNC_RELAY", value_name = "URL")]
    pub relay: Option<String>,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new team on this computer; you become its team lead.
    #[command(after_help = "Examples:
  streetsync init --team 'Streetwork Mitte' --name Lea --area Hauptbahnhof --area Stadtpark
  streetsync init --team 'Mobile Jugendarbeit Nord' --name Kim --area 'Nordstadt, Hafen'")]
    Init(InitArgs),

    /// Make a one-time invite code for a new member's phone or computer (team leads).
    #[command(after_help = "Examples:
  streetsync invite --name Sam
  streetsync invite --name Alex --lead --valid-hours 2

Hand the code over in person. It works once and expires.")]
    Invite(InviteArgs),

    /// List your open invites, or cancel one (team leads).
    #[command(after_help = "Examples:
  streetsync invites
  streetsync invites --cancel 5b1e

A cancelled code never puts a device on the team, even if someone redeems it.")]
    Invites(InvitesArgs),

    /// Join a team with the invite code your team lead gave you.
    #[command(after_help = "Example:
  streetsync --relay http://relay.example:7878 join K7QX-2M4A-....")]
    Join(JoinArgs),

    /// Show the team's members and their devices.
    #[command(after_help = "Example:
  streetsync members")]
    Members,

    /// Cut off a lost phone or a member who left, at once (team leads).
    #[command(after_help = "Examples:
  streetsync revoke Sam
  streetsync revoke 3f9c0a1b

Give the member's name (if they have one device) or the start of the device id from `members`.")]
    Revoke(RevokeArgs),

    /// Log, list, show and change contacts (Kontakte).
    #[command(subcommand)]
    Contact(ContactCommand),

    /// Approve a contact (team leads).
    #[command(after_help = "Example:
  streetsync approve 3f9c")]
    Approve(IdArg),

    /// Send a question back to the worker who logged a contact (team leads).
    #[command(after_help = "Example:
  streetsync ask 3f9c 'Was the Jugendamt informed?'

The worker sees the question in `streetsync inbox` after the next sync.")]
    Ask(TextArgs),

    /// Add a remark to a contact's review thread.
    #[command(after_help = "Example:
  streetsync comment 3f9c 'Good follow-up, thanks.'")]
    Comment(TextArgs),

    /// Answer your team lead's question on a contact; it goes back for review.
    #[command(after_help = "Example:
  streetsync answer 3f9c 'Yes, by phone this morning.'")]
    Answer(TextArgs),

    /// What waits for you: questions for a worker; the review queue for a team lead.
    #[command(after_help = "Examples:
  streetsync sync && streetsync inbox

For a worker: your contacts with an open question from the team lead.
For a team lead: contacts not yet approved, child-protection concerns first.")]
    Inbox,

    /// Pseudonymous clients followed across visits.
    #[command(subcommand)]
    Clients(ClientsCommand),

    /// Referrals (Vermittlung) to partner organisations, with the client's consent.
    #[command(subcommand)]
    Referral(ReferralCommand),

    /// The directory of partner organisations (Jobcenter, Suchthilfe, ...).
    #[command(subcommand)]
    Directory(DirectoryCommand),

    /// Anonymous statistics for a date range (small numbers shown as <3).
    #[command(after_help = "Examples:
  streetsync stats --from 2026-01-01 --to 2026-03-31
  streetsync stats --from 2026-01-01 --to 2026-12-31 --csv stats.csv --svg contacts.svg
  streetsync stats --from 2026-01-01 --to 2026-12-31 --csv > stats.csv

Persons are counted once per day per client code. Any number below 3 persons is shown as <3
in every output, so no person can be singled out.")]
    Stats(StatsArgs),

    /// Export the contact list as CSV for the team's own use (no notes unless asked).
    #[command(after_help = "Examples:
  streetsync export --out contacts.csv
  streetsync export --from 2026-01-01 --to 2026-03-31 --out q1.csv
  streetsync export --include-notes --out with-notes.csv   (confidential!)")]
    Export(ExportArgs),

    /// Send this computer's changes to the relay and fetch the team's.
    #[command(after_help = "Examples:
  streetsync --relay http://relay.example:7878 sync
  streetsync sync          (the relay address is remembered)")]
    Sync,

    /// Erase a contact or client everywhere (GDPR Art. 17; team leads). Cannot be undone.
    #[command(after_help = "Example:
  streetsync erase 3f9c --yes")]
    Erase(EraseArgs),

    /// Retention periods: what is due for deletion and when, erasing it, the periods, reports.
    #[command(subcommand)]
    Retention(RetentionCommand),

    /// Who changed a contact, when and from which device.
    #[command(after_help = "Example:
  streetsync history 3f9c")]
    History(IdArg),

    /// Show the whole product in one go: a relay, a team, two phones, review and statistics.
    #[command(after_help = "Examples:
  streetsync demo
  streetsync demo --keep ~/streetsync-demo

Runs everything in a temporary folder on this computer and deletes it afterwards. With --keep the
stores and the relay's data stay in the folder, and the demo prints the command that opens the
lead's store in `streetsync desk`.")]
    Demo(DemoArgs),

    /// Open the team lead's desk in the browser: review, contacts, statistics, team (this computer only).
    #[command(after_help = "Examples:
  streetsync desk
  streetsync --store office.db --relay http://relay.example:7878 desk
  streetsync desk --no-browser --idle-lock-minutes 5

Serves the desk on 127.0.0.1 only and prints its address with a one-time access token; the browser
opens by itself where there is one. The store is closed after the idle time, and the passphrase is
needed again. Stop it with Ctrl-C.")]
    Desk(DeskArgs),
}

/// `desk`.
#[derive(Debug, Args)]
pub struct DeskArgs {
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Do not open a browser; just print the address.
    #[arg(long)]
    pub no_browser: bool,
    /// Close the store after this many minutes without use (1 to 1440).
    #[arg(long, default_value_t = 15, value_name = "MINUTES")]
    pub idle_lock_minutes: u32,
}

/// `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the stores and the relay's data in this new or empty folder instead of deleting them;
    /// the stores use STREETSYNC_PASSPHRASE, or the passphrase the demo prints.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The team's name.
    #[arg(long)]
    pub team: String,
    /// Your name as the team will see it.
    #[arg(long)]
    pub name: String,
    /// An area (Sozialraum) the team works in; repeat for more.
    #[arg(long = "area", required = true)]
    pub areas: Vec<String>,
    /// A topic; repeat for more (default: the usual list of topics).
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// A material handed out; repeat for more (default: the usual list).
    #[arg(long = "material")]
    pub materials: Vec<String>,
}

/// `invite`.
#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The new member's name on the team list.
    #[arg(long)]
    pub name: String,
    /// Make the new member a team lead (default: worker).
    #[arg(long)]
    pub lead: bool,
    /// How many hours the code stays valid (1 to 168).
    #[arg(long, default_value_t = 24)]
    pub valid_hours: u64,
}

/// `invites`.
#[derive(Debug, Args)]
pub struct InvitesArgs {
    /// Cancel the open invite whose id starts with this.
    #[arg(long)]
    pub cancel: Option<String>,
}

/// `join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The invite code.
    pub code: String,
}

/// `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The member's name or the start of the device id.
    pub device: String,
}

/// A contact id argument.
#[derive(Debug, Args)]
pub struct IdArg {
    /// The contact (the first characters of its id are enough).
    pub id: String,
}

/// A contact id and a text.
#[derive(Debug, Args)]
pub struct TextArgs {
    /// The contact (the first characters of its id are enough).
    pub id: String,
    /// The text.
    pub text: String,
}

/// `erase`.
#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The contact or client (id, or client code for a client).
    pub id: String,
    /// Confirm; nothing is erased without it.
    #[arg(long)]
    pub yes: bool,
}

/// `contact ...`.
#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Log a new contact. Without --area on a terminal, you are asked step by step.
    #[command(after_help = "Examples:
  streetsync contact add --area hauptbahnhof --place 'Nordausgang' --persons 2 \\
      --age 18_20 --gender male --topic wohnen --material essen=2 --note 'Asked about shelters.'
  streetsync contact add --area stadtpark --code AB-1990 --safeguarding --submit
  streetsync contact add          (asks for each field)

Values: --setting street|drop_in|phone|digital|accompaniment|event
        --age under_14|14_17|18_20|21_26|27_39|40_64|65_plus|mixed|unknown
        --gender female|male|diverse|mixed|unknown
        --housing housed|precarious|shelter|rough|supported|unknown
        --intervention conversation|counselling|crisis|accompaniment|referral|material_help
Areas, topics and materials: see `streetsync members` for the team's lists.")]
    Add(ContactFields),
    /// List contacts, newest first, with filters.
    #[command(after_help = "Examples:
  streetsync contact list --from 2026-09-01 --to 2026-09-30 --area hauptbahnhof
  streetsync contact list --search schlafplatz
  streetsync contact list --review-queue        (child-protection concerns first)
  streetsync contact list --review changes_requested --mine")]
    List(ListArgs),
    /// Show one contact with its note and review thread.
    #[command(after_help = "Example:
  streetsync contact show 3f9c")]
    Show(IdArg),
    /// Change a contact; only the fields you give change.
    #[command(after_help = "Examples:
  streetsync contact edit 3f9c --persons 3 --note 'Corrected: three people.'
  streetsync contact edit 3f9c --append-note 'Follow-up on Monday.'")]
    Edit(EditArgs),
    /// Hand a contact in for review.
    #[command(after_help = "Example:
  streetsync contact submit 3f9c")]
    Submit(IdArg),
}

/// Fields of a contact, all optional (add fills defaults, edit changes only what is given).
#[derive(Debug, Args, Default)]
pub struct ContactFields {
    /// Day of the contact, YYYY-MM-DD (default: today).
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Start time, HH:MM (default: now).
    #[arg(long, value_parser = parse_time)]
    pub time: Option<NaiveTime>,
    /// End time, HH:MM.
    #[arg(long, value_parser = parse_time)]
    pub end: Option<NaiveTime>,
    /// Area (Sozialraum) id from the team's list.
    #[arg(long)]
    pub area: Option<String>,
    /// Place name (`Hauptbahnhof Nordausgang`).
    #[arg(long)]
    pub place: Option<String>,
    /// Setting: street, drop_in, phone, digital, accompaniment, event.
    #[arg(long)]
    pub setting: Option<String>,
    /// Number of persons met.
    #[arg(long)]
    pub persons: Option<i64>,
    /// This was the first contact with the person.
    #[arg(long)]
    pub first: bool,
    /// Age band: under_14, 14_17, 18_20, 21_26, 27_39, 40_64, 65_plus, mixed, unknown.
    #[arg(long)]
    pub age: Option<String>,
    /// Gender: female, male, diverse, mixed, unknown.
    #[arg(long)]
    pub gender: Option<String>,
    /// Pseudonymous client code (letters, digits, '-'), never a real name.
    #[arg(long)]
    pub code: Option<String>,
    /// Housing: housed, precarious, shelter, rough, supported, unknown.
    #[arg(long)]
    pub housing: Option<String>,
    /// Topic id; repeat for more.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Intervention; repeat for more.
    #[arg(long = "intervention")]
    pub interventions: Vec<String>,
    /// Material handed out as id=count (`essen=2`); repeat for more.
    #[arg(long = "material")]
    pub materials: Vec<String>,
    /// Child-protection concern (§ 8a SGB VIII): your team lead sees it first.
    #[arg(long)]
    pub safeguarding: bool,
    /// The confidential note.
    #[arg(long)]
    pub note: Option<String>,
    /// Hand the contact in for review right away.
    #[arg(long)]
    pub submit: bool,
}

/// `contact edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The contact (the first characters of its id are enough).
    pub id: String,
    #[command(flatten)]
    /// New values.
    pub fields: ContactFields,
    /// Add a line to the end of the note (merges with colleagues' edits).
    #[arg(long)]
    pub append_note: Option<String>,
    /// Remove the client code.
    #[arg(long)]
    pub no_code: bool,
    /// Remove the child-protection flag.
    #[arg(long)]
    pub no_safeguarding: bool,
}

/// `contact list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// First day, YYYY-MM-DD.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day, YYYY-MM-DD.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Area id.
    #[arg(long)]
    pub area: Option<String>,
    /// Topic id.
    #[arg(long)]
    pub topic: Option<String>,
    /// Only contacts logged on this device.
    #[arg(long)]
    pub mine: bool,
    /// Review state: draft, submitted, changes_requested, approved.
    #[arg(long)]
    pub review: Option<String>,
    /// Client code.
    #[arg(long)]
    pub code: Option<String>,
    /// Only contacts with a child-protection concern.
    #[arg(long)]
    pub safeguarding: bool,
    /// Words that must occur in the note or place.
    #[arg(long)]
    pub search: Option<String>,
    /// The team lead's review queue: not yet approved, child-protection concerns first.
    #[arg(long)]
    pub review_queue: bool,
    /// How many to show (at most 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// How many to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

/// `clients ...`.
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// List clients.
    #[command(after_help = "Examples:
  streetsync clients list
  streetsync clients list --search AB")]
    List {
        /// Part of a code or nickname.
        #[arg(long)]
        search: Option<String>,
    },
    /// Add a client with a pseudonymous code.
    #[command(after_help = "Example:
  streetsync clients add AB-1990 --alias 'Skater' --age 18_20 --gender male")]
    Add {
        /// Pseudonymous code (letters, digits, '-').
        code: String,
        /// A nickname colleagues recognise (never the legal name).
        #[arg(long)]
        alias: Option<String>,
        /// Age band.
        #[arg(long)]
        age: Option<String>,
        /// Gender.
        #[arg(long)]
        gender: Option<String>,
    },
    /// Show a client and their contacts.
    #[command(after_help = "Example:
  streetsync clients show AB-1990")]
    Show {
        /// The client code.
        code: String,
    },
}

/// `referral ...`.
#[derive(Debug, Subcommand)]
pub enum ReferralCommand {
    /// Record a referral on a contact, with the client's consent (§ 67b SGB X).
    #[command(after_help = "Examples:
  streetsync referral add 3f9c --partner a1b2c3d4 --reason 'debt counselling' \\
      --scope 'name, debts' --recipient 'Schuldnerberatung' --purpose 'appointment' --consent-date 2026-09-14
  streetsync referral add 3f9c --partner a1b2c3d4 --anonymous   (only for contacts without a client code)

Consent must name the data (scope), the recipient and the purpose.")]
    Add(ReferralArgs),
    /// Record that the client revoked the consent of a referral.
    #[command(after_help = "Example:
  streetsync referral revoke-consent 3f9c r-5e21 --date 2026-10-01")]
    RevokeConsent {
        /// The contact.
        contact: String,
        /// The referral id (see `contact show`).
        referral: String,
        /// When the consent was revoked (default: today).
        #[arg(long)]
        date: Option<NaiveDate>,
    },
}

/// `referral add`.
#[derive(Debug, Args)]
pub struct ReferralArgs {
    /// The contact.
    pub contact: String,
    /// Partner organisation id (see `directory list`).
    #[arg(long)]
    pub partner: String,
    /// Why the client was referred.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Consent: which data may be passed on.
    #[arg(long)]
    pub scope: Option<String>,
    /// Consent: to whom.
    #[arg(long)]
    pub recipient: Option<String>,
    /// Consent: for what.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Consent: when it was given (default: today).
    #[arg(long)]
    pub consent_date: Option<NaiveDate>,
    /// An anonymous referral without consent (only for contacts without a client code).
    #[arg(long)]
    pub anonymous: bool,
}

/// `directory ...`.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// List the partner organisations.
    #[command(after_help = "Example:
  streetsync directory list")]
    List,
    /// Add a partner organisation (team leads).
    #[command(after_help = "Example:
  streetsync directory add --name 'Suchthilfe Mitte' --offer Substitution --offer Beratung \\
      --person 'Frau Kaya' --phone '0301234567' --address 'Lindenstr. 3'")]
    Add(PartnerArgs),
    /// Change a partner organisation; only the fields you give change (team leads).
    #[command(after_help = "Example:
  streetsync directory edit a1b2c3d4 --phone '0307654321'")]
    Edit {
        /// The partner id.
        id: String,
        #[command(flatten)]
        /// New values.
        fields: PartnerArgs,
    },
}

/// Fields of a partner organisation.
#[derive(Debug, Args)]
pub struct PartnerArgs {
    /// Name of the organisation.
    #[arg(long)]
    pub name: Option<String>,
    /// What it offers; repeat for more.
    #[arg(long = "offer")]
    pub offers: Vec<String>,
    /// The person to call.
    #[arg(long)]
    pub person: Option<String>,
    /// Phone number.
    #[arg(long)]
    pub phone: Option<String>,
    /// Street address.
    #[arg(long)]
    pub address: Option<String>,
    /// Notes for colleagues (opening hours, how to get an appointment).
    #[arg(long)]
    pub notes: Option<String>,
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// First day, YYYY-MM-DD.
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day, YYYY-MM-DD.
    #[arg(long)]
    pub to: NaiveDate,
    /// Write CSV to this file (or to the screen without a file name).
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub csv: Option<Option<PathBuf>>,
    /// Draw contacts per month by area as an SVG chart into this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `retention ...`.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// List contacts due for deletion, with the day each is due.
    #[command(after_help = "Examples:
  streetsync retention due
  streetsync retention due --within-days 90")]
    Due(DueArgs),

    /// Erase every contact whose period has ended, everywhere (team leads). Cannot be undone.
    #[command(after_help = "Example:
  streetsync retention due && streetsync retention erase --yes && streetsync sync")]
    Erase(ConfirmArgs),

    /// Show the team's retention periods, or change them (team leads).
    #[command(after_help = "Examples:
  streetsync retention policy
  streetsync retention policy --standard-days 1095 --safeguarding-days 3650 --mode automatic

The defaults are a starting point, not legal advice: set the periods your organisation, your
funders and the law require. Child-protection records are kept at least as long as any other.")]
    Policy(PolicyArgs),

    /// Mark the statistics of a finished period as produced and sent (team leads): contacts of
    /// class `short` from those days become due for deletion.
    #[command(after_help = "Example:
  streetsync stats --from 2026-01-01 --to 2026-03-31 --csv q1.csv
  streetsync retention reported --from 2026-01-01 --to 2026-03-31")]
    Reported(PeriodArgs),

    /// This computer's record of retention erasures: when, why, how many, which ids.
    Log,
}

/// `retention due`.
#[derive(Debug, Args)]
pub struct DueArgs {
    /// Also list contacts that become due within this many days.
    #[arg(long, default_value_t = 0)]
    pub within_days: u32,
}

/// A confirmation.
#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// Confirm; nothing is erased without it.
    #[arg(long)]
    pub yes: bool,
}

/// `retention policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Days routine contacts are kept.
    #[arg(long)]
    pub standard_days: Option<u32>,
    /// Days child-protection contacts are kept.
    #[arg(long)]
    pub safeguarding_days: Option<u32>,
    /// The longest a `short` contact is kept if its period is never marked as reported.
    #[arg(long)]
    pub short_days: Option<u32>,
    /// `automatic` (on a lead's first sync of each day) or `after-confirmation`.
    #[arg(long, value_parser = ["automatic", "after-confirmation"])]
    pub mode: Option<String>,
}

/// A finished period.
#[derive(Debug, Args)]
pub struct PeriodArgs {
    /// First day, YYYY-MM-DD.
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day, YYYY-MM-DD.
    #[arg(long)]
    pub to: NaiveDate,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The CSV file to write ('-' for the screen).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// First day, YYYY-MM-DD.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day, YYYY-MM-DD.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Include the confidential notes (for the team's own use only).
    #[arg(long)]
    pub include_notes: bool,
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M:%S"))
        .map_err(|_| format!("'{s}' is not a time; write it as HH:MM, e.g. 14:30"))
}
