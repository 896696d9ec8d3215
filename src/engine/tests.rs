//! The engine on the in-memory fake: every branch of one finding's path, in milliseconds.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::fake::{FakeIot, Fleet};
use super::*;
use crate::aws::{IotErrorKind, Operation};
use crate::config::Config;
use crate::domain::{
    PolicyVersionRef, RestrictivePolicy, SkipReason, Target, RESTRICTIVE_DOCUMENT,
};
use crate::engine::{roll_back, RollbackContext};
use crate::report::{FindingReport, Outcome};

const NAME: &str = "WS_AUDIT_p";
const PERMISSIVE: &str = include_str!("../../policies/permissive-sample.json");
const OTHER: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

fn config(keep: bool, dry_run: bool) -> Config {
    Config {
        keep_replaced_version: keep,
        dry_run,
        api_calls_per_second: 0,
        ..Config::default()
    }
}

/// A policy whose versions have these documents, in order (ids from 1); `default` is the id of
/// the default version.
fn fleet(documents: &[&str], default: u64) -> Fleet {
    let mut fleet = Fleet::default();
    for document in documents {
        fleet.create(NAME, document, false).unwrap();
    }
    fleet.set_default(NAME, default);
    fleet
}

fn on_fake(iot: FakeIot, config: Config) -> Arc<App<FakeIot>> {
    let restrictive = RestrictivePolicy::for_partition(config.partition()).unwrap();
    Arc::new(App::new(iot, config, restrictive))
}

fn target(version: &str) -> Target {
    Target {
        finding_id: Some(format!("f-{version}")),
        policy: PolicyVersionRef {
            policy_name: NAME.into(),
            version_id: version.into(),
        },
    }
}

async fn run(app: &Arc<App<FakeIot>>, version: &str) -> FindingReport {
    remediate(app, target(version)).await
}

