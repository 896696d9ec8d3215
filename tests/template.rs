//! The deployment grants exactly what the code needs (SPEC §7), and the three lists stay in step:
//! the IoT calls in `src/aws/`, `iot_audit_remediator::aws::IOT_ACTIONS`, the role in
//! `template.yaml` and the standalone `policies/remediator-iam-policy.json`. Also holds the
//! template's environment to the variables `src/config.rs` reads, with the same defaults, and
//! what it tells people (SPEC §8) to the spec: the encrypted notification topic, the e-mail
//! subscription's filter, the alarms and whom they notify.
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
    "iot:ListAuditSuppressions",
    "iot:DescribeAuditSuppression",
    "iot:CreateAuditSuppression",
    "iot:UpdateAuditSuppression",
];
/// The resource of every other IoT action: the policies whose name has the prefix the code uses.
const POLICY_ARN: &str =
    "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:policy/${TargetPolicyPrefix}*";
/// What writing logs needs, besides the IoT actions.
const LOGGING_ACTIONS: &[&str] = &[
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
];
/// What Lambda's event source mapping needs from the function's role to deliver SQS messages.
const SQS_POLLER_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];
/// The only resource SQS actions may be granted on.
const JOB_QUEUE_ARN: &str = "!GetAtt JobQueue.Arn";
/// The notification topic: the only resource `sns:Publish` may be granted on.
const NOTIFICATION_TOPIC: &str = "NotificationTopic";
/// The standalone policy's notification topic, in placeholders.
const STANDALONE_TOPIC_ARN: &str = "arn:aws:sns:REGION:ACCOUNT_ID:TOPIC_NAME";
/// SDK operations of the SQS and SNS clients, as IAM authorises them.
const SQS_OPERATIONS: &[(&str, &str)] = &[
    ("send_message_batch", "sqs:SendMessage"),
    ("publish", "sns:Publish"),
];
/// The managed policy SAM attaches by default: exactly the three logging actions.
const BASIC_EXECUTION_POLICY: &str = "AWSLambdaBasicExecutionRole";
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
    let statements: Vec<&Value> = one_or_many(&document["Statement"])
        .into_iter()
        .map(|statement| match tagged(statement) {
            Some((tag, Value::Sequence(branches))) if tag == "If" => {
                assert_eq!(branches.len(), 3, "{statement:?}");
                assert!(
                    matches!(tagged(&branches[2]), Some((t, v)) if t == "Ref" && v.as_str() == Some("AWS::NoValue")),
                    "a conditional statement's else branch must be AWS::NoValue: {statement:?}"
                );
                &branches[1]
            }
            _ => statement,
        })
        .collect();
    assert!(
        !statements.is_empty(),
        "a policy document without statements: {document:?}"
    );
    statements
}

