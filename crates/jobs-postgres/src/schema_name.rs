//! The validated name of the schema the job tables live in.

use std::fmt;
use std::str::FromStr;

use crate::error::PostgresError;

/// The longest schema name accepted: PostgreSQL's 63-byte identifier limit, less the 5 bytes
/// of the `.jobs` suffix of the NOTIFY channel (see [`SchemaName::channel`]).
pub const MAX_SCHEMA_NAME_LEN: usize = 58;

/// A schema name that is safe to splice into SQL: 1 to [`MAX_SCHEMA_NAME_LEN`] ASCII letters,
/// digits and underscores, not starting with a digit, and not starting with `pg_` (reserved by
/// PostgreSQL).
///
/// Every SQL text this crate builds quotes the name as well, so the check is a second fence
/// against injection through configuration, not the only one.
///
/// ```
/// use jobs_postgres::SchemaName;
///
/// assert_eq!(SchemaName::new("jobs")?.as_str(), "jobs");
/// assert!(SchemaName::new("jobs; DROP TABLE users").is_err());
/// # Ok::<(), jobs_postgres::PostgresError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidSchemaName`] saying what is wrong with it.
    pub fn new(name: &str) -> Result<Self, PostgresError> {
        validate(name).map_err(|reason| PostgresError::InvalidSchemaName {
            name: name.chars().take(80).collect(),
            reason,
        })?;
        Ok(SchemaName(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier (`"jobs"`).
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// The LISTEN/NOTIFY channel jobs of this schema are announced on (`<schema>.jobs`); the
    /// payload of each notification is a queue name.
    pub fn channel(&self) -> String {
        format!("{}.jobs", self.0)
    }
}

fn validate(name: &str) -> Result<(), &'static str> {
    let first = name.chars().next().ok_or("it is empty")?;
    if name.len() > MAX_SCHEMA_NAME_LEN {
        return Err("it is longer than 58 bytes");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("only ASCII letters, digits and '_' are allowed");
    }
    if first.is_ascii_digit() {
        return Err("it must not start with a digit");
    }
    if name.to_ascii_lowercase().starts_with("pg_") {
        return Err("names starting with 'pg_' are reserved by PostgreSQL");
    }
    Ok(())
}

impl Default for SchemaName {
    /// `jobs`.
    fn default() -> Self {
        SchemaName("jobs".to_owned())
    }
}

impl FromStr for SchemaName {
    type Err = PostgresError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchemaName::new(s)
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_identifiers() {
        for ok in ["jobs", "_x", "Jobs_2", "a", &"a".repeat(58)] {
            assert_eq!(SchemaName::new(ok).map(|s| s.0).ok().as_deref(), Some(ok));
        }
        assert_eq!(SchemaName::default().as_str(), "jobs");
        assert_eq!(SchemaName::default().quoted(), "\"jobs\"");
        assert_eq!(SchemaName::default().channel(), "jobs.jobs");
    }

    #[test]
    fn rejects_injection_and_odd_names() {
        for bad in [
            "",
            "1jobs",
            "jobs\"; DROP TABLE users; --",
            "jobs.x",
            "jo bs",
            "jobs'",
            "pg_catalog",
            "PG_x",
            "jöbs",
            &"a".repeat(59),
        ] {
            let err = SchemaName::new(bad).expect_err(bad);
            assert!(
                matches!(err, PostgresError::InvalidSchemaName { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn error_names_the_rule() {
        let err = SchemaName::new("a;b").expect_err("';' is not allowed");
        let msg = err.to_string();
        assert!(msg.contains("a;b") && msg.contains("letters"), "{msg}");
    }
}