/// The policy's versions as (id, is default, is the restrictive document).
fn state(app: &App<FakeIot>) -> Vec<(u64, bool, bool)> {
    let restrictive = &app.restrictive;
    app.iot
        .fleet()
        .versions(NAME)
        .into_iter()
        .map(|v| (v.id, v.is_default, restrictive.matches(&v.document)))
        .collect()
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn failed(report: &FindingReport) -> &str {
    match &report.outcome {
        Outcome::Failed { error } => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn remediates_and_deletes_the_replaced_version() {
    let app = on_fake(FakeIot::new(fleet(&[PERMISSIVE], 1)), config(false, false));
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(report.default_version_id.as_deref(), Some("1"));
    assert_eq!(report.new_version_id.as_deref(), Some("2"));
    assert_eq!(report.deleted_version_ids, ids(&["1"]));
    assert_eq!(report.kept_version_id, None);
    assert_eq!(report.replaced_document.as_deref(), Some(PERMISSIVE));
    assert_eq!(state(&app), [(2, true, true)]);
    let ops: Vec<Operation> = app.iot.calls().into_iter().map(|(op, _)| op).collect();
    assert_eq!(
        ops,
        [
            Operation::GetPolicy,
            Operation::CreatePolicyVersion,
            Operation::ListTargetsForPolicy,
            Operation::DeletePolicyVersion
        ]
    );
    assert_eq!((report.target_count, report.more_targets), (Some(0), false));
}

#[tokio::test]
async fn remediates_and_keeps_the_replaced_version() {
    let app = on_fake(FakeIot::new(fleet(&[PERMISSIVE], 1)), config(true, false));
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(report.kept_version_id.as_deref(), Some("1"));
    assert!(report.deleted_version_ids.is_empty());
    assert_eq!(state(&app), [(1, false, false), (2, true, true)]);
    assert_eq!(app.iot.writes(), [Operation::CreatePolicyVersion]);
}

#[tokio::test]
async fn a_dry_run_reads_and_writes_nothing() {
    for keep in [false, true] {
        let app = on_fake(FakeIot::new(fleet(&[PERMISSIVE], 1)), config(keep, true));
        let report = run(&app, "1").await;
        assert_eq!(report.outcome, Outcome::WouldRemediate);
        assert_eq!(report.replaced_document.as_deref(), Some(PERMISSIVE));
        assert_eq!(report.new_version_id, None);
        if keep {
            assert_eq!(report.kept_version_id.as_deref(), Some("1"));
            assert!(report.would_delete_version_ids.is_empty());
        } else {
            assert_eq!(report.would_delete_version_ids, ids(&["1"]));
        }
        assert!(app.iot.writes().is_empty());
        assert_eq!(state(&app), [(1, true, false)]);
    }
}

#[tokio::test]
async fn at_the_version_limit_the_oldest_non_default_version_makes_room() {
    // Five versions; the flagged permissive one (5) is the default and the newest.
    let documents = [OTHER, OTHER, OTHER, OTHER, PERMISSIVE];
    let app = on_fake(FakeIot::new(fleet(&documents, 5)), config(false, false));
    let report = run(&app, "5").await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(report.new_version_id.as_deref(), Some("6"));
    assert_eq!(report.deleted_version_ids, ids(&["1", "5"]));
    assert_eq!(
        state(&app),
        [
            (2, false, false),
            (3, false, false),
            (4, false, false),
            (6, true, true)
        ]
    );
}

#[tokio::test]
async fn at_the_limit_the_default_is_never_the_slot_freed() {
    // The permissive default is the oldest version: version 2 goes instead.
    let documents = [PERMISSIVE, OTHER, OTHER, OTHER, OTHER];
    let app = on_fake(FakeIot::new(fleet(&documents, 1)), config(true, false));
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(report.deleted_version_ids, ids(&["2"]));
    assert_eq!(report.kept_version_id.as_deref(), Some("1"));
    assert!(state(&app).contains(&(1, false, false)));
}

#[tokio::test]
async fn at_the_limit_a_default_that_changed_meanwhile_frees_no_slot() {
    let documents = [OTHER, OTHER, OTHER, OTHER, PERMISSIVE];
    // Between GetPolicy and the listing, someone makes version 4 the default.
    let iot = FakeIot::new(fleet(&documents, 5)).with_hook(|op, name, fleet| {
        if op == Operation::ListPolicyVersions {
            fleet.set_default(name, 4);
        }
    });
    let app = on_fake(iot, config(false, false));
    let report = run(&app, "5").await;
    assert!(
        failed(&report).starts_with(
            "ListPolicyVersions: at the version limit and version 5 is no longer the default"
        ),
        "{report:?}"
    );
    assert!(report.deleted_version_ids.is_empty());
    assert_eq!(state(&app).len(), 5, "nothing deleted");
    assert_eq!(app.iot.writes(), [Operation::CreatePolicyVersion]);
}

#[tokio::test]
async fn at_the_limit_a_slot_taken_again_is_a_failure() {
    let documents = [OTHER, OTHER, OTHER, OTHER, PERMISSIVE];
    // Another writer takes the freed slot before the second create.
    let iot = FakeIot::new(fleet(&documents, 5)).with_hook(|op, name, fleet| {
        if op == Operation::CreatePolicyVersion && fleet.versions(name).len() == 4 {
            fleet.create(name, OTHER, false).unwrap();
        }
    });
    let app = on_fake(iot, config(false, false));
    let report = run(&app, "5").await;
    assert!(
        failed(&report).starts_with("CreatePolicyVersion:"),
        "{report:?}"
    );
    // What was done before the failure is in the report.
    assert_eq!(report.deleted_version_ids, ids(&["1"]));
    assert_eq!(report.new_version_id, None);
}

fn already_remediated() -> Outcome {
    Outcome::Skipped {
        reason: SkipReason::AlreadyRemediated,
    }
}

/// A policy one version short of the limit, its permissive version 1 flagged and the default;
/// `rival` runs before this run's first create: what a concurrent run does between the two
/// runs' `GetPolicy` and this run's create.
fn racing(keep: bool, rival: fn(&str, &mut Fleet)) -> Arc<App<FakeIot>> {
    let documents = [PERMISSIVE, OTHER, OTHER, OTHER];
    let iot = FakeIot::new(fleet(&documents, 1)).with_hook(move |op, name, fleet| {
        let ours_first = fleet.versions(name).iter().all(|v| v.id < 5);
        if op == Operation::CreatePolicyVersion && ours_first {
            rival(name, fleet);
        }
    });
    on_fake(iot, config(keep, false))
}

#[tokio::test]
async fn losing_the_race_at_the_limit_is_already_remediated() {
    // The other run's restrictive default (5) takes the last slot; this run's create meets
    // the limit, and the listing shows version 1 is no longer the default.
    let app = racing(true, |name, fleet| {
        fleet.create(name, RESTRICTIVE_DOCUMENT, true).unwrap();
    });
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, already_remediated(), "{report:?}");
    assert_eq!(report.new_version_id, None);
    assert!(report.deleted_version_ids.is_empty());
    let expected = [
        (1, false, false),
        (2, false, false),
        (3, false, false),
        (4, false, false),
        (5, true, true),
    ];
    assert_eq!(state(&app), expected);
    let ops: Vec<Operation> = app.iot.calls().into_iter().map(|(op, _)| op).collect();
    // One more GetPolicy than the limit path, then the already-remediated path: one listing
    // and a look at each newer non-default version.
    assert_eq!(
        ops,
        [
            Operation::GetPolicy,
            Operation::CreatePolicyVersion,
            Operation::ListPolicyVersions,
            Operation::GetPolicy,
            Operation::ListPolicyVersions,
            Operation::GetPolicyVersion,
            Operation::GetPolicyVersion,
            Operation::GetPolicyVersion,
        ]
    );
}

#[tokio::test]
async fn the_race_loser_deletes_the_replaced_version_the_winner_has_not_yet() {
    let app = racing(false, |name, fleet| {
        fleet.create(name, RESTRICTIVE_DOCUMENT, true).unwrap();
    });
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, already_remediated(), "{report:?}");
    assert_eq!(report.deleted_version_ids, ids(&["1"]));
    assert_eq!(
        state(&app),
        [
            (2, false, false),
            (3, false, false),
            (4, false, false),
            (5, true, true)
        ]
    );
}

#[tokio::test]
async fn the_race_loser_tidies_the_duplicates_it_finds() {
    // Two other deliveries each created a restrictive default (5, then 6 after 4 made room).
    let app = racing(true, |name, fleet| {
        fleet.create(name, RESTRICTIVE_DOCUMENT, true).unwrap();
        fleet.delete(name, 4);
        fleet.create(name, RESTRICTIVE_DOCUMENT, true).unwrap();
    });
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, already_remediated(), "{report:?}");
    assert_eq!(report.deleted_version_ids, ids(&["5"]));
    assert_eq!(
        state(&app),
        [
            (1, false, false),
            (2, false, false),
            (3, false, false),
            (6, true, true)
        ]
    );
}

