//! Many accounts and regions (SPEC §11) against the local endpoint: moto's STS hands out
//! credentials that act in the assumed role's account, and moto keeps regions apart.

mod common;

use common::*;
use iot_audit_remediator::aws::{Connector, Throttles};
use iot_audit_remediator::domain::{Credentials, Placement, Scope};
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::rollback::handle_rollback;
use iot_audit_remediator::entry::sns::handle_event;
use iot_audit_remediator::entry::sqs::handle_jobs;

const MEMBER: &str = "111111111111";

fn placement(account: &str, region: &str, credentials: Credentials) -> Placement {
    Placement {
        scope: Scope {
            account: account.into(),
            region: region.into(),
        },
        credentials,
    }
}

/// The connector's clients call where their placement says: the function's own account in
/// another region with its own keys; a member account through the member role, assumed with
/// the session name and external id asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_placement_calls_in_its_own_account_and_region() {
    let emu = Emulator::start();
    let connector = Connector::new(
        emu.sdk_config().await,
        Throttles::default(),
        Some("ext-1".into()),
    );
    let role_arn = format!("arn:aws:iam::{MEMBER}:role/Remediator");
    let member = placement(
        MEMBER,
        "eu-west-1",
        Credentials::Member {
            role_arn: role_arn.clone(),
        },
    );
    let own = placement(DEFAULT_ACCOUNT, "eu-west-1", Credentials::Own);
    let member_iot = connector.iot(&member, "remediator@task-1").await;
    let own_iot = connector.iot(&own, "unused").await;
    create_policy(&member_iot, "WS_AUDIT_Member", PERMISSIVE).await;
    create_policy(&own_iot, "WS_AUDIT_Own", PERMISSIVE).await;

    let requests = emu.requests();
    let of = |policy: &str| {
        let r = requests
            .iter()
            .find(|r| r["policyName"] == policy)
            .unwrap_or_else(|| panic!("no call for {policy}: {requests:#?}"));
        (
            r["account"].as_str().unwrap().to_owned(),
            r["region"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(of("WS_AUDIT_Member"), (MEMBER.into(), "eu-west-1".into()));
    assert_eq!(
        of("WS_AUDIT_Own"),
        (DEFAULT_ACCOUNT.into(), "eu-west-1".into())
    );
    let assumed: Vec<_> = requests
        .iter()
        .filter(|r| r["operation"] == "AssumeRole")
        .collect();
    assert_eq!(
        assumed.len(),
        1,
        "one session for the member, none for the own account"
    );
    assert_eq!(assumed[0]["roleArn"], role_arn.as_str());
    assert_eq!(assumed[0]["roleSessionName"], "remediator@task-1");
    assert_eq!(assumed[0]["externalId"], "ext-1");
    // Nothing of either landed in the function's home region.
    let home = emu.client();
    assert!(home
        .get_policy()
        .policy_name("WS_AUDIT_Own")
        .send()
        .await
        .is_err());
}

const MEMBER_B: &str = "222222222222";

fn with_member_role(role: Option<&str>) -> iot_audit_remediator::config::Config {
    iot_audit_remediator::config::Config {
        member: role.map(|name| iot_audit_remediator::config::MemberConfig {
            role_name: name.into(),
            external_id: None,
        }),
        ..deleting_config()
    }
}

/// Where an audit ran: account, region, task, and the one permissive policy it found.
type Audit = (&'static str, &'static str, &'static str, &'static str);

/// Audits of the function's own account, member A in us-east-1 and member B in eu-west-1.
const THREE: [Audit; 3] = [
    (DEFAULT_ACCOUNT, "us-east-1", "t-own", "WS_AUDIT_Own"),
    (MEMBER, "us-east-1", "t-a", "WS_AUDIT_A"),
    (MEMBER_B, "eu-west-1", "t-b", "WS_AUDIT_B"),
];

/// Each audit's policy, permissive, in its account and region, and its finding there; then a
/// clean request log.
async fn seed_audits(emu: &Emulator, audits: &[Audit]) {
    for &(account, region, task, policy) in audits {
        let iot = emu.member_client(account, region).await;
        create_policy(&iot, policy, PERMISSIVE).await;
        emu.seed_findings_in(account, region, vec![finding(task, policy, "1")]);
    }
    emu.clear_requests();
}

/// One SNS event with a record of each audit.
fn event_of(audits: &[Audit]) -> serde_json::Value {
    let records: Vec<_> = audits
        .iter()
        .map(|&(account, region, task, _)| audit_record(account, region, task, 1))
        .collect();
    serde_json::json!({ "Records": records })
}

/// SPEC §11 end to end: one SNS event with audits of the function's own account, member A in
/// us-east-1 and member B in eu-west-1: each remediated in its own account and region, with
/// the credentials of that account; nothing of one touched by another's findings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_of_three_accounts_are_each_remediated_where_they_ran() {
    let emu = Emulator::start();
    seed_audits(&emu, &THREE).await;
    let app = emu
        .org_app(with_member_role(Some("Remediator")), HOME_FUNCTION)
        .await;
    let report = handle_event(&app, &event_of(&THREE), Cutoff::NONE)
        .await
        .unwrap();
    assert_eq!(report.totals.remediated, 3, "{report:#?}");
    let requests = emu.requests();
    for (account, region, _, policy) in THREE {
        let iot = emu.member_client(account, region).await;
        assert_remediated(&iot, policy, false).await;
    }
    assert_each_call_where_its_audit_ran(&requests, &THREE);
    let assumed: Vec<&str> = requests
        .iter()
        .filter(|r| r["operation"] == "AssumeRole")
        .filter_map(|r| r["roleArn"].as_str())
        .collect();
    assert!(
        assumed.contains(&"arn:aws:iam::111111111111:role/Remediator"),
        "{assumed:?}"
    );
    assert!(
        assumed.contains(&"arn:aws:iam::222222222222:role/Remediator"),
        "{assumed:?}"
    );
    assert!(
        !assumed.iter().any(|a| a.contains(DEFAULT_ACCOUNT)),
        "own account: no role"
    );
}

/// Without `MEMBER_ROLE_NAME` another account's audit is rejected (`foreign_account`) with no
/// call; the function's own audit in the same event is remediated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_member_role_a_foreign_audit_is_rejected_with_no_call() {
    let emu = Emulator::start();
    create_policy(&emu.client(), "WS_AUDIT_Own", PERMISSIVE).await;
    emu.seed_findings(vec![finding("t-own", "WS_AUDIT_Own", "1")]);
    emu.seed_findings_in(MEMBER, "us-east-1", vec![finding("t-a", "WS_AUDIT_A", "1")]);
    emu.clear_requests();
    let app = emu.org_app(with_member_role(None), HOME_FUNCTION).await;
    let event = serde_json::json!({"Records": [
        audit_record(DEFAULT_ACCOUNT, "us-east-1", "t-own", 1),
        audit_record(MEMBER, "us-east-1", "t-a", 1),
    ]});
    let report = handle_event(&app, &event, Cutoff::NONE).await.unwrap();
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["records"][0]["outcome"], "processed");
    assert_eq!(v["records"][1]["outcome"], "rejected");
    assert!(
        v["records"][1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("foreign_account"),
        "{v}"
    );
    assert_eq!(report.totals.remediated, 1);
    let foreign: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r["account"] == MEMBER)
        .collect();
    assert!(foreign.is_empty(), "{foreign:#?}");
    assert_eq!(emu.count("ListAuditFindings"), 1, "the own audit's only");
}

