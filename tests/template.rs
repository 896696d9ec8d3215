//! The deployment grants exactly what the code needs (SPEC §7), and the three lists stay in step:
//! the IoT calls in `src/aws/`, `iot_audit_remediator::aws::IOT_ACTIONS`, the role in
//! `template.yaml` and the standalone `policies/remediator-iam-policy.json`. Also holds the
//! template's environment to the variables `src/config.rs` reads, with the same defaults, and
//! what it tells people (SPEC §8) to the spec: the encrypted notification topic, the e-mail
//! subscription's filter, the alarms and whom they notify. And who may send what to the
//! function (SPEC §10): the audit topic's and the queues' policies, evaluated for each kind of
//! deployment by a small evaluator of the statement forms they use; the function's own role
//! with no managed policy, logging only to its own, retained, log group; the dead-letter queue
//! of its subscription; the Device Defender roles' confused-deputy conditions. Across accounts
//! (SPEC §11): the central role's `sts:AssumeRole` on the member role's name only, the invoke
//! permissions for member topics, and the member template (`member.yaml`): its role trusting
//! only the central function's role with the external id, with IOT_ACTIONS prefix-scoped; its
//! Device Defender wiring to the central function.
//!
//! `cfn-lint` and `sam validate --lint` (scripts/lint-template.sh) check the template's shape;
//! neither catches a misspelled or extra IAM action, which is what these tests are for.
//!
//! CloudFormation short tags (`!Sub`, `!Ref`, `!If`, ...) parse as YAML tagged values.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use iot_audit_remediator::aws::{IOT_ACTIONS, SNS_ACTIONS, SQS_ACTIONS};
use iot_audit_remediator::config::{
    Config, DEFAULT_API_CALLS_PER_SECOND, DEFAULT_DEADLINE_MARGIN_SECONDS, DEFAULT_FANOUT_WORKERS,
    DEFAULT_MAX_CONCURRENCY, DEFAULT_METRICS_NAMESPACE, DEFAULT_PREFIX,
    DEFAULT_ROLLBACK_SUPPRESSION_DAYS, FANOUT_WORKERS_RANGE, MAX_API_CALLS_PER_SECOND,
    MAX_DEADLINE_MARGIN_SECONDS, MAX_MAX_CONCURRENCY, MAX_ROLLBACK_SUPPRESSION_DAYS,
};
use yaml_serde::Value;

/// The IoT actions that cannot be scoped to a resource: those of IOT_ACTIONS without a resource
/// type in the Service Authorization Reference (AWS IoT), granted on `*`. Every other one has
/// the resource type `policy`.
const UNSCOPED_ACTIONS: &[&str] = &[
    "iot:ListAuditFindings",
    "iot:DescribeAuditFinding",
    "iot:ListAuditSuppressions",
    "iot:DescribeAuditSuppression",
    "iot:CreateAuditSuppression",
    "iot:UpdateAuditSuppression",
];
/// The resource of every other IoT action: the policies whose name has the prefix the code uses.
const POLICY_ARN: &str =
    "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:policy/${TargetPolicyPrefix}*";
/// The same in every region: with the member role (an audit of the function's own account in
/// another region is worked with the function's role there), and the member role's own.
const POLICY_ARN_EVERY_REGION: &str =
    "arn:${AWS::Partition}:iot:*:${AWS::AccountId}:policy/${TargetPolicyPrefix}*";
/// The condition of the central stack's statements across accounts.
const MEMBER_ROLE_CONDITION: &str = "HasMemberRole";
/// What aws-config's assume-role provider calls, and the only role it may be called on.
const ASSUME_ROLE: &str = "sts:AssumeRole";
const MEMBER_ROLE_ARN: &str = "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}";
/// What writing logs needs, besides the IoT actions: no `logs:CreateLogGroup`, the stack (or,
/// without SAM, the operator) creates the group.
const LOGGING_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// The only resource the logging actions may be granted on: the function's own log group.
const LOG_GROUP_ARN: &str = "!GetAtt RemediatorLogGroup.Arn";
/// The same, in the standalone policy's placeholders.
const STANDALONE_LOG_GROUP_ARN: &str =
    "arn:aws:logs:REGION:ACCOUNT_ID:log-group:/aws/lambda/FUNCTION_NAME:*";
/// The function's role, and the one policy attached to it from outside (its logging).
const FUNCTION_ROLE: &str = "RemediatorRole";
const LOGGING_POLICY: &str = "RemediatorLogging";
/// What Lambda's event source mapping needs from the function's role to deliver SQS messages.
const SQS_POLLER_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];
/// The only resource the SQS poller's actions may be granted on; `sqs:SendMessage` is granted
/// on it and on the on-failure destination.
const JOB_QUEUE_ARN: &str = "!GetAtt JobQueue.Arn";
const FAILURE_QUEUE_ARN: &str = "!GetAtt FailureQueue.Arn";
/// The notification topic: the only resource `sns:Publish` may be granted on.
const NOTIFICATION_TOPIC: &str = "NotificationTopic";
/// The standalone policy's notification topic, in placeholders.
const STANDALONE_TOPIC_ARN: &str = "arn:aws:sns:REGION:ACCOUNT_ID:TOPIC_NAME";
/// SDK operations of the SQS and SNS clients, as IAM authorises them.
const SQS_OPERATIONS: &[(&str, &str)] = &[
    ("send_message_batch", "sqs:SendMessage"),
    ("publish", "sns:Publish"),
];
/// The environment the function reads, and the template parameter that feeds each.
const ENV_PARAMETERS: &[(&str, &str)] = &[
    ("TARGET_POLICY_PREFIX", "TargetPolicyPrefix"),
    ("DRY_RUN", "DryRun"),
    ("KEEP_REPLACED_VERSION", "KeepReplacedVersion"),
    ("MAX_CONCURRENCY", "MaxConcurrency"),
    ("DEADLINE_MARGIN_SECONDS", "DeadlineMarginSeconds"),
    ("API_CALLS_PER_SECOND", "ApiCallsPerSecond"),
    ("FANOUT_WORKERS", "FanOutWorkers"),
    ("FANOUT_INLINE_MAX_FINDINGS", "FanOutInlineMaxFindings"),
    ("METRICS_NAMESPACE", "MetricsNamespace"),
    ("ROLLBACK_SUPPRESSION_DAYS", "RollbackSuppressionDays"),
    ("MEMBER_ROLE_NAME", "MemberRoleName"),
    ("MEMBER_EXTERNAL_ID", "MemberExternalId"),
];
/// Set from the queue the stack creates, empty when fan-out is off.
const QUEUE_URL_VARIABLE: &str = "FANOUT_QUEUE_URL";
/// Set from the topic the stack creates.
const TOPIC_ARN_VARIABLE: &str = "NOTIFICATION_TOPIC_ARN";
/// Read by `src/config.rs` but set by Lambda itself (a template may not set `AWS_REGION`, a
/// reserved variable): exactly these are left out of the comparison with the template.
const LAMBDA_PROVIDED_VARIABLES: &[&str] = &["AWS_REGION", "AWS_LAMBDA_LOG_GROUP_NAME"];
/// The fan-out resources, all under the `EnableFanOut` condition.
const FAN_OUT_RESOURCES: &[&str] = &[
    "JobQueue",
    "JobDeadLetterQueue",
    "JobQueuePolicy",
    "JobDeadLetterQueuePolicy",
    "JobEventSourceMapping",
    "JobDeadLetterQueueAlarm",
    "JobsFailedAlarm",
    "JobsDeferredAlarm",
];
/// SPEC §8: the metrics the stack alarms on, and the values of their one dimension, `Mode`.
const ALARMED_METRICS: &[&str] = &["Failed", "Deferred"];
const MODES: &[&str] = &["audit", "jobs", "rollback"];
/// SPEC §8: the values of the notifications' message attributes `kind` and `outcome`.
const KINDS: &[&str] = &["audit", "batch", "rollback"];
const OUTCOMES: &[&str] = &["remediated", "failed", "mixed", "enqueued", "rolled_back"];
/// Methods of `aws_sdk_iot::Client` (or of a clone of it) that are not API operations.
const NOT_OPERATIONS: &[&str] = &["clone", "config", "as_ref", "to_owned"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn template() -> Value {
    yaml_serde::from_str(&read("template.yaml")).expect("template.yaml is valid YAML")
}

/// The member template, deployed to member accounts by a StackSet (SPEC §11).
fn member() -> Value {
    yaml_serde::from_str(&read("member.yaml")).expect("member.yaml is valid YAML")
}

fn function(template: &Value) -> &Value {
    let function = &template["Resources"]["RemediatorFunction"];
    assert_eq!(
        function["Type"].as_str(),
        Some("AWS::Serverless::Function"),
        "template.yaml has no AWS::Serverless::Function named RemediatorFunction"
    );
    function
}

/// `!Tag value` as (tag without `!`, value); `None` for an untagged value.
fn tagged(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        _ => None,
    }
}

/// An untagged string. (`Value::as_str` looks through tags: `!Sub x` would pass as `x`.)
fn plain(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// A scalar as text (YAML reads `4` as a number and `"false"` as a string).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One or a list of values, as CloudFormation and IAM allow for `Action` and `Resource`.
fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => vec![],
        other => vec![other],
    }
}

/// A resource as comparable text: `*`, a literal ARN, or `!Sub <pattern>`. Anything else
/// (`!If`, `!Join`, `!GetAtt`) is spelled out so that it can only match by being the same.
fn resource_text(value: &Value) -> String {
    if let Some(s) = plain(value) {
        return s.to_owned();
    }
    match tagged(value) {
        Some((tag, Value::String(pattern))) if tag == "Sub" => format!("!Sub {pattern}"),
        Some((tag, Value::String(attribute))) if tag == "GetAtt" => format!("!GetAtt {attribute}"),
        Some((tag, Value::String(name))) if tag == "Ref" => format!("!Ref {name}"),
        _ => match value.get("Fn::Sub").and_then(plain) {
            Some(s) => format!("!Sub {s}"),
            None => format!("{value:?}"),
        },
    }
}

/// Action → the resources it is allowed on, from a list of IAM statements. Only plain `Allow`
/// statements with `Action` and `Resource` are accepted: `NotAction`, `NotResource` or a
/// `Deny` in a role this small is a sign that something else is going on.
fn grants(statements: &[&Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for &statement in statements {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{statement:?}");
        for key in ["NotAction", "NotResource", "Principal", "NotPrincipal"] {
            assert!(statement.get(key).is_none(), "{key} in {statement:?}");
        }
        let actions = one_or_many(&statement["Action"]);
        let resources = one_or_many(&statement["Resource"]);
        assert!(
            !actions.is_empty() && !resources.is_empty(),
            "{statement:?}"
        );
        for action in actions {
            let action = plain(action)
                .unwrap_or_else(|| panic!("an action is not a plain string: {action:?}"));
            let entry = grants.entry(action.to_owned()).or_default();
            entry.extend(resources.iter().copied().map(resource_text));
        }
    }
    grants
}

/// The statements of a document; a conditional one (`!If [cond, statement, !Ref AWS::NoValue]`)
/// counts as granted.
fn statements(document: &Value) -> Vec<&Value> {
    statements_unless(document, None)
}

/// The statements of a document, less those under the condition `skipped` (the single-account
/// deployment's, with `Some(MEMBER_ROLE_CONDITION)`); every other conditional one counts.
fn statements_unless<'a>(document: &'a Value, skipped: Option<&str>) -> Vec<&'a Value> {
    let statements: Vec<&Value> = one_or_many(&document["Statement"])
        .into_iter()
        .filter_map(|statement| match tagged(statement) {
            Some((tag, Value::Sequence(branches))) if tag == "If" => {
                assert_eq!(branches.len(), 3, "{statement:?}");
                assert!(
                    matches!(tagged(&branches[2]), Some((t, v)) if t == "Ref" && v.as_str() == Some("AWS::NoValue")),
                    "a conditional statement's else branch must be AWS::NoValue: {statement:?}"
                );
                (branches[0].as_str() != skipped).then_some(&branches[1])
            }
            _ => Some(statement),
        })
        .collect();
    assert!(
        !statements.is_empty(),
        "a policy document without statements: {document:?}"
    );
    statements
}

/// The grants of the function's role: the inline documents of [`FUNCTION_ROLE`] and of the
/// one `AWS::IAM::RolePolicy` attached to it, [`LOGGING_POLICY`]. The function takes that role
/// (no SAM `Policies`, so no SAM-made role with the managed basic execution policy, whose
/// logging is on every log group of the account); the role has no managed policy at all. Less
/// the statements under the condition `skipped`, if any (see [`statements_unless`]).
fn function_grants_unless(
    template: &Value,
    skipped: Option<&str>,
) -> BTreeMap<String, BTreeSet<String>> {
    let props = &function(template)["Properties"];
    assert_eq!(
        resource_text(&props["Role"]),
        format!("!GetAtt {FUNCTION_ROLE}.Arn"),
        "RemediatorFunction must take the stack's {FUNCTION_ROLE}"
    );
    assert!(
        props.get("Policies").is_none(),
        "no SAM Policies: they are ignored next to Role"
    );
    assert!(
        template["Globals"]["Function"].get("Policies").is_none()
            && template["Globals"]["Function"].get("Role").is_none(),
        "permissions must be on the function's role, not in Globals"
    );
    let role = &template["Resources"][FUNCTION_ROLE];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"));
    assert!(role.get("Condition").is_none(), "the role always exists");
    let role = &role["Properties"];
    for key in ["ManagedPolicyArns", "PermissionsBoundary"] {
        assert!(
            role.get(key).is_none(),
            "{FUNCTION_ROLE}: no {key}; every grant is in the template"
        );
    }
    assert_eq!(
        trusted_services(&role["AssumeRolePolicyDocument"]),
        ["lambda.amazonaws.com"],
        "{FUNCTION_ROLE} trusts only Lambda"
    );
    let mut documents: Vec<&Value> = one_or_many(&role["Policies"])
        .into_iter()
        .map(|p| &p["PolicyDocument"])
        .collect();
    let attached = policies_attached_to(template, FUNCTION_ROLE);
    assert_eq!(
        attached.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        [LOGGING_POLICY],
        "the one policy attached to {FUNCTION_ROLE} from outside it"
    );
    documents.extend(attached.into_iter().map(|(_, document)| document));
    let all: Vec<&Value> = documents
        .into_iter()
        .flat_map(|document| statements_unless(document, skipped))
        .collect();
    grants(&all)
}

/// The `AWS::IAM::RolePolicy` resources attached to a role of the template, by name, with their
/// documents.
fn policies_attached_to<'a>(template: &'a Value, role: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::IAM::RolePolicy"))
        .filter(|(_, r)| is_ref(&r["Properties"]["RoleName"], role))
        .map(|(n, r)| {
            (
                n.as_str().unwrap_or_default(),
                &r["Properties"]["PolicyDocument"],
            )
        })
        .collect()
}