#[tokio::test]
async fn a_slot_taken_by_the_other_runs_restrictive_version_is_already_remediated() {
    // Both runs met the limit and freed the same slot; the other run's create (6) took it
    // before this run's second create.
    for keep in [true, false] {
        let documents = [OTHER, OTHER, OTHER, OTHER, PERMISSIVE];
        let iot = FakeIot::new(fleet(&documents, 5)).with_hook(|op, name, fleet| {
            if op == Operation::CreatePolicyVersion && fleet.versions(name).len() == 4 {
                fleet.create(name, RESTRICTIVE_DOCUMENT, true).unwrap();
            }
        });
        let app = on_fake(iot, config(keep, false));
        let report = run(&app, "5").await;
        assert_eq!(report.outcome, already_remediated(), "{report:?}");
        let (deleted, flagged_left) = if keep {
            (ids(&["1"]), vec![(5, false, false)])
        } else {
            (ids(&["1", "5"]), vec![])
        };
        assert_eq!(report.deleted_version_ids, deleted);
        let mut expected = vec![(2, false, false), (3, false, false), (4, false, false)];
        expected.extend(flagged_left);
        expected.push((6, true, true));
        assert_eq!(state(&app), expected);
    }
}

#[tokio::test]
async fn a_conflict_with_another_document_in_force_still_fails_the_policy() {
    let app = racing(true, |name, fleet| {
        fleet.create(name, OTHER, true).unwrap();
    });
    let report = run(&app, "1").await;
    assert!(
        failed(&report).starts_with(
            "ListPolicyVersions: at the version limit and version 1 is no longer the default"
        ),
        "{report:?}"
    );
    assert_eq!(app.iot.writes(), [Operation::CreatePolicyVersion]);
    let reads = app.iot.calls().into_iter().map(|(op, _)| op);
    assert_eq!(reads.filter(|op| *op == Operation::GetPolicy).count(), 2);
}

