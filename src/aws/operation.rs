//! The IoT operations the function calls, by name: for pacing, errors and IAM.

/// The IoT operations the function calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    ListAuditFindings,
    DescribeAuditFinding,
    ListAuditSuppressions,
    GetPolicy,
    GetPolicyVersion,
    ListPolicyVersions,
    CreatePolicyVersion,
    DeletePolicyVersion,
    ListTargetsForPolicy,
    SetDefaultPolicyVersion,
    DescribeAuditSuppression,
    CreateAuditSuppression,
    UpdateAuditSuppression,
}

impl Operation {
    pub const COUNT: usize = 13;

    pub const ALL: [Operation; Self::COUNT] = [
        Operation::ListAuditFindings,
        Operation::DescribeAuditFinding,
        Operation::ListAuditSuppressions,
        Operation::GetPolicy,
        Operation::GetPolicyVersion,
        Operation::ListPolicyVersions,
        Operation::CreatePolicyVersion,
        Operation::DeletePolicyVersion,
        Operation::ListTargetsForPolicy,
        Operation::SetDefaultPolicyVersion,
        Operation::DescribeAuditSuppression,
        Operation::CreateAuditSuppression,
        Operation::UpdateAuditSuppression,
    ];

    /// The API's name for it (the IAM action without `iot:`).
    pub const fn name(self) -> &'static str {
        match self {
            Operation::ListAuditFindings => "ListAuditFindings",
            Operation::DescribeAuditFinding => "DescribeAuditFinding",
            Operation::ListAuditSuppressions => "ListAuditSuppressions",
            Operation::GetPolicy => "GetPolicy",
            Operation::GetPolicyVersion => "GetPolicyVersion",
            Operation::ListPolicyVersions => "ListPolicyVersions",
            Operation::CreatePolicyVersion => "CreatePolicyVersion",
            Operation::DeletePolicyVersion => "DeletePolicyVersion",
            Operation::ListTargetsForPolicy => "ListTargetsForPolicy",
            Operation::SetDefaultPolicyVersion => "SetDefaultPolicyVersion",
            Operation::DescribeAuditSuppression => "DescribeAuditSuppression",
            Operation::CreateAuditSuppression => "CreateAuditSuppression",
            Operation::UpdateAuditSuppression => "UpdateAuditSuppression",
        }
    }

    /// The operations fan-out workers call for every job (the job's finding, then the policy
    /// operations): their quota is shared among the workers. The others are called by audit invocations (listing findings and
    /// suppressions), once per job batch (the suppressions) and by rollbacks (the restore, and
    /// the suppression that keeps it): a few calls each, at the whole quota.
    pub const fn called_by_workers(self) -> bool {
        matches!(
            self,
            Operation::DescribeAuditFinding
                | Operation::GetPolicy
                | Operation::GetPolicyVersion
                | Operation::ListPolicyVersions
                | Operation::CreatePolicyVersion
                | Operation::DeletePolicyVersion
                | Operation::ListTargetsForPolicy
        )
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_the_iam_actions() {
        let names: Vec<String> = Operation::ALL
            .iter()
            .map(|o| format!("iot:{}", o.name()))
            .collect();
        let mut names = names;
        names.sort();
        let mut actions: Vec<String> = super::super::IOT_ACTIONS
            .iter()
            .map(|a| a.to_string())
            .collect();
        actions.sort();
        assert_eq!(names, actions);
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(op.index(), i);
        }
    }
}