/// The services a trust policy lets assume the role, each statement `sts:AssumeRole` for one
/// service (no AWS principal, no `*`).
fn trusted_services(document: &Value) -> Vec<&str> {
    statements(document)
        .into_iter()
        .flat_map(|statement| {
            assert_eq!(plain(&statement["Effect"]), Some("Allow"), "{statement:?}");
            assert_eq!(plain(&statement["Action"]), Some("sts:AssumeRole"));
            let principal = statement["Principal"]
                .as_mapping()
                .unwrap_or_else(|| panic!("a principal map: {statement:?}"));
            assert_eq!(
                principal.len(),
                1,
                "only a Service principal: {statement:?}"
            );
            one_or_many(&statement["Principal"]["Service"])
                .into_iter()
                .map(|s| plain(s).expect("a service name"))
        })
        .collect()
}

/// Each action with the same resources, as [`grants`] returns them.
fn granted_on(actions: &[&str], resources: &[&str]) -> Vec<(String, BTreeSet<String>)> {
    let resources: BTreeSet<String> = resources.iter().map(|r| r.to_string()).collect();
    actions
        .iter()
        .map(|a| (a.to_string(), resources.clone()))
        .collect()
}

fn iot_only(grants: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    grants
        .iter()
        .filter(|(action, _)| action.starts_with("iot:"))
        .map(|(a, r)| (a.clone(), r.clone()))
        .collect()
}

fn expected_iot_actions() -> BTreeSet<String> {
    let set: BTreeSet<String> = IOT_ACTIONS.iter().map(|a| a.to_string()).collect();
    assert_eq!(set.len(), IOT_ACTIONS.len(), "IOT_ACTIONS has duplicates");
    for unscoped in UNSCOPED_ACTIONS {
        assert!(
            set.contains(*unscoped),
            "IOT_ACTIONS lacks {unscoped} (update UNSCOPED_ACTIONS in this test if the code no longer calls it)"
        );
    }
    set
}

/// `!Ref <name>`.
fn is_ref(value: &Value, name: &str) -> bool {
    matches!(tagged(value), Some((t, v)) if t == "Ref" && v.as_str() == Some(name))
}

/// A value as JSON, tags spelled out as CloudFormation's long form (`!Ref X` → `{"Ref": "X"}`),
/// so that a whole structure can be compared with one literal.
fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let key = if tag == "Ref" {
                tag.to_owned()
            } else {
                format!("Fn::{tag}")
            };
            serde_json::json!({ key: to_json(&t.value) })
        }
        Value::Sequence(items) => items.iter().map(to_json).collect(),
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| {
                let k = scalar(k).unwrap_or_else(|| panic!("a key is not a scalar: {k:?}"));
                (k, to_json(v))
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::String(s) => s.clone().into(),
        Value::Number(n) => serde_json::to_value(n).expect("a number"),
        Value::Bool(b) => (*b).into(),
        Value::Null => serde_json::Value::Null,
    }
}

/// The names `src/config.rs` looks up, outside its unit tests.
fn env_vars_read_by_config() -> BTreeSet<String> {
    let source = read("src/config.rs");
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let names: BTreeSet<String> = code
        .match_indices("lookup(\"")
        .filter_map(|(at, m)| {
            let rest = &code[at + m.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect();
    assert!(
        names.contains("TARGET_POLICY_PREFIX"),
        "could not find the lookup(\"...\") calls in src/config.rs: {names:?}"
    );
    names
}

/// In a single-account deployment the policy actions are on the prefix's policies of the
/// function's region; with the member role also of every region (SPEC §11: an audit of the own
/// account in another region is worked with the function's own role).
#[test]
fn function_role_grants_exactly_the_iot_actions_the_code_calls() {
    let template = template();
    for (skipped, policy_arns) in [
        (Some(MEMBER_ROLE_CONDITION), &[POLICY_ARN][..]),
        (None, &[POLICY_ARN, POLICY_ARN_EVERY_REGION][..]),
    ] {
        let grants = function_grants_unless(&template, skipped);
        assert_iot_grants(
            &grants,
            policy_arns,
            &format!("{FUNCTION_ROLE} unless {skipped:?}"),
        );
    }
}

/// The IoT grants are exactly IOT_ACTIONS: those without a resource type on `*`, the others on
/// the given policy ARNs (`!Sub` patterns) and nothing else.
fn assert_iot_grants(
    grants: &BTreeMap<String, BTreeSet<String>>,
    policy_arns: &[&str],
    role: &str,
) {
    let iot_actions: BTreeSet<String> = grants
        .keys()
        .filter(|a| a.starts_with("iot:"))
        .cloned()
        .collect();
    assert_eq!(
        iot_actions,
        expected_iot_actions(),
        "{role}: the IoT actions differ from iot_audit_remediator::aws::IOT_ACTIONS"
    );
    let scoped: BTreeSet<String> = policy_arns.iter().map(|a| format!("!Sub {a}")).collect();
    for (action, resources) in iot_only(grants) {
        let expected = if UNSCOPED_ACTIONS.contains(&action.as_str()) {
            BTreeSet::from(["*".to_owned()])
        } else {
            scoped.clone()
        };
        assert_eq!(
            resources, expected,
            "{role}: {action} on these and nothing else (* only for the actions without a resource type)"
        );
    }
}

/// Besides IoT: the code's SQS and SNS calls and the mapping's polling, each on its one queue or
/// topic; logging on the function's own log group only; nothing else (no KMS: the notification
/// key's policy covers publishing through SNS).
/// With the member role, also `sts:AssumeRole` on that role's name (in any account: the
/// condition of the organization is held by central_role_assumes_only_the_member_role).
#[test]
fn function_role_grants_the_rest_on_its_own_resources_only() {
    let template = template();
    let topic = format!("!Ref {NOTIFICATION_TOPIC}");
    let member_role = format!("!Sub {MEMBER_ROLE_ARN}");
    for (skipped, assumed) in [
        (Some(MEMBER_ROLE_CONDITION), &[][..]),
        (None, &[member_role.as_str()][..]),
    ] {
        let expected: BTreeMap<String, BTreeSet<String>> = [
            granted_on(SQS_ACTIONS, &[JOB_QUEUE_ARN, FAILURE_QUEUE_ARN]),
            granted_on(SQS_POLLER_ACTIONS, &[JOB_QUEUE_ARN]),
            granted_on(SNS_ACTIONS, &[&topic]),
            granted_on(LOGGING_ACTIONS, &[LOG_GROUP_ARN]),
            granted_on(
                if assumed.is_empty() {
                    &[]
                } else {
                    &[ASSUME_ROLE]
                },
                assumed,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let rest: BTreeMap<String, BTreeSet<String>> = function_grants_unless(&template, skipped)
            .into_iter()
            .filter(|(action, _)| !action.starts_with("iot:"))
            .collect();
        assert_eq!(
            rest, expected,
            "unless {skipped:?}: sqs:SendMessage on the job queue (SendMessageBatch) and the \
             on-failure destination, the mapping's polling on the job queue, sns:Publish on the \
             notification topic, writing logs to the function's own log group, with the member \
             role sts:AssumeRole on its name; nothing else"
        );
    }
}

#[test]
fn template_environment_matches_config() {
    let template = template();
    let props = &function(&template)["Properties"];
    let params = &template["Parameters"];

    let variables = props["Environment"]["Variables"]
        .as_mapping()
        .expect("RemediatorFunction has Environment.Variables");
    let in_template: BTreeSet<String> = variables
        .keys()
        .map(|k| k.as_str().expect("variable names are strings").to_owned())
        .collect();
    let read_by_config = env_vars_read_by_config();
    let lambda_provided: BTreeSet<String> = LAMBDA_PROVIDED_VARIABLES
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert!(
        lambda_provided.is_subset(&read_by_config),
        "src/config.rs no longer reads one of {lambda_provided:?}: update LAMBDA_PROVIDED_VARIABLES"
    );
    assert!(
        in_template.is_disjoint(&lambda_provided),
        "Lambda sets {lambda_provided:?} itself: the template must not"
    );
    let read_from_template: BTreeSet<String> = read_by_config
        .difference(&lambda_provided)
        .cloned()
        .collect();
    assert_eq!(
        in_template, read_from_template,
        "template variables vs. src/config.rs (less the Lambda-provided ones)"
    );
    let mapped: BTreeSet<String> = ENV_PARAMETERS
        .iter()
        .map(|(v, _)| v.to_string())
        .chain([QUEUE_URL_VARIABLE.to_owned(), TOPIC_ARN_VARIABLE.to_owned()])
        .collect();
    assert_eq!(
        mapped, read_from_template,
        "update ENV_PARAMETERS in this test"
    );
    // The stack's own topic, always: the function always has somewhere to publish.
    let topic_arn = &props["Environment"]["Variables"][TOPIC_ARN_VARIABLE];
    assert!(
        is_ref(topic_arn, NOTIFICATION_TOPIC),
        "{TOPIC_ARN_VARIABLE} must be !Ref {NOTIFICATION_TOPIC}: {topic_arn:?}"
    );
    // `!If [EnableFanOut, !Ref JobQueue, ""]`: the queue's URL, or empty (inline only).
    let queue_url = &props["Environment"]["Variables"][QUEUE_URL_VARIABLE];
    let Some(("If", Value::Sequence(branches))) =
        tagged(queue_url).as_ref().map(|(t, v)| (t.as_str(), *v))
    else {
        panic!(
            "{QUEUE_URL_VARIABLE} must be !If [EnableFanOut, !Ref JobQueue, \"\"]: {queue_url:?}"
        )
    };
    assert_eq!(branches[0].as_str(), Some("EnableFanOut"));
    assert!(
        matches!(tagged(&branches[1]), Some((t, v)) if t == "Ref" && v.as_str() == Some("JobQueue"))
    );
    assert_eq!(plain(&branches[2]), Some(""));

    for (variable, parameter) in ENV_PARAMETERS {
        let value = &props["Environment"]["Variables"][*variable];
        match tagged(value) {
            Some((tag, inner)) if tag == "Ref" => {
                assert_eq!(inner.as_str(), Some(*parameter), "{variable}")
            }
            _ => panic!("{variable} must be !Ref {parameter}, is {value:?}"),
        }
        assert!(params.get(*parameter).is_some(), "no parameter {parameter}");
    }

    // The prefix: the code's default, refused when empty or outside policy-name characters,
    // and the very parameter the role's policy resource is built from.
    let prefix = &params["TargetPolicyPrefix"];
    assert_eq!(plain(&prefix["Default"]), Some(DEFAULT_PREFIX));
    assert_eq!(plain(&prefix["AllowedPattern"]), Some(r"^[\w+=,.@-]+$"));
    assert_eq!(scalar(&prefix["MinLength"]).as_deref(), Some("1"));
    assert!(POLICY_ARN.contains("${TargetPolicyPrefix}"));

    let defaults = Config::default();
    for (flag, default) in [
        ("DryRun", defaults.dry_run),
        ("KeepReplacedVersion", defaults.keep_replaced_version),
    ] {
        assert_eq!(
            plain(&params[flag]["Default"]),
            Some(default.to_string().as_str()),
            "{flag}: the default of src/config.rs"
        );
        let allowed: BTreeSet<String> = one_or_many(&params[flag]["AllowedValues"])
            .into_iter()
            .filter_map(scalar)
            .collect();
        assert_eq!(
            allowed,
            BTreeSet::from(["true".to_owned(), "false".to_owned()]),
            "{flag}"
        );
    }

    let concurrency = &params["MaxConcurrency"];
    assert_eq!(concurrency["Type"].as_str(), Some("Number"));
    assert_eq!(
        scalar(&concurrency["Default"]),
        Some(DEFAULT_MAX_CONCURRENCY.to_string())
    );
    assert_eq!(scalar(&concurrency["MinValue"]).as_deref(), Some("1"));
    assert_eq!(
        scalar(&concurrency["MaxValue"]),
        Some(MAX_MAX_CONCURRENCY.to_string())
    );

    let margin = &params["DeadlineMarginSeconds"];
    assert_eq!(plain(&margin["Type"]), Some("Number"));
    assert_eq!(
        scalar(&margin["Default"]),
        Some(DEFAULT_DEADLINE_MARGIN_SECONDS.to_string())
    );
    assert_eq!(scalar(&margin["MinValue"]).as_deref(), Some("0"));
    assert_eq!(
        scalar(&margin["MaxValue"]),
        Some(MAX_DEADLINE_MARGIN_SECONDS.to_string())
    );

    let workers = &params["FanOutWorkers"];
    assert_eq!(
        scalar(&workers["Default"]),
        Some(DEFAULT_FANOUT_WORKERS.to_string())
    );
    assert_eq!(
        scalar(&workers["MinValue"]),
        Some(FANOUT_WORKERS_RANGE.start().to_string())
    );
    assert_eq!(
        scalar(&workers["MaxValue"]),
        Some(FANOUT_WORKERS_RANGE.end().to_string())
    );
    // 0 as in src/config.rs: fanned out, the workers alone share the policy operations' quota.
    for key in ["Default", "MinValue"] {
        assert_eq!(
            scalar(&params["FanOutInlineMaxFindings"][key]).as_deref(),
            Some("0"),
            "{key}"
        );
    }

    let namespace = &params["MetricsNamespace"];
    assert_eq!(plain(&namespace["Type"]), Some("String"));
    assert_eq!(
        plain(&namespace["Default"]),
        Some(DEFAULT_METRICS_NAMESPACE)
    );
    assert_eq!(defaults.metrics_namespace, DEFAULT_METRICS_NAMESPACE);
    // What src/config.rs accepts: 1 to 255 of letters, digits and . - _ / # :, no leading colon.
    assert_eq!(
        plain(&namespace["AllowedPattern"]),
        Some("^[A-Za-z0-9._/#-][A-Za-z0-9._/#:-]{0,254}$")
    );

    let days = &params["RollbackSuppressionDays"];
    assert_eq!(plain(&days["Type"]), Some("Number"));
    assert_eq!(
        scalar(&days["Default"]),
        Some(DEFAULT_ROLLBACK_SUPPRESSION_DAYS.to_string())
    );
    assert_eq!(
        defaults.rollback_suppression_days,
        DEFAULT_ROLLBACK_SUPPRESSION_DAYS
    );
    assert_eq!(scalar(&days["MinValue"]).as_deref(), Some("0"));
    assert_eq!(
        scalar(&days["MaxValue"]),
        Some(MAX_ROLLBACK_SUPPRESSION_DAYS.to_string())
    );

    let rate = &params["ApiCallsPerSecond"];
    assert_eq!(plain(&rate["Type"]), Some("Number"));
    assert_eq!(
        scalar(&rate["Default"]),
        Some(DEFAULT_API_CALLS_PER_SECOND.to_string())
    );
    assert_eq!(scalar(&rate["MinValue"]).as_deref(), Some("0"));
    assert_eq!(
        scalar(&rate["MaxValue"]),
        Some(MAX_API_CALLS_PER_SECOND.to_string())
    );
}

#[test]
fn template_deploys_the_function_as_specified() {
    let template = template();
    let function = function(&template);
    let props = &function["Properties"];

    assert_eq!(plain(&props["Runtime"]), Some("provided.al2023"));
    assert_eq!(plain(&props["Handler"]), Some("bootstrap"));
    let architectures: Vec<_> = one_or_many(&props["Architectures"])
        .into_iter()
        .filter_map(scalar)
        .collect();
    assert_eq!(architectures, ["arm64"]);
    assert_eq!(props["LoggingConfig"]["LogFormat"].as_str(), Some("JSON"));
    assert_eq!(
        function["Metadata"]["BuildMethod"].as_str(),
        Some("rust-cargolambda")
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_iot-audit-remediator"))
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned);
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .map(str::to_owned),
        binary,
        "BuildProperties.Binary must name the Cargo binary"
    );

    let events: Vec<&Value> = props["Events"]
        .as_mapping()
        .expect("RemediatorFunction has Events")
        .values()
        .collect();
    assert!(
        events.iter().any(|e| e["Type"].as_str() == Some("SNS")),
        "no SNS event"
    );

    let invoke = &props["EventInvokeConfig"];
    assert_eq!(
        scalar(&invoke["MaximumRetryAttempts"]).as_deref(),
        Some("2")
    );
    let on_failure = &invoke["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"].as_str(), Some("SQS"));
    let destination = &on_failure["Destination"];
    let queue = match tagged(destination) {
        Some((tag, inner)) if tag == "GetAtt" => inner
            .as_str()
            .and_then(|s| s.strip_suffix(".Arn"))
            .map(str::to_owned),
        _ => None,
    }
    .unwrap_or_else(|| {
        panic!("OnFailure.Destination must be !GetAtt <queue>.Arn: {destination:?}")
    });
    let queue = &template["Resources"][queue.as_str()];
    assert_eq!(queue["Type"].as_str(), Some("AWS::SQS::Queue"));
    assert_eq!(
        queue["Properties"]["SqsManagedSseEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        scalar(&queue["Properties"]["MessageRetentionPeriod"]).as_deref(),
        Some("1209600")
    );
}

/// The other roles of the stack are Device Defender's (audit, publishing to the topic): they
/// trust only IoT and may publish to SNS (and, the publishing one, use the stack's key for an
/// encrypted audit topic); no statement anywhere passes roles or touches S3. No policy resource
/// widens a role, and the resource policies allow nobody anything but SNS delivering to the
/// subscription's dead-letter queue (their denials are held by the tests of SPEC §10 below). The
/// one KMS key is usable by this account's principals only through SNS and by its alarms.
#[test]
fn template_has_no_other_grants() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("Resources");
    for (name, resource) in resources {
        let name = name.as_str().unwrap_or_default();
        let kind = resource["Type"].as_str().unwrap_or_default();
        assert!(
            !matches!(
                kind,
                "AWS::IAM::Policy"
                    | "AWS::IAM::ManagedPolicy"
                    | "AWS::Serverless::Connector"
                    | "AWS::IAM::User"
                    | "AWS::KMS::Grant"
            ),
            "{name}: {kind} could widen a role"
        );
        match kind {
            "AWS::IAM::RolePolicy" => assert_eq!(
                (name, resource_text(&resource["Properties"]["RoleName"])),
                (LOGGING_POLICY, format!("!Ref {FUNCTION_ROLE}")),
                "the only attached policy: the function's logging"
            ),
            "AWS::SNS::TopicPolicy" | "AWS::SQS::QueuePolicy" => {
                for statement in statements(&resource["Properties"]["PolicyDocument"]) {
                    if plain(&statement["Effect"]) == Some("Allow") {
                        assert_eq!(
                            to_json(&statement["Principal"]),
                            serde_json::json!({ "Service": "sns.amazonaws.com" }),
                            "{name} allows only SNS (delivering to a dead-letter queue)"
                        );
                    }
                }
            }
            "AWS::KMS::Key" => {
                assert_eq!(name, "NotificationKey", "the only KMS key");
                assert_eq!(
                    without_sids(to_json(&resource["Properties"]["KeyPolicy"])),
                    notification_key_policy(),
                    "{name}'s key policy"
                );
            }
            "AWS::IAM::Role" if name != FUNCTION_ROLE => {
                device_defender_role(name, &resource["Properties"])
            }
            _ => {}
        }
    }

    no_pass_role_and_no_s3(&template);
}

fn no_pass_role_and_no_s3(template: &Value) {
    let mut strings = Vec::new();
    collect_strings(template, &mut strings);
    for s in strings {
        let lower = s.to_ascii_lowercase();
        assert!(
            !lower.contains("iam:passrole"),
            "iam:PassRole in template.yaml: {s}"
        );
        assert!(
            !lower.starts_with("s3:"),
            "an S3 action in template.yaml: {s}"
        );
    }
}

/// A Device Defender role: trusts only IoT; the audit role has the managed audit policy alone,
/// the publishing role publishes, and for an encrypted audit topic uses the stack's key.
fn device_defender_role(name: &str, props: &Value) {
    assert_eq!(
        trusted_services(&props["AssumeRolePolicyDocument"]),
        ["iot.amazonaws.com"],
        "{name} trusts only AWS IoT"
    );
    for managed in one_or_many(&props["ManagedPolicyArns"]) {
        let text = resource_text(managed);
        assert!(
            text.ends_with(":iam::aws:policy/service-role/AWSIoTDeviceDefenderAudit"),
            "{name}: unexpected managed policy {text}"
        );
    }
    let all: Vec<&Value> = one_or_many(&props["Policies"])
        .into_iter()
        .flat_map(|p| statements(&p["PolicyDocument"]))
        .collect();
    let key = "!GetAtt NotificationKey.Arn".to_owned();
    for (action, resources) in grants(&all) {
        if action.starts_with("kms:") {
            assert!(
                name == "AuditPublishRole"
                    && ["kms:GenerateDataKey*", "kms:Decrypt"].contains(&action.as_str())
                    && resources == BTreeSet::from([key.clone()]),
                "{name}: {action} on {resources:?}: only the publishing role, only to encrypt \
                 with the stack's key"
            );
        } else {
            assert_eq!(
                action, "sns:Publish",
                "{name} may only publish to the audit topic"
            );
        }
    }
}

/// The notification key's policy: the account administers it (through IAM, the usual first
/// statement); the account's principals may use it only through SNS in this region (what the
/// AWS managed key `alias/aws/sns` allows, so publishing is governed by `sns:Publish` alone);
/// the account's CloudWatch alarms may use it to publish.
fn notification_key_policy() -> serde_json::Value {
    let use_key = serde_json::json!(["kms:GenerateDataKey*", "kms:Decrypt"]);
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": { "AWS": { "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" } },
                "Action": "kms:*",
                "Resource": "*"
            },
            {
                "Effect": "Allow",
                "Principal": { "AWS": "*" },
                "Action": use_key,
                "Resource": "*",
                "Condition": { "StringEquals": {
                    "kms:CallerAccount": { "Ref": "AWS::AccountId" },
                    "kms:ViaService": { "Fn::Sub": "sns.${AWS::Region}.amazonaws.com" }
                } }
            },
            {
                "Effect": "Allow",
                "Principal": { "Service": "cloudwatch.amazonaws.com" },
                "Action": use_key,
                "Resource": "*",
                "Condition": { "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } }
            }
        ]
    })
}