/// The grants of the function's role: the inline documents of its `Policies`. Managed policies
/// must be the basic execution role (logging only); SAM policy templates, `Role` (a role from
/// elsewhere) and anything that is not a plain policy document are refused.
fn function_grants(template: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let props = &function(template)["Properties"];
    assert!(
        props.get("Role").is_none(),
        "RemediatorFunction must get its role from Policies, not a Role of its own"
    );
    assert!(
        template["Globals"]["Function"].get("Policies").is_none()
            && template["Globals"]["Function"].get("Role").is_none(),
        "permissions must be on the function, not in Globals"
    );
    let policies = props["Policies"]
        .as_sequence()
        .expect("RemediatorFunction has a Policies list");
    let mut documents = Vec::new();
    for policy in policies {
        match policy {
            Value::String(managed) => assert!(
                managed == BASIC_EXECUTION_POLICY
                    || managed.ends_with(&format!(":policy/service-role/{BASIC_EXECUTION_POLICY}")),
                "unexpected managed policy {managed}"
            ),
            Value::Mapping(_) if policy.get("Statement").is_some() => documents.push(policy),
            other => panic!("only plain policy documents are allowed in Policies: {other:?}"),
        }
    }
    assert!(
        props.get("ManagedPolicyArns").is_none(),
        "ManagedPolicyArns widens the role beyond Policies"
    );
    let all: Vec<&Value> = documents.into_iter().flat_map(statements).collect();
    grants(&all)
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

#[test]
fn function_role_grants_exactly_the_iot_actions_the_code_calls() {
    let template = template();
    let grants = function_grants(&template);

    let iot_actions: BTreeSet<String> = grants
        .keys()
        .filter(|a| a.starts_with("iot:"))
        .cloned()
        .collect();
    assert_eq!(
        iot_actions,
        expected_iot_actions(),
        "the role's IoT actions differ from iot_audit_remediator::aws::IOT_ACTIONS"
    );

    let scoped = format!("!Sub {POLICY_ARN}");
    let topic = format!("!Ref {NOTIFICATION_TOPIC}");
    for (action, resources) in &grants {
        if UNSCOPED_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                resources,
                &BTreeSet::from(["*".to_owned()]),
                "{action} has no resource type: granted on * and nothing else"
            );
        } else if action.starts_with("iot:") {
            assert_eq!(
                resources,
                &BTreeSet::from([scoped.clone()]),
                "{action} must be scoped to exactly {POLICY_ARN}"
            );
        } else if action.starts_with("sqs:") {
            assert_eq!(
                resources,
                &BTreeSet::from([JOB_QUEUE_ARN.to_owned()]),
                "{action} must be granted on the job queue only"
            );
        } else if action.starts_with("sns:") {
            assert!(
                SNS_ACTIONS.contains(&action.as_str()),
                "{action}: the function only publishes"
            );
            assert_eq!(
                resources,
                &BTreeSet::from([topic.clone()]),
                "{action} must be granted on the notification topic only"
            );
        } else {
            assert!(
                LOGGING_ACTIONS.contains(&action.as_str()),
                "{action} is neither an IoT action of the code nor needed for logging"
            );
        }
    }
    let sqs_actions: BTreeSet<&str> = grants
        .keys()
        .map(String::as_str)
        .filter(|a| a.starts_with("sqs:"))
        .collect();
    let needed: BTreeSet<&str> = SQS_ACTIONS
        .iter()
        .chain(SQS_POLLER_ACTIONS)
        .copied()
        .collect();
    assert_eq!(
        sqs_actions, needed,
        "the code's SQS calls and the mapping's polling"
    );
    let sns_actions: BTreeSet<&str> = grants
        .keys()
        .map(String::as_str)
        .filter(|a| a.starts_with("sns:"))
        .collect();
    assert_eq!(
        sns_actions,
        SNS_ACTIONS.iter().copied().collect(),
        "notifications"
    );
    assert!(
        grants.keys().all(|a| !a.starts_with("kms:")),
        "no KMS permission: the notification key's policy covers publishing through SNS"
    );
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
/// trust only IoT and may publish to SNS; no statement anywhere passes roles or touches S3. No
/// topic policy or KMS grant widens who may publish, and the one KMS key (the notification
/// topic's) is usable by this account's principals only through SNS and by its alarms.
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
                    | "AWS::SNS::TopicPolicy"
                    | "AWS::KMS::Grant"
            ),
            "{name}: {kind} could widen a role"
        );
        if kind == "AWS::KMS::Key" {
            assert_eq!(name, "NotificationKey", "the only KMS key");
            assert_eq!(
                without_sids(to_json(&resource["Properties"]["KeyPolicy"])),
                notification_key_policy(),
                "{name}'s key policy"
            );
        }
        if kind == "AWS::IAM::Role" {
            let props = &resource["Properties"];
            for statement in statements(&props["AssumeRolePolicyDocument"]) {
                let service = one_or_many(&statement["Principal"]["Service"]);
                assert_eq!(
                    service
                        .iter()
                        .copied()
                        .filter_map(plain)
                        .collect::<Vec<_>>(),
                    ["iot.amazonaws.com"],
                    "{name} trusts only AWS IoT"
                );
            }
            for managed in one_or_many(&props["ManagedPolicyArns"]) {
                let text = resource_text(managed);
                assert!(
                    text.ends_with(":iam::aws:policy/service-role/AWSIoTDeviceDefenderAudit"),
                    "{name}: unexpected managed policy {text}"
                );
            }
            let documents = one_or_many(&props["Policies"]);
            let all: Vec<&Value> = documents
                .into_iter()
                .flat_map(|p| statements(&p["PolicyDocument"]))
                .collect();
            let actions: BTreeSet<String> = grants(&all).into_keys().collect();
            assert!(
                actions.iter().all(|a| a == "sns:Publish"),
                "{name} may only publish to the audit topic: {actions:?}"
            );
        }
    }

    let mut strings = Vec::new();
    collect_strings(&template, &mut strings);
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
/// notification topic (a placeholder ARN); logging besides.
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
    let from_template: BTreeMap<String, BTreeSet<String>> = iot_only(&function_grants(&template()))
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
        for resource in resources {
            assert!(
                resource.starts_with("arn:aws:logs:REGION:ACCOUNT_ID:"),
                "{action} on {resource}: use the REGION and ACCOUNT_ID placeholders"
            );
        }
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