/// `role` was asked for once and refused (not retried: the record fails at once, and the
/// event's retry asks again), and no other call landed in its account, or in its region
/// (where the audit's calls would have gone with the function's own keys).
fn assert_refused_once(requests: &[serde_json::Value], role: &str, account: &str, region: &str) {
    let tried: Vec<_> = requests.iter().filter(|r| r["roleArn"] == role).collect();
    assert_eq!(tried.len(), 1, "{tried:#?}");
    assert_eq!(
        (&tried[0]["status"], &tried[0]["fault"]),
        (&403.into(), &"denied".into())
    );
    let strays: Vec<_> = requests
        .iter()
        .filter(|r| r["operation"] != "AssumeRole")
        .filter(|r| r["account"] == account || r["region"] == region)
        .collect();
    assert!(strays.is_empty(), "{strays:#?}");
}

/// An `AssumeRole` that fails fails that audit's record, not the others (issue #12): member
/// B's role is refused; the own and member A audits are remediated where they ran, B's
/// listing fails on the refused role with no call in B's account, and the invocation errors
/// so that Lambda retries the event. The retry, once the role can be assumed, finishes B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_role_that_cannot_be_assumed_fails_that_record_only() {
    let emu = Emulator::start();
    seed_audits(&emu, &THREE).await;
    let refused = format!("arn:aws:iam::{MEMBER_B}:role/Remediator");
    emu.faults(serde_json::json!({ "unassumable_roles": [refused] }));
    let app = emu
        .org_app(with_member_role(Some("Remediator")), HOME_FUNCTION)
        .await;
    let err = handle_event(&app, &event_of(&THREE), Cutoff::NONE)
        .await
        .unwrap_err();
    let requests = emu.requests();
    assert_eq!(
        (err.failed, err.deferred, err.listing_errors, err.remediated),
        (0, 0, 1, 2)
    );
    let v = serde_json::to_value(&err.report).unwrap();
    for (record, audit) in v["records"].as_array().unwrap().iter().zip(THREE) {
        assert_eq!(record["outcome"], "processed", "{record}");
        let remediated = usize::from(audit.0 != MEMBER_B);
        assert_eq!(record["totals"]["remediated"], remediated, "{record}");
    }
    // B's findings were never listed: its first call failed on the refused role.
    let b = &v["records"][2];
    assert_eq!(b["findings"], serde_json::json!([]), "{b}");
    let error = b["checks"][0]["listingError"].as_str().unwrap();
    assert!(error.starts_with("ListAuditSuppressions: "), "{error}");
    assert!(
        error.contains("AccessDenied") && error.contains(&refused),
        "{error}"
    );
    for &(account, region, _, policy) in &THREE[..2] {
        assert_remediated(&emu.member_client(account, region).await, policy, false).await;
    }
    let (account, region, _, policy) = THREE[2];
    let b_iot = emu.member_client(account, region).await;
    assert_eq!(
        versions(&b_iot, policy).await,
        vec![("1".to_owned(), true, permissive())]
    );

    assert_refused_once(&requests, &refused, account, region);

    // Lambda's retry of the event, in the same process, once the role can be assumed.
    emu.faults(serde_json::json!({}));
    let report = handle_event(&app, &event_of(&THREE), Cutoff::NONE)
        .await
        .unwrap();
    assert_eq!(report.totals.remediated, 1, "{report:#?}");
    assert_remediated(&b_iot, policy, false).await;
}