/// A policy document without its statements' `Sid`s (names, not grants).
fn without_sids(mut document: serde_json::Value) -> serde_json::Value {
    if let Some(statements) = document["Statement"].as_array_mut() {
        for statement in statements {
            if let Some(statement) = statement.as_object_mut() {
                statement.remove("Sid");
            }
        }
    }
    document
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Sequence(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Mapping(map) => map.iter().for_each(|(k, v)| {
            collect_strings(k, out);
            collect_strings(v, out);
        }),
        Value::Tagged(t) => collect_strings(&t.value, out),
        _ => {}
    }
}

/// `policies/remediator-iam-policy.json` is the template's role for a deployment without SAM:
/// the same IoT actions on the same resources, with placeholders in place of the pseudo
/// parameters and the default prefix in place of the parameter; `sns:Publish` on the
/// notification topic (a placeholder ARN); writing logs to the function's log group besides
/// (which the operator creates, as the stack does).
#[test]
fn standalone_iam_policy_matches_the_template_role() {
    let json: serde_json::Value =
        serde_json::from_str(&read("policies/remediator-iam-policy.json")).expect("valid JSON");
    assert_eq!(json["Version"], "2012-10-17");
    let document: Value = yaml_serde::to_value(&json).expect("JSON is YAML");
    let standalone = grants(&statements(&document));

    let placeholders = |text: &str| -> String {
        text.strip_prefix("!Sub ")
            .unwrap_or(text)
            .replace("${AWS::Partition}", "aws")
            .replace("${AWS::Region}", "REGION")
            .replace("${AWS::AccountId}", "ACCOUNT_ID")
            .replace("${TargetPolicyPrefix}", DEFAULT_PREFIX)
    };
    // The single-account role: the statements across accounts exist only with MemberRoleName.
    let single_account = function_grants_unless(&template(), Some(MEMBER_ROLE_CONDITION));
    let from_template: BTreeMap<String, BTreeSet<String>> = iot_only(&single_account)
        .into_iter()
        .map(|(action, resources)| (action, resources.iter().map(|r| placeholders(r)).collect()))
        .collect();
    assert_eq!(
        iot_only(&standalone),
        from_template,
        "policies/remediator-iam-policy.json grants other IoT actions or resources than template.yaml"
    );

    for (action, resources) in &standalone {
        if action.starts_with("iot:") {
            continue;
        }
        if action.starts_with("sns:") {
            assert!(
                SNS_ACTIONS.contains(&action.as_str()),
                "{action}: the function only publishes"
            );
            assert_eq!(
                resources,
                &BTreeSet::from([STANDALONE_TOPIC_ARN.to_owned()]),
                "{action}: the notification topic only, as placeholders"
            );
            continue;
        }
        assert!(
            LOGGING_ACTIONS.contains(&action.as_str()),
            "{action} is not needed"
        );
        assert_eq!(
            resources,
            &BTreeSet::from([STANDALONE_LOG_GROUP_ARN.to_owned()]),
            "{action}: the function's own log group only, as placeholders"
        );
    }
    let logging: BTreeSet<&str> = standalone
        .keys()
        .map(String::as_str)
        .filter(|a| a.starts_with("logs:"))
        .collect();
    let needed: BTreeSet<&str> = LOGGING_ACTIONS.iter().copied().collect();
    assert_eq!(logging, needed, "logging permissions");
    let sns: BTreeSet<&str> = standalone
        .keys()
        .map(String::as_str)
        .filter(|a| a.starts_with("sns:"))
        .collect();
    assert_eq!(
        sns,
        SNS_ACTIONS.iter().copied().collect(),
        "notifications, as in the template"
    );
}

/// Every `client.<operation>()` call in the library, as IAM action names, equals IOT_ACTIONS
/// and SQS_ACTIONS: a new call without a new permission (or a permission left behind) fails
/// here. Every such call is in `src/aws/`, the only part of the library that calls the SDK, and
/// every `.send()` there is one of them (a call through a receiver not named `client` would
/// otherwise go unseen).
#[test]
fn iot_actions_match_the_sdk_calls_in_src() {
    let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files: BTreeMap<PathBuf, (usize, usize)> = BTreeMap::new();
    for file in rust_files(&root().join("src")) {
        let source = fs::read_to_string(&file).expect("readable source");
        let relative = file.strip_prefix(root()).unwrap_or(&file).to_path_buf();
        let operations = client_calls(&source);
        let sends = sends(&source);
        if operations.is_empty() && sends == 0 {
            continue;
        }
        files.insert(relative.clone(), (operations.len(), sends));
        for operation in operations {
            calls
                .entry(iam_action(&operation))
                .or_default()
                .insert(relative.display().to_string());
        }
    }
    let found: BTreeSet<String> = calls.keys().cloned().collect();
    let expected: BTreeSet<String> = expected_iot_actions()
        .into_iter()
        .chain(SQS_ACTIONS.iter().map(|a| a.to_string()))
        .chain(SNS_ACTIONS.iter().map(|a| a.to_string()))
        .collect();
    assert_eq!(
        found, expected,
        "SDK calls in src/ (action → files: {calls:?}) differ from IOT_ACTIONS, SQS_ACTIONS and SNS_ACTIONS"
    );
    let outside = outside_the_aws_edge(files.keys());
    assert!(
        outside.is_empty(),
        "SDK calls outside src/aws/ (file → (client calls, .send() calls): {files:?}): {outside:?}"
    );
    let unaccounted: Vec<_> = files
        .iter()
        .filter(|(_, (operations, sends))| operations != sends)
        .collect();
    assert!(
        unaccounted.is_empty(),
        "files whose .send() calls are not all `client.<operation>()` calls the scanner can name \
         (file → (client calls, .send() calls)): {unaccounted:?}"
    );
}

#[test]
fn the_call_scanner_sees_through_layout_and_comments() {
    let source = "
        // client.delete_policy()  is a comment
        let a = self.client.get_policy().policy_name(n).send().await;
        let b = client
            .list_audit_findings()
            .send();
        let c = app.client() . create_policy_version ( ).send();
        let d = self.client.clone();
        let e = app.client();
        let f = iot_client(&config);
        let g = self.client.send_message_batch().queue_url(u);
        g.send().await;
        let h = app.iot.get_policy(name).await;
        queue.send(&jobs).await;
        tx.send(job).await;
    ";
    assert_eq!(
        client_calls(source),
        [
            "get_policy",
            "list_audit_findings",
            "create_policy_version",
            "send_message_batch"
        ]
    );
    assert_eq!(
        sends(source),
        4,
        "only argument-less .send(), the SDK's, outside comments"
    );
    assert_eq!(iam_action("list_audit_findings"), "iot:ListAuditFindings");
    assert_eq!(iam_action("send_message_batch"), "sqs:SendMessage");
}

/// The cross-check that keeps the scanner honest: a call through a receiver not named
/// `client` is no call it can name, but its `.send()` still counts.
#[test]
fn a_call_the_scanner_cannot_name_still_counts_as_a_send() {
    let source = "let iot = iot_client(&config); iot.get_policy().policy_name(n).send().await;";
    assert!(client_calls(source).is_empty());
    assert_eq!(sends(source), 1);
}

