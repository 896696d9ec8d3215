//! The change notification (SPEC §8): what one audit record, job batch or rollback did, as the
//! subject, the `MessageStructure=json` body and the message attributes of one SNS `Publish`.
//! Pure: plain data in, plain data out. The publish call lives at the AWS edge; a notification
//! that cannot be sent never fails the remediation, so nothing here can fail either.
//!
//! What is sent, and why:
//! - Only when something changed (remediated, rolled back, or would be in a dry run), failed,
//!   or was enqueued. Skipped findings alone say nothing new.
//! - `Deferred` alone sends nothing: a deferred policy was not touched, and the invocation
//!   fails so that Lambda's retry (or the queue) finishes it; that run's message reports what
//!   it did. A policy that stays deferred shows in the `Deferred` metric the stack alarms on.
//!   When a message is sent anyway, deferred policies are counted and listed, so that the
//!   reader knows the record is not finished.
//! - Finding lists that could not be read to the end (`Totals::listing_errors`, which also
//!   counts lists stopped at the deadline) are like deferred work: counted and told, but they
//!   neither send a message on their own nor change its `outcome`.
//! - The per-policy list puts failures first (they need a person), then the others in their
//!   order. Past SNS's size limit the list is cut, in `default` and `email` alike, at the same
//!   place, and says how many more there are and where to find them.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::finding::{FindingReport, Outcome, Totals};

/// SNS's limit for one message: UTF-8 bytes, message attributes included.
pub const SNS_MESSAGE_LIMIT: usize = 262_144;
/// Kept free below [`SNS_MESSAGE_LIMIT`]. Our own bytes are measured exactly (message, subject,
/// attribute names, types and values); the margin covers what SNS may count that we cannot
/// see, and an attribute a publisher may add. 16 KiB costs a handful of listed policies.
pub const SAFETY_MARGIN: usize = 16_384;
/// SNS's limit for a subject: ASCII characters, no line breaks or control characters.
pub const SUBJECT_LIMIT: usize = 100;
/// The prefix of the function's own log fields as CloudWatch Logs Insights names them: with
/// Lambda's JSON log format, `tracing`'s JSON lines nest every field under `fields`.
pub const LOG_FIELD_PREFIX: &str = "fields.";

/// Caller-given free text (a rollback reason, an error) is clipped so that the message without
/// its policy list is always far under the limit: cutting the list then always fits.
const MAX_REASON_CHARS: usize = 1_000;
const MAX_ERROR_CHARS: usize = 2_000;
const EMAIL_ERROR_CHARS: usize = 300;
const MAX_NAME_CHARS: usize = 256;
/// A query names at most this many tasks; a batch spanning more is queried without the task.
const MAX_QUERY_TASKS: usize = 20;
/// The reason put in the rollback event offered as the undo; the person sending it edits it.
pub const UNDO_REASON: &str = "undo of the remediation";

/// Which invocation the message is about: the `kind` attribute, which the stack's e-mail
/// subscription filters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationKind {
    /// An audit record (SNS door), inline or fanned out.
    Audit,
    /// A batch of fan-out jobs (SQS door).
    Batch,
    /// A rollback event.
    Rollback,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Audit => "audit",
            NotificationKind::Batch => "batch",
            NotificationKind::Rollback => "rollback",
        }
    }

    fn subject_title(self) -> &'static str {
        match self {
            NotificationKind::Audit => "IoT audit",
            NotificationKind::Batch => "IoT batch",
            NotificationKind::Rollback => "IoT rollback",
        }
    }

    fn email_title(self) -> &'static str {
        match self {
            NotificationKind::Audit => "Device Defender audit: overly permissive IoT policies",
            NotificationKind::Batch => "Fan-out job batch: overly permissive IoT policies",
            NotificationKind::Rollback => "Rollback of IoT policy remediations",
        }
    }
}

/// The `outcome` attribute, for subscribers' filter policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// Policies remediated, or would be in a dry run; none failed.
    Remediated,
    /// Failures only.
    Failed,
    /// Failures and changes (remediations, rollbacks or enqueued jobs) together.
    Mixed,
    /// The fanned-out audit: its policies went to the queue.
    Enqueued,
    /// Policies rolled back, or would be in a dry run; none failed.
    RolledBack,
}

impl NotificationOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationOutcome::Remediated => "remediated",
            NotificationOutcome::Failed => "failed",
            NotificationOutcome::Mixed => "mixed",
            NotificationOutcome::Enqueued => "enqueued",
            NotificationOutcome::RolledBack => "rolled_back",
        }
    }

    /// `None` when there is nothing to tell: nothing changed, nothing failed, nothing enqueued.
    /// A change of a kind outranks enqueued jobs, which are only a promise of changes.
    pub fn of(totals: &Totals) -> Option<Self> {
        let remediated = totals.remediated + totals.would_remediate;
        let rolled_back = totals.rolled_back + totals.would_roll_back;
        let acted = remediated + rolled_back + totals.enqueued;
        match (totals.failed > 0, acted > 0) {
            (true, true) => Some(Self::Mixed),
            (true, false) => Some(Self::Failed),
            _ if rolled_back > 0 => Some(Self::RolledBack),
            _ if remediated > 0 => Some(Self::Remediated),
            _ if totals.enqueued > 0 => Some(Self::Enqueued),
            _ => None,
        }
    }
}

/// One finding of the record, batch or rollback, with the audit task it belongs to (a batch
/// may span tasks).
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub task_id: &'a str,
    pub finding: &'a FindingReport,
}

/// Everything a notification says, as the doors have it at the end of a record or batch.
#[derive(Clone, Copy, Debug)]
pub struct NotificationInput<'a> {
    pub kind: NotificationKind,
    /// The audit's `accountId`.
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    /// The audit task. A batch may span tasks: `None` then, or the one task all its jobs
    /// share; when `None`, a task shared by every entry is used.
    pub task_id: Option<&'a str>,
    /// Every finding of the record, batch or rollback, in order.
    pub entries: &'a [Entry<'a>],
    /// The counts of `entries`, plus the record's listing errors: the message's counts and
    /// whether it is sent at all come from here.
    pub totals: &'a Totals,
    /// The function's log group (`/aws/lambda/<function>`): where a cut list and fanned-out
    /// work can be followed.
    pub log_group: Option<&'a str>,
    /// The CloudWatch namespace of the function's metrics (`METRICS_NAMESPACE`), named in the
    /// fanned-out audit's message.
    pub metrics_namespace: Option<&'a str>,
    /// The rollback's reason, when `kind` is `Rollback`.
    pub reason: Option<&'a str>,
}

/// One SNS `Publish`: `message` goes with `MessageStructure=json`; every attribute is a
/// `String` attribute with a non-empty value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub subject: String,
    pub message: String,
    pub attributes: Vec<(&'static str, String)>,
}

impl Notification {
    /// The bytes SNS counts against its limit, as far as we can see them: the message, the
    /// attributes (name, data type `String`, value) and, to be safe, the subject.
    pub fn sns_size(&self) -> usize {
        self.message.len() + self.subject.len() + attributes_size(&self.attributes)
    }
}

