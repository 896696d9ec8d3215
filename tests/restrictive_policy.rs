//! Proves what the shipped restrictive document allows, with a small evaluator of IoT policy
//! resources: a device may use its own classic shadow and nothing of another thing's, and the
//! widely copied variant (Subscribe and Receive both on `topicfilter/`) never receives.

use iot_audit_remediator::domain::RESTRICTIVE_DOCUMENT;
use serde_json::Value;

/// The workshop policy: `iot:Receive` sits on a `topicfilter/` ARN, where it never matches.
const WIDELY_COPIED: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "iot:Connect",
     "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}",
     "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
    {"Effect": "Allow", "Action": "iot:Publish",
     "Resource": ["arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/update",
                  "arn:aws:iot:*:*:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/get"]},
    {"Effect": "Allow", "Action": ["iot:Subscribe", "iot:Receive"],
     "Resource": "arn:aws:iot:*:*:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"}
  ]
}"#;

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

/// The connection an authorisation is evaluated for.
struct Device<'a> {
    thing: &'a str,
    attached: bool,
}

/// IoT authorises each action against one resource type.
fn resource_arn(action: &str, name: &str) -> String {
    let kind = match action {
        "iot:Connect" => "client",
        "iot:Publish" | "iot:Receive" => "topic",
        "iot:Subscribe" => "topicfilter",
        other => panic!("no resource type for {other}"),
    };
    format!("arn:aws:iot:{REGION}:{ACCOUNT}:{kind}/{name}")
}

fn one_or_many(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// `*` matches any run of characters, everything else itself.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|i| {
                    let tail = &text[head.len() + i..];
                    wildcard_match(rest, tail)
                })
        }
    }
}

/// The only condition these documents use.
fn conditions_hold(statement: &Value, device: &Device) -> bool {
    match statement.get("Condition") {
        None => true,
        Some(c) => match c.pointer("/Bool/iot:Connection.Thing.IsAttached") {
            Some(Value::String(v)) => (v == "true") == device.attached,
            _ => panic!("condition not understood by this evaluator: {c}"),
        },
    }
}

fn allows(document: &str, device: &Device, action: &str, name: &str) -> bool {
    let doc: Value = serde_json::from_str(document).unwrap();
    let arn = resource_arn(action, name);
    doc["Statement"].as_array().unwrap().iter().any(|s| {
        s["Effect"] == "Allow"
            && one_or_many(&s["Action"]).contains(&action)
            && conditions_hold(s, device)
            && one_or_many(&s["Resource"]).iter().any(|r| {
                let r = r.replace("${iot:Connection.Thing.ThingName}", device.thing);
                wildcard_match(&r, &arn)
            })
    })
}

const A: Device = Device {
    thing: "thing-a",
    attached: true,
};

fn shadow(thing: &str, rest: &str) -> String {
    format!("$aws/things/{thing}/shadow/{rest}")
}

#[test]
fn evaluator_sanity() {
    assert!(wildcard_match("a*c", "abbc"));
    assert!(wildcard_match("a*", "a"));
    assert!(!wildcard_match("a*c", "abd"));
    assert!(wildcard_match("*", "anything/at/all"));
}

#[test]
fn shipped_document_lets_a_thing_use_its_own_shadow() {
    let doc = RESTRICTIVE_DOCUMENT;
    assert!(allows(doc, &A, "iot:Connect", "thing-a"));
    assert!(allows(doc, &A, "iot:Publish", &shadow("thing-a", "update")));
    assert!(allows(doc, &A, "iot:Publish", &shadow("thing-a", "get")));
    for reply in [
        "update/accepted",
        "update/rejected",
        "update/delta",
        "get/accepted",
        "get/rejected",
    ] {
        assert!(
            allows(doc, &A, "iot:Subscribe", &shadow("thing-a", reply)),
            "{reply}"
        );
        assert!(
            allows(doc, &A, "iot:Receive", &shadow("thing-a", reply)),
            "{reply}"
        );
    }
}

#[test]
fn shipped_document_gives_nothing_of_another_thing() {
    let doc = RESTRICTIVE_DOCUMENT;
    assert!(!allows(doc, &A, "iot:Connect", "thing-b"));
    assert!(!allows(
        doc,
        &Device {
            thing: "thing-a",
            attached: false
        },
        "iot:Connect",
        "thing-a"
    ));
    assert!(!allows(
        doc,
        &A,
        "iot:Publish",
        &shadow("thing-b", "update")
    ));
    assert!(!allows(
        doc,
        &A,
        "iot:Subscribe",
        &shadow("thing-b", "update/accepted")
    ));
    assert!(!allows(
        doc,
        &A,
        "iot:Receive",
        &shadow("thing-b", "update/accepted")
    ));
    assert!(!allows(
        doc,
        &A,
        "iot:Subscribe",
        "$aws/things/+/shadow/update/accepted"
    ));
    assert!(!allows(doc, &A, "iot:Subscribe", "#"));
    assert!(!allows(
        doc,
        &A,
        "iot:Publish",
        "$aws/things/thing-a/jobs/get"
    ));
    assert!(!allows(doc, &A, "iot:Publish", "telemetry/thing-a"));
}

#[test]
fn widely_copied_document_never_receives_its_shadow_replies() {
    let reply = shadow("thing-a", "update/accepted");
    assert!(allows(WIDELY_COPIED, &A, "iot:Subscribe", &reply));
    assert!(
        !allows(WIDELY_COPIED, &A, "iot:Receive", &reply),
        "Receive is checked against topic/, not topicfilter/"
    );
    assert!(allows(RESTRICTIVE_DOCUMENT, &A, "iot:Receive", &reply));
}