#[test]
fn only_files_under_src_aws_may_call_the_sdk() {
    let files = [
        "src/aws/iot.rs",
        "src/aws/nested/deeper.rs",
        "src/engine/remediate.rs",
        "src/aws_helpers.rs",
        "src/engine/aws/iot.rs",
        "src/main.rs",
    ]
    .map(PathBuf::from);
    assert_eq!(
        outside_the_aws_edge(&files),
        [
            "src/engine/remediate.rs",
            "src/aws_helpers.rs",
            "src/engine/aws/iot.rs",
            "src/main.rs"
        ]
        .map(PathBuf::from)
    );
}

/// The files, relative to the project, that are not in `src/aws/`.
fn outside_the_aws_edge<'a>(files: impl IntoIterator<Item = &'a PathBuf>) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter(|file| !file.starts_with("src/aws"))
        .cloned()
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The source with comment lines dropped and all whitespace removed (so
/// `client\n    .get_policy()` reads `client.get_policy()`).
fn code(source: &str) -> String {
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// How many times an SDK request is sent: `.send()` without arguments (the fluent builders'
/// last call; a channel's or the queue sender's `send` takes one).
fn sends(source: &str) -> usize {
    code(source).matches(".send()").count()
}

/// The operations called as `<...>client.<op>()` or `<...>client().<op>()`, in order, with
/// comment lines dropped and all whitespace removed (see [`code`]).
fn client_calls(source: &str) -> Vec<String> {
    let code = code(source);
    let mut calls = Vec::new();
    for (at, word) in code.match_indices("client") {
        let rest = &code[at + word.len()..];
        let rest = rest.strip_prefix("()").unwrap_or(rest);
        let Some(rest) = rest.strip_prefix('.') else {
            continue;
        };
        let operation: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if operation.is_empty()
            || !rest[operation.len()..].starts_with("()")
            || NOT_OPERATIONS.contains(&operation.as_str())
        {
            continue;
        }
        calls.push(operation);
    }
    calls
}

/// `get_policy_version` → `iot:GetPolicyVersion`; an SQS operation → its IAM action.
fn iam_action(operation: &str) -> String {
    if let Some((_, action)) = SQS_OPERATIONS.iter().find(|(op, _)| *op == operation) {
        return action.to_string();
    }
    let pascal: String = operation
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("iot:{pascal}")
}

/// Fan-out: the job queue (encrypted, with a dead-letter queue after a bounded number of
/// receives), the mapping that delivers its jobs with partial batch responses at a bounded
/// concurrency (the same number the function divides the quota by), and an alarm on the
/// dead-letter queue; all of it only with `FanOut=true`.
#[test]
fn template_fans_out_through_a_queue_when_asked() {
    let template = template();
    let resources = &template["Resources"];
    let is_ref = |value: &Value, name: &str| matches!(tagged(value), Some((t, v)) if t == "Ref" && v.as_str() == Some(name));
    let is_getatt = |value: &Value, attribute: &str| matches!(tagged(value), Some((t, v)) if t == "GetAtt" && v.as_str() == Some(attribute));
    for name in FAN_OUT_RESOURCES {
        assert_eq!(
            resources[*name]["Condition"].as_str(),
            Some("EnableFanOut"),
            "{name} exists only with FanOut=true"
        );
    }
    assert_eq!(
        template["Conditions"]["EnableFanOut"],
        yaml_serde::from_str::<Value>("!Equals [!Ref FanOut, \"true\"]").unwrap()
    );

    let queue = &resources["JobQueue"]["Properties"];
    assert_eq!(queue["SqsManagedSseEnabled"].as_bool(), Some(true));
    assert_eq!(
        resources["JobDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"].as_bool(),
        Some(true)
    );
    let redrive = &queue["RedrivePolicy"];
    assert!(is_getatt(
        &redrive["deadLetterTargetArn"],
        "JobDeadLetterQueue.Arn"
    ));
    assert!(is_ref(&redrive["maxReceiveCount"], "FanOutMaxReceiveCount"));
    let timeout: u64 = scalar(&function(&template)["Properties"]["Timeout"])
        .unwrap()
        .parse()
        .unwrap();
    let visibility: u64 = scalar(&queue["VisibilityTimeout"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        visibility >= 6 * timeout,
        "Lambda's advice: visibility timeout at least six times the function's timeout"
    );

    let mapping = &resources["JobEventSourceMapping"];
    assert_eq!(
        mapping["Type"].as_str(),
        Some("AWS::Lambda::EventSourceMapping")
    );
    let mapping = &mapping["Properties"];
    assert!(is_getatt(&mapping["EventSourceArn"], "JobQueue.Arn"));
    assert!(is_ref(&mapping["FunctionName"], "RemediatorFunction"));
    assert_eq!(
        one_or_many(&mapping["FunctionResponseTypes"])
            .into_iter()
            .filter_map(plain)
            .collect::<Vec<_>>(),
        ["ReportBatchItemFailures"]
    );
    assert!(is_ref(
        &mapping["ScalingConfig"]["MaximumConcurrency"],
        "FanOutWorkers"
    ));
    assert!(is_ref(
        &function(&template)["Properties"]["Environment"]["Variables"]["FANOUT_WORKERS"],
        "FanOutWorkers"
    ));
    assert!(is_ref(&mapping["BatchSize"], "FanOutBatchSize"));
    assert_eq!(
        scalar(&mapping["MaximumBatchingWindowInSeconds"]).as_deref(),
        Some("1"),
        "batches above 10 need a batching window"
    );

    let alarm = &resources["JobDeadLetterQueueAlarm"]["Properties"];
    assert_eq!(alarm["Namespace"].as_str(), Some("AWS/SQS"));
    assert_eq!(
        alarm["MetricName"].as_str(),
        Some("ApproximateNumberOfMessagesVisible")
    );
    assert!(is_getatt(
        &alarm["Dimensions"][0]["Value"],
        "JobDeadLetterQueue.QueueName"
    ));
}

/// SPEC §8: the stack's notification topic is encrypted, with a key of its own that the alarms
/// can use (the AWS managed `alias/aws/sns` cannot be: CloudWatch is not allowed to use it, and
/// its policy cannot be changed), and it is an output.
#[test]
fn notification_topic_is_encrypted_with_a_key_the_alarms_can_use() {
    let template = template();
    let resources = &template["Resources"];
    let topic = &resources[NOTIFICATION_TOPIC];
    assert_eq!(topic["Type"].as_str(), Some("AWS::SNS::Topic"));
    assert!(
        topic.get("Condition").is_none(),
        "the topic always exists: the function always publishes"
    );
    let key = &topic["Properties"]["KmsMasterKeyId"];
    assert!(
        is_ref(key, "NotificationKey"),
        "the topic must be encrypted with the stack's NotificationKey: {key:?}"
    );
    let key = &resources["NotificationKey"];
    assert_eq!(key["Type"].as_str(), Some("AWS::KMS::Key"));
    assert_eq!(key["Properties"]["EnableKeyRotation"].as_bool(), Some(true));
    // The key policy itself is held by template_has_no_other_grants.
    assert!(is_ref(
        &template["Outputs"]["NotificationTopicArn"]["Value"],
        NOTIFICATION_TOPIC
    ));
}

/// SPEC §8: the optional e-mail subscription lets through `audit` and `rollback` messages, and
/// `batch` messages only when something failed (`failed`, `mixed`). Checked twice: the filter
/// policy as written, and what it lets through for every kind and outcome of the spec.
#[test]
fn email_subscription_lets_through_audits_rollbacks_and_failed_batches() {
    let template = template();
    let email = &template["Parameters"]["NotificationEmail"];
    assert_eq!(plain(&email["Type"]), Some("String"));
    assert_eq!(plain(&email["Default"]), Some(""), "no e-mail unless asked");
    assert_eq!(
        to_json(&template["Conditions"]["HasNotificationEmail"]),
        serde_json::json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": "NotificationEmail" }, ""] }] })
    );

    let subscriptions: Vec<(&str, &Value)> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::SNS::Subscription"))
        .map(|(n, r)| (n.as_str().unwrap_or_default(), r))
        .collect();
    let [(name, subscription)] = subscriptions[..] else {
        panic!("one SNS subscription expected, the e-mail one: {subscriptions:?}")
    };
    assert_eq!(
        subscription["Condition"].as_str(),
        Some("HasNotificationEmail"),
        "{name}"
    );
    let props = &subscription["Properties"];
    assert!(is_ref(&props["TopicArn"], NOTIFICATION_TOPIC), "{name}");
    assert_eq!(plain(&props["Protocol"]), Some("email"), "{name}");
    assert!(is_ref(&props["Endpoint"], "NotificationEmail"), "{name}");
    assert_eq!(
        plain(&props["FilterPolicyScope"]),
        Some("MessageAttributes"),
        "{name}: the filter applies to the message attributes"
    );
    let policy = to_json(&props["FilterPolicy"]);
    assert_eq!(
        policy,
        serde_json::json!({ "$or": [
            { "kind": ["audit", "rollback"] },
            { "kind": ["batch"], "outcome": ["failed", "mixed"] }
        ] }),
        "{name}'s filter policy"
    );

    let mut delivered = BTreeSet::new();
    for kind in KINDS {
        for outcome in OUTCOMES {
            let attributes = BTreeMap::from([("kind", *kind), ("outcome", *outcome)]);
            if filter_matches(&policy, &attributes) {
                delivered.insert((*kind, *outcome));
            }
        }
    }
    let expected: BTreeSet<(&str, &str)> = OUTCOMES
        .iter()
        .flat_map(|o| [("audit", *o), ("rollback", *o)])
        .chain([("batch", "failed"), ("batch", "mixed")])
        .collect();
    assert_eq!(delivered, expected, "what the e-mail subscription receives");
}

/// An SNS filter policy of the forms used here (`$or` of alternatives; a property with a list of
/// exact strings), applied to a message's string attributes. Anything else is refused, so that
/// the test cannot pass on a policy it does not understand.
fn filter_matches(policy: &serde_json::Value, attributes: &BTreeMap<&str, &str>) -> bool {
    let policy = policy.as_object().expect("a filter policy is an object");
    policy.iter().all(|(key, condition)| {
        if key == "$or" {
            let alternatives = condition.as_array().expect("$or takes a list");
            return alternatives.iter().any(|p| filter_matches(p, attributes));
        }
        let values = condition
            .as_array()
            .unwrap_or_else(|| panic!("{key}: a list of values expected: {condition:?}"));
        values.iter().any(|v| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{key}: only exact strings are understood here: {v:?}"));
            attributes.get(key.as_str()) == Some(&v)
        })
    })
}

/// SPEC §8: the stack alarms on `Failed` and `Deferred` in the function's namespace, in every
/// mode (one alarm per mode and metric; the jobs ones only with fan-out, like the jobs). Every
/// alarm of the stack notifies someone: the AlarmTopicArn given, else the notification topic.
#[test]
fn alarms_watch_failed_and_deferred_and_always_notify_a_topic() {
    let template = template();
    let alarms: Vec<(&str, &Value)> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(n, r)| (n.as_str().unwrap_or_default(), r))
        .collect();
    assert!(!alarms.is_empty());

    assert_eq!(
        to_json(&template["Conditions"]["HasAlarmTopic"]),
        serde_json::json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": "AlarmTopicArn" }, ""] }] })
    );
    assert_eq!(
        plain(&template["Parameters"]["AlarmTopicArn"]["Default"]),
        Some("")
    );
    let actions = serde_json::json!({ "Fn::If": [
        "HasAlarmTopic",
        [{ "Ref": "AlarmTopicArn" }],
        [{ "Ref": NOTIFICATION_TOPIC }]
    ] });
    for (name, alarm) in &alarms {
        assert_eq!(
            to_json(&alarm["Properties"]["AlarmActions"]),
            actions,
            "{name} must notify AlarmTopicArn, or the notification topic when none is given"
        );
    }

    let mut watched: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for (name, alarm) in &alarms {
        let props = &alarm["Properties"];
        if !is_ref(&props["Namespace"], "MetricsNamespace") {
            continue;
        }
        let metric = plain(&props["MetricName"])
            .unwrap_or_else(|| panic!("{name}: MetricName"))
            .to_owned();
        assert!(
            ALARMED_METRICS.contains(&metric.as_str()),
            "{name}: an alarm on {metric}, not in SPEC §8"
        );
        let dimensions = one_or_many(&props["Dimensions"]);
        let [dimension] = dimensions[..] else {
            panic!("{name}: one dimension, Mode: {dimensions:?}")
        };
        assert_eq!(plain(&dimension["Name"]), Some("Mode"), "{name}");
        let mode = plain(&dimension["Value"])
            .unwrap_or_else(|| panic!("{name}: the Mode"))
            .to_owned();
        assert!(MODES.contains(&mode.as_str()), "{name}: mode {mode}");
        assert_eq!(plain(&props["Statistic"]), Some("Sum"), "{name}");
        assert_eq!(scalar(&props["Threshold"]).as_deref(), Some("0"), "{name}");
        assert_eq!(
            plain(&props["ComparisonOperator"]),
            Some("GreaterThanThreshold"),
            "{name}: any failed or deferred policy"
        );
        assert_eq!(
            plain(&props["TreatMissingData"]),
            Some("notBreaching"),
            "{name}: no invocation in that mode is no failure"
        );
        let condition = alarm["Condition"].as_str();
        assert_eq!(
            condition,
            (mode == "jobs").then_some("EnableFanOut"),
            "{name}: the jobs alarms exist with fan-out only, the others always"
        );
        watched.entry((metric, mode)).or_default().push(name);
    }
    let expected: BTreeSet<(String, String)> = ALARMED_METRICS
        .iter()
        .flat_map(|m| MODES.iter().map(|mode| (m.to_string(), mode.to_string())))
        .collect();
    assert_eq!(
        watched.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "an alarm for each of Failed and Deferred in each mode"
    );
    for (watch, names) in &watched {
        assert_eq!(names.len(), 1, "{watch:?} watched twice: {names:?}");
    }
}

// --- SPEC §10: who may send what to the function ---

/// The function's role as the evaluator spells it, and principals that must be refused.
const FUNCTION_ROLE_ARN: &str = "getatt:RemediatorRole.Arn";
const STACK_PUBLISHER_ARN: &str = "getatt:AuditPublishRole.Arn";
const OPERATOR_ARN: &str = "arn:aws:iam::123456789012:role/queue-operator";
const PUBLISHER_ARN: &str = "arn:aws:iam::123456789012:role/device-defender-publisher";
const STRANGER_ARN: &str = "arn:aws:iam::123456789012:role/anyone-else";
const OWN_TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:dd-audits";
/// A member account's stack (member.yaml), as a StackSet would deploy it, and the central
/// stack's values it is given.
const MEMBER_ACCOUNT: &str = "111122223333";
const OTHER_MEMBER_ACCOUNT: &str = "444455556666";
const CENTRAL_ACCOUNT: &str = "210987654321";
const CENTRAL_ROLE_NAME: &str = "iot-audit-remediator-RemediatorRole-A1B2C3";
const CENTRAL_ROLE: &str =
    "arn:aws:iam::210987654321:role/iot-audit-remediator-RemediatorRole-A1B2C3";
const CENTRAL_FUNCTION_ARN: &str =
    "arn:aws:lambda:eu-west-1:210987654321:function:iot-audit-remediator-RemediatorFunction-A1B2C3";
const EXTERNAL_ID: &str = "4d3c2b1a-external";
const ROLE_REGION: &str = "us-east-1";
const OTHER_REGION: &str = "eu-west-1";
const ORGANIZATION: &str = "o-a1b2c3d4e5";
/// What member.yaml has no default for, as the StackSet gives it.
const MEMBER_PARAMETERS: [(&str, &str); 5] = [
    ("CentralAccountId", CENTRAL_ACCOUNT),
    ("CentralRoleName", CENTRAL_ROLE_NAME),
    ("CentralFunctionArn", CENTRAL_FUNCTION_ARN),
    ("MemberExternalId", EXTERNAL_ID),
    ("RoleRegion", ROLE_REGION),
];

/// Parameters given to a deployment, by name.
type Overrides<'a> = &'a [(&'a str, &'a str)];

/// One deployment of a template: its parameters (the defaults, some overridden; pseudo
/// parameters such as `AWS::Region` only when given), the conditions they make true, and values
/// resolved as CloudFormation would: `Fn::ForEach` expanded (AWS::LanguageExtensions), `Fn::If`
/// by those conditions, `AWS::NoValue` dropped, a parameter's `Ref` replaced by its value (a
/// list for a `CommaDelimitedList`), `Fn::Join` joined, the parameters of a `Fn::Sub` pattern
/// filled in. What stays symbolic is spelled `ref:<resource or pseudo parameter>`,
/// `getatt:<resource>.<attribute>` and `sub:<pattern>`. Any other function is refused, so that
/// nothing passes unread.
struct Deployment {
    template: serde_json::Value,
    parameters: BTreeMap<String, serde_json::Value>,
}

impl Deployment {
    /// A deployment of template.yaml.
    fn new(overrides: Overrides) -> Self {
        Self::of(&template(), overrides)
    }

    /// A deployment of member.yaml, in `region` (its role exists in RoleRegion only).
    fn member(region: &str, overrides: Overrides) -> Self {
        let pseudo = [
            ("AWS::Region", region),
            ("AWS::AccountId", MEMBER_ACCOUNT),
            ("AWS::Partition", "aws"),
        ];
        let all: Vec<(&str, &str)> = MEMBER_PARAMETERS
            .into_iter()
            .chain(pseudo)
            .chain(overrides.iter().copied())
            .collect();
        Self::of(&member(), &all)
    }

    fn of(template: &Value, overrides: Overrides) -> Self {
        let mut template = to_json(template);
        let declared = template["Parameters"]
            .as_object()
            .expect("Parameters")
            .clone();
        let mut parameters: BTreeMap<String, String> = declared
            .iter()
            .map(|(name, p)| (name.clone(), json_text(&p["Default"])))
            .collect();
        for (name, value) in overrides {
            assert!(
                parameters.contains_key(*name) || name.starts_with("AWS::"),
                "no parameter {name}"
            );
            parameters.insert(name.to_string(), value.to_string());
        }
        let parameters: BTreeMap<String, serde_json::Value> = parameters
            .into_iter()
            .map(|(name, value)| {
                let list = declared
                    .get(&name)
                    .is_some_and(|p| p["Type"] == "CommaDelimitedList");
                let value = if list {
                    value.split(',').map(|v| serde_json::json!(v)).collect()
                } else {
                    serde_json::json!(value)
                };
                (name, value)
            })
            .collect();
        let resources = expand_for_each(&template["Resources"], &parameters);
        template["Resources"] = resources;
        Self {
            template,
            parameters,
        }
    }

    /// The description of every rule assertion this deployment's parameters break (the
    /// template's `Rules`: CloudFormation refuses such parameters before it creates anything).
    fn broken_rules(&self) -> Vec<String> {
        let Some(rules) = self.template["Rules"].as_object() else {
            return vec![];
        };
        rules
            .values()
            .filter(|rule| rule.get("RuleCondition").is_none_or(|c| self.truth(c)))
            .flat_map(|rule| rule["Assertions"].as_array().expect("Assertions"))
            .filter(|assertion| !self.truth(&assertion["Assert"]))
            .map(|assertion| json_text(&assertion["AssertDescription"]))
            .collect()
    }

    fn condition(&self, name: &str) -> bool {
        let expression = &self.template["Conditions"][name];
        assert!(!expression.is_null(), "no condition {name}");
        self.truth(expression)
    }

    fn truth(&self, expression: &serde_json::Value) -> bool {
        let (function, argument) = intrinsic(expression)
            .unwrap_or_else(|| panic!("not a condition function: {expression}"));
        let arguments = || argument.as_array().expect("a list of arguments");
        match function {
            "Fn::Equals" => {
                let [a, b] = &arguments()[..] else {
                    panic!("Fn::Equals takes two: {argument}")
                };
                self.resolve(a) == self.resolve(b)
            }
            "Fn::Not" => !self.truth(&arguments()[0]),
            "Fn::And" => arguments().iter().all(|a| self.truth(a)),
            "Fn::Or" => arguments().iter().any(|a| self.truth(a)),
            "Condition" | "Fn::Condition" => self.condition(argument.as_str().expect("a name")),
            // Rule functions: [a list, a value].
            "Fn::Contains" | "Fn::EachMemberEquals" => {
                let [list, value] = &arguments()[..] else {
                    panic!("{function} takes two: {argument}")
                };
                let list = self.resolve(list).expect("a list");
                let members = list.as_array().expect("a list");
                let value = self.resolve(value);
                if function == "Fn::Contains" {
                    members.iter().any(|m| Some(m) == value.as_ref())
                } else {
                    members.iter().all(|m| Some(m) == value.as_ref())
                }
            }
            other => panic!("{other}: not understood in a condition"),
        }
    }

    /// `None` for `AWS::NoValue` (dropped from the list or mapping that holds it).
    fn resolve(&self, value: &serde_json::Value) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        if let Some((function, argument)) = intrinsic(value) {
            return self.function(function, argument);
        }
        Some(match value {
            J::Array(items) => J::Array(items.iter().filter_map(|i| self.resolve(i)).collect()),
            J::Object(map) => J::Object(
                map.iter()
                    .filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v)))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    fn function(&self, function: &str, argument: &serde_json::Value) -> Option<serde_json::Value> {
        let text = || {
            argument
                .as_str()
                .unwrap_or_else(|| panic!("{function}: {argument}"))
        };
        match function {
            "Ref" if text() == "AWS::NoValue" => None,
            "Ref" => Some(match self.parameters.get(text()) {
                Some(value) => value.clone(),
                None => format!("ref:{}", text()).into(),
            }),
            "Fn::GetAtt" => Some(format!("getatt:{}", text()).into()),
            // Fully filled in, a pattern is a plain string.
            "Fn::Sub" => Some(match self.fill_in(text()) {
                text if text.contains("${") => format!("sub:{text}").into(),
                text => text.into(),
            }),
            "Fn::Join" => {
                let [separator, items] = &argument.as_array().expect("Fn::Join's list")[..] else {
                    panic!("Fn::Join takes two: {argument}")
                };
                let items = self.resolve(items).expect("items");
                let items: Vec<String> = items
                    .as_array()
                    .unwrap_or_else(|| panic!("Fn::Join of a list: {items}"))
                    .iter()
                    .map(json_text)
                    .collect();
                Some(items.join(separator.as_str().expect("a separator")).into())
            }
            "Fn::If" => {
                let [condition, yes, no] = &argument.as_array().expect("Fn::If's list")[..] else {
                    panic!("Fn::If takes three: {argument}")
                };
                let condition = condition.as_str().expect("a condition name");
                self.resolve(if self.condition(condition) { yes } else { no })
            }
            other => panic!("{other}: not understood by this evaluator"),
        }
    }

    /// A `Fn::Sub` pattern with the parameters (and pseudo parameters given) in it.
    fn fill_in(&self, pattern: &str) -> String {
        self.parameters
            .iter()
            .fold(pattern.to_owned(), |text, (name, value)| {
                text.replace(&format!("${{{name}}}"), &json_text(value))
            })
    }

    /// A resource as deployed; `None` when its condition is false.
    fn resource(&self, name: &str) -> Option<serde_json::Value> {
        let resource = &self.template["Resources"][name];
        assert!(!resource.is_null(), "no resource {name}");
        match resource["Condition"].as_str() {
            Some(condition) if !self.condition(condition) => None,
            _ => self.resolve(resource),
        }
    }

    /// The resources of a type that this deployment has, by name.
    fn resources_of_type(&self, kind: &str) -> BTreeMap<String, serde_json::Value> {
        let names = self.template["Resources"].as_object().expect("Resources");
        names
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .filter_map(|(name, _)| Some((name.clone(), self.resource(name)?)))
            .collect()
    }

    /// Each queue's policy document: exactly one policy per queue, naming only that queue, in
    /// every statement.
    fn queue_policies(&self) -> BTreeMap<String, serde_json::Value> {
        let mut documents = BTreeMap::new();
        for (name, policy) in self.resources_of_type("AWS::SQS::QueuePolicy") {
            let props = &policy["Properties"];
            let queues: Vec<&str> = json_list(&props["Queues"]);
            let [queue] = queues[..] else {
                panic!("{name}: one queue per policy: {queues:?}")
            };
            let queue = queue.strip_prefix("ref:").expect("!Ref <queue>").to_owned();
            statements_on(
                &props["PolicyDocument"],
                &format!("getatt:{queue}.Arn"),
                &name,
            );
            let earlier = documents.insert(queue.clone(), props["PolicyDocument"].clone());
            assert!(earlier.is_none(), "two policies on {queue}");
        }
        documents
    }
}

/// The resources with each `Fn::ForEach::<name>` of AWS::LanguageExtensions expanded:
/// `[identifier, collection, {logical id: resource}]`, the logical id naming the identifier as
/// `${identifier}` or `&{identifier}` (its alphanumeric characters only), the resource as
/// `!Ref identifier`. The collection is a literal list or a list parameter's `Ref`.
fn expand_for_each(
    resources: &serde_json::Value,
    parameters: &BTreeMap<String, serde_json::Value>,
) -> serde_json::Value {
    let mut expanded = serde_json::Map::new();
    for (name, resource) in resources.as_object().expect("Resources") {
        if !name.starts_with("Fn::ForEach::") {
            expanded.insert(name.clone(), resource.clone());
            continue;
        }
        let [identifier, collection, body] = &resource.as_array().expect("Fn::ForEach's list")[..]
        else {
            panic!("{name}: Fn::ForEach takes three: {resource}")
        };
        let identifier = identifier.as_str().expect("an identifier");
        let collection = match intrinsic(collection) {
            Some(("Ref", parameter)) => &parameters[parameter.as_str().expect("a name")],
            _ => collection,
        };
        for value in collection.as_array().expect("a list") {
            let value = value.as_str().expect("a string");
            let alphanumeric: String = value.chars().filter(char::is_ascii_alphanumeric).collect();
            for (key, item) in body.as_object().expect("Fn::ForEach's resources") {
                let logical_id = key
                    .replace(&format!("${{{identifier}}}"), value)
                    .replace(&format!("&{{{identifier}}}"), &alphanumeric);
                let earlier =
                    expanded.insert(logical_id.clone(), substituted(item, identifier, value));
                assert!(earlier.is_none(), "{name}: {logical_id} twice");
            }
        }
    }
    expanded.into()
}

/// `value` with every `!Ref identifier` replaced by `replacement`; the identifier anywhere else
/// (a `Fn::Sub` pattern) is refused, so that nothing is left unexpanded.
fn substituted(
    value: &serde_json::Value,
    identifier: &str,
    replacement: &str,
) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::Object(map) if map.len() == 1 && map.get("Ref") == Some(&J::from(identifier)) => {
            replacement.into()
        }
        J::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), substituted(v, identifier, replacement)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        J::Array(items) => items
            .iter()
            .map(|i| substituted(i, identifier, replacement))
            .collect(),
        J::String(s) => {
            assert!(
                !s.contains(&format!("${{{identifier}}}")),
                "{identifier} in {s}: not understood"
            );
            value.clone()
        }
        other => other.clone(),
    }
}