#[tokio::test]
async fn a_vanished_replaced_version_means_another_run_and_its_duplicate_is_tidied() {
    // Before this run deletes version 1, a concurrent run creates its own restrictive default
    // (3) and deletes version 1.
    let iot = FakeIot::new(fleet(&[PERMISSIVE], 1)).with_hook(|op, name, fleet| {
        if op == Operation::DeletePolicyVersion && fleet.versions(name).iter().any(|v| v.id == 1) {
            fleet.create(name, RESTRICTIVE_DOCUMENT, true).unwrap();
            fleet.delete(name, 1);
        }
    });
    let app = on_fake(iot, config(false, false));
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(report.new_version_id.as_deref(), Some("2"));
    assert_eq!(
        report.deleted_version_ids,
        ids(&["2"]),
        "this run's duplicate"
    );
    assert_eq!(state(&app), [(3, true, true)]);
}

#[tokio::test]
async fn a_gap_in_version_ids_means_another_writer_and_triggers_the_tidy() {
    // A concurrent run's restrictive version lands just before this run's create.
    let iot = FakeIot::new(fleet(&[PERMISSIVE], 1)).with_hook(|op, name, fleet| {
        if op == Operation::CreatePolicyVersion && fleet.versions(name).len() == 1 {
            fleet.create(name, RESTRICTIVE_DOCUMENT, false).unwrap();
        }
    });
    let app = on_fake(iot, config(true, false));
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(report.new_version_id.as_deref(), Some("3"));
    assert_eq!(report.deleted_version_ids, ids(&["2"]));
    assert_eq!(state(&app), [(1, false, false), (3, true, true)]);
}

#[tokio::test]
async fn a_replaced_version_that_is_default_again_fails_the_policy() {
    let iot = FakeIot::new(fleet(&[PERMISSIVE], 1)).with_hook(|op, name, fleet| {
        if op == Operation::DeletePolicyVersion {
            fleet.set_default(name, 1);
        }
    });
    let app = on_fake(iot, config(false, false));
    let report = run(&app, "1").await;
    assert_eq!(
        failed(&report),
        "DeletePolicyVersion: the replaced version 1 is the default again: another writer changed the policy"
    );
    assert_eq!(
        report.new_version_id.as_deref(),
        Some("2"),
        "the create is reported"
    );
}

#[tokio::test]
async fn already_remediated_finishes_what_an_earlier_run_left() {
    // The flagged permissive version 1 left behind, and a duplicate restrictive version 3.
    let documents = [PERMISSIVE, RESTRICTIVE_DOCUMENT, RESTRICTIVE_DOCUMENT];
    let app = on_fake(FakeIot::new(fleet(&documents, 2)), config(false, false));
    let report = run(&app, "1").await;
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            reason: SkipReason::AlreadyRemediated
        }
    );
    assert_eq!(report.deleted_version_ids, ids(&["1", "3"]));
    assert_eq!(state(&app), [(2, true, true)]);
}

