//! IoT clients per account and region (SPEC §11): the function's own credentials in any region,
//! or a member account's role, assumed through aws-config's own provider (it caches the
//! session and renews it before it expires).

use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
use aws_sdk_iot::config::IdentityCache;

use crate::domain::{Credentials, Placement};

use super::clients::iot_client_on;
use super::throttles::Throttles;

/// Builds the IoT client of a placement from the process's own configuration.
#[derive(Clone, Debug)]
pub struct Connector {
    base: SdkConfig,
    throttles: Throttles,
    /// `MEMBER_EXTERNAL_ID`, sent with every `AssumeRole`.
    external_id: Option<String>,
}

impl Connector {
    pub fn new(base: SdkConfig, throttles: Throttles, external_id: Option<String>) -> Self {
        Self {
            base,
            throttles,
            external_id,
        }
    }

    /// The client of `placement`; `session` names the member role's session (see
    /// [`crate::domain::session_name`]). No call is made here: the role is assumed on the first
    /// IoT call, and a role that cannot be assumed fails that call.
    pub async fn iot(&self, placement: &Placement, session: &str) -> aws_sdk_iot::Client {
        let region = Region::new(placement.scope.region.clone());
        let own = self.base.to_builder().region(region).build();
        let mut builder = aws_sdk_iot::config::Builder::from(&own);
        if let Credentials::Member { role_arn } = &placement.credentials {
            // STS in the function's own region (from the base configuration): it is enabled
            // there, and a regional endpoint's sessions are valid in every region, so a member
            // region the central account has not opted into still works.
            let mut provider = AssumeRoleProvider::builder(role_arn)
                .session_name(session)
                .configure(&self.base);
            if let Some(id) = &self.external_id {
                provider = provider.external_id(id);
            }
            // A cache of its own: the one shared through the base configuration keeps the
            // identities of at most 64 providers, so a process serving more member accounts
            // and regions would evict sessions and assume the roles again.
            builder = builder
                .credentials_provider(provider.build().await)
                .identity_cache(IdentityCache::lazy().build());
        }
        iot_client_on(builder, &self.throttles)
    }
}