/// `{"Ref": x}` or `{"Fn::...": x}` (or a condition's `{"Condition": x}`) as (function, argument).
fn intrinsic(value: &serde_json::Value) -> Option<(&str, &serde_json::Value)> {
    let map = value.as_object().filter(|m| m.len() == 1)?;
    let (key, argument) = map.iter().next()?;
    (key == "Ref" || key == "Condition" || key.starts_with("Fn::")).then_some((key, argument))
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One string or a list of them.
fn json_list(value: &serde_json::Value) -> Vec<&str> {
    let items = match value {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("a string: {v}")))
        .collect()
}

/// Every statement of a resource policy names exactly its own resource.
fn statements_on(document: &serde_json::Value, resource: &str, name: &str) {
    assert_eq!(document["Version"], "2012-10-17", "{name}");
    let statements = document["Statement"].as_array().expect("statements");
    assert!(!statements.is_empty(), "{name}: no statements");
    for statement in statements {
        assert_eq!(
            json_list(&statement["Resource"]),
            [resource],
            "{name}: every statement is about {resource} alone"
        );
    }
}

/// Who calls, as a resource policy sees it: a role (its ARN is `aws:PrincipalArn`) or a service.
#[derive(Clone, Copy, Debug)]
enum Caller<'a> {
    Role(&'a str),
    Service(&'a str),
}

#[derive(Clone, Copy, Debug)]
struct Request<'a> {
    action: &'a str,
    caller: Caller<'a>,
    secure_transport: bool,
    source_arn: Option<&'a str>,
    /// An `sns:Subscribe`'s protocol and endpoint (`sns:Protocol`, `sns:Endpoint`).
    subscription: Option<(&'a str, &'a str)>,
    /// An `sts:AssumeRole`'s external id (`sts:ExternalId`).
    external_id: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// Over TLS, with no source ARN: the usual call of a role.
    fn by(caller: Caller<'a>, action: &'a str) -> Self {
        Self {
            action,
            caller,
            secure_transport: true,
            source_arn: None,
            subscription: None,
            external_id: None,
        }
    }

    /// `sns:Subscribe` of an endpoint with a protocol.
    fn subscribe(caller: Caller<'a>, protocol: &'a str, endpoint: &'a str) -> Self {
        Self {
            subscription: Some((protocol, endpoint)),
            ..Self::by(caller, "sns:Subscribe")
        }
    }

    fn without_tls(self) -> Self {
        Self {
            secure_transport: false,
            ..self
        }
    }
}

