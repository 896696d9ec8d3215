//! The restrictive policy document the function installs, built into the binary and rendered
//! for the partition it runs in.

use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

use super::Partition;

/// The shipped document, written for the `aws` partition (see `policies/README.md` for why it
/// is not the widely copied one).
pub const RESTRICTIVE_DOCUMENT: &str = include_str!("../../policies/restrictive-shadow-only.json");

/// AWS IoT limit on a policy document, counted without whitespace.
pub const MAX_DOCUMENT_CHARS: usize = 2048;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DocumentError {
    #[error("the restrictive policy document is not valid JSON: {0}")]
    NotJson(String),
    #[error("the restrictive policy document is not a JSON object")]
    NotObject,
    #[error(
        "the restrictive policy document has {0} characters without whitespace; AWS IoT allows at most {MAX_DOCUMENT_CHARS}"
    )]
    TooLong(usize),
}

/// The restrictive document, validated, with its parsed form kept for comparisons.
#[derive(Clone, Debug)]
pub struct RestrictivePolicy {
    text: Arc<str>,
    value: Arc<Value>,
}

impl RestrictivePolicy {
    /// The document built into the binary, rendered for `partition`. Checked at start-up so a
    /// bad edit fails the Lambda init instead of every `CreatePolicyVersion`. Cheap (a parse of
    /// two kilobytes), so a document per audit region can be made when one is needed.
    pub fn for_partition(partition: Partition) -> Result<Self, DocumentError> {
        Self::parse(RESTRICTIVE_DOCUMENT)?.render(partition)
    }

    pub fn parse(text: &str) -> Result<Self, DocumentError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| DocumentError::NotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(DocumentError::NotObject);
        }
        Self::checked(text.into(), value)
    }

    /// The limit applies to the text IoT receives.
    fn checked(text: Arc<str>, value: Value) -> Result<Self, DocumentError> {
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        if chars > MAX_DOCUMENT_CHARS {
            return Err(DocumentError::TooLong(chars));
        }
        Ok(Self {
            text,
            value: Arc::new(value),
        })
    }

    /// This document with every statement's resource ARNs in `partition`: an ARN of another
    /// partition matches nothing, so the document would lock devices out. Rewritten on the
    /// parsed document, so only `Resource` and `NotResource` values change; an unchanged
    /// document keeps its text (the shipped file, byte for byte, in `aws`).
    fn render(self, partition: Partition) -> Result<Self, DocumentError> {
        let mut value = (*self.value).clone();
        rename_resources(&mut value, partition);
        if value == *self.value {
            return Ok(self);
        }
        Self::checked(format!("{value:#}").into(), value)
    }

    /// The text sent to `CreatePolicyVersion`.
    pub fn document(&self) -> &str {
        &self.text
    }

    /// True when `document` is this policy as a JSON value: IoT may hand back a document with
    /// other whitespace or key order, so text equality would miss an already remediated policy.
    pub fn matches(&self, document: &str) -> bool {
        serde_json::from_str::<Value>(document).is_ok_and(|v| v == *self.value)
    }
}

/// Puts every ARN of the statements' `Resource` and `NotResource` in `partition`.
fn rename_resources(document: &mut Value, partition: Partition) {
    let statements = document
        .get_mut("Statement")
        .map(one_or_many)
        .unwrap_or_default();
    let resources = statements
        .into_iter()
        .filter_map(Value::as_object_mut)
        .flat_map(|statement| statement.iter_mut())
        .filter(|(key, _)| matches!(key.as_str(), "Resource" | "NotResource"))
        .flat_map(|(_, value)| one_or_many(value));
    for resource in resources {
        if let Some(arn) = resource.as_str().and_then(|r| partition.rename_arn(r)) {
            *resource = Value::String(arn);
        }
    }
}