/// Member credentials are renewed before they expire (SPEC §11): sessions last 15 s and the
/// member's audit, paced at one call per second per operation, about twice that; every
/// policy is remediated, with more than one session and no call refused as expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_member_audit_outlives_its_session_and_calls_go_on() {
    const SESSION_SECONDS: f64 = 15.0;
    const POLICIES: usize = 30;
    let emu = Emulator::start();
    let iot = emu.member_client(MEMBER, "us-east-1").await;
    let names = create_permissive(&iot, "WS_AUDIT_L", POLICIES).await;
    emu.generate_findings_in(MEMBER, "us-east-1", "t-long", "WS_AUDIT_L", POLICIES);
    emu.clear_requests();
    emu.faults(serde_json::json!({ "session_seconds": SESSION_SECONDS }));
    let config = iot_audit_remediator::config::Config {
        api_calls_per_second: 1,
        ..with_member_role(Some("Remediator"))
    };
    let app = emu.org_app(config, HOME_FUNCTION).await;
    let event = serde_json::json!({"Records": [audit_record(MEMBER, "us-east-1", "t-long", 1)]});
    let result = handle_event(&app, &event, Cutoff::NONE).await;
    let log = emu.control("GET", "/_emulator/requests", None);
    let requests = log["requests"].as_array().unwrap();
    let role = format!("arn:aws:iam::{MEMBER}:role/Remediator");
    let sessions: Vec<f64> = requests
        .iter()
        .filter(|r| r["roleArn"] == role.as_str())
        .map(|r| r["end"].as_f64().unwrap())
        .collect();
    let member_calls: Vec<_> = requests.iter().filter(|r| r["account"] == MEMBER).collect();
    let last = member_calls.last().unwrap()["start"].as_f64().unwrap();
    eprintln!(
        "AssumeRole at {sessions:?}; {} member calls, the last at {last}",
        member_calls.len()
    );
    assert!(sessions.len() > 1, "renewed: {sessions:?}");
    // What makes the test mean something: calls went on past the first session's end.
    assert!(last > sessions[0] + SESSION_SECONDS, "{sessions:?} {last}");
    let refused: Vec<_> = member_calls.iter().filter(|r| r["status"] != 200).collect();
    assert!(refused.is_empty(), "{refused:#?}");
    assert_eq!(log["faults"]["expired"], 0, "{}", log["faults"]);
    let report = result.unwrap_or_else(|e| panic!("{:#?}", e.report));
    assert_eq!(report.totals.remediated, POLICIES, "{report:#?}");
    for name in &names {
        assert_remediated(&iot, name, false).await;
    }
}