/// What a resource policy says to a request: an explicit deny, an allow, or nothing (then only
/// the caller's own IAM policies decide, inside the resource's account).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Denied,
    Allowed,
    Silent,
}

fn verdict(document: &serde_json::Value, request: Request) -> Verdict {
    let effects: Vec<&str> = document["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|statement| applies(statement, request))
        .map(|statement| statement["Effect"].as_str().expect("an Effect"))
        .collect();
    if effects.contains(&"Deny") {
        Verdict::Denied
    } else if effects.contains(&"Allow") {
        Verdict::Allowed
    } else {
        Verdict::Silent
    }
}

fn applies(statement: &serde_json::Value, request: Request) -> bool {
    let keys = statement.as_object().expect("a statement");
    for key in keys.keys() {
        assert!(
            [
                "Sid",
                "Effect",
                "Principal",
                "Action",
                "Resource",
                "Condition"
            ]
            .contains(&key.as_str()),
            "{key}: not understood by this evaluator"
        );
    }
    principal_matches(&statement["Principal"], request.caller)
        && json_list(&statement["Action"])
            .into_iter()
            .any(|pattern| action_matches(pattern, request.action))
        && statement["Condition"]
            .as_object()
            .is_none_or(|condition| conditions_hold(condition, request))
}

fn principal_matches(principal: &serde_json::Value, caller: Caller) -> bool {
    if principal == "*" {
        return true;
    }
    let principal = principal.as_object().expect("a principal");
    principal.iter().any(|(kind, names)| {
        let names = json_list(names);
        match (kind.as_str(), caller) {
            ("AWS", Caller::Role(arn)) => names.iter().any(|name| {
                *name == arn
                    || (name.ends_with(":root") && account_root(arn).as_deref() == Some(*name))
            }),
            ("Service", Caller::Service(name)) => names.contains(&name),
            ("AWS" | "Service", _) => false,
            (other, _) => panic!("principal {other}: not understood"),
        }
    })
}

/// `arn:<partition>:iam::<account>:root`, the principal that stands for every principal of the
/// account (whose own policies then decide), for an IAM ARN of that account; `None` otherwise.
fn account_root(arn: &str) -> Option<String> {
    match arn.split(':').collect::<Vec<_>>()[..] {
        ["arn", partition, "iam", "", account, _] => {
            Some(format!("arn:{partition}:iam::{account}:root"))
        }
        _ => None,
    }
}

/// An action, or `service:*`; no other wildcard is understood.
fn action_matches(pattern: &str, action: &str) -> bool {
    match pattern.strip_suffix(":*") {
        Some(service) => action.split(':').next() == Some(service),
        None => {
            assert!(!pattern.contains('*'), "{pattern}: not understood");
            pattern.eq_ignore_ascii_case(action)
        }
    }
}

fn conditions_hold(
    condition: &serde_json::Map<String, serde_json::Value>,
    request: Request,
) -> bool {
    condition.iter().all(|(operator, tests)| {
        let tests = tests.as_object().expect("condition keys");
        tests.iter().all(|(key, values)| {
            let actual = match (key.as_str(), request.caller) {
                ("aws:SecureTransport", _) => Some(request.secure_transport.to_string()),
                ("aws:PrincipalArn", Caller::Role(arn)) => Some(arn.to_owned()),
                ("aws:PrincipalArn", Caller::Service(_)) => None,
                ("aws:SourceArn", _) => request.source_arn.map(str::to_owned),
                ("sns:Protocol", _) => request.subscription.map(|(p, _)| p.to_owned()),
                ("sns:Endpoint", _) => request.subscription.map(|(_, e)| e.to_owned()),
                ("sts:ExternalId", _) => request.external_id.map(str::to_owned),
                (other, _) => panic!("condition key {other}: not understood"),
            };
            let values = json_list(values);
            assert!(
                values.iter().all(|v| !v.contains(['*', '?'])),
                "wildcards are not understood: {values:?}"
            );
            let equal = actual.is_some_and(|a| values.contains(&a.as_str()));
            match operator.as_str() {
                "Bool" | "StringEquals" | "ArnEquals" => equal,
                // A negated operator holds for a request without the key.
                "StringNotEquals" | "ArnNotEquals" => !equal,
                other => panic!("{other}: not understood"),
            }
        })
    })
}

/// The evaluator itself: a deny on a condition, an allow for one service and source, negated
/// operators holding for a request without the key; anything it does not know is refused.
#[test]
fn the_policy_evaluator_reads_the_forms_it_is_given() {
    let document = serde_json::json!({ "Statement": [
        { "Effect": "Deny", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "q",
          "Condition": { "ArnNotEquals": { "aws:PrincipalArn": ["a", "b"] } } },
        { "Effect": "Allow", "Principal": { "Service": "sns.amazonaws.com" },
          "Action": "sqs:SendMessage", "Resource": "q",
          "Condition": { "ArnEquals": { "aws:SourceArn": "t" } } },
        { "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "q",
          "Condition": { "Bool": { "aws:SecureTransport": "false" } } }
    ] });
    let send = |caller| Request::by(caller, "sqs:SendMessage");
    assert_eq!(verdict(&document, send(Caller::Role("a"))), Verdict::Silent);
    assert_eq!(verdict(&document, send(Caller::Role("b"))), Verdict::Silent);
    assert_eq!(verdict(&document, send(Caller::Role("c"))), Verdict::Denied);
    assert_eq!(
        verdict(&document, send(Caller::Role("a")).without_tls()),
        Verdict::Denied
    );
    assert_eq!(
        verdict(
            &document,
            Request::by(Caller::Role("c"), "sqs:ReceiveMessage")
        ),
        Verdict::Silent
    );
    let sns = Caller::Service("sns.amazonaws.com");
    let from = |topic| Request {
        source_arn: Some(topic),
        ..send(sns)
    };
    // A service has no aws:PrincipalArn: the first statement denies it.
    assert_eq!(verdict(&document, from("t")), Verdict::Denied);
    let without_first =
        serde_json::json!({ "Statement": document["Statement"].as_array().unwrap()[1..] });
    assert_eq!(verdict(&without_first, from("t")), Verdict::Allowed);
    assert_eq!(verdict(&without_first, from("u")), Verdict::Silent);
    let unknown = serde_json::json!({ "Statement": [
        { "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "q",
          "Condition": { "IpAddress": { "aws:SourceIp": "10.0.0.0/8" } } }
    ] });
    let refused = std::panic::catch_unwind(|| verdict(&unknown, send(Caller::Role("a"))));
    assert!(
        refused.is_err(),
        "an unknown condition must not pass as true or false"
    );
}

/// Every queue of the stack, in every shape of it, has its one policy, and it refuses any
/// request without TLS, even the function's.
#[test]
fn every_queue_refuses_requests_without_tls() {
    for overrides in [&[][..], &[("FanOut", "false")]] {
        let deployment = Deployment::new(overrides);
        let queues: BTreeSet<String> = deployment
            .resources_of_type("AWS::SQS::Queue")
            .into_keys()
            .collect();
        let policies = deployment.queue_policies();
        assert_eq!(
            policies.keys().cloned().collect::<BTreeSet<_>>(),
            queues,
            "{overrides:?}: a policy on each queue"
        );
        for (queue, document) in &policies {
            for action in ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:PurgeQueue"] {
                let request = Request::by(Caller::Role(FUNCTION_ROLE_ARN), action);
                assert_eq!(
                    verdict(document, request.without_tls()),
                    Verdict::Denied,
                    "{queue}: {action} without TLS"
                );
            }
        }
    }
}

/// SPEC §10: the job queue takes `SendMessage` only from the function's role, and from the
/// operator role when one is given (moving jobs back from the dead-letter queue); the queue
/// policy grants nothing itself (the role's own grant lets it send), and the mapping still
/// polls. The dead-letter queue refuses nothing over TLS (SQS moves failed jobs there itself).
#[test]
fn job_queue_takes_jobs_only_from_the_function_and_the_operator() {
    for operator in ["", OPERATOR_ARN] {
        let deployment = Deployment::new(&[("JobQueueOperatorRoleArn", operator)]);
        let policies = deployment.queue_policies();
        let jobs = &policies["JobQueue"];
        let send = |arn| verdict(jobs, Request::by(Caller::Role(arn), "sqs:SendMessage"));
        assert_eq!(
            send(FUNCTION_ROLE_ARN),
            Verdict::Silent,
            "the function sends"
        );
        let operator_may = if operator.is_empty() {
            Verdict::Denied
        } else {
            Verdict::Silent
        };
        assert_eq!(send(OPERATOR_ARN), operator_may, "operator {operator:?}");
        assert_eq!(send(STRANGER_ARN), Verdict::Denied, "anyone else");
        let service = Request::by(Caller::Service("sns.amazonaws.com"), "sqs:SendMessage");
        assert_eq!(verdict(jobs, service), Verdict::Denied, "a service");
        for action in SQS_POLLER_ACTIONS {
            let poll = Request::by(Caller::Role(FUNCTION_ROLE_ARN), action);
            assert_eq!(
                verdict(jobs, poll),
                Verdict::Silent,
                "the mapping's {action}"
            );
        }
        let dead = &policies["JobDeadLetterQueue"];
        let send = Request::by(Caller::Role(STRANGER_ARN), "sqs:SendMessage");
        assert_eq!(verdict(dead, send), Verdict::Silent, "nothing but TLS");
    }
    let inline = Deployment::new(&[("FanOut", "false")]);
    assert!(inline.resource("JobQueuePolicy").is_none());
    let parameter = &inline.template["Parameters"]["JobQueueOperatorRoleArn"];
    assert_eq!(parameter["Default"], "", "no operator unless one is named");
}

/// SPEC §10: the audit topic the stack creates accepts publishes only from Device Defender's
/// publishing role: the stack's own with ConfigureAuditNotifications, else the one given in
/// AuditPublisherRoleArn; nobody's when neither; TLS only. Its policy allows nobody anything.
/// A topic passed in is the owner's to lock (docs/deploy.md): the stack puts no policy on it.
#[test]
fn audit_topic_takes_publishes_only_from_device_defenders_role() {
    let cases: [(Overrides, Option<&str>); 4] = [
        (&[], None),
        (
            &[("ConfigureAuditNotifications", "true")],
            Some(STACK_PUBLISHER_ARN),
        ),
        (
            &[
                ("ConfigureAuditNotifications", "true"),
                ("AuditPublisherRoleArn", PUBLISHER_ARN),
            ],
            Some(STACK_PUBLISHER_ARN),
        ),
        (
            &[("AuditPublisherRoleArn", PUBLISHER_ARN)],
            Some(PUBLISHER_ARN),
        ),
    ];
    for (overrides, publisher) in cases {
        let deployment = Deployment::new(overrides);
        let policy = deployment
            .resource("AuditTopicPolicy")
            .expect("a topic policy");
        let props = &policy["Properties"];
        assert_eq!(json_list(&props["Topics"]), ["ref:AuditTopic"]);
        let document = &props["PolicyDocument"];
        statements_on(document, "ref:AuditTopic", "AuditTopicPolicy");
        for caller in [
            STACK_PUBLISHER_ARN,
            PUBLISHER_ARN,
            FUNCTION_ROLE_ARN,
            STRANGER_ARN,
        ] {
            let publish = Request::by(Caller::Role(caller), "sns:Publish");
            let expected = if Some(caller) == publisher {
                Verdict::Silent
            } else {
                Verdict::Denied
            };
            assert_eq!(
                verdict(document, publish),
                expected,
                "{overrides:?}: {caller}"
            );
            assert_eq!(
                verdict(document, publish.without_tls()),
                Verdict::Denied,
                "{overrides:?}: {caller} without TLS"
            );
        }
    }
    let passed_in = Deployment::new(&[("AuditTopicArn", OWN_TOPIC_ARN)]);
    assert!(passed_in.resource("AuditTopic").is_none());
    assert!(passed_in.resource("AuditTopicPolicy").is_none());
}

/// The function's SNS subscription keeps what SNS could not deliver: a redrive policy to a
/// queue that exists whatever the parameters, encrypted, that only SNS may fill and only from
/// the audit topic (no role of the account either: what is there is replayed by hand), with an
/// alarm on it.
#[test]
fn audit_subscription_has_a_dead_letter_queue_only_the_audit_topic_fills() {
    for (overrides, topic) in [
        (&[][..], "ref:AuditTopic"),
        (&[("AuditTopicArn", OWN_TOPIC_ARN)][..], OWN_TOPIC_ARN),
    ] {
        let deployment = Deployment::new(overrides);
        let queue = &subscription_dead_letter_queue(&deployment, topic);
        let resource = deployment.resource(queue).expect("the queue always exists");
        assert_eq!(resource["Type"], "AWS::SQS::Queue");
        assert_eq!(resource["Properties"]["SqsManagedSseEnabled"], true);

        let policies = deployment.queue_policies();
        let document = &policies[queue];
        let sns = Caller::Service("sns.amazonaws.com");
        let from = |source| Request {
            source_arn: Some(source),
            ..Request::by(sns, "sqs:SendMessage")
        };
        assert_eq!(
            verdict(document, from(topic)),
            Verdict::Allowed,
            "{overrides:?}"
        );
        assert_eq!(
            verdict(document, from("ref:NotificationTopic")),
            Verdict::Denied
        );
        assert_eq!(
            verdict(document, from(topic).without_tls()),
            Verdict::Denied
        );
        for role in [STRANGER_ARN, FUNCTION_ROLE_ARN] {
            let send = Request::by(Caller::Role(role), "sqs:SendMessage");
            assert_eq!(verdict(document, send), Verdict::Denied, "{role}");
        }

        let alarms = deployment.resources_of_type("AWS::CloudWatch::Alarm");
        let watched = format!("getatt:{queue}.QueueName");
        assert!(
            alarms
                .values()
                .any(|a| a["Properties"]["Dimensions"][0]["Value"] == watched.as_str()),
            "an alarm on {queue}"
        );
    }
}