#[tokio::test]
async fn already_remediated_keeps_a_kept_version_and_a_dry_run_only_says() {
    let documents = [PERMISSIVE, RESTRICTIVE_DOCUMENT, OTHER];
    let app_keep = on_fake(FakeIot::new(fleet(&documents, 2)), config(true, false));
    let report = run(&app_keep, "1").await;
    assert!(report.deleted_version_ids.is_empty(), "{report:?}");
    assert_eq!(
        state(&app_keep).len(),
        3,
        "another document is never tidied"
    );
    assert!(app_keep.iot.writes().is_empty());

    let dry = on_fake(FakeIot::new(fleet(&documents, 2)), config(false, true));
    let report = run(&dry, "1").await;
    assert_eq!(report.would_delete_version_ids, ids(&["1"]));
    assert!(dry.iot.writes().is_empty());
}

#[tokio::test]
async fn the_restrictive_document_flagged_itself_is_left_alone() {
    let app = on_fake(
        FakeIot::new(fleet(&[RESTRICTIVE_DOCUMENT], 1)),
        config(false, false),
    );
    let report = run(&app, "1").await;
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            reason: SkipReason::RestrictiveDocumentFlagged
        }
    );
    assert_eq!(app.iot.calls().len(), 1);
}

#[tokio::test]
async fn a_stale_finding_and_a_gone_policy_cost_one_read() {
    let app_stale = on_fake(
        FakeIot::new(fleet(&[PERMISSIVE, OTHER], 2)),
        config(false, false),
    );
    let report = run(&app_stale, "1").await;
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            reason: SkipReason::StaleFinding
        }
    );
    assert_eq!(report.default_version_id.as_deref(), Some("2"));
    assert_eq!(app_stale.iot.calls().len(), 1);

    let gone = on_fake(FakeIot::new(Fleet::default()), config(false, false));
    let report = run(&gone, "1").await;
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            reason: SkipReason::PolicyNotFound
        }
    );
    assert_eq!(report.default_version_id, None);
}

#[tokio::test]
async fn an_error_fails_the_policy_with_what_was_done() {
    let iot = FakeIot::new(fleet(&[PERMISSIVE], 1));
    iot.fail_next(Operation::DeletePolicyVersion, IotErrorKind::Other);
    let app = on_fake(iot, config(false, false));
    let report = run(&app, "1").await;
    assert!(
        failed(&report).starts_with("DeletePolicyVersion: "),
        "{report:?}"
    );
    assert_eq!(report.new_version_id.as_deref(), Some("2"));
    assert_eq!(report.replaced_document.as_deref(), Some(PERMISSIVE));

    let iot = FakeIot::new(fleet(&[PERMISSIVE], 1));
    iot.fail_next(Operation::GetPolicy, IotErrorKind::Other);
    let unread = on_fake(iot, config(false, false));
    let report = run(&unread, "1").await;
    assert!(failed(&report).starts_with("GetPolicy: "), "{report:?}");
    assert!(unread.iot.writes().is_empty());
}

#[tokio::test]
async fn a_panic_costs_one_policy() {
    let mut fleet = fleet(&[PERMISSIVE], 1);
    fleet.create("WS_AUDIT_bug", PERMISSIVE, true).unwrap();
    let iot = FakeIot::new(fleet).with_hook(|op, name, _| {
        if op == Operation::GetPolicy && name == "WS_AUDIT_bug" {
            panic!("a bug");
        }
    });
    let app = on_fake(iot, config(false, false));
    // One slot: the good policy can start only once the panicked task gave its slot back.
    let mut pool: Pool<&str> = Pool::new(1);
    let bug = Target {
        policy: PolicyVersionRef {
            policy_name: "WS_AUDIT_bug".into(),
            version_id: "1".into(),
        },
        ..target("1")
    };
    assert!(pool.start(&app, "bug", bug, Cutoff::NONE).await.is_none());
    let second = pool.start(&app, "good", target("1"), Cutoff::NONE);
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), second).await;
    assert!(second.expect("the slot came back").is_none());
    let mut results = Vec::new();
    pool.rest(|tag, report| results.push((tag, report))).await;
    results.sort_by_key(|(tag, _)| *tag);
    let (tag, report) = &results[0];
    assert_eq!(*tag, "bug");
    assert_eq!(report.policy_name.as_deref(), Some("WS_AUDIT_bug"));
    assert_eq!(failed(report), "internal error: the remediation panicked");
    assert_eq!(results[1].1.outcome, Outcome::Remediated);
    assert_eq!(state(&app), [(2, true, true)]);
}