/// Fan-out across accounts (SPEC §11): the audits of the function's own account and of member
/// B (eu-west-1) are sent to the queue as jobs naming their account and region; one batch
/// holding both accounts' jobs verifies and remediates each in its own account and region, and
/// sends one batch notification per account and region, naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_two_accounts_in_one_batch_are_each_worked_in_their_own() {
    let emu = Emulator::start();
    let two = [THREE[0], THREE[2]];
    seed_audits(&emu, &two).await;
    let sqs = emu.sqs();
    let queues = create_queues(&sqs, "org-jobs", 3, 30).await;
    let (topic, inbox) = topic_with_inbox(&emu).await;
    let config = iot_audit_remediator::config::Config {
        member: with_member_role(Some("Remediator")).member,
        notification_topic_arn: Some(topic),
        ..fanout_config(&queues.url, 2)
    };
    let app = emu.org_app(config, HOME_FUNCTION).await;
    let sent = handle_event(&app, &event_of(&two), Cutoff::NONE)
        .await
        .unwrap();
    assert_eq!(sent.totals.enqueued, 2, "{sent:#?}");
    let bodies = drain_bodies(&sqs, &queues.url).await;
    let mut placed: Vec<(String, String)> = bodies
        .iter()
        .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap())
        .map(|j| (j["accountId"].to_string(), j["region"].to_string()))
        .collect();
    placed.sort();
    let expected = [(DEFAULT_ACCOUNT, "us-east-1"), (MEMBER_B, "eu-west-1")]
        .map(|(a, r)| (format!("{a:?}"), format!("{r:?}")));
    assert_eq!(placed, expected, "{bodies:?}");

    let notified = received(&emu, &inbox).await;
    assert_eq!(notified.len(), 2, "one per audit: {notified:#?}");
    emu.clear_requests();
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            serde_json::json!({"messageId": format!("j{i}"), "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"})
        })
        .collect();
    let report = handle_jobs(&app, &records, Cutoff::NONE).await;
    assert!(
        report.response.batch_item_failures.is_empty(),
        "{report:#?}"
    );
    assert_eq!(report.totals.remediated, 2, "{report:#?}");
    let scopes: Vec<_> = report
        .scopes
        .iter()
        .map(|s| {
            (
                s.account_id.as_str(),
                s.region.as_str(),
                s.totals.remediated,
            )
        })
        .collect();
    assert_eq!(
        scopes,
        [
            (DEFAULT_ACCOUNT, "us-east-1", 1),
            (MEMBER_B, "eu-west-1", 1)
        ]
    );
    for (account, region, _, policy) in two {
        assert_remediated(&emu.member_client(account, region).await, policy, false).await;
    }
    let requests = emu.requests();
    for (account, region, _, _) in two {
        let here = |op: &str| {
            requests
                .iter()
                .filter(|r| r["operation"] == op)
                .filter(|r| r["account"] == account && r["region"] == region)
                .count()
        };
        // Each account's suppressions read once, each job verified against its own finding.
        assert_eq!(here("ListAuditSuppressions"), 1, "{account}: {requests:#?}");
        assert_eq!(here("DescribeAuditFinding"), 1, "{account}: {requests:#?}");
    }
    let mut batches: Vec<(String, String, String)> = received(&emu, &inbox)
        .await
        .iter()
        .map(|n| {
            let summary: serde_json::Value =
                serde_json::from_str(n["Message"].as_str().unwrap()).unwrap();
            let attribute = |name: &str| n["MessageAttributes"][name]["Value"].to_string();
            (
                attribute("kind"),
                attribute("account"),
                summary["region"].to_string(),
            )
        })
        .collect();
    batches.sort();
    let expected = [(DEFAULT_ACCOUNT, "us-east-1"), (MEMBER_B, "eu-west-1")]
        .map(|(a, r)| (r#""batch""#.to_owned(), format!("{a:?}"), format!("{r:?}")));
    assert_eq!(batches, expected);
}

/// An audit whose `accountId` is not its topic's account is rejected (`account_mismatch`)
/// with no call anywhere: a member topic carries only its own account's audits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_from_another_accounts_topic_is_rejected_with_no_call() {
    let emu = Emulator::start();
    seed_audits(&emu, &THREE[..2]).await;
    let app = emu
        .org_app(with_member_role(Some("Remediator")), HOME_FUNCTION)
        .await;
    // Member A's audit, published on a topic of member B's account.
    let mut forged = audit_record(MEMBER, "us-east-1", "t-a", 1);
    forged["Sns"]["TopicArn"] = format!("arn:aws:sns:us-east-1:{MEMBER_B}:audits").into();
    let event = serde_json::json!({"Records": [forged, audit_record(DEFAULT_ACCOUNT, "us-east-1", "t-own", 1)]});
    let report = handle_event(&app, &event, Cutoff::NONE).await.unwrap();
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(v["records"][0]["outcome"], "rejected", "{v}");
    let reason = v["records"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("account_mismatch"), "{reason}");
    assert_eq!(v["records"][1]["totals"]["remediated"], 1, "{v}");
    let strays: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r["account"] != DEFAULT_ACCOUNT)
        .collect();
    assert!(strays.is_empty(), "{strays:#?}");
}