/// The queue the function's SNS subscription (to `topic`) sends what it cannot deliver to.
fn subscription_dead_letter_queue(deployment: &Deployment, topic: &str) -> String {
    let function = deployment.resource("RemediatorFunction").expect("function");
    let events = function["Properties"]["Events"]
        .as_object()
        .expect("Events");
    let sns: Vec<_> = events.values().filter(|e| e["Type"] == "SNS").collect();
    let [event] = sns[..] else {
        panic!("one SNS event: {sns:?}")
    };
    assert_eq!(event["Properties"]["Topic"], topic);
    let target = json_text(&event["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]);
    target
        .strip_prefix("getatt:")
        .and_then(|t| t.strip_suffix(".Arn"))
        .unwrap_or_else(|| panic!("deadLetterTargetArn must be !GetAtt <queue>.Arn: {target}"))
        .to_owned()
}

/// The log group Lambda writes the function's logs to (its default name, no other configured)
/// is the stack's, with a retention, and is kept when the stack is deleted or the group
/// replaced: with KeepReplacedVersion=false it holds the only copy of a replaced document. The
/// role writes only there (function_role_grants_the_rest_on_its_own_resources_only), and no
/// job is delivered before that grant exists.
#[test]
fn function_logs_to_its_own_retained_log_group() {
    let template = template();
    let group = &template["Resources"]["RemediatorLogGroup"];
    assert_eq!(group["Type"].as_str(), Some("AWS::Logs::LogGroup"));
    for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(plain(&group[policy]), Some("Retain"), "{policy}");
    }
    assert_eq!(
        resource_text(&group["Properties"]["LogGroupName"]),
        "!Sub /aws/lambda/${RemediatorFunction}",
        "the group Lambda writes the function's logs to by default"
    );
    assert!(scalar(&group["Properties"]["RetentionInDays"]).is_some());
    let logging = &function(&template)["Properties"]["LoggingConfig"];
    assert!(
        logging.get("LogGroup").is_none(),
        "no other log group: the notification names the function from its default group"
    );
    let mapping = &template["Resources"]["JobEventSourceMapping"];
    assert_eq!(plain(&mapping["DependsOn"]), Some(LOGGING_POLICY));
}

/// Confused deputy: both Device Defender roles may be assumed by AWS IoT only for this
/// account's audit configuration in this region (Device Defender's guide: the source ARN of the
/// audit configuration's roles is the account's IoT ARN with an empty resource). docs/deploy.md
/// shows the same trust policy for wiring Device Defender by hand.
#[test]
fn device_defender_roles_trust_only_this_accounts_audit_configuration() {
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "iot.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } },
                "ArnEquals": {
                    "aws:SourceArn": { "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:" }
                }
            }
        }]
    });
    let template = template();
    for role in ["AuditRole", "AuditPublishRole"] {
        let document = &template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"];
        assert_eq!(to_json(document), trust, "{role}");
    }
    let by_hand = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "iot.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": { "aws:SourceAccount": "ACCOUNT_ID" },
                "ArnEquals": { "aws:SourceArn": "arn:aws:iot:REGION:ACCOUNT_ID:" }
            }
        }]
    });
    let shown = json_blocks(&read("docs/deploy.md"));
    assert!(
        shown.contains(&by_hand),
        "docs/deploy.md must show the publishing role's trust policy, in placeholders: {by_hand:#}"
    );
}

/// The fenced `json` blocks of a Markdown text that parse as JSON.
fn json_blocks(markdown: &str) -> Vec<serde_json::Value> {
    markdown
        .split("```json\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter_map(|block| serde_json::from_str(block).ok())
        .collect()
}

/// EncryptAuditTopic: the audit topic the stack creates is encrypted with the stack's key and the
/// stack's publishing role may use that key; otherwise, or for a topic passed in, neither.
#[test]
fn audit_topic_encryption_is_optional_and_its_publisher_may_use_the_key() {
    let configured = ("ConfigureAuditNotifications", "true");
    for (overrides, encrypted) in [
        (&[configured][..], false),
        (&[configured, ("EncryptAuditTopic", "true")][..], true),
        (
            &[
                configured,
                ("EncryptAuditTopic", "true"),
                ("AuditTopicArn", OWN_TOPIC_ARN),
            ][..],
            false,
        ),
    ] {
        let deployment = Deployment::new(overrides);
        if let Some(topic) = deployment.resource("AuditTopic") {
            let key = &topic["Properties"]["KmsMasterKeyId"];
            let expected = if encrypted {
                serde_json::json!("ref:NotificationKey")
            } else {
                serde_json::Value::Null
            };
            assert_eq!(key, &expected, "{overrides:?}");
        }
        let role = deployment.resource("AuditPublishRole").expect("configured");
        let statements: Vec<&serde_json::Value> = role["Properties"]["Policies"]
            .as_array()
            .expect("Policies")
            .iter()
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .expect("statements")
            })
            .collect();
        let kms: Vec<(Vec<&str>, Vec<&str>)> = statements
            .iter()
            .filter(|s| {
                json_list(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("kms:"))
            })
            .map(|s| (json_list(&s["Action"]), json_list(&s["Resource"])))
            .collect();
        let expected = if encrypted {
            vec![(
                vec!["kms:GenerateDataKey*", "kms:Decrypt"],
                vec!["getatt:NotificationKey.Arn"],
            )]
        } else {
            vec![]
        };
        assert_eq!(
            kms, expected,
            "{overrides:?}: the publishing role's KMS grant"
        );
    }
}

// --- SPEC §11: across accounts ---

/// The resolved statements of the deployed function role's inline policies.
fn deployed_role_statements(deployment: &Deployment) -> Vec<serde_json::Value> {
    let role = deployment.resource(FUNCTION_ROLE).expect("the role");
    role["Properties"]["Policies"]
        .as_array()
        .expect("Policies")
        .iter()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .expect("statements")
                .clone()
        })
        .collect()
}

/// The central role may assume a role only with MemberRoleName set, only that name (in any
/// account: the function learns the account from the audit), and with OrganizationId only in
/// accounts of the organization. The role it assumes is the one member.yaml names.
#[test]
fn central_role_assumes_only_the_member_role() {
    let assume = |overrides: Overrides| -> Vec<serde_json::Value> {
        deployed_role_statements(&Deployment::new(overrides))
            .into_iter()
            .filter(|s| {
                json_list(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("sts:"))
            })
            .map(|mut s| {
                s.as_object_mut().expect("a statement").remove("Sid");
                s
            })
            .collect()
    };
    assert_eq!(
        assume(&[]),
        Vec::<serde_json::Value>::new(),
        "no member role: no sts action"
    );
    assert_eq!(
        assume(&[("OrganizationId", ORGANIZATION)]),
        Vec::<serde_json::Value>::new(),
        "an organization alone assumes nothing"
    );
    let statement = |condition: Option<serde_json::Value>| {
        let mut statement = serde_json::json!({
            "Effect": "Allow",
            "Action": ASSUME_ROLE,
            "Resource": "sub:arn:${AWS::Partition}:iam::*:role/iot-audit-remediator-member"
        });
        if let Some(condition) = condition {
            statement["Condition"] = condition;
        }
        statement
    };
    let role = ("MemberRoleName", "iot-audit-remediator-member");
    assert_eq!(assume(&[role]), [statement(None)]);
    assert_eq!(
        assume(&[role, ("OrganizationId", ORGANIZATION)]),
        [statement(Some(serde_json::json!({
            "StringEquals": { "aws:ResourceOrgID": ORGANIZATION }
        })))]
    );
}

/// The two stacks name the same things: the member role's name (no path, so the central role's
/// grant on role/<name> is its ARN) and the central stack's outputs the member is given, its
/// function and that function's role (no path either, so role/<CentralRoleName> is its ARN).
#[test]
fn the_two_stacks_name_the_same_roles_and_function() {
    let (member, central) = (member(), template());
    let member_role = &member["Resources"]["MemberRole"]["Properties"];
    assert!(is_ref(&member_role["RoleName"], "MemberRoleName"));
    assert!(member_role.get("Path").is_none(), "MemberRole: no path");
    assert!(MEMBER_ROLE_ARN.ends_with("role/${MemberRoleName}"));
    let names = [
        (
            &central["Parameters"]["MemberRoleName"],
            r"^[\w+=,.@-]{0,64}$",
        ),
        (
            &member["Parameters"]["MemberRoleName"],
            r"^[\w+=,.@-]{1,64}$",
        ),
    ];
    for (parameter, pattern) in names {
        assert_eq!(
            plain(&parameter["AllowedPattern"]),
            Some(pattern),
            "an IAM role name"
        );
    }
    assert_eq!(
        plain(&central["Parameters"]["MemberRoleName"]["Default"]),
        Some(""),
        "single account unless asked"
    );

    let outputs = &central["Outputs"];
    assert!(is_ref(
        &outputs["RemediatorRoleName"]["Value"],
        FUNCTION_ROLE
    ));
    assert_eq!(
        resource_text(&outputs["RemediatorFunctionArn"]["Value"]),
        "!GetAtt RemediatorFunction.Arn"
    );
    let role = &central["Resources"][FUNCTION_ROLE]["Properties"];
    assert!(role.get("Path").is_none(), "{FUNCTION_ROLE}: no path");
}

/// Off by default: no member role, no external id, no organization, no member topic; the
/// external id is NoEcho on both sides and has the characters STS accepts.
#[test]
fn across_accounts_is_off_by_default() {
    let template = template();
    let params = &template["Parameters"];
    for name in [
        "MemberRoleName",
        "MemberExternalId",
        "OrganizationId",
        "MemberAccountIds",
    ] {
        assert_eq!(plain(&params[name]["Default"]), Some(""), "{name}");
    }
    assert_eq!(plain(&params["AnyMemberTopic"]["Default"]), Some("false"));
    assert_eq!(
        plain(&params["MemberAccountIds"]["Type"]),
        Some("CommaDelimitedList")
    );
    assert_eq!(params["MemberExternalId"]["NoEcho"].as_bool(), Some(true));
    assert_eq!(
        plain(&params["MemberExternalId"]["AllowedPattern"]),
        Some(r"^([\w+=,.@:/-]{2,1224})?$")
    );
    let member = member();
    let external = &member["Parameters"]["MemberExternalId"];
    assert_eq!(external["NoEcho"].as_bool(), Some(true));
    assert!(
        external.get("Default").is_none(),
        "the member role always wants one"
    );
    assert_eq!(
        plain(&external["AllowedPattern"]),
        Some(r"^[\w+=,.@:/-]{2,1224}$")
    );

    let deployment = Deployment::new(&[]);
    assert!(deployment
        .resources_of_type("AWS::Lambda::Permission")
        .is_empty());
    assert!(deployment.broken_rules().is_empty());
    let variables = &deployment.resource("RemediatorFunction").expect("function")["Properties"]
        ["Environment"]["Variables"];
    assert_eq!(
        variables["MEMBER_ROLE_NAME"], "",
        "empty = this account only"
    );
    assert_eq!(variables["MEMBER_EXTERNAL_ID"], "");
}

/// Parameters of the central stack across accounts.
const WITH_MEMBER_ROLE: (&str, &str) = ("MemberRoleName", "iot-audit-remediator-member");
const WITH_ORGANIZATION: (&str, &str) = ("OrganizationId", ORGANIZATION);
const WITH_ANY_TOPIC: (&str, &str) = ("AnyMemberTopic", "true");
const WITH_MEMBER_ACCOUNTS: (&str, &str) = ("MemberAccountIds", "111122223333,444455556666");

/// Who may invoke the function besides its own audit topic (SAM's event): with MemberRoleName,
/// SNS on behalf of each listed account (SourceAccount: a Lambda permission cannot name an
/// organization for a service principal), or with AnyMemberTopic any topic.
#[test]
fn member_topics_may_invoke_the_function_as_listed() {
    let (role, organization, any, listed) = (
        WITH_MEMBER_ROLE,
        WITH_ORGANIZATION,
        WITH_ANY_TOPIC,
        WITH_MEMBER_ACCOUNTS,
    );
    assert_eq!(listed.1, format!("{MEMBER_ACCOUNT},{OTHER_MEMBER_ACCOUNT}"));
    let permission = |source_account: Option<&str>| {
        let mut properties = serde_json::json!({
            "Action": "lambda:InvokeFunction",
            "FunctionName": "ref:RemediatorFunction",
            "Principal": "sns.amazonaws.com"
        });
        if let Some(account) = source_account {
            properties["SourceAccount"] = account.into();
        }
        properties
    };
    let cases: [(Overrides, Vec<(String, serde_json::Value)>); 5] = [
        (&[], vec![]),
        (&[role], vec![]),
        (&[role, organization], vec![]),
        (
            &[role, listed],
            [MEMBER_ACCOUNT, OTHER_MEMBER_ACCOUNT]
                .map(|a| (format!("MemberAuditTopicsOf{a}"), permission(Some(a))))
                .into(),
        ),
        (
            &[role, organization, any],
            vec![("AnyMemberAuditTopic".to_owned(), permission(None))],
        ),
    ];
    for (overrides, expected) in cases {
        let deployment = Deployment::new(overrides);
        assert_eq!(
            deployment.broken_rules(),
            Vec::<String>::new(),
            "{overrides:?}"
        );
        let permissions: Vec<(String, serde_json::Value)> = deployment
            .resources_of_type("AWS::Lambda::Permission")
            .into_iter()
            .map(|(name, p)| (name, p["Properties"].clone()))
            .collect();
        assert_eq!(permissions, expected, "{overrides:?}");
    }
    // Without the member role nothing opens, whatever the Rules say.
    assert!(Deployment::new(&[listed])
        .resources_of_type("AWS::Lambda::Permission")
        .is_empty());
}

/// The template's Rules refuse what a condition cannot: AnyMemberTopic without the organization
/// (or with a list, or without the member role), and member accounts without the member role.
#[test]
fn rules_refuse_member_topics_without_their_guards() {
    let (role, organization, any, listed) = (
        WITH_MEMBER_ROLE,
        WITH_ORGANIZATION,
        WITH_ANY_TOPIC,
        WITH_MEMBER_ACCOUNTS,
    );
    let refused: [(Overrides, &str); 4] = [
        (&[role, any], "AnyMemberTopic needs OrganizationId"),
        (&[organization, any], "AnyMemberTopic needs MemberRoleName"),
        (
            &[role, organization, any, listed],
            "AnyMemberTopic needs an empty MemberAccountIds (any topic is already allowed)",
        ),
        (&[listed], "MemberAccountIds needs MemberRoleName"),
    ];
    for (overrides, rule) in refused {
        let deployment = Deployment::new(overrides);
        assert!(
            deployment.broken_rules().contains(&rule.to_owned()),
            "{overrides:?}: {:?}",
            deployment.broken_rules()
        );
    }
}