fn attributes_size(attributes: &[(&'static str, String)]) -> usize {
    attributes
        .iter()
        .map(|(name, value)| name.len() + "String".len() + value.len())
        .sum()
}

/// The notification for what one audit record, job batch or rollback did, or `None` when there
/// is nothing to tell (see the module documentation).
pub fn notification(input: &NotificationInput) -> Option<Notification> {
    let outcome = NotificationOutcome::of(input.totals)?;
    let context = Context::new(input, outcome);
    let subject = subject(&context);
    let attributes = attributes(&context);
    let budget = budget(&subject, &attributes);
    let items = listed(&context);
    let message = fit(&context, &items, budget);
    Some(Notification {
        subject,
        message,
        attributes,
    })
}

/// The bytes left for `message`.
fn budget(subject: &str, attributes: &[(&'static str, String)]) -> usize {
    SNS_MESSAGE_LIMIT
        .saturating_sub(SAFETY_MARGIN)
        .saturating_sub(subject.len())
        .saturating_sub(attributes_size(attributes))
}

/// The findings the message lists, rendered, failures first: they are what a person must act
/// on, so a cut list keeps them. The others keep their order.
fn listed(context: &Context) -> Vec<Rendered> {
    let mut items: Vec<Rendered> = context
        .input
        .entries
        .iter()
        .filter_map(|e| Rendered::of(e, context))
        .collect();
    items.sort_by_key(|item| item.section != Section::Failed);
    items
}

/// The audit tasks the message is about.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tasks<'a> {
    One(&'a str),
    /// A batch spanning several tasks, in order of first appearance.
    Several(Vec<&'a str>),
    Unknown,
}

impl<'a> Tasks<'a> {
    fn of(input: &NotificationInput<'a>) -> Self {
        if let Some(task) = input.task_id.filter(|t| !t.trim().is_empty()) {
            return Tasks::One(task);
        }
        let mut seen = BTreeSet::new();
        let tasks: Vec<&'a str> = input
            .entries
            .iter()
            .map(|e| e.task_id)
            .filter(|t| !t.trim().is_empty() && seen.insert(*t))
            .collect();
        match tasks.as_slice() {
            [] => Tasks::Unknown,
            [one] => Tasks::One(one),
            _ => Tasks::Several(tasks),
        }
    }

    fn single(&self) -> Option<&'a str> {
        match self {
            Tasks::One(task) => Some(*task),
            _ => None,
        }
    }

    /// The Logs Insights condition that selects this message's log lines.
    fn filter(&self) -> String {
        let f = LOG_FIELD_PREFIX;
        match self {
            Tasks::One(task) => format!("{f}task_id = {}", quoted(task)),
            Tasks::Several(tasks) if tasks.len() <= MAX_QUERY_TASKS => {
                let list: Vec<String> = tasks.iter().map(|t| quoted(t)).collect();
                format!("{f}task_id in [{}]", list.join(", "))
            }
            _ => format!("ispresent({f}task_id)"),
        }
    }
}

/// A string literal for a Logs Insights query (double quotes, backslash escapes).
fn quoted(s: &str) -> String {
    Value::from(clip(s, MAX_NAME_CHARS)).to_string()
}

/// Every decision line of this message's task(s): where the policies of a cut list are.
fn list_query(tasks: &Tasks) -> String {
    let f = LOG_FIELD_PREFIX;
    format!(
        "fields @timestamp, {f}task_id, {f}policy, {f}outcome, {f}flagged_version, \
         {f}new_version, {f}kept_version, {f}deleted_versions, {f}error \
         | filter {} and ispresent({f}policy) | sort @timestamp asc",
        tasks.filter()
    )
}

/// Outcomes so far of the task's policies, enqueued ones included: progress of a fan-out.
fn progress_query(tasks: &Tasks) -> String {
    let f = LOG_FIELD_PREFIX;
    format!(
        "filter {} and ispresent({f}policy) | stats count(*) as policies by {f}outcome",
        tasks.filter()
    )
}

/// What every part of the message is built from. The caller's strings are taken trimmed,
/// empty ones as unknown, and clipped: then the message without its policy list stays far
/// under the limit (a few tens of KB at the very worst), and cutting the list always fits.
struct Context<'a> {
    input: &'a NotificationInput<'a>,
    outcome: NotificationOutcome,
    tasks: Tasks<'a>,
    list_query: String,
    account: Option<String>,
    region: Option<String>,
    log_group: Option<String>,
    metrics_namespace: Option<String>,
    reason: Option<String>,
}

impl<'a> Context<'a> {
    fn new(input: &'a NotificationInput<'a>, outcome: NotificationOutcome) -> Self {
        let tasks = Tasks::of(input);
        Context {
            input,
            outcome,
            list_query: list_query(&tasks),
            tasks,
            account: known(input.account, MAX_NAME_CHARS),
            region: known(input.region, MAX_NAME_CHARS),
            log_group: known(input.log_group, MAX_NAME_CHARS),
            metrics_namespace: known(input.metrics_namespace, MAX_NAME_CHARS),
            reason: known(input.reason, MAX_REASON_CHARS),
        }
    }

    fn dry_run(&self) -> bool {
        let t = self.input.totals;
        t.would_remediate + t.would_roll_back > 0
    }

    fn log_group_text(&self) -> &str {
        self.log_group
            .as_deref()
            .unwrap_or("the function's log group")
    }

    /// The function's name, from its default log group `/aws/lambda/<function>`.
    fn function_name(&self) -> &str {
        let name = self
            .log_group
            .as_deref()
            .and_then(|g| g.strip_prefix("/aws/lambda/"));
        name.filter(|n| !n.is_empty()).unwrap_or("<function>")
    }
}

/// A caller's value, trimmed and clipped; `None` when missing or blank.
fn known(value: Option<&str>, max: usize) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    Some(clip(value, max))
}

/// The counts that say what happened, most telling first: for the subject and the e-mail.
fn count_phrases(t: &Totals) -> Vec<String> {
    [
        (t.remediated, "remediated"),
        (t.would_remediate, "would be remediated"),
        (t.rolled_back, "rolled back"),
        (t.would_roll_back, "would be rolled back"),
        (t.failed, "failed"),
        (t.enqueued, "enqueued"),
        (t.deferred, "deferred"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, label)| format!("{n} {label}"))
    .collect()
}

/// `<title>: <counts>; account <account>; task <task>`, at most [`SUBJECT_LIMIT`] ASCII
/// characters. The counts and the account come whole; the task id is shortened to what room
/// is left (its start, then `...`), and only an absurd account would cut the end.
fn subject(context: &Context) -> String {
    let input = context.input;
    let head = format!(
        "{}: {}",
        input.kind.subject_title(),
        count_phrases(input.totals).join(", ")
    );
    let account = context
        .account
        .as_deref()
        .map(|a| format!("; account {}", ascii(a)))
        .unwrap_or_default();
    const TASK_LABEL: &str = "; task ";
    let room = SUBJECT_LIMIT.saturating_sub(head.len() + account.len());
    let task = match &context.tasks {
        Tasks::One(task) => {
            let task = ascii(task);
            let room = room.saturating_sub(TASK_LABEL.len());
            if task.len() <= room {
                format!("{TASK_LABEL}{task}")
            } else if room >= 7 {
                let start: String = task.chars().take(room - 3).collect();
                format!("{TASK_LABEL}{start}...")
            } else {
                String::new()
            }
        }
        Tasks::Several(tasks) => format!("; {} tasks", tasks.len()),
        Tasks::Unknown => String::new(),
    };
    format!("{head}{account}{task}")
        .chars()
        .take(SUBJECT_LIMIT)
        .collect()
}

/// Printable ASCII only: anything else becomes `?` (SNS refuses it in a subject).
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// At most `max` characters of `s`, on one line: control characters become spaces.
fn clip(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// `account`, `taskId`, `kind`, `outcome`; an unknown value is left out (SNS refuses an empty
/// attribute value).
fn attributes(context: &Context) -> Vec<(&'static str, String)> {
    let values = [
        ("account", context.account.clone()),
        ("taskId", known(context.tasks.single(), MAX_NAME_CHARS)),
        ("kind", Some(context.input.kind.as_str().to_owned())),
        ("outcome", Some(context.outcome.as_str().to_owned())),
    ];
    values
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
}

/// Where a listed finding goes in the e-mail; the order of [`Section::ORDER`] is the e-mail's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Failed,
    Remediated,
    WouldRemediate,
    RolledBack,
    WouldRollBack,
    Deferred,
}

impl Section {
    const ORDER: [Section; 6] = [
        Section::Failed,
        Section::Remediated,
        Section::WouldRemediate,
        Section::RolledBack,
        Section::WouldRollBack,
        Section::Deferred,
    ];

    /// Listed outcomes; skipped and enqueued findings are only counted.
    fn of(outcome: &Outcome) -> Option<Self> {
        match outcome {
            Outcome::Failed { .. } => Some(Section::Failed),
            Outcome::Remediated => Some(Section::Remediated),
            Outcome::WouldRemediate => Some(Section::WouldRemediate),
            Outcome::RolledBack => Some(Section::RolledBack),
            Outcome::WouldRollBack => Some(Section::WouldRollBack),
            Outcome::Deferred => Some(Section::Deferred),
            Outcome::Skipped { .. } | Outcome::Enqueued => None,
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Section::Failed => "Failed",
            Section::Remediated => "Remediated",
            Section::WouldRemediate => "Would be remediated (dry run)",
            Section::RolledBack => "Rolled back",
            Section::WouldRollBack => "Would be rolled back (dry run)",
            Section::Deferred => "Deferred (not started before the deadline; a retry handles them)",
        }
    }
}

/// How to undo one remediation.
#[derive(Clone, Debug, PartialEq)]
enum Undo {
    /// The replaced version was kept: the rollback event of SPEC §9 restores it.
    Rollback(Value),
    /// The replaced version was deleted: the command that installs its document again.
    Reinstall(String),
}

impl Undo {
    /// The undo in the account and region the notification names (SPEC §11): the event names
    /// them for the function, the command its region (it runs with the reader's credentials,
    /// which must be the account's).
    fn of(entry: &Entry, account: Option<&str>, region: Option<&str>) -> Option<Self> {
        let f = entry.finding;
        if f.outcome != Outcome::Remediated {
            return None;
        }
        let name = f.policy_name.as_deref()?;
        if f.kept_version_id.is_some() {
            let event = rollback_event(entry.task_id, name, account, region);
            return Some(Undo::Rollback(event));
        }
        let document = f.replaced_document.as_deref()?;
        Some(Undo::Reinstall(reinstall_command(name, document, region)))
    }

    fn json(&self) -> Value {
        match self {
            Undo::Rollback(event) => json!({ "rollbackEvent": event }),
            Undo::Reinstall(command) => json!({ "command": command }),
        }
    }

    fn email(&self, name: &str) -> String {
        match self {
            Undo::Rollback(event) => format!(
                "- {name}: the replaced version was kept; send the function this rollback \
                 event:\n  {event}\n"
            ),
            Undo::Reinstall(command) => format!(
                "- {name}: the replaced version was deleted; this command installs its \
                 document again as the default:\n  {command}\n"
            ),
        }
    }
}

/// The rollback event of SPEC §9 that undoes the remediation of one policy of one audit task,
/// in its account and region when they are known.
pub fn rollback_event(
    task_id: &str,
    policy_name: &str,
    account: Option<&str>,
    region: Option<&str>,
) -> Value {
    let mut event =
        json!({ "taskId": task_id, "policyNames": [policy_name], "reason": UNDO_REASON });
    for (key, value) in [("accountId", account), ("region", region)] {
        if let Some(value) = value {
            event[key] = Value::from(value);
        }
    }
    json!({ "rollback": event })
}

/// The AWS CLI command that installs `document` again as the default version of the policy,
/// in `region` when it is known, each argument quoted so that it runs as printed in a POSIX
/// shell.
pub fn reinstall_command(policy_name: &str, document: &str, region: Option<&str>) -> String {
    let region = region.map_or_else(String::new, |r| format!(" --region {}", shell_quote(r)));
    format!(
        "aws iot create-policy-version{region} --policy-name {} --set-as-default --policy-document {}",
        shell_quote(policy_name),
        shell_quote(document)
    )
}

/// One POSIX shell word: single quotes keep everything literal, a `'` is written `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One listed finding, rendered once for both parts of the message.
#[derive(Clone, Debug)]
struct Rendered {
    section: Section,
    json: Value,
    line: String,
    undo: Option<String>,
    /// The undo is a rollback event: the e-mail says how to send one.
    undo_is_event: bool,
}

impl Rendered {
    fn of(entry: &Entry, context: &Context) -> Option<Self> {
        let tasks = &context.tasks;
        let section = Section::of(&entry.finding.outcome)?;
        let undo = Undo::of(entry, context.account.as_deref(), context.region.as_deref());
        let name = policy_name(entry.finding);
        Some(Rendered {
            section,
            json: policy_json(entry, undo.as_ref()),
            line: email_line(entry, section, tasks),
            undo_is_event: matches!(undo, Some(Undo::Rollback(_))),
            undo: undo.map(|u| u.email(&name)),
        })
    }

    /// The bytes this finding adds to the message: its JSON as a string inside `default`
    /// (escaped again), the comma, and its e-mail text (escaped).
    fn cost(&self) -> usize {
        let undo = self.undo.as_deref().map_or(0, escaped_len);
        escaped_len(&self.json.to_string()) + 1 + escaped_len(&self.line) + undo
    }
}

/// The length of `s` inside a JSON string, as serde_json writes it.
fn escaped_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

fn policy_name(f: &FindingReport) -> String {
    f.policy_name.as_deref().map_or_else(
        || "(no policy name)".to_owned(),
        |n| clip(n, MAX_NAME_CHARS),
    )
}

/// The finding's report as the function returns it (same names), with its task, the undo, a
/// `moreTargets` that is there (false too) whenever `targetCount` is, and the restored
/// version of a rollback.
fn policy_json(entry: &Entry, undo: Option<&Undo>) -> Value {
    let f = entry.finding;
    let mut value = serde_json::to_value(f).unwrap_or_else(|_| json!({}));
    if let Some(m) = value.as_object_mut() {
        m.insert("taskId".into(), entry.task_id.into());
        if f.target_count.is_some() {
            m.insert("moreTargets".into(), f.more_targets.into());
        }
        if let Outcome::Failed { error } = &f.outcome {
            m.insert("error".into(), clip(error, MAX_ERROR_CHARS).into());
        }
        if matches!(f.outcome, Outcome::RolledBack | Outcome::WouldRollBack) {
            m.insert(
                "restoredVersionId".into(),
                f.flagged_version_id.clone().into(),
            );
        }
        if let Some(undo) = undo {
            m.insert("undo".into(), undo.json());
        }
    }
    value
}

/// One line of the e-mail's list: name, versions, blast radius, what was (or would be) done.
fn email_line(entry: &Entry, section: Section, tasks: &Tasks) -> String {
    let f = entry.finding;
    let flagged = f.flagged_version_id.as_deref().unwrap_or("?");
    let mut parts = match section {
        Section::Remediated => vec![format!(
            "version {flagged} -> {} (new default)",
            f.new_version_id.as_deref().unwrap_or("?")
        )],
        Section::WouldRemediate => vec![format!(
            "would replace version {flagged} with a new restrictive default version"
        )],
        Section::RolledBack => vec![format!("version {flagged} is the default again")],
        Section::WouldRollBack => vec![format!("would make version {flagged} the default again")],
        Section::Failed => vec![format!("version {flagged}"), failed_error(f)],
        Section::Deferred => vec![format!("version {flagged}, not started")],
    };
    parts.extend(version_changes(f, section));
    if matches!(section, Section::Remediated | Section::WouldRemediate) {
        parts.push(targets(f));
    }
    let task = match tasks {
        Tasks::One(task) if *task == entry.task_id => String::new(),
        _ => format!(" [task {}]", clip(entry.task_id, MAX_NAME_CHARS)),
    };
    format!("- {}{task}: {}\n", policy_name(f), parts.join("; "))
}

fn failed_error(f: &FindingReport) -> String {
    match &f.outcome {
        Outcome::Failed { error } => format!("error: {}", clip(error, EMAIL_ERROR_CHARS)),
        _ => String::new(),
    }
}

/// The versions kept and deleted (or that would be), and a rollback's suppression.
fn version_changes(f: &FindingReport, section: Section) -> Vec<String> {
    let dry = matches!(section, Section::WouldRemediate | Section::WouldRollBack);
    let mut parts = Vec::new();
    if let Some(kept) = &f.kept_version_id {
        let verb = if dry { "would be kept" } else { "kept" };
        parts.push(format!("version {kept} {verb} (not default)"));
    }
    if dry && !f.would_delete_version_ids.is_empty() {
        parts.push(format!(
            "would delete {}",
            versions(&f.would_delete_version_ids)
        ));
    }
    if !dry && !f.deleted_version_ids.is_empty() {
        parts.push(format!("deleted {}", versions(&f.deleted_version_ids)));
    }
    if section == Section::Failed && f.new_version_id.is_some() {
        let new = f.new_version_id.as_deref().unwrap_or("?");
        parts.push(format!("created version {new}"));
    }
    if section == Section::RolledBack {
        parts.push(match &f.suppressed_until {
            Some(until) => format!("its finding is suppressed until {until}"),
            None => "its finding is not suppressed".to_owned(),
        });
    }
    parts
}

fn versions(ids: &[String]) -> String {
    match ids {
        [one] => format!("version {one}"),
        _ => format!("versions {}", ids.join(", ")),
    }
}

/// The blast radius: how many targets the policy is attached to.
fn targets(f: &FindingReport) -> String {
    match (f.target_count, f.more_targets) {
        (Some(n), true) => format!("attached to {n}+ targets (more than one page)"),
        (Some(1), false) => "attached to 1 target".to_owned(),
        (Some(n), false) => format!("attached to {n} targets"),
        (None, _) => "targets not counted".to_owned(),
    }
}

/// The message with as many listed findings as fit in `budget` bytes: all when they fit, else
/// the first ones and a note of the rest. Sizes are estimated per finding, then measured.
fn fit(context: &Context, items: &[Rendered], budget: usize) -> String {
    let costs: Vec<usize> = items.iter().map(Rendered::cost).collect();
    let total: usize = costs.iter().sum();
    if message(context, &[], 0).len() + total <= budget {
        let whole = message(context, items, 0);
        if whole.len() <= budget {
            return whole;
        }
    }
    let mut room = budget.saturating_sub(message(context, &[], items.len()).len());
    let mut listed = 0;
    for cost in &costs {
        if *cost > room || listed + 1 == items.len() {
            break;
        }
        room -= cost;
        listed += 1;
    }
    loop {
        let cut = message(context, &items[..listed], items.len() - listed);
        if cut.len() <= budget || listed == 0 {
            return cut;
        }
        listed -= 1;
    }
}

/// The `MessageStructure=json` body: `default` for machines, `email` for people.
fn message(context: &Context, items: &[Rendered], omitted: usize) -> String {
    json!({
        "default": default_json(context, items, omitted),
        "email": email(context, items, omitted),
    })
    .to_string()
}

/// The machine-readable summary, as a JSON string.
fn default_json(context: &Context, items: &[Rendered], omitted: usize) -> String {
    let input = context.input;
    let mut m = Map::new();
    m.insert("kind".into(), input.kind.as_str().into());
    m.insert("outcome".into(), context.outcome.as_str().into());
    let named = [
        ("account", context.account.clone()),
        ("region", context.region.clone()),
        ("taskId", known(context.tasks.single(), MAX_NAME_CHARS)),
        ("reason", context.reason.clone()),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            m.insert(name.into(), value.into());
        }
    }
    if let Tasks::Several(tasks) = &context.tasks {
        let named: Vec<String> = tasks
            .iter()
            .take(MAX_QUERY_TASKS)
            .map(|t| clip(t, MAX_NAME_CHARS))
            .collect();
        m.insert("taskIds".into(), json!(named));
        m.insert("taskCount".into(), tasks.len().into());
    }
    if context.dry_run() {
        m.insert("dryRun".into(), true.into());
    }
    let counts = serde_json::to_value(input.totals).unwrap_or(Value::Null);
    m.insert("counts".into(), counts);
    let policies = items.iter().map(|item| item.json.clone()).collect();
    m.insert("policies".into(), Value::Array(policies));
    if input.totals.enqueued > 0 {
        m.insert("follow".into(), follow_json(context));
    }
    if omitted > 0 {
        let truncated = json!({
            "listedPolicies": items.len(),
            "omittedPolicies": omitted,
            "logGroup": context.log_group,
            "logsInsightsQuery": context.list_query,
        });
        m.insert("truncated".into(), truncated);
    }
    Value::Object(m).to_string()
}

/// Where the fanned-out audit's jobs can be followed.
fn follow_json(context: &Context) -> Value {
    json!({
        "enqueued": context.input.totals.enqueued,
        "logGroup": context.log_group,
        "logsInsightsQuery": context.list_query,
        "progressQuery": progress_query(&context.tasks),
        "metrics": {
            "namespace": context.metrics_namespace,
            "dimensions": { "Mode": "jobs" },
            "metricNames": FOLLOWED_METRICS,
        },
    })
}

/// The metrics (dimension `Mode=jobs`) that show a fan-out's progress.
const FOLLOWED_METRICS: [&str; 5] = [
    "Remediated",
    "WouldRemediate",
    "Failed",
    "Deferred",
    "Skipped",
];

/// The plain-text summary a person reads: what happened first, then how to undo it.
fn email(context: &Context, items: &[Rendered], omitted: usize) -> String {
    let mut out = email_header(context);
    if context.input.totals.enqueued > 0 {
        out.push_str(&email_follow(context));
    }
    for section in Section::ORDER {
        let lines: Vec<&str> = items
            .iter()
            .filter(|item| item.section == section)
            .map(|item| item.line.as_str())
            .collect();
        if !lines.is_empty() {
            out.push_str(&format!("\n{}:\n{}", section.heading(), lines.concat()));
        }
    }
    let undos: Vec<&str> = items
        .iter()
        .filter_map(|item| item.undo.as_deref())
        .collect();
    if !undos.is_empty() {
        out.push_str(&format!("\nHow to undo:\n{}", undos.concat()));
        if items.iter().any(|item| item.undo_is_event) {
            out.push_str(&email_invoke_hint(context));
        }
    }
    if omitted > 0 {
        out.push_str(&format!(
            "\n... and {omitted} more not listed here: this message would pass SNS's 256 KB \
             limit.\nAll of them are in the log group {}; CloudWatch Logs Insights query:\n  {}\n",
            context.log_group_text(),
            context.list_query
        ));
    }
    out
}

fn email_header(context: &Context) -> String {
    let input = context.input;
    let mut out = format!("{}\n\n", input.kind.email_title());
    let mut line = |label: &str, value: Option<String>| {
        if let Some(value) = value {
            out.push_str(&format!("{label}: {value}\n"));
        }
    };
    line("Account", context.account.clone());
    line("Region", context.region.clone());
    line(
        "Audit task",
        match &context.tasks {
            Tasks::One(task) => Some(clip(task, MAX_NAME_CHARS)),
            Tasks::Several(tasks) => Some(clip(&tasks.join(", "), 40 * MAX_QUERY_TASKS)),
            Tasks::Unknown => None,
        },
    );
    line("Reason", context.reason.clone());
    if context.dry_run() {
        line(
            "Dry run",
            Some("nothing was changed; below is what a real run would do".into()),
        );
    }
    line("Findings", Some(counts_text(input.totals)));
    out
}

/// `10 (2 remediated, 1 failed, 7 skipped: already_remediated 3, out_of_scope 4)`.
fn counts_text(t: &Totals) -> String {
    let mut phrases = count_phrases(t);
    if t.skipped > 0 {
        let reasons: Vec<String> = t
            .skipped_by_reason
            .iter()
            .map(|(reason, n)| match serde_json::to_value(reason) {
                Ok(Value::String(name)) => format!("{name} {n}"),
                _ => format!("{reason:?} {n}"),
            })
            .collect();
        phrases.push(format!("{} skipped: {}", t.skipped, reasons.join(", ")));
    }
    let mut text = format!("{} ({})", t.findings, phrases.join(", "));
    if t.listing_errors > 0 {
        text.push_str(&format!(
            "; {} finding list(s) not read to the end: Lambda's retry reads them again",
            t.listing_errors
        ));
    }
    text
}

fn email_follow(context: &Context) -> String {
    let namespace = context
        .metrics_namespace
        .as_deref()
        .unwrap_or("METRICS_NAMESPACE");
    format!(
        "\n{} policies were sent to the fan-out queue. Worker invocations remediate them, and \
         each job batch sends its own notification (kind batch).\nFollow them in CloudWatch \
         Logs Insights, log group {}:\n  progress: {}\n  policies: {}\nMetrics: namespace {}, \
         dimension Mode=jobs: {}.\n",
        context.input.totals.enqueued,
        context.log_group_text(),
        progress_query(&context.tasks),
        context.list_query,
        namespace,
        FOLLOWED_METRICS.join(", ")
    )
}

fn email_invoke_hint(context: &Context) -> String {
    let function = context.function_name();
    format!(
        "To send a rollback event (edit its reason first): aws lambda invoke --function-name \
         {function} --cli-binary-format raw-in-base64-out --payload '<event>' response.json\n  \
         or: cargo lambda invoke {function} --data-ascii '<event>'\n"
    )
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::domain::{PolicyVersionRef, SkipReason};

    const TASK: &str = "0123456789abcdef0123456789abcdef";
    const ACCOUNT: &str = "123456789012";
    const LOG_GROUP: &str = "/aws/lambda/iot-audit-remediator";
    const PERMISSIVE: &str =
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\n      \"Effect\": \"Allow\",\n      \"Action\": \"iot:*\",\n      \"Resource\": \"*\"\n    }\n  ]\n}";

    fn finding(name: &str, flagged: &str, outcome: Outcome) -> FindingReport {
        let policy = PolicyVersionRef {
            policy_name: name.into(),
            version_id: flagged.into(),
        };
        FindingReport::new(Some(format!("f-{name}")), Some(&policy), outcome)
    }

    /// Remediated, the replaced version kept (`kept`) or deleted, attached to 3 targets.
    fn remediated(name: &str, flagged: &str, new: &str, kept: bool) -> FindingReport {
        let mut f = finding(name, flagged, Outcome::Remediated);
        f.default_version_id = Some(flagged.into());
        f.new_version_id = Some(new.into());
        if kept {
            f.kept_version_id = Some(flagged.into());
        } else {
            f.deleted_version_ids = vec![flagged.into()];
        }
        f.replaced_document = Some(PERMISSIVE.into());
        f.target_count = Some(3);
        f
    }

    fn failed(name: &str, error: &str) -> FindingReport {
        finding(
            name,
            "1",
            Outcome::Failed {
                error: error.into(),
            },
        )
    }

    fn skipped(name: &str, reason: SkipReason) -> FindingReport {
        finding(name, "1", Outcome::Skipped { reason })
    }

    fn totals_of(findings: &[FindingReport]) -> Totals {
        let mut totals = Totals::default();
        for f in findings {
            totals.count(&f.outcome);
        }
        totals
    }

    fn entries(findings: &[FindingReport]) -> Vec<Entry<'_>> {
        findings
            .iter()
            .map(|finding| Entry {
                task_id: TASK,
                finding,
            })
            .collect()
    }

    fn input<'a>(
        kind: NotificationKind,
        entries: &'a [Entry<'a>],
        totals: &'a Totals,
    ) -> NotificationInput<'a> {
        NotificationInput {
            kind,
            account: Some(ACCOUNT),
            region: Some("eu-west-1"),
            task_id: Some(TASK),
            entries,
            totals,
            log_group: Some(LOG_GROUP),
            metrics_namespace: Some("IotAuditRemediator"),
            reason: None,
        }
    }

    fn notify(kind: NotificationKind, findings: &[FindingReport]) -> Option<Notification> {
        let entries = entries(findings);
        let totals = totals_of(findings);
        notification(&input(kind, &entries, &totals))
    }

    /// The two parts of the message, parsed back; the message has exactly these two keys.
    fn parts(n: &Notification) -> (Value, String) {
        let outer: Value = serde_json::from_str(&n.message).unwrap();
        let keys: Vec<&String> = outer.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["default", "email"]);
        let default = serde_json::from_str(outer["default"].as_str().unwrap()).unwrap();
        (default, outer["email"].as_str().unwrap().to_owned())
    }

    fn attribute<'n>(n: &'n Notification, name: &str) -> Option<&'n str> {
        let found: Vec<&str> = n
            .attributes
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(found.len() <= 1, "{name} twice");
        found.first().copied()
    }

    fn assert_valid_subject(subject: &str) {
        assert!(
            subject.len() <= SUBJECT_LIMIT,
            "{} > 100: {subject}",
            subject.len()
        );
        assert!(
            subject.chars().all(|c| c == ' ' || c.is_ascii_graphic()),
            "not printable ASCII: {subject:?}"
        );
    }

    /// What a POSIX shell makes of `command` when `aws` prints each of its arguments.
    fn shell_words(command: &str) -> Vec<String> {
        let script =
            format!("aws() {{ for a in \"$@\"; do printf '%s\\036' \"$a\"; done; }}\n{command}\n");
        let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let mut words: Vec<String> = stdout.split('\u{1e}').map(str::to_owned).collect();
        assert_eq!(words.pop().as_deref(), Some(""));
        words
    }

    #[test]
    fn nothing_is_sent_when_nothing_changed_and_nothing_failed() {
        let deferred = finding("WS_AUDIT_d", "1", Outcome::Deferred);
        let cases: Vec<Vec<FindingReport>> = vec![
            vec![],
            vec![skipped("WS_AUDIT_a", SkipReason::AlreadyRemediated)],
            vec![
                skipped("WS_AUDIT_a", SkipReason::StaleFinding),
                skipped("Other", SkipReason::OutOfScope),
            ],
            vec![deferred.clone()],
            vec![skipped("WS_AUDIT_a", SkipReason::Suppressed), deferred],
        ];
        for kind in [
            NotificationKind::Audit,
            NotificationKind::Batch,
            NotificationKind::Rollback,
        ] {
            for findings in &cases {
                assert_eq!(notify(kind, findings), None, "{kind:?} {findings:?}");
            }
        }
        // A finding list not read to the end is like deferred work: no message on its own.
        let totals = Totals {
            listing_errors: 1,
            ..Totals::default()
        };
        assert_eq!(
            notification(&input(NotificationKind::Audit, &[], &totals)),
            None
        );
    }

    #[test]
    fn outcome_attribute_for_each_mix() {
        let r = || remediated("WS_AUDIT_r", "1", "2", true);
        let w = || finding("WS_AUDIT_w", "1", Outcome::WouldRemediate);
        let f = || failed("WS_AUDIT_f", "boom");
        let s = || skipped("WS_AUDIT_s", SkipReason::AlreadyRemediated);
        let d = || finding("WS_AUDIT_d", "1", Outcome::Deferred);
        let e = || finding("WS_AUDIT_e", "1", Outcome::Enqueued);
        let rb = || finding("WS_AUDIT_b", "1", Outcome::RolledBack);
        let wrb = || finding("WS_AUDIT_b", "1", Outcome::WouldRollBack);
        let audit = NotificationKind::Audit;
        let rollback = NotificationKind::Rollback;
        let cases = [
            (audit, vec![r()], "remediated"),
            (audit, vec![w()], "remediated"),
            (audit, vec![r(), s(), s(), d()], "remediated"),
            (audit, vec![f()], "failed"),
            (audit, vec![f(), s(), d()], "failed"),
            (audit, vec![r(), f()], "mixed"),
            (audit, vec![w(), f(), s()], "mixed"),
            (audit, vec![e(), e()], "enqueued"),
            (audit, vec![e(), s()], "enqueued"),
            (audit, vec![e(), f()], "mixed"),
            (NotificationKind::Batch, vec![r(), s()], "remediated"),
            (NotificationKind::Batch, vec![f()], "failed"),
            (rollback, vec![rb(), s()], "rolled_back"),
            (rollback, vec![wrb()], "rolled_back"),
            (rollback, vec![rb(), f()], "mixed"),
            (rollback, vec![f()], "failed"),
        ];
        for (kind, findings, outcome) in cases {
            let n = notify(kind, &findings).unwrap();
            assert_eq!(attribute(&n, "outcome"), Some(outcome), "{findings:?}");
            assert_eq!(attribute(&n, "kind"), Some(kind.as_str()));
            assert_eq!(attribute(&n, "account"), Some(ACCOUNT));
            assert_eq!(attribute(&n, "taskId"), Some(TASK));
            assert_eq!(n.attributes.len(), 4);
            let (default, _) = parts(&n);
            assert_eq!(default["outcome"], outcome);
            assert_eq!(default["kind"], kind.as_str());
            assert_valid_subject(&n.subject);
        }
        assert_eq!(NotificationKind::Batch.as_str(), "batch");
        assert_eq!(NotificationKind::Rollback.as_str(), "rollback");
    }

    #[test]
    fn unknown_attribute_values_are_left_out() {
        let findings = [remediated("WS_AUDIT_a", "1", "2", true)];
        let entries = entries(&findings);
        let totals = totals_of(&findings);
        for account in [None, Some(""), Some("  ")] {
            let n = notification(&NotificationInput {
                account,
                task_id: None,
                entries: &[],
                ..input(NotificationKind::Batch, &entries, &totals)
            })
            .unwrap();
            let names: Vec<&str> = n.attributes.iter().map(|(k, _)| *k).collect();
            assert_eq!(names, ["kind", "outcome"]);
            assert!(n.attributes.iter().all(|(_, v)| !v.is_empty()));
            let (default, email) = parts(&n);
            assert!(default.get("taskId").is_none());
            assert!(!email.contains("Audit task:"));
            assert_valid_subject(&n.subject);
            assert!(!n.subject.contains("account"), "{}", n.subject);
        }
        // No task given, but every entry shares one: that one is named.
        let n = notification(&NotificationInput {
            task_id: None,
            ..input(NotificationKind::Batch, &entries, &totals)
        })
        .unwrap();
        assert_eq!(attribute(&n, "taskId"), Some(TASK));
    }

    #[test]
    fn a_kept_version_is_undone_by_the_rollback_event() {
        let findings = [
            remediated("WS_AUDIT_a", "1", "2", true),
            skipped("WS_AUDIT_s", SkipReason::AlreadyRemediated),
        ];
        let n = notify(NotificationKind::Audit, &findings).unwrap();
        let (default, email) = parts(&n);
        assert_eq!(default["account"], ACCOUNT);
        assert_eq!(default["region"], "eu-west-1");
        assert_eq!(default["taskId"], TASK);
        assert_eq!(default["kind"], "audit");
        assert!(default.get("dryRun").is_none());
        assert!(default.get("truncated").is_none());
        let counts = &default["counts"];
        assert_eq!(counts["findings"], 2);
        assert_eq!(counts["remediated"], 1);
        assert_eq!(counts["skipped"], 1);
        assert_eq!(counts["skippedByReason"]["already_remediated"], 1);
        // Only changed and failed policies are listed.
        let policies = default["policies"].as_array().unwrap();
        assert_eq!(policies.len(), 1);
        let p = &policies[0];
        assert_eq!(p["policyName"], "WS_AUDIT_a");
        assert_eq!(p["taskId"], TASK);
        assert_eq!(p["outcome"], "remediated");
        assert_eq!(p["flaggedVersionId"], "1");
        assert_eq!(p["newVersionId"], "2");
        assert_eq!(p["keptVersionId"], "1");
        assert!(p.get("deletedVersionIds").is_none());
        assert_eq!(p["targetCount"], 3);
        assert_eq!(p["moreTargets"], false);
        assert_eq!(p["replacedDocument"], PERMISSIVE);
        let event = json!({"rollback": {"taskId": TASK, "policyNames": ["WS_AUDIT_a"],
            "reason": UNDO_REASON, "accountId": ACCOUNT, "region": "eu-west-1"}});
        assert_eq!(p["undo"], json!({ "rollbackEvent": event }));

        assert!(email.contains("Account: 123456789012\n"), "{email}");
        assert!(email.contains(&format!("Audit task: {TASK}\n")));
        assert!(email.contains("Findings: 2 (1 remediated, 1 skipped: already_remediated 1)\n"));
        assert!(email.contains(
            "- WS_AUDIT_a: version 1 -> 2 (new default); version 1 kept (not default); \
             attached to 3 targets\n"
        ));
        assert!(!email.contains("WS_AUDIT_s"));
        // The event is one line of JSON, as `--payload` and `--data-ascii` take it.
        let line = email
            .lines()
            .find(|l| l.trim_start().starts_with("{\"rollback\""))
            .unwrap();
        let pasted: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(pasted, event);
        assert!(email.contains(
            "aws lambda invoke --function-name iot-audit-remediator \
             --cli-binary-format raw-in-base64-out --payload '<event>'"
        ));
        assert!(email.contains("cargo lambda invoke iot-audit-remediator --data-ascii '<event>'"));
        assert_eq!(
            n.subject,
            format!("IoT audit: 1 remediated; account {ACCOUNT}; task {TASK}")
        );
    }

    #[test]
    fn a_deleted_version_is_undone_by_a_command_that_runs_as_printed() {
        let findings = [remediated("WS_AUDIT_b", "4", "5", false)];
        let n = notify(NotificationKind::Audit, &findings).unwrap();
        let (default, email) = parts(&n);
        let p = &default["policies"][0];
        assert_eq!(p["deletedVersionIds"], json!(["4"]));
        assert!(p.get("keptVersionId").is_none());
        let command = p["undo"]["command"].as_str().unwrap();
        assert_eq!(
            command,
            reinstall_command("WS_AUDIT_b", PERMISSIVE, Some("eu-west-1"))
        );
        assert!(email.contains(&format!("\n  {command}\n")), "{email}");
        assert!(email.contains("- WS_AUDIT_b: version 4 -> 5 (new default); deleted version 4;"));
        assert!(!email.contains("aws lambda invoke"));
        assert_eq!(
            shell_words(command),
            [
                "iot",
                "create-policy-version",
                "--region",
                "eu-west-1",
                "--policy-name",
                "WS_AUDIT_b",
                "--set-as-default",
                "--policy-document",
                PERMISSIVE
            ]
        );
    }

    #[test]
    fn shell_quoting_survives_quotes_spaces_dollars_and_backticks() {
        let name = "WS_AUDIT_it's a $HOME `id` \"x\" \\ name";
        let document = "{\"Statement\": [{\"Resource\": \"arn:aws:iot:*:*:topic/it's/$(id)/`id`/${HOME}\",\n \"Sid\": \"'\\''\\\\'\", \"Condition\": \"!*?[a] ; | & > < #\"}]}\n";
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let command = reinstall_command(name, document, None);
        assert_eq!(
            shell_words(&command),
            [
                "iot",
                "create-policy-version",
                "--policy-name",
                name,
                "--set-as-default",
                "--policy-document",
                document
            ]
        );
        // The command in the message is that same command.
        let mut f = remediated("WS_AUDIT_q", "1", "2", false);
        f.policy_name = Some(name.into());
        f.replaced_document = Some(document.into());
        let n = notify(NotificationKind::Audit, &[f]).unwrap();
        let (default, email) = parts(&n);
        let command = reinstall_command(name, document, Some("eu-west-1"));
        assert_eq!(default["policies"][0]["undo"]["command"], command);
        assert!(email.contains(&command));
    }

    #[test]
    fn dry_run_says_what_would_be_done() {
        let mut keep = finding("WS_AUDIT_k", "1", Outcome::WouldRemediate);
        keep.kept_version_id = Some("1".into());
        keep.replaced_document = Some(PERMISSIVE.into());
        keep.target_count = Some(1);
        let mut delete = finding("WS_AUDIT_d", "3", Outcome::WouldRemediate);
        delete.would_delete_version_ids = vec!["3".into()];
        delete.target_count = Some(250);
        delete.more_targets = true;
        let n = notify(NotificationKind::Audit, &[keep, delete]).unwrap();
        let (default, email) = parts(&n);
        assert_eq!(default["dryRun"], true);
        assert_eq!(default["counts"]["wouldRemediate"], 2);
        let p = &default["policies"];
        assert_eq!(p[0]["outcome"], "would_remediate");
        assert!(p[0].get("undo").is_none());
        assert_eq!(p[1]["wouldDeleteVersionIds"], json!(["3"]));
        assert_eq!(p[1]["moreTargets"], true);
        assert!(email.contains("Dry run: nothing was changed"));
        assert!(email.contains("Would be remediated (dry run):\n"));
        assert!(email.contains(
            "- WS_AUDIT_k: would replace version 1 with a new restrictive default version; \
             version 1 would be kept (not default); attached to 1 target\n"
        ));
        assert!(email.contains(
            "- WS_AUDIT_d: would replace version 3 with a new restrictive default version; \
             would delete version 3; attached to 250+ targets (more than one page)\n"
        ));
        assert!(!email.contains("How to undo"));
        assert_eq!(attribute(&n, "outcome"), Some("remediated"));
        assert!(n
            .subject
            .starts_with("IoT audit: 2 would be remediated; account"));
    }

    #[test]
    fn failures_carry_their_error_and_come_first() {
        let mut partial = failed("WS_AUDIT_p", "DeletePolicyVersion: service unavailable");
        partial.new_version_id = Some("2".into());
        let findings = [
            remediated("WS_AUDIT_a", "1", "2", true),
            failed(
                "WS_AUDIT_f",
                "AccessDeniedException: not authorized\nline two",
            ),
            partial,
        ];
        let n = notify(NotificationKind::Batch, &findings).unwrap();
        assert_eq!(attribute(&n, "outcome"), Some("mixed"));
        let (default, email) = parts(&n);
        let names: Vec<&str> = default["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["policyName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["WS_AUDIT_f", "WS_AUDIT_p", "WS_AUDIT_a"]);
        let p = &default["policies"][0];
        assert_eq!(p["outcome"], "failed");
        assert_eq!(p["error"], "AccessDeniedException: not authorized line two");
        assert!(p.get("undo").is_none());
        assert!(p.get("targetCount").is_none() && p.get("moreTargets").is_none());
        assert!(email.contains(
            "Failed:\n- WS_AUDIT_f: version 1; error: AccessDeniedException: not authorized \
             line two\n- WS_AUDIT_p: version 1; error: DeletePolicyVersion: service \
             unavailable; created version 2\n"
        ));
        assert!(email.find("Failed:").unwrap() < email.find("Remediated:").unwrap());
        assert!(n
            .subject
            .starts_with("IoT batch: 1 remediated, 2 failed; account 123456789012; task "));
    }

    #[test]
    fn rollbacks_say_what_was_restored_until_when_and_why() {
        let mut done = finding("WS_AUDIT_a", "1", Outcome::RolledBack);
        done.deleted_version_ids = vec!["2".into()];
        done.suppressed_until = Some("2027-01-01T00:00:00Z".into());
        let mut unsuppressed = finding("WS_AUDIT_b", "3", Outcome::RolledBack);
        unsuppressed.deleted_version_ids = vec!["4".into(), "5".into()];
        let findings = [
            done,
            unsuppressed,
            skipped("WS_AUDIT_c", SkipReason::RollbackUnavailable),
        ];
        let entries = entries(&findings);
        let totals = totals_of(&findings);
        let n = notification(&NotificationInput {
            reason: Some("fleet lost its shadows"),
            ..input(NotificationKind::Rollback, &entries, &totals)
        })
        .unwrap();
        assert_eq!(attribute(&n, "kind"), Some("rollback"));
        assert_eq!(attribute(&n, "outcome"), Some("rolled_back"));
        let (default, email) = parts(&n);
        assert_eq!(default["reason"], "fleet lost its shadows");
        assert_eq!(default["counts"]["rolledBack"], 2);
        let p = &default["policies"][0];
        assert_eq!(p["outcome"], "rolled_back");
        assert_eq!(p["restoredVersionId"], "1");
        assert_eq!(p["suppressedUntil"], "2027-01-01T00:00:00Z");
        assert!(p.get("undo").is_none());
        assert!(email.contains("Reason: fleet lost its shadows\n"));
        assert!(email.contains(
            "- WS_AUDIT_a: version 1 is the default again; deleted version 2; its finding is \
             suppressed until 2027-01-01T00:00:00Z\n"
        ));
        assert!(email.contains(
            "- WS_AUDIT_b: version 3 is the default again; deleted versions 4, 5; its finding \
             is not suppressed\n"
        ));
        assert!(email.contains("Findings: 3 (2 rolled back, 1 skipped: rollback_unavailable 1)\n"));
        assert!(n
            .subject
            .starts_with("IoT rollback: 2 rolled back; account"));

        let mut would = finding("WS_AUDIT_a", "1", Outcome::WouldRollBack);
        would.would_delete_version_ids = vec!["2".into()];
        let n = notify(NotificationKind::Rollback, &[would]).unwrap();
        let (default, email) = parts(&n);
        assert_eq!(default["dryRun"], true);
        assert_eq!(default["policies"][0]["restoredVersionId"], "1");
        assert!(email.contains(
            "- WS_AUDIT_a: would make version 1 the default again; would delete version 2\n"
        ));
        assert!(n
            .subject
            .starts_with("IoT rollback: 1 would be rolled back;"));
    }

    #[test]
    fn the_fanned_out_audit_says_how_many_went_to_the_queue_and_how_to_follow_them() {
        let mut findings: Vec<FindingReport> = (0..120)
            .map(|i| finding(&format!("WS_AUDIT_{i}"), "1", Outcome::Enqueued))
            .collect();
        findings.push(skipped("Other", SkipReason::OutOfScope));
        let n = notify(NotificationKind::Audit, &findings).unwrap();
        assert_eq!(attribute(&n, "outcome"), Some("enqueued"));
        assert_eq!(attribute(&n, "kind"), Some("audit"));
        let (default, email) = parts(&n);
        assert_eq!(default["counts"]["enqueued"], 120);
        assert_eq!(default["policies"], json!([]));
        let follow = &default["follow"];
        assert_eq!(follow["enqueued"], 120);
        assert_eq!(follow["logGroup"], LOG_GROUP);
        let task_filter = format!("fields.task_id = \"{TASK}\"");
        let query = follow["logsInsightsQuery"].as_str().unwrap();
        assert!(
            query.starts_with("fields @timestamp, fields.task_id, fields.policy, fields.outcome")
        );
        assert!(query.contains(&task_filter), "{query}");
        assert!(query.ends_with("| sort @timestamp asc"));
        let progress = follow["progressQuery"].as_str().unwrap();
        assert!(progress.contains(&task_filter));
        assert!(progress.contains("stats count(*) as policies by fields.outcome"));
        assert_eq!(follow["metrics"]["namespace"], "IotAuditRemediator");
        assert_eq!(follow["metrics"]["dimensions"], json!({"Mode": "jobs"}));
        assert!(email.contains("120 policies were sent to the fan-out queue"));
        assert!(email.contains(LOG_GROUP));
        assert!(email.contains(query) && email.contains(progress));
        assert!(email.contains("Metrics: namespace IotAuditRemediator, dimension Mode=jobs"));
        assert!(
            !email.contains("WS_AUDIT_1"),
            "enqueued policies are counted, not listed"
        );
        assert_eq!(
            n.subject,
            format!("IoT audit: 120 enqueued; account {ACCOUNT}; task {TASK}")
        );
    }

    #[test]
    fn deferred_and_listing_errors_are_told_when_a_message_goes_anyway() {
        let findings = [
            remediated("WS_AUDIT_a", "1", "2", true),
            finding("WS_AUDIT_d", "7", Outcome::Deferred),
        ];
        let entries = entries(&findings);
        let mut totals = totals_of(&findings);
        totals.listing_errors = 1;
        let n = notification(&input(NotificationKind::Audit, &entries, &totals)).unwrap();
        assert_eq!(attribute(&n, "outcome"), Some("remediated"));
        let (default, email) = parts(&n);
        assert_eq!(default["counts"]["deferred"], 1);
        assert_eq!(default["counts"]["listingErrors"], 1);
        assert_eq!(default["policies"][1]["outcome"], "deferred");
        assert!(email.contains("Deferred (not started before the deadline; a retry handles them):\n- WS_AUDIT_d: version 7, not started\n"));
        assert!(email.contains("1 finding list(s) not read to the end"));
        assert!(n
            .subject
            .starts_with("IoT audit: 1 remediated, 1 deferred; account"));
    }

    #[test]
    fn a_batch_spanning_tasks_names_each_policy_task() {
        let a = remediated("WS_AUDIT_a", "1", "2", true);
        let b = remediated("WS_AUDIT_b", "1", "2", true);
        let entries = [
            Entry {
                task_id: "task-A",
                finding: &a,
            },
            Entry {
                task_id: "task-B",
                finding: &b,
            },
        ];
        let totals = totals_of(&[a.clone(), b.clone()]);
        let batch = NotificationInput {
            task_id: None,
            ..input(NotificationKind::Batch, &entries, &totals)
        };
        let n = notification(&batch).unwrap();
        assert_eq!(attribute(&n, "taskId"), None);
        let (default, email) = parts(&n);
        assert!(default.get("taskId").is_none());
        assert_eq!(default["taskIds"], json!(["task-A", "task-B"]));
        assert_eq!(
            default["policies"][1]["undo"]["rollbackEvent"],
            rollback_event("task-B", "WS_AUDIT_b", Some(ACCOUNT), Some("eu-west-1"))
        );
        assert!(email.contains("- WS_AUDIT_b [task task-B]: version 1 -> 2"));
        assert!(email.contains("Audit task: task-A, task-B\n"));
        assert_eq!(
            n.subject,
            format!("IoT batch: 2 remediated; account {ACCOUNT}; 2 tasks")
        );
        let context = Context::new(&batch, NotificationOutcome::Remediated);
        assert!(context
            .list_query
            .contains("fields.task_id in [\"task-A\", \"task-B\"]"));
    }

    #[test]
    fn the_subject_fits_in_100_ascii_characters() {
        let findings = [
            remediated("WS_AUDIT_a", "1", "2", true),
            failed("WS_AUDIT_f", "x"),
        ];
        let entries = entries(&findings);
        let totals = totals_of(&findings);
        let n = notification(&input(NotificationKind::Audit, &entries, &totals)).unwrap();
        assert_eq!(
            n.subject,
            format!("IoT audit: 1 remediated, 1 failed; account {ACCOUNT}; task {TASK}")
        );
        // Large counts and a long task id: the task id is shortened, the rest kept.
        let big = Totals {
            remediated: 123_456,
            failed: 7_890,
            deferred: 12,
            ..Totals::default()
        };
        let long_task = "f".repeat(64);
        let n = notification(&NotificationInput {
            task_id: Some(&long_task),
            ..input(NotificationKind::Audit, &entries, &big)
        })
        .unwrap();
        assert_valid_subject(&n.subject);
        assert_eq!(n.subject.len(), SUBJECT_LIMIT);
        assert!(n.subject.starts_with(
            "IoT audit: 123456 remediated, 7890 failed, 12 deferred; account 123456789012; task fff"
        ));
        assert!(n.subject.ends_with("..."));
        // Whatever the input: non-ASCII, control characters, absurd lengths.
        let odd_tasks = ["täsk\n\tid\u{7f}", "", &"x".repeat(300)];
        let odd_accounts = [Some("12345678901\u{e9}"), Some(&*"9".repeat(300)), None];
        for task in odd_tasks {
            for account in odd_accounts {
                let n = notification(&NotificationInput {
                    task_id: Some(task),
                    account,
                    ..input(NotificationKind::Rollback, &entries, &big)
                })
                .unwrap();
                assert_valid_subject(&n.subject);
            }
        }
    }

    #[test]
    fn free_text_is_clipped_so_the_message_always_fits() {
        let huge = "r".repeat(1_000_000);
        let mut f = failed("WS_AUDIT_f", &"e".repeat(1_000_000));
        f.replaced_document = Some("d\"".repeat(200_000));
        let findings = [f, remediated("WS_AUDIT_a", "1", "2", true)];
        let entries = entries(&findings);
        let totals = totals_of(&findings);
        let n = notification(&NotificationInput {
            reason: Some(&huge),
            log_group: Some(&huge),
            ..input(NotificationKind::Rollback, &entries, &totals)
        })
        .unwrap();
        assert!(n.sns_size() <= SNS_MESSAGE_LIMIT - SAFETY_MARGIN);
        let (default, email) = parts(&n);
        assert_eq!(
            default["reason"].as_str().unwrap().len(),
            MAX_REASON_CHARS + 3
        );
        // The failure's document alone is over the limit. The list is cut at one place (the
        // first ones listed, then "N more"): here before the first.
        assert_eq!(default["truncated"]["omittedPolicies"], 2);
        assert_eq!(default["policies"], json!([]));
        assert!(email.contains("... and 2 more not listed here"));
        assert!(email.contains("Reason: rrrr"));
    }

    /// A ~1.5 KB permissive document (pretty-printed, as IoT may return it), different for
    /// each policy.
    fn document(i: usize) -> String {
        let resources: Vec<String> = (0..22)
            .map(|j| format!("arn:aws:iot:eu-west-1:{ACCOUNT}:topic/fleet/{i}/{j}"))
            .collect();
        let value = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": resources}]});
        let doc = serde_json::to_string_pretty(&value).unwrap();
        assert!((1_400..1_700).contains(&doc.len()), "{}", doc.len());
        doc
    }

    fn many(n: usize, kept: bool) -> Vec<FindingReport> {
        (0..n)
            .map(|i| {
                let mut f = remediated(&format!("WS_AUDIT_device_{i:05}"), "1", "2", kept);
                f.replaced_document = Some(document(i));
                f
            })
            .collect()
    }

    #[test]
    fn past_256_kb_the_list_is_cut_and_says_how_many_more_and_where() {
        for kept in [false, true] {
            let mut findings = many(3_000, kept);
            findings.push(failed("WS_AUDIT_last_failed", "ThrottlingException"));
            let entries = entries(&findings);
            let totals = totals_of(&findings);
            let input = input(NotificationKind::Audit, &entries, &totals);
            let n = notification(&input).unwrap();
            assert!(n.sns_size() <= SNS_MESSAGE_LIMIT - SAFETY_MARGIN);
            let (default, email) = parts(&n);
            let policies = default["policies"].as_array().unwrap();
            eprintln!(
                "3000 remediated (kept {kept}) + 1 failed: message {} bytes, SNS size {}, {} listed",
                n.message.len(),
                n.sns_size(),
                policies.len()
            );
            let truncated = &default["truncated"];
            let omitted = truncated["omittedPolicies"].as_u64().unwrap() as usize;
            assert!(omitted > 0);
            assert_eq!(policies.len() + omitted, 3_001);
            assert_eq!(truncated["listedPolicies"], policies.len());
            assert_eq!(truncated["logGroup"], LOG_GROUP);
            let query = truncated["logsInsightsQuery"].as_str().unwrap();
            assert!(query.contains(&format!("fields.task_id = \"{TASK}\"")));
            // The failure survives the cut; the others follow in order.
            assert_eq!(policies[0]["policyName"], "WS_AUDIT_last_failed");
            assert_eq!(policies[1]["policyName"], "WS_AUDIT_device_00000");
            assert_eq!(policies[2]["policyName"], "WS_AUDIT_device_00001");
            // The e-mail lists the same ones and says the same.
            let last = policies.last().unwrap()["policyName"].as_str().unwrap();
            assert!(email.contains(&format!("- {last}: version 1 -> 2")));
            let next = format!("WS_AUDIT_device_{:05}", policies.len() - 1);
            assert!(!email.contains(&next), "{next} listed in the e-mail only");
            assert!(email.contains(&format!("... and {omitted} more not listed here")));
            assert!(email.contains(LOG_GROUP) && email.contains(query));
            // The counts are whole.
            assert_eq!(default["counts"]["remediated"], 3_000);
            assert!(n
                .subject
                .starts_with("IoT audit: 3000 remediated, 1 failed;"));
            // As many as fit: one more would not.
            let context = Context::new(&input, NotificationOutcome::Mixed);
            let items = listed(&context);
            let budget = budget(&n.subject, &n.attributes);
            let more = message(&context, &items[..=policies.len()], omitted - 1);
            assert!(
                more.len() > budget,
                "{} listed, one more fits too",
                policies.len()
            );
        }
    }

    #[test]
    fn a_list_that_fits_is_not_cut() {
        let findings = many(2, false);
        let n = notify(NotificationKind::Audit, &findings).unwrap();
        eprintln!(
            "2 remediated (deleted, ~1.5 KB documents): message {} bytes",
            n.message.len()
        );
        let findings = [
            remediated("WS_AUDIT_a", "1", "2", true),
            remediated("WS_AUDIT_b", "4", "5", false),
        ];
        let n = notify(NotificationKind::Audit, &findings).unwrap();
        eprintln!(
            "2 remediated (1 kept, 1 deleted, small documents): message {} bytes",
            n.message.len()
        );
        // The largest list that fits whole: it is not cut.
        let mut size = 10;
        loop {
            let findings = many(size + 1, false);
            let n = notify(NotificationKind::Audit, &findings).unwrap();
            if parts(&n).0.get("truncated").is_some() {
                break;
            }
            size += 1;
        }
        let findings = many(size, false);
        let n = notify(NotificationKind::Audit, &findings).unwrap();
        let (default, email) = parts(&n);
        eprintln!(
            "{size} remediated fit whole: message {} bytes",
            n.message.len()
        );
        assert!(size > 20, "only {size} fit");
        assert!(default.get("truncated").is_none());
        assert_eq!(default["policies"].as_array().unwrap().len(), size);
        assert!(!email.contains("more not listed"));
        assert!(n.sns_size() <= SNS_MESSAGE_LIMIT - SAFETY_MARGIN);
        // ... and the whole list of one more is indeed over the budget.
        let findings = many(size + 1, false);
        let entries = entries(&findings);
        let totals = totals_of(&findings);
        let input = input(NotificationKind::Audit, &entries, &totals);
        let context = Context::new(&input, NotificationOutcome::Remediated);
        let n = notification(&input).unwrap();
        assert!(message(&context, &listed(&context), 0).len() > budget(&n.subject, &n.attributes));
    }

    #[test]
    fn escaped_len_is_what_serde_json_writes() {
        for s in [
            "",
            "plain",
            "q\"b\\n\nt\tc\u{1}\u{1f}\u{7f}é€😀",
            &document(3),
        ] {
            assert_eq!(
                escaped_len(s),
                Value::from(s).to_string().len() - 2,
                "{s:?}"
            );
        }
    }
}
