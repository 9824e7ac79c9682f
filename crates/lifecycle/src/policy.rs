//! The retention policy: which recordings are kept how long, under which S3 Object Lock mode.
//!
//! ```toml
//! [default]
//! retention_days = 90
//! mode = "governance"
//!
//! [[rule]]                 # the first rule whose fields all match wins
//! tenant = "acme"
//! queue = "payments"       # any of tenant, queue, direction; absent = any
//! retention_days = 2555    # seven years
//! mode = "compliance"      # nobody, not even the bucket's owner, can shorten or delete
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::LifecycleError;

/// S3 Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Users with the bypass permission can still delete or shorten.
    Governance,
    /// Nobody can delete the object version or shorten its retention until it expires.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// How long one recording is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub retention_days: u32,
    pub mode: LockMode,
}

/// What a rule matches on (absent fields match anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    pub tenant: &'a str,
    pub queue: Option<&'a str>,
    pub direction: Option<&'a str>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    tenant: Option<String>,
    queue: Option<String>,
    direction: Option<String>,
    retention_days: u32,
    mode: LockMode,
}

impl Rule {
    fn matches(&self, subject: &Subject) -> bool {
        let field = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|want| have == Some(want))
        };
        field(&self.tenant, Some(subject.tenant))
            && field(&self.queue, subject.queue)
            && field(&self.direction, subject.direction)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    default: Retention,
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
}

/// Retention longer than this is a typo (days for hours, an extra digit), not a policy.
const MAX_DAYS: u32 = 100 * 366;

impl Policy {
    pub fn parse(text: &str, origin: &Path) -> Result<Policy, LifecycleError> {
        let invalid = |message: String| LifecycleError::Policy {
            path: origin.to_path_buf(),
            message,
        };
        let policy: Policy = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let all = std::iter::once(policy.default.retention_days)
            .chain(policy.rules.iter().map(|rule| rule.retention_days));
        for days in all {
            if days == 0 || days > MAX_DAYS {
                return Err(invalid(format!(
                    "retention_days = {days}: must be between 1 and {MAX_DAYS}"
                )));
            }
        }
        Ok(policy)
    }

    pub fn load(path: &Path) -> Result<Policy, LifecycleError> {
        let text = std::fs::read_to_string(path).map_err(|source| LifecycleError::Io {
            what: "policy file",
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text, path)
    }

    /// The retention of the first matching rule, else the default.
    pub fn retention_for(&self, subject: &Subject) -> Retention {
        self.rules
            .iter()
            .find(|rule| rule.matches(subject))
            .map(|rule| Retention {
                retention_days: rule.retention_days,
                mode: rule.mode,
            })
            .unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        [default]
        retention_days = 90
        mode = "governance"

        [[rule]]
        tenant = "acme"
        queue = "payments"
        retention_days = 2555
        mode = "compliance"

        [[rule]]
        direction = "outbound"
        retention_days = 30
        mode = "governance"
    "#;

    fn policy() -> Policy {
        Policy::parse(POLICY, Path::new("policy.toml")).unwrap()
    }

    #[test]
    fn the_first_matching_rule_wins_else_the_default() {
        let policy = policy();
        let payments = Subject {
            tenant: "acme",
            queue: Some("payments"),
            direction: Some("outbound"),
        };
        assert_eq!(
            policy.retention_for(&payments),
            Retention {
                retention_days: 2555,
                mode: LockMode::Compliance
            }
        );
        let outbound = Subject {
            tenant: "other",
            queue: Some("payments"),
            direction: Some("outbound"),
        };
        assert_eq!(policy.retention_for(&outbound).retention_days, 30);
        // A rule naming a queue does not match a call without one.
        let unknown = Subject {
            tenant: "acme",
            ..Default::default()
        };
        assert_eq!(policy.retention_for(&unknown).retention_days, 90);
    }

    #[test]
    fn mistakes_are_refused_with_the_file_named() {
        for (text, expected) in [
            (
                "[default]\nretention_days = 0\nmode = \"governance\"",
                "between 1",
            ),
            (
                "[default]\nretention_days = 9\nmode = \"forever\"",
                "unknown variant",
            ),
            (
                "[default]\nretention_days = 9\nmode = \"governance\"\nretain = 3",
                "unknown field",
            ),
            (
                "[[rule]]\nretention_days = 9\nmode = \"governance\"",
                "missing field `default`",
            ),
        ] {
            let error = Policy::parse(text, Path::new("/etc/vcc/policy.toml"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("/etc/vcc/policy.toml"), "{error}");
            assert!(error.contains(expected), "{error}");
        }
    }
}
