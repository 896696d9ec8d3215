//! What a finding names, as plain data: the policy version, and an in-scope finding on its way
//! to the engine.

/// The resource type of the findings this function remediates.
pub const IOT_POLICY: &str = "IOT_POLICY";

/// The policy version a finding names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyVersionRef {
    pub policy_name: String,
    pub version_id: String,
}

/// The parts of an audit finding that decisions use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    pub finding_id: Option<String>,
    /// `nonCompliantResource.resourceType`, as the API spells it (`IOT_POLICY`, ...).
    pub resource_type: Option<String>,
    pub policy: Option<PolicyVersionRef>,
    pub is_suppressed: bool,
}

/// An in-scope finding: the one shape in which a finding travels from screening (an audit's
/// listing or a fan-out job) to the engine and into its report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub finding_id: Option<String>,
    pub policy: PolicyVersionRef,
}