/// member.yaml is plain CloudFormation, so that a service-managed StackSet deploys it: no
/// transform (SAM or language extensions), no SAM resource or section.
#[test]
fn member_template_has_no_transform() {
    let member = member();
    assert_eq!(
        plain(&member["AWSTemplateFormatVersion"]),
        Some("2010-09-09")
    );
    for section in ["Transform", "Globals"] {
        assert!(member.get(section).is_none(), "member.yaml: no {section}");
    }
    for (name, resource) in member["Resources"].as_mapping().expect("Resources") {
        let name = name.as_str().expect("a logical id");
        assert!(!name.starts_with("Fn::"), "{name}: a language extension");
        let kind = plain(&resource["Type"]).unwrap_or_default();
        assert!(
            kind.starts_with("AWS::") && !kind.starts_with("AWS::Serverless::"),
            "{name}: {kind}"
        );
    }
}

/// The member role exists once per account (IAM is global, its name fixed): in RoleRegion's
/// stack only. It trusts the central function's role alone, named by aws:PrincipalArn (a
/// condition keeps naming a role that is deleted and created again; a role Principal would turn
/// into the old role's unique id), and only with the external id.
#[test]
fn member_role_trusts_only_the_central_role_with_the_external_id() {
    assert!(Deployment::member(OTHER_REGION, &[])
        .resource("MemberRole")
        .is_none());
    let deployment = Deployment::member(ROLE_REGION, &[]);
    let role = deployment.resource("MemberRole").expect("in RoleRegion");
    assert_eq!(
        role["Properties"]["RoleName"],
        "iot-audit-remediator-member"
    );
    let trust = without_sids(role["Properties"]["AssumeRolePolicyDocument"].clone());
    assert_eq!(
        trust,
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{CENTRAL_ACCOUNT}:root") },
                "Action": ASSUME_ROLE,
                "Condition": {
                    "ArnEquals": { "aws:PrincipalArn": CENTRAL_ROLE },
                    "StringEquals": { "sts:ExternalId": EXTERNAL_ID }
                }
            }]
        })
    );
    // What that means: the central role with the external id, and nobody else.
    let document = &role["Properties"]["AssumeRolePolicyDocument"];
    let others = format!("arn:aws:iam::{CENTRAL_ACCOUNT}:role/anyone-else");
    for caller in [CENTRAL_ROLE, others.as_str(), STRANGER_ARN] {
        for external_id in [Some(EXTERNAL_ID), Some("another-one"), None] {
            let request = Request {
                external_id,
                ..Request::by(Caller::Role(caller), ASSUME_ROLE)
            };
            let expected = if caller == CENTRAL_ROLE && external_id == Some(EXTERNAL_ID) {
                Verdict::Allowed
            } else {
                Verdict::Silent
            };
            assert_eq!(
                verdict(document, request),
                expected,
                "{caller} with {external_id:?}"
            );
        }
    }
    let outputs = &deployment.template["Outputs"]["MemberRoleArn"];
    assert_eq!(outputs["Condition"], "CreateMemberRole");
}

/// The member role grants IOT_ACTIONS and nothing else: the audit actions on `*` (no resource
/// type), the policy actions on the prefix's policies of its account in every region (the
/// role is global; the central function works each audit in its region). The prefix is the
/// central stack's.
#[test]
fn member_role_grants_exactly_the_iot_actions_on_the_prefix() {
    let member = member();
    let role = &member["Resources"]["MemberRole"]["Properties"];
    for key in ["ManagedPolicyArns", "PermissionsBoundary"] {
        assert!(role.get(key).is_none(), "MemberRole: no {key}");
    }
    let all: Vec<&Value> = one_or_many(&role["Policies"])
        .into_iter()
        .flat_map(|p| statements(&p["PolicyDocument"]))
        .collect();
    let grants = grants(&all);
    assert_iot_grants(&grants, &[POLICY_ARN_EVERY_REGION], "MemberRole");
    assert_eq!(iot_only(&grants), grants, "MemberRole: only IoT actions");

    let central = template();
    for key in [
        "Type",
        "Default",
        "AllowedPattern",
        "MinLength",
        "MaxLength",
    ] {
        assert_eq!(
            member["Parameters"]["TargetPolicyPrefix"][key],
            central["Parameters"]["TargetPolicyPrefix"][key],
            "TargetPolicyPrefix.{key}: as in template.yaml"
        );
    }
    let resources: Vec<&str> = member["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| {
            r["Type"]
                .as_str()
                .is_some_and(|t| t.starts_with("AWS::IAM::"))
        })
        .map(|(n, r)| {
            assert_eq!(
                r["Type"].as_str(),
                Some("AWS::IAM::Role"),
                "{n:?}: no policy resource"
            );
            n.as_str().unwrap_or_default()
        })
        .collect();
    assert_eq!(resources, ["MemberRole", "AuditRole", "AuditPublishRole"]);
    for name in ["AuditRole", "AuditPublishRole"] {
        device_defender_role(name, &member["Resources"][name]["Properties"]);
    }
    no_pass_role_and_no_s3(&member);
}

/// Device Defender in each member account and region as template.yaml configures it with
/// ConfigureAuditNotifications=true: the same audit configuration, roles (confused-deputy
/// conditions included), and scheduled audit; the member takes the same audit parameters.
#[test]
fn member_configures_device_defender_as_the_central_stack_does() {
    for schedule in ["NONE", "DAILY", "WEEKLY"] {
        let schedule = ("AuditSchedule", schedule);
        // No pseudo parameters: both stay symbolic, as the central stack's do.
        let member = Deployment::of(&member(), &[&MEMBER_PARAMETERS[..], &[schedule]].concat());
        let central = Deployment::new(&[("ConfigureAuditNotifications", "true"), schedule]);
        for name in [
            "AuditConfiguration",
            "AuditRole",
            "AuditPublishRole",
            "ScheduledAudit",
        ] {
            let strip = |r: Option<serde_json::Value>| {
                r.map(|r| (r["Properties"].clone(), r["DependsOn"].clone()))
            };
            assert_eq!(
                strip(member.resource(name)),
                strip(central.resource(name)),
                "{name} with {schedule:?}"
            );
        }
    }
    let (member, central) = (member(), template());
    for name in ["AuditSchedule", "AuditDayOfWeek"] {
        for key in ["Type", "Default", "AllowedValues"] {
            assert_eq!(
                member["Parameters"][name][key], central["Parameters"][name][key],
                "{name}.{key}"
            );
        }
    }
}

/// The member's audit topic takes publishes only from its Device Defender publishing role, over
/// TLS; the central account may subscribe its function to it (by lambda, that function only),
/// the way the Lambda guide subscribes across accounts, should SNS want the member's own
/// subscription confirmed.
#[test]
fn member_topic_takes_publishes_only_from_its_publishing_role() {
    for region in [ROLE_REGION, OTHER_REGION] {
        let deployment = Deployment::member(region, &[]);
        let policy = deployment.resource("AuditTopicPolicy").expect("always");
        assert_eq!(
            json_list(&policy["Properties"]["Topics"]),
            ["ref:AuditTopic"]
        );
        let document = &policy["Properties"]["PolicyDocument"];
        statements_on(document, "ref:AuditTopic", "AuditTopicPolicy");
        let publisher = "getatt:AuditPublishRole.Arn";
        let member_role = format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/iot-audit-remediator-member");
        for caller in [publisher, CENTRAL_ROLE, member_role.as_str(), STRANGER_ARN] {
            let publish = Request::by(Caller::Role(caller), "sns:Publish");
            let expected = if caller == publisher {
                Verdict::Silent
            } else {
                Verdict::Denied
            };
            assert_eq!(
                verdict(document, publish),
                expected,
                "{region}: {caller} publishes"
            );
            assert_eq!(
                verdict(document, publish.without_tls()),
                Verdict::Denied,
                "{caller}: TLS only"
            );
        }
        let service = Request::by(Caller::Service("iot.amazonaws.com"), "sns:Publish");
        assert_eq!(
            verdict(document, service),
            Verdict::Denied,
            "a service has no aws:PrincipalArn"
        );

        let subscribe = |caller, protocol, endpoint| {
            verdict(
                document,
                Request::subscribe(Caller::Role(caller), protocol, endpoint),
            )
        };
        let other_function = CENTRAL_FUNCTION_ARN.replace("A1B2C3", "OTHER");
        assert_eq!(
            subscribe(CENTRAL_ROLE, "lambda", CENTRAL_FUNCTION_ARN),
            Verdict::Allowed
        );
        assert_eq!(
            subscribe(CENTRAL_ROLE, "lambda", &other_function),
            Verdict::Silent
        );
        assert_eq!(
            subscribe(CENTRAL_ROLE, "sqs", CENTRAL_FUNCTION_ARN),
            Verdict::Silent
        );
        assert_eq!(
            subscribe(STRANGER_ARN, "lambda", CENTRAL_FUNCTION_ARN),
            Verdict::Silent
        );
    }
}

/// The central function is subscribed to the member's audit topic in every region, with a
/// dead-letter queue in the member account that only SNS may fill, from that topic; every
/// queue of the member stack refuses requests without TLS.
#[test]
fn member_subscribes_the_central_function_with_a_dead_letter_queue() {
    for region in [ROLE_REGION, OTHER_REGION] {
        let deployment = Deployment::member(region, &[]);
        let subscriptions = deployment.resources_of_type("AWS::SNS::Subscription");
        let [(name, subscription)] = &subscriptions.into_iter().collect::<Vec<_>>()[..] else {
            panic!("one subscription")
        };
        let props = &subscription["Properties"];
        assert_eq!(props["Protocol"], "lambda", "{name}");
        assert_eq!(props["Endpoint"], CENTRAL_FUNCTION_ARN, "{name}");
        assert_eq!(props["TopicArn"], "ref:AuditTopic", "{name}");
        let queue = json_text(&props["RedrivePolicy"]["deadLetterTargetArn"]);
        let queue = queue
            .strip_prefix("getatt:")
            .and_then(|q| q.strip_suffix(".Arn"))
            .expect("a queue");
        let resource = deployment.resource(queue).expect("the dead-letter queue");
        assert_eq!(resource["Properties"]["SqsManagedSseEnabled"], true);

        let policies = deployment.queue_policies();
        assert_eq!(
            policies.keys().collect::<Vec<_>>(),
            [queue],
            "one queue, one policy"
        );
        let document = &policies[queue];
        let sns = Caller::Service("sns.amazonaws.com");
        let from = |topic| Request {
            source_arn: Some(topic),
            ..Request::by(sns, "sqs:SendMessage")
        };
        assert_eq!(verdict(document, from("ref:AuditTopic")), Verdict::Allowed);
        assert_eq!(verdict(document, from(OWN_TOPIC_ARN)), Verdict::Denied);
        assert_eq!(
            verdict(document, from("ref:AuditTopic").without_tls()),
            Verdict::Denied
        );
        for role in [STRANGER_ARN, CENTRAL_ROLE] {
            let send = Request::by(Caller::Role(role), "sqs:SendMessage");
            assert_eq!(verdict(document, send), Verdict::Denied, "{role}");
        }
    }
}

/// The evaluator's account principals and subscription conditions: `…:root` stands for every
/// principal of that account (and only of it); sns:Protocol and sns:Endpoint are the request's.
#[test]
fn the_policy_evaluator_reads_account_principals_and_subscriptions() {
    let document = serde_json::json!({ "Statement": [
        { "Effect": "Allow", "Principal": { "AWS": "arn:aws:iam::210987654321:root" },
          "Action": "sns:Subscribe", "Resource": "t",
          "Condition": { "StringEquals": { "sns:Protocol": "lambda", "sns:Endpoint": "f" } } }
    ] });
    let subscribe = |caller, protocol, endpoint| {
        verdict(
            &document,
            Request::subscribe(Caller::Role(caller), protocol, endpoint),
        )
    };
    assert_eq!(
        subscribe("arn:aws:iam::210987654321:role/a", "lambda", "f"),
        Verdict::Allowed
    );
    assert_eq!(
        subscribe("arn:aws:iam::210987654321:root", "lambda", "f"),
        Verdict::Allowed
    );
    assert_eq!(
        subscribe("arn:aws:iam::123456789012:role/a", "lambda", "f"),
        Verdict::Silent
    );
    assert_eq!(
        subscribe("arn:aws:iam::210987654321:role/a", "sqs", "f"),
        Verdict::Silent
    );
    assert_eq!(
        subscribe("arn:aws:iam::210987654321:role/a", "lambda", "g"),
        Verdict::Silent
    );
    let named = serde_json::json!({ "AWS": "arn:aws:iam::210987654321:role/a" });
    assert!(!principal_matches(
        &named,
        Caller::Role("arn:aws:iam::210987654321:role/b")
    ));
    let publish = Request::by(
        Caller::Role("arn:aws:iam::210987654321:role/a"),
        "sns:Publish",
    );
    assert_eq!(
        verdict(&document, publish),
        Verdict::Silent,
        "another action"
    );
}

/// docs/organization.md's commands give member.yaml every parameter it has no default for and
/// only parameters it has, and give the central stack only parameters template.yaml has.
#[test]
fn organization_guide_names_the_parameters_that_exist() {
    let guide = read("docs/organization.md");
    let named = |marker: &str, end: char| -> BTreeSet<String> {
        guide
            .split(marker)
            .skip(1)
            .filter_map(|rest| rest.split(end).next())
            .map(str::to_owned)
            .collect()
    };
    let declared = |template: &Value| -> BTreeSet<String> {
        template["Parameters"]
            .as_mapping()
            .expect("Parameters")
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect()
    };
    let (member, central) = (member(), template());
    let given = named("ParameterKey=", ',');
    assert!(given.is_subset(&declared(&member)), "{given:?}");
    let required: BTreeSet<String> = member["Parameters"]
        .as_mapping()
        .expect("Parameters")
        .iter()
        .filter(|(_, p)| p.get("Default").is_none())
        .filter_map(|(k, _)| k.as_str().map(str::to_owned))
        .collect();
    assert!(
        required.is_subset(&given),
        "required: {required:?}, given: {given:?}"
    );

    // The lines of the command after --parameter-overrides, up to the last continued one.
    let after = guide
        .split("--parameter-overrides")
        .nth(1)
        .expect("the central stack's --parameter-overrides");
    let mut lines = Vec::new();
    for line in after.lines() {
        lines.push(line);
        if !line.trim_end().ends_with('\\') {
            break;
        }
    }
    let overridden: BTreeSet<String> = lines
        .iter()
        .flat_map(|line| line.split_whitespace())
        .filter_map(|word| word.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    assert!(overridden.contains("MemberRoleName"), "{overridden:?}");
    let central_parameters = declared(&central);
    for name in &overridden {
        if !name.starts_with("--") {
            assert!(
                central_parameters.contains(name),
                "template.yaml has no {name}"
            );
        }
    }
}
