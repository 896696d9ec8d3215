//! Proves what the shipped restrictive document allows, with a small evaluator of IoT policy
//! resources: a device may use its own classic and named shadows and nothing of another thing's
//! nor anything outside them, in each partition it is rendered for, and the widely copied
//! variant (Subscribe and Receive both on `topicfilter/`) never receives.

use iot_audit_remediator::domain::{Partition, RestrictivePolicy, RESTRICTIVE_DOCUMENT};
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

/// IoT authorises each action against one resource type, in the partition it runs in.
fn resource_arn(partition: Partition, action: &str, name: &str) -> String {
    let kind = match action {
        "iot:Connect" => "client",
        "iot:Publish" | "iot:RetainPublish" | "iot:Receive" => "topic",
        "iot:Subscribe" => "topicfilter",
        // The shadow's HTTP API, authorised against the thing.
        "iot:GetThingShadow" | "iot:UpdateThingShadow" | "iot:DeleteThingShadow" => "thing",
        other => panic!("no resource type for {other}"),
    };
    format!("arn:{partition}:iot:{REGION}:{ACCOUNT}:{kind}/{name}")
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

/// In the `aws` partition.
fn allows(document: &str, device: &Device, action: &str, name: &str) -> bool {
    allows_in(Partition::Aws, document, device, action, name)
}

fn allows_in(
    partition: Partition,
    document: &str,
    device: &Device,
    action: &str,
    name: &str,
) -> bool {
    let doc: Value = serde_json::from_str(document).unwrap();
    let arn = resource_arn(partition, action, name);
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

/// The topic roots of a thing's shadows: the classic one and two named ones.
fn shadows(thing: &str) -> [String; 3] {
    let root = format!("$aws/things/{thing}/shadow");
    [
        root.clone(),
        format!("{root}/name/config"),
        format!("{root}/name/sensor_1"),
    ]
}

/// What a device publishes to a shadow (delete is not granted: see the tests below).
const REQUESTS: [&str; 2] = ["update", "get"];

/// What the shadow service answers on, to the device.
const REPLIES: [&str; 9] = [
    "update/accepted",
    "update/rejected",
    "update/delta",
    "update/documents",
    "get/accepted",
    "get/rejected",
    "delete/accepted",
    "delete/rejected",
    // A filter the device may subscribe to for all of them at once.
    "#",
];

/// Every (action, name) a device uses on `thing`'s shadows: publish requests, subscribe to and
/// receive answers.
fn shadow_uses(thing: &str) -> Vec<(&'static str, String)> {
    let mut uses = Vec::new();
    for root in shadows(thing) {
        for request in REQUESTS {
            uses.push(("iot:Publish", format!("{root}/{request}")));
        }
        for reply in REPLIES {
            uses.push(("iot:Subscribe", format!("{root}/{reply}")));
            if reply != "#" {
                uses.push(("iot:Receive", format!("{root}/{reply}")));
            }
        }
    }
    uses
}

fn shadow(thing: &str, rest: &str) -> String {
    format!("$aws/things/{thing}/shadow/{rest}")
}

#[test]
fn evaluator_sanity() {
    assert!(wildcard_match("a*c", "abbc"));
    assert!(wildcard_match("a*", "a"));
    assert!(!wildcard_match("a*c", "abd"));
    assert!(wildcard_match("*", "anything/at/all"));
    assert!(wildcard_match("x/*/y", "x/a/b/y"));
    assert!(!wildcard_match("x/*/y", "x/y"));
}

#[test]
fn shipped_document_lets_a_thing_use_its_classic_and_named_shadows() {
    let doc = RESTRICTIVE_DOCUMENT;
    assert!(allows(doc, &A, "iot:Connect", "thing-a"));
    let uses = shadow_uses("thing-a");
    assert_eq!(uses.len(), 3 * (2 + 9 + 8));
    for (action, name) in uses {
        assert!(allows(doc, &A, action, &name), "{action} {name}");
    }
}

#[test]
fn shipped_document_gives_nothing_of_another_thing() {
    let doc = RESTRICTIVE_DOCUMENT;
    // Other things, including names that start with A's.
    for thing in ["thing-b", "thing-ab", "thing-a-2", "+"] {
        for (action, name) in shadow_uses(thing) {
            assert!(!allows(doc, &A, action, &name), "{action} {name}");
        }
        assert!(!allows(doc, &A, "iot:Connect", thing), "connect as {thing}");
    }
    for filter in [
        "$aws/things/+/shadow/update/accepted",
        "$aws/things/+/shadow/name/+/update/accepted",
        "$aws/things/#",
        "#",
    ] {
        assert!(!allows(doc, &A, "iot:Subscribe", filter), "{filter}");
    }
    // Not even its own client id without its certificate attached to the thing.
    let detached = Device {
        thing: "thing-a",
        attached: false,
    };
    assert!(!allows(doc, &detached, "iot:Connect", "thing-a"));
}

#[test]
fn shipped_document_gives_nothing_outside_the_shadow_topics() {
    let doc = RESTRICTIVE_DOCUMENT;
    let mut names = vec![
        "$aws/things/thing-a/jobs/get".to_owned(),
        "$aws/things/thing-a/jobs/notify".to_owned(),
        "$aws/things/thing-a/tunnels/notify".to_owned(),
        "$aws/things/thing-a/defender/metrics/json".to_owned(),
        "$aws/things/thing-a/shadow".to_owned(),
        "$aws/things/thing-a/shadowx/update".to_owned(),
        "$aws/events/presence/connected/thing-a".to_owned(),
        "$aws/rules/any_rule".to_owned(),
        "telemetry/thing-a".to_owned(),
        "thing-a".to_owned(),
    ];
    for action in ["iot:Publish", "iot:Subscribe", "iot:Receive"] {
        for name in &names {
            assert!(!allows(doc, &A, action, name), "{action} {name}");
        }
    }
    // A's own shadows, beyond update and get: no delete, no answers forged by the device, no
    // retained messages.
    names.clear();
    for root in shadows("thing-a") {
        names.push(format!("{root}/delete"));
        names.extend(REPLIES.iter().map(|reply| format!("{root}/{reply}")));
    }
    for name in &names {
        assert!(!allows(doc, &A, "iot:Publish", name), "publish {name}");
    }
    for request in REQUESTS {
        let name = shadow("thing-a", request);
        assert!(!allows(doc, &A, "iot:RetainPublish", &name), "{name}");
    }
    // Nor the shadow's HTTP API, nor a client id other than its thing name.
    for action in [
        "iot:GetThingShadow",
        "iot:UpdateThingShadow",
        "iot:DeleteThingShadow",
    ] {
        assert!(!allows(doc, &A, action, "thing-a"), "{action}");
    }
    for client in ["thing-a-1", "other", "*"] {
        assert!(!allows(doc, &A, "iot:Connect", client), "{client}");
    }
}

#[test]
fn each_partition_s_document_grants_the_same_in_its_partition_and_nothing_elsewhere() {
    let partitions = [Partition::Aws, Partition::AwsCn, Partition::AwsUsGov];
    for partition in partitions {
        let rendered = RestrictivePolicy::for_partition(partition).unwrap();
        let doc = rendered.document();
        let mut uses = shadow_uses("thing-a");
        uses.push(("iot:Connect", "thing-a".to_owned()));
        for (action, name) in &uses {
            assert!(
                allows_in(partition, doc, &A, action, name),
                "{partition}: {action} {name}"
            );
            for other in partitions.iter().filter(|&&p| p != partition) {
                assert!(
                    !allows_in(*other, doc, &A, action, name),
                    "the {partition} document in {other}: {action} {name}"
                );
            }
        }
        for (action, name) in shadow_uses("thing-b") {
            assert!(
                !allows_in(partition, doc, &A, action, &name),
                "{partition}: {action} {name}"
            );
        }
    }
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