/// A rollback event naming a member account and region (SPEC §11) restores the flagged version
/// there, through the member role, and reports where it worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_names_the_account_and_region_it_undoes() {
    let emu = Emulator::start();
    let b = [THREE[2]];
    seed_audits(&emu, &b).await;
    let config = iot_audit_remediator::config::Config {
        member: with_member_role(Some("Remediator")).member,
        ..test_config()
    };
    let app = emu.org_app(config, HOME_FUNCTION).await;
    let done = handle_event(&app, &event_of(&b), Cutoff::NONE)
        .await
        .unwrap();
    assert_eq!(done.totals.remediated, 1, "{done:#?}");
    let (account, region, task, policy) = b[0];
    let event =
        serde_json::json!({"rollback": {"taskId": task, "accountId": account, "region": region}});
    let report = handle_rollback(&app, &event, Cutoff::NONE).await.unwrap();
    let v = serde_json::to_value(&report).unwrap();
    let record = &v["records"][0];
    assert_eq!(record["totals"]["rolledBack"], 1, "{v}");
    assert_eq!(
        (&record["accountId"], &record["region"]),
        (&account.into(), &region.into())
    );
    let iot = emu.member_client(account, region).await;
    assert_eq!(default_document(&iot, policy).await, permissive());
}

/// SNS → SQS → Lambda across accounts: the SNS envelope a buffer queue carries names the topic,
/// and so the region, of member B's audit, which is worked in B's account and region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_envelope_is_worked_in_its_topics_region() {
    let emu = Emulator::start();
    let b = [THREE[2]];
    seed_audits(&emu, &b).await;
    let app = emu
        .org_app(with_member_role(Some("Remediator")), HOME_FUNCTION)
        .await;
    let (account, region, task, policy) = b[0];
    let envelope = audit_record(account, region, task, 1)["Sns"].to_string();
    let records = [
        serde_json::json!({"messageId": "buffered", "body": envelope,
        "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"}),
    ];
    let report = handle_jobs(&app, &records, Cutoff::NONE).await;
    assert!(
        report.response.batch_item_failures.is_empty(),
        "{report:#?}"
    );
    let v = serde_json::to_value(&report).unwrap();
    let audit = &v["messages"]["records"][0];
    assert_eq!(
        (&audit["accountId"], &audit["region"]),
        (&account.into(), &region.into()),
        "{v}"
    );
    assert_eq!(audit["totals"]["remediated"], 1, "{v}");
    assert_remediated(&emu.member_client(account, region).await, policy, false).await;
}