#[tokio::test]
async fn past_the_cutoff_nothing_starts() {
    let app = on_fake(FakeIot::new(fleet(&[PERMISSIVE], 1)), config(false, false));
    let mut pool: Pool<()> = Pool::new(1);
    let past = Cutoff::at(std::time::Instant::now());
    let (_, report) = pool.start(&app, (), target("1"), past).await.unwrap();
    assert_eq!(report.outcome, Outcome::Deferred);
    assert!(app.iot.calls().is_empty());
}

#[tokio::test]
async fn the_blast_radius_is_one_page_of_targets() {
    for (attached, dry_run, expected) in [
        (3, false, (Some(3), false)),
        (300, false, (Some(250), true)),
        (3, true, (Some(3), false)),
    ] {
        let mut fleet = fleet(&[PERMISSIVE], 1);
        fleet.targets.insert(NAME.into(), attached);
        let app = on_fake(FakeIot::new(fleet), config(true, dry_run));
        let report = run(&app, "1").await;
        assert_eq!(
            (report.target_count, report.more_targets),
            expected,
            "{report:?}"
        );
    }
    // A count that cannot be read costs the report its count, not the policy its remediation.
    let iot = FakeIot::new(fleet(&[PERMISSIVE], 1));
    iot.fail_next(Operation::ListTargetsForPolicy, IotErrorKind::Other);
    let app = on_fake(iot, config(true, false));
    let report = run(&app, "1").await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(report.target_count, None);
}

fn rollback_context() -> RollbackContext {
    RollbackContext {
        task_id: "t1".into(),
        reason: Some("devices offline".into()),
    }
}

async fn undo(app: &Arc<App<FakeIot>>, version: &str) -> FindingReport {
    roll_back(app, &rollback_context(), target(version)).await
}

fn flagged_version(version: &str) -> PolicyVersionRef {
    target(version).policy
}

#[tokio::test]
async fn a_kept_remediation_is_rolled_back_and_its_finding_suppressed() {
    let app = on_fake(FakeIot::new(fleet(&[PERMISSIVE], 1)), config(true, false));
    assert_eq!(run(&app, "1").await.outcome, Outcome::Remediated);
    let report = undo(&app, "1").await;
    assert_eq!(report.outcome, Outcome::RolledBack);
    assert_eq!(report.default_version_id.as_deref(), Some("2"));
    assert_eq!(report.deleted_version_ids, ids(&["2"]));
    assert_eq!(state(&app), [(1, true, false)]);
    let (expires, description) = app.iot.fleet().suppressions[&flagged_version("1")].clone();
    let in_30_days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 30 * 86_400;
    assert!(
        (expires - in_30_days).abs() < 60,
        "{expires} vs {in_30_days}"
    );
    assert!(description.contains("devices offline") && description.contains("t1"));
    assert_eq!(
        report.suppressed_until,
        Some(crate::domain::civil_date(expires))
    );

    // A second identical rollback changes nothing.
    let before = app.iot.writes().len();
    let again = undo(&app, "1").await;
    assert_eq!(
        again.outcome,
        Outcome::Skipped {
            reason: SkipReason::NotRemediated
        }
    );
    assert_eq!(app.iot.writes().len(), before);
}

#[tokio::test]
async fn a_deleted_version_cannot_be_rolled_back() {
    let app = on_fake(FakeIot::new(fleet(&[PERMISSIVE], 1)), config(false, false));
    run(&app, "1").await;
    let writes = app.iot.writes().len();
    let report = undo(&app, "1").await;
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            reason: SkipReason::RollbackUnavailable
        }
    );
    assert_eq!(app.iot.writes().len(), writes, "no write");
}