/// IAM's grammar: `Statement`, `Resource` and `NotResource` hold one element or a list.
fn one_or_many(value: &mut Value) -> Vec<&mut Value> {
    match value {
        Value::Array(list) => list.iter_mut().collect(),
        one => vec![one],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTITIONS: [Partition; 8] = [
        Partition::Aws,
        Partition::AwsCn,
        Partition::AwsUsGov,
        Partition::AwsIso,
        Partition::AwsIsoB,
        Partition::AwsIsoE,
        Partition::AwsIsoF,
        Partition::AwsEusc,
    ];

    fn chars(text: &str) -> usize {
        text.chars().filter(|c| !c.is_whitespace()).count()
    }

    /// Every `Resource` string of a document, in order.
    fn resources(document: &str) -> Vec<String> {
        let mut value: Value = serde_json::from_str(document).unwrap();
        let mut out = Vec::new();
        for statement in one_or_many(&mut value["Statement"]) {
            for resource in one_or_many(&mut statement["Resource"]) {
                out.push(resource.as_str().unwrap().to_owned());
            }
        }
        out
    }

    #[test]
    fn builtin_document_is_valid_and_within_the_limit_in_every_partition() {
        for partition in PARTITIONS {
            let policy = RestrictivePolicy::for_partition(partition)
                .expect("built-in document must be valid");
            let text = policy.document();
            assert!(
                chars(text) <= MAX_DOCUMENT_CHARS,
                "{partition}: {}",
                chars(text)
            );
            assert!(policy.matches(text), "{partition}");
        }
    }

    #[test]
    fn aws_installs_the_shipped_file_as_it_is() {
        let policy = RestrictivePolicy::for_partition(Partition::Aws).unwrap();
        assert_eq!(policy.document(), RESTRICTIVE_DOCUMENT);
    }

    #[test]
    fn every_resource_arn_is_in_the_partition_and_nothing_else_changes() {
        let shipped = resources(RESTRICTIVE_DOCUMENT);
        assert!(shipped.len() >= 4 && shipped.iter().all(|r| r.starts_with("arn:aws:iot:")));
        let original: Value = serde_json::from_str(RESTRICTIVE_DOCUMENT).unwrap();
        for partition in PARTITIONS {
            let text = RestrictivePolicy::for_partition(partition)
                .unwrap()
                .document()
                .to_owned();
            let prefix = format!("arn:{partition}:iot:");
            let rendered = resources(&text);
            let back: Vec<String> = rendered
                .iter()
                .map(|r| format!("arn:aws:iot:{}", r.strip_prefix(&prefix).unwrap()))
                .collect();
            assert_eq!(back, shipped, "{partition}: only the partition differs");
            // Everything but the resources is the shipped document.
            let mut value: Value = serde_json::from_str(&text).unwrap();
            rename_resources(&mut value, Partition::Aws);
            assert_eq!(value, original, "{partition}");
        }
    }

    #[test]
    fn a_document_of_one_partition_is_not_the_document_of_another() {
        for partition in PARTITIONS {
            let policy = RestrictivePolicy::for_partition(partition).unwrap();
            for other in PARTITIONS.iter().filter(|&&p| p != partition) {
                let other = RestrictivePolicy::for_partition(*other).unwrap();
                assert!(!policy.matches(other.document()), "{partition}");
            }
        }
    }

    #[test]
    fn renders_resource_and_not_resource_only_in_any_statement_shape() {
        let one_statement = r#"{"Version":"2012-10-17","Statement":{"Sid":"arn:aws:iot:sid",
            "Effect":"Deny","Action":"iot:Publish","NotResource":["arn:aws:iot:*:*:topic/a","*"],
            "Condition":{"ArnEquals":{"iot:SomeArn":"arn:aws:iot:*:*:thing/x"}}}}"#;
        let policy = RestrictivePolicy::parse(one_statement)
            .unwrap()
            .render(Partition::AwsUsGov)
            .unwrap();
        let value: Value = serde_json::from_str(policy.document()).unwrap();
        let statement = &value["Statement"];
        assert_eq!(
            statement["NotResource"],
            serde_json::json!(["arn:aws-us-gov:iot:*:*:topic/a", "*"])
        );
        assert_eq!(statement["Sid"], "arn:aws:iot:sid");
        assert_eq!(
            statement["Condition"]["ArnEquals"]["iot:SomeArn"],
            "arn:aws:iot:*:*:thing/x"
        );
        let string_resource =
            r#"{"Statement":[{"Effect":"Allow","Resource":"arn:aws:iot:*:*:client/c"}]}"#;
        let policy = RestrictivePolicy::parse(string_resource)
            .unwrap()
            .render(Partition::AwsCn)
            .unwrap();
        assert_eq!(
            resources(policy.document()),
            ["arn:aws-cn:iot:*:*:client/c"]
        );
    }

    #[test]
    fn the_limit_applies_to_the_rendered_text() {
        let template = |pad: &str| {
            format!(
                r#"{{"Statement":[{{"Effect":"Allow","Resource":"arn:aws:iot:*:*:topic/{pad}"}}]}}"#
            )
        };
        let pad = "p".repeat(MAX_DOCUMENT_CHARS - chars(&template("")));
        let text = template(&pad);
        assert_eq!(chars(&text), MAX_DOCUMENT_CHARS);
        let policy = RestrictivePolicy::parse(&text).expect("at the limit in aws");
        assert!(policy.clone().render(Partition::Aws).is_ok());
        // "aws-us-gov" is 7 characters longer than "aws".
        assert_eq!(
            policy.render(Partition::AwsUsGov).unwrap_err(),
            DocumentError::TooLong(MAX_DOCUMENT_CHARS + 7)
        );
    }

    #[test]
    fn matches_ignores_whitespace_and_key_order() {
        let policy = RestrictivePolicy::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#).unwrap();
        assert!(policy.matches(
            "{ \"Statement\": [ {\"Resource\":\"*\", \"Action\":\"iot:Connect\",\"Effect\":\"Allow\"} ],\n \"Version\": \"2012-10-17\" }"
        ));
        assert!(!policy.matches(r#"{"Version":"2012-10-17","Statement":[]}"#));
        assert!(!policy.matches("not json"));
    }

    #[test]
    fn permissive_sample_does_not_match() {
        let policy = RestrictivePolicy::for_partition(Partition::Aws).unwrap();
        assert!(!policy.matches(include_str!("../../policies/permissive-sample.json")));
    }

    #[test]
    fn rejects_invalid_documents() {
        assert!(matches!(
            RestrictivePolicy::parse("{"),
            Err(DocumentError::NotJson(_))
        ));
        assert_eq!(
            RestrictivePolicy::parse("[1]").unwrap_err(),
            DocumentError::NotObject
        );
        let long = format!(r#"{{"Sid":"{}"}}"#, "a".repeat(MAX_DOCUMENT_CHARS));
        assert!(matches!(
            RestrictivePolicy::parse(&long),
            Err(DocumentError::TooLong(n)) if n > MAX_DOCUMENT_CHARS
        ));
        // Whitespace does not count towards the limit.
        let padded = format!("{{{}\"a\":1}}", " ".repeat(5000));
        assert!(RestrictivePolicy::parse(&padded).is_ok());
    }
}
