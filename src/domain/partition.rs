//! AWS partitions: which one a region belongs to, and what its ARNs start with.

use std::fmt;

/// A partition, as the first field of an ARN names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partition {
    Aws,
    AwsCn,
    AwsUsGov,
    AwsIso,
    AwsIsoB,
    AwsIsoE,
    AwsIsoF,
    AwsEusc,
}

/// Region name prefixes of the partitions other than `aws`, as the SDK's endpoint rules list
/// them (`regionRegex` of each partition). All of them, not only `aws-cn` and `aws-us-gov`: the
/// SDK calls IoT in each of these, and a document naming the wrong partition matches no
/// resource there, so it would lock every device out instead of restricting it.
const PREFIXES: [(&str, Partition); 7] = [
    ("cn-", Partition::AwsCn),
    ("us-gov-", Partition::AwsUsGov),
    ("us-iso-", Partition::AwsIso),
    ("us-isob-", Partition::AwsIsoB),
    ("eu-isoe-", Partition::AwsIsoE),
    ("us-isof-", Partition::AwsIsoF),
    ("eusc-", Partition::AwsEusc),
];

impl Partition {
    /// The partition of `region`. A region of no known prefix is in `aws`, as the SDK's endpoint
    /// rules also resolve it: new commercial regions keep coming, a new partition is rare.
    pub fn of_region(region: &str) -> Self {
        PREFIXES
            .iter()
            .find(|(prefix, _)| region.starts_with(prefix))
            .map_or(Self::Aws, |&(_, partition)| partition)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws",
            Self::AwsCn => "aws-cn",
            Self::AwsUsGov => "aws-us-gov",
            Self::AwsIso => "aws-iso",
            Self::AwsIsoB => "aws-iso-b",
            Self::AwsIsoE => "aws-iso-e",
            Self::AwsIsoF => "aws-iso-f",
            Self::AwsEusc => "aws-eusc",
        }
    }

    /// `arn` with its partition replaced by this one; `None` when `arn` is not an ARN (`*`).
    pub fn rename_arn(self, arn: &str) -> Option<String> {
        let (_, rest) = arn.strip_prefix("arn:")?.split_once(':')?;
        Some(format!("arn:{self}:{rest}"))
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_of_each_partition() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("ap-southeast-7", "aws"),
            ("il-central-1", "aws"),
            ("mx-central-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-gov-east-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(Partition::of_region(region).as_str(), partition, "{region}");
        }
    }

    #[test]
    fn a_region_of_no_known_prefix_is_in_aws() {
        // A prefix without its dash is another name: "cnx-..." is not China, "us-gov" not GovCloud.
        for region in ["xx-new-1", "cnx-north-1", "us-govx-west-1", "local", ""] {
            assert_eq!(Partition::of_region(region), Partition::Aws, "{region:?}");
        }
    }

    #[test]
    fn renames_the_partition_of_an_arn_only() {
        let arn = "arn:aws:iot:*:*:topic/$aws/things/x/shadow/update";
        assert_eq!(
            Partition::AwsCn.rename_arn(arn).as_deref(),
            Some("arn:aws-cn:iot:*:*:topic/$aws/things/x/shadow/update")
        );
        assert_eq!(
            Partition::Aws
                .rename_arn("arn:aws-us-gov:iot:*:*:client/x")
                .as_deref(),
            Some("arn:aws:iot:*:*:client/x")
        );
        assert_eq!(Partition::AwsCn.rename_arn("*"), None);
        assert_eq!(Partition::AwsCn.rename_arn("arn:"), None);
        assert_eq!(Partition::AwsCn.rename_arn("topic/arn:aws:x"), None);
    }
}