#[tokio::test]
async fn a_policy_changed_by_hand_since_is_not_rolled_back() {
    let app = on_fake(
        FakeIot::new(fleet(&[PERMISSIVE, OTHER], 2)),
        config(true, false),
    );
    let report = undo(&app, "1").await;
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            reason: SkipReason::NotRemediated
        }
    );
    assert!(app.iot.writes().is_empty());
}

#[tokio::test]
async fn a_dry_run_rollback_writes_nothing() {
    let app = on_fake(
        FakeIot::new(fleet(&[PERMISSIVE, RESTRICTIVE_DOCUMENT], 2)),
        config(true, true),
    );
    let report = undo(&app, "1").await;
    assert_eq!(report.outcome, Outcome::WouldRollBack);
    assert_eq!(report.would_delete_version_ids, ids(&["2"]));
    assert!(app.iot.writes().is_empty());
    assert_eq!(state(&app), [(1, false, false), (2, true, true)]);
}

#[tokio::test]
async fn an_existing_suppression_is_renewed_and_none_is_made_when_off() {
    let mut with_old = fleet(&[PERMISSIVE, RESTRICTIVE_DOCUMENT], 2);
    with_old
        .suppressions
        .insert(flagged_version("1"), (1, "old".into()));
    let app = on_fake(FakeIot::new(with_old), config(true, false));
    assert_eq!(undo(&app, "1").await.outcome, Outcome::RolledBack);
    let (expires, description) = app.iot.fleet().suppressions[&flagged_version("1")].clone();
    assert!(expires > 1 && description.contains("devices offline"));
    assert!(app
        .iot
        .writes()
        .contains(&Operation::UpdateAuditSuppression));

    let off = Config {
        rollback_suppression_days: 0,
        ..config(true, false)
    };
    let app = on_fake(
        FakeIot::new(fleet(&[PERMISSIVE, RESTRICTIVE_DOCUMENT], 2)),
        off,
    );
    assert_eq!(undo(&app, "1").await.outcome, Outcome::RolledBack);
    assert!(app.iot.fleet().suppressions.is_empty());
    assert!(!app
        .iot
        .calls()
        .iter()
        .any(|(op, _)| *op == Operation::DescribeAuditSuppression));
}

#[tokio::test]
async fn a_failed_suppression_restores_nothing_and_the_retry_rolls_back() {
    let iot = FakeIot::new(fleet(&[PERMISSIVE, RESTRICTIVE_DOCUMENT], 2));
    iot.fail_next(Operation::CreateAuditSuppression, IotErrorKind::Other);
    let app = on_fake(iot, config(true, false));
    let report = undo(&app, "1").await;
    assert!(
        failed(&report).starts_with("CreateAuditSuppression: "),
        "{report:?}"
    );
    assert!(report.deleted_version_ids.is_empty());
    assert_eq!(
        state(&app),
        [(1, false, false), (2, true, true)],
        "nothing restored"
    );
    // Lambda's retry starts over, and this time all of it is done.
    let retry = undo(&app, "1").await;
    assert_eq!(retry.outcome, Outcome::RolledBack);
    assert_eq!(state(&app), [(1, true, false)]);
    assert!(app
        .iot
        .fleet()
        .suppressions
        .contains_key(&flagged_version("1")));
}

#[tokio::test]
async fn a_policy_never_remediated_is_neither_restored_nor_suppressed() {
    // A dry run, a deferred or failed policy, a job not yet run: the flagged version is the
    // default and permissive. A rollback of the whole task writes nothing for it.
    let app = on_fake(FakeIot::new(fleet(&[PERMISSIVE], 1)), config(true, false));
    let report = undo(&app, "1").await;
    assert_eq!(
        report.outcome,
        Outcome::Skipped {
            reason: SkipReason::NotRemediated
        }
    );
    assert!(app.iot.writes().is_empty());
    assert!(app.iot.fleet().suppressions.is_empty());
}

