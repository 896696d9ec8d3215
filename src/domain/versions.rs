//! Version-id arithmetic over `ListPolicyVersions` entries: which version frees a slot, which
//! may be a duplicate, whether someone else created one.

use std::cmp::Ordering;

/// One entry of `ListPolicyVersions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version_id: String,
    pub is_default: bool,
    /// `createDate` in epoch milliseconds, when IoT gave one.
    pub created_ms: Option<i64>,
}

/// The version to delete to free a slot at the 5-version limit: the oldest non-default one, by
/// `createDate` and then numeric version id, never by response order. `None` when every
/// version is the default (cannot happen at the limit, but never guess).
pub fn oldest_non_default(versions: &[VersionInfo]) -> Option<&VersionInfo> {
    versions.iter().filter(|v| !v.is_default).min_by(|a, b| {
        let by_date = match (a.created_ms, b.created_ms) {
            (Some(x), Some(y)) => x.cmp(&y),
            // A version without a date sorts after dated ones: we only delete what we can order.
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_date.then_with(|| compare_version_ids(&a.version_id, &b.version_id))
    })
}

/// Non-default versions created after `replaced`: the only places where a concurrent run of the
/// same event can have left a duplicate restrictive version. Their documents still have to be
/// checked before anything is deleted.
pub fn duplicate_candidates<'a>(
    versions: &'a [VersionInfo],
    replaced: &str,
) -> impl Iterator<Item = &'a VersionInfo> + 'a {
    let replaced = replaced.to_owned();
    versions.iter().filter(move |v| {
        !v.is_default && compare_version_ids(&v.version_id, &replaced) == Ordering::Greater
    })
}

/// True when `created` is not the version id IoT hands out next after every id in `known`:
/// someone created a version in between (ids are never reused). An id that is not a number
/// counts as a gap, so the caller looks rather than guesses.
pub fn others_created_since<'a>(created: &str, known: impl IntoIterator<Item = &'a str>) -> bool {
    let Ok(created) = created.parse::<u64>() else {
        return true;
    };
    let mut newest = None;
    for id in known {
        match id.parse::<u64>() {
            Ok(n) => newest = newest.max(Some(n)),
            Err(_) => return true,
        }
    }
    newest.is_none_or(|n| created != n + 1)
}

/// Version ids are decimal strings: compare them as numbers ("10" > "9"), text as a fallback.
pub fn compare_version_ids(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

pub fn same_version(a: &str, b: &str) -> bool {
    compare_version_ids(a, b) == Ordering::Equal
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A `ListPolicyVersions` entry, for the tests of this folder.
    pub(in crate::domain) fn version(
        id: &str,
        is_default: bool,
        created_ms: Option<i64>,
    ) -> VersionInfo {
        VersionInfo {
            version_id: id.into(),
            is_default,
            created_ms,
        }
    }

    #[test]
    fn version_limit_picks_oldest_non_default_by_date_then_id() {
        // The permissive version is both the default and the oldest: it must not be chosen.
        let versions = [
            version("5", false, Some(5_000)),
            version("1", true, Some(1_000)),
            version("3", false, Some(3_000)),
            version("2", false, Some(2_000)),
            version("4", false, Some(4_000)),
        ];
        assert_eq!(oldest_non_default(&versions).unwrap().version_id, "2");
        // Same date: numeric id decides, "9" before "10".
        let versions = [
            version("10", false, Some(7)),
            version("9", false, Some(7)),
            version("11", true, Some(1)),
        ];
        assert_eq!(oldest_non_default(&versions).unwrap().version_id, "9");
        // Undated versions come last.
        let versions = [version("1", false, None), version("2", false, Some(9))];
        assert_eq!(oldest_non_default(&versions).unwrap().version_id, "2");
        assert_eq!(oldest_non_default(&[version("1", true, Some(1))]), None);
        assert_eq!(oldest_non_default(&[]), None);
    }

    #[test]
    fn duplicate_candidates_are_newer_non_default_versions() {
        let versions = [
            version("1", false, Some(1)),
            version("3", false, Some(3)),
            version("10", true, Some(10)),
            version("9", false, Some(9)),
        ];
        let ids: Vec<&str> = duplicate_candidates(&versions, "2")
            .map(|v| v.version_id.as_str())
            .collect();
        assert_eq!(ids, ["3", "9"]);
    }

    #[test]
    fn a_gap_in_version_ids_means_someone_else_created_one() {
        assert!(!others_created_since("2", ["1"]));
        assert!(!others_created_since("6", ["5", "3", "4"]));
        assert!(others_created_since("3", ["1"]));
        assert!(others_created_since("7", ["5", "3"]));
        assert!(others_created_since("x", ["1"]));
        assert!(others_created_since("2", ["a"]));
        assert!(others_created_since("2", []));
    }

    #[test]
    fn version_ids_compare_numerically() {
        assert_eq!(compare_version_ids("10", "9"), Ordering::Greater);
        assert_eq!(compare_version_ids("007", "7"), Ordering::Equal);
        assert_eq!(compare_version_ids("b", "a"), Ordering::Greater);
    }
}