/// Every call but `AssumeRole` landed in the account and region of one of `audits`, a policy's
/// in its own audit's; each audit's findings were listed there once, its suppressions read once.
fn assert_each_call_where_its_audit_ran(requests: &[serde_json::Value], audits: &[Audit]) {
    let place = |r: &serde_json::Value| (r["account"].to_string(), r["region"].to_string());
    let calls: Vec<_> = requests
        .iter()
        .filter(|r| r["operation"] != "AssumeRole")
        .collect();
    for r in &calls {
        let home = audits
            .iter()
            .find(|a| place(r) == (format!("{:?}", a.0), format!("{:?}", a.1)));
        let home = home.unwrap_or_else(|| panic!("a call outside every audit's place: {r}"));
        if let Some(policy) = r["policyName"].as_str() {
            assert_eq!(policy, home.3, "{r}");
        }
    }
    for &(account, region, _, _) in audits {
        let here = |op: &str| {
            calls
                .iter()
                .filter(|r| {
                    r["operation"] == op && r["account"] == account && r["region"] == region
                })
                .count()
        };
        assert_eq!(here("ListAuditFindings"), 1, "{account} {region}");
        assert_eq!(here("ListAuditSuppressions"), 1, "{account} {region}");
        assert!(here("CreatePolicyVersion") >= 1, "{account} {region}");
    }
}

/// The function's own account in another region is worked with its own keys there, no role;
/// an audit message without `accountId` belongs to its topic's account (member A here), not
/// to the function's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_keys_in_another_region_and_the_topics_account_without_account_id() {
    let emu = Emulator::start();
    let audits: [Audit; 2] = [
        (DEFAULT_ACCOUNT, "eu-west-1", "t-own-eu", "WS_AUDIT_OwnEu"),
        (MEMBER, "us-east-1", "t-a", "WS_AUDIT_A"),
    ];
    seed_audits(&emu, &audits).await;
    let app = emu
        .org_app(with_member_role(Some("Remediator")), HOME_FUNCTION)
        .await;
    let mut event = event_of(&audits);
    let sns = &mut event["Records"][1]["Sns"];
    let mut message: serde_json::Value =
        serde_json::from_str(sns["Message"].as_str().unwrap()).unwrap();
    message.as_object_mut().unwrap().remove("accountId");
    sns["Message"] = message.to_string().into();
    let report = handle_event(&app, &event, Cutoff::NONE).await.unwrap();
    assert_eq!(report.totals.remediated, 2, "{report:#?}");
    let requests = emu.requests();
    assert_each_call_where_its_audit_ran(&requests, &audits);
    let assumed: Vec<_> = requests
        .iter()
        .filter(|r| r["operation"] == "AssumeRole")
        .map(|r| r["roleArn"].as_str().unwrap())
        .collect();
    assert_eq!(assumed, [format!("arn:aws:iam::{MEMBER}:role/Remediator")]);
    for (account, region, _, policy) in audits {
        assert_remediated(&emu.member_client(account, region).await, policy, false).await;
    }
}

/// Without `MEMBER_ROLE_NAME` a job naming another account is rejected and left in
/// `batchItemFailures` (it reaches the dead-letter queue), with no call; the own job is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_member_role_a_foreign_job_goes_to_the_dead_letter_queue() {
    let emu = Emulator::start();
    seed_audits(&emu, &THREE[..1]).await;
    let app = emu.org_app(with_member_role(None), HOME_FUNCTION).await;
    let job = |account: &str, policy: &str, task: &str| {
        let finding_id = finding(task, policy, "1")["findingId"].clone();
        serde_json::json!({"taskId": task, "findingId": finding_id, "policyName": policy,
            "policyVersionId": "1", "accountId": account, "region": "us-east-1"})
    };
    let records: Vec<_> = [
        job(DEFAULT_ACCOUNT, "WS_AUDIT_Own", "t-own"),
        job(MEMBER, "WS_AUDIT_A", "t-a"),
    ]
    .iter()
    .enumerate()
    .map(|(i, body)| {
        serde_json::json!({"messageId": format!("j{i}"), "body": body.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"})
    })
    .collect();
    let report = handle_jobs(&app, &records, Cutoff::NONE).await;
    let failed: Vec<_> = report
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["j1"], "{report:#?}");
    assert_eq!((report.rejected, report.totals.remediated), (1, 1));
    let foreign: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r["account"] != DEFAULT_ACCOUNT)
        .collect();
    assert!(foreign.is_empty(), "{foreign:#?}");
}