/// A fleet with the policy and, when `backed`, the finding `f-1` naming its version 1.
fn job_fleet(backed: bool) -> Fleet {
    let mut fleet = fleet(&[PERMISSIVE], 1);
    if backed {
        let finding = crate::domain::Finding {
            finding_id: Some("f-1".into()),
            resource_type: Some(crate::domain::IOT_POLICY.into()),
            policy: Some(target("1").policy),
            is_suppressed: false,
        };
        let described = crate::domain::DescribedFinding {
            check_name: Some(crate::domain::OVERLY_PERMISSIVE_CHECK.into()),
            finding,
        };
        fleet.findings.insert("f-1".into(), described);
    }
    fleet
}

#[tokio::test]
async fn a_job_its_finding_backs_is_remediated() {
    let app = on_fake(FakeIot::new(job_fleet(true)), config(true, false));
    let report = remediate_job(&app, target("1")).await;
    assert_eq!(report.outcome, Outcome::Remediated);
    assert_eq!(
        app.iot.calls()[0],
        (Operation::DescribeAuditFinding, "-".into())
    );
    assert_eq!(state(&app), vec![(1, false, false), (2, true, true)]);
}

#[tokio::test]
async fn an_unbacked_job_costs_one_read_and_writes_nothing() {
    let unverified = Outcome::Skipped {
        reason: SkipReason::UnverifiedJob,
    };
    let app = on_fake(FakeIot::new(job_fleet(false)), config(true, false));
    assert_eq!(remediate_job(&app, target("1")).await.outcome, unverified);
    assert_eq!(
        app.iot.calls(),
        vec![(Operation::DescribeAuditFinding, "-".into())]
    );
    let anonymous = Target {
        finding_id: None,
        ..target("1")
    };
    assert_eq!(remediate_job(&app, anonymous).await.outcome, unverified);
    assert_eq!(app.iot.calls().len(), 1, "no findingId: no call at all");
    // A read that fails is no verdict: the job fails, so that it comes back.
    let app = on_fake(FakeIot::new(job_fleet(true)), config(true, false));
    app.iot
        .fail_next(Operation::DescribeAuditFinding, IotErrorKind::Other);
    assert!(failed(&remediate_job(&app, target("1")).await).contains("DescribeAuditFinding"));
    assert!(app.iot.writes().is_empty());
}

/// Placement (SPEC §11) without the clients of other accounts: the function's own account and
/// region is this application; anything else is refused, never worked here with its own keys.
#[tokio::test]
async fn without_scopes_only_the_home_is_served() {
    let app = on_fake(FakeIot::new(Fleet::default()), Config::default());
    let other = || app.for_audit(Some("111111111111"), Some("eu-west-1"), "t");
    // No function ARN yet: every audit is this application's (the doors' tests run so).
    assert!(Arc::ptr_eq(&other().await.unwrap(), &app));
    app.home.set(app_home()).unwrap();
    let own = app.for_audit(None, None, "t").await.unwrap();
    assert!(Arc::ptr_eq(&own, &app));
    let refused = refusal(other().await);
    assert!(matches!(refused, ScopeError::Foreign(_)), "{refused}");
    let config = Config {
        member: Some(crate::config::MemberConfig {
            role_name: "Remediator".into(),
            external_id: None,
        }),
        ..Config::default()
    };
    let app = on_fake(FakeIot::new(Fleet::default()), config);
    app.home.set(app_home()).unwrap();
    let refused = refusal(app.for_audit(Some("111111111111"), None, "t").await);
    assert!(matches!(refused, ScopeError::NotServed(..)), "{refused}");
    assert!(
        refused.to_string().starts_with("foreign_account: "),
        "{refused}"
    );
    let region = refusal(app.for_audit(None, Some("eu-west-1"), "t").await);
    assert!(matches!(region, ScopeError::NotServed(..)), "{region}");
}

fn app_home() -> crate::domain::Home {
    crate::domain::Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:f")
        .unwrap()
}

fn refusal<T>(placed: Result<T, ScopeError>) -> ScopeError {
    match placed {
        Ok(_) => panic!("placed, not refused"),
        Err(e) => e,
    }
}
