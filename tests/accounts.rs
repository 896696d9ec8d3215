//! Many accounts and regions (SPEC §11) against the local endpoint: moto's STS hands out
//! credentials that act in the assumed role's account, and moto keeps regions apart.

mod common;

use common::*;
use iot_audit_remediator::aws::{Connector, Throttles};
use iot_audit_remediator::domain::{Credentials, Placement, Scope};

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
