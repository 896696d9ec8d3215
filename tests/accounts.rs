//! Many accounts and regions (SPEC §11) against the local endpoint: moto's STS hands out
//! credentials that act in the assumed role's account, and moto keeps regions apart.

mod common;

use common::*;
use iot_audit_remediator::aws::{Connector, Throttles};
use iot_audit_remediator::domain::{Credentials, Placement, Scope};
use iot_audit_remediator::engine::Cutoff;
use iot_audit_remediator::entry::sns::handle_event;

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

/// SPEC §11 end to end: one SNS event with audits of the function's own account, member A in
/// us-east-1 and member B in eu-west-1: each remediated in its own account and region, with
/// the credentials of that account; nothing of one touched by another's findings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_of_three_accounts_are_each_remediated_where_they_ran() {
    let emu = Emulator::start();
    let cases = [
        (DEFAULT_ACCOUNT, "us-east-1", "t-own", "WS_AUDIT_Own"),
        (MEMBER, "us-east-1", "t-a", "WS_AUDIT_A"),
        (MEMBER_B, "eu-west-1", "t-b", "WS_AUDIT_B"),
    ];
    for (account, region, task, policy) in cases {
        let iot = emu.member_client(account, region).await;
        create_policy(&iot, policy, PERMISSIVE).await;
        emu.seed_findings_in(account, region, vec![finding(task, policy, "1")]);
    }
    emu.clear_requests();
    let app = emu
        .org_app(with_member_role(Some("Remediator")), HOME_FUNCTION)
        .await;
    let event = serde_json::json!({"Records": cases.map(|(a, r, t, _)| audit_record(a, r, t, 1))});
    let report = handle_event(&app, &event, Cutoff::NONE).await.unwrap();
    assert_eq!(report.totals.remediated, 3, "{report:#?}");
    let requests = emu.requests();
    for (account, region, _, policy) in cases {
        let iot = emu.member_client(account, region).await;
        assert_remediated(&iot, policy, false).await;
    }
    for r in requests.iter().filter(|r| r["operation"] != "AssumeRole") {
        let Some(policy) = r["policyName"]
            .as_str()
            .filter(|p| p.starts_with("WS_AUDIT_"))
        else {
            continue;
        };
        let (account, region, _, _) = cases.iter().find(|c| c.3 == policy).unwrap();
        assert_eq!(
            (r["account"].as_str(), r["region"].as_str()),
            (Some(*account), Some(*region)),
            "{r}"
        );
    }
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
