//! Publishing change notifications to the SNS topic (SPEC §8).

use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::types::MessageAttributeValue;

/// The notification topic.
#[derive(Clone, Debug)]
pub struct Publisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Publisher {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// One `Publish` with `MessageStructure=json` (`message` holds `default` and `email`) and
    /// string message attributes for subscribers' filter policies. The error says why, for the
    /// log: a notification never fails the remediation.
    pub async fn publish(
        &self,
        subject: &str,
        message: &str,
        attributes: &[(&'static str, String)],
    ) -> Result<(), String> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .message_structure("json");
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| format!("message attribute {name}: {e}"))?;
            request = request.message_attributes(*name, value);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("Publish to {}: {}", self.topic_arn, DisplayErrorContext(&e)))
    }
}
