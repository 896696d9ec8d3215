//! The restrictive policy document the function installs, built into the binary.

use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

/// The shipped document (see `policies/README.md` for why it is not the widely copied one).
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
    /// The document built into the binary. Checked at start-up so a bad edit fails the Lambda
    /// init instead of every `CreatePolicyVersion`.
    pub fn builtin() -> Result<Self, DocumentError> {
        Self::parse(RESTRICTIVE_DOCUMENT)
    }

    pub fn parse(text: &str) -> Result<Self, DocumentError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| DocumentError::NotJson(e.to_string()))?;
        if !value.is_object() {
            return Err(DocumentError::NotObject);
        }
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        if chars > MAX_DOCUMENT_CHARS {
            return Err(DocumentError::TooLong(chars));
        }
        Ok(Self {
            text: text.into(),
            value: Arc::new(value),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_document_is_valid_and_within_the_limit() {
        let policy = RestrictivePolicy::builtin().expect("built-in document must be valid");
        assert!(policy.matches(RESTRICTIVE_DOCUMENT));
        let chars = RESTRICTIVE_DOCUMENT
            .chars()
            .filter(|c| !c.is_whitespace())
            .count();
        assert!(chars <= MAX_DOCUMENT_CHARS, "{chars}");
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
        let policy = RestrictivePolicy::builtin().unwrap();
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
