//! [`PgTime`]: a [`Timestamp`] on the wire as a PostgreSQL `timestamptz`.
//!
//! PostgreSQL's binary `timestamptz` is an `int8` count of microseconds since 2000-01-01 UTC,
//! and [`Timestamp`] is microseconds since 1970-01-01 UTC, so the conversion is one exact
//! integer offset both ways; the server does no date arithmetic.

use jobs::Timestamp;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef, Postgres,
};
use sqlx::{Decode, Encode, Type};

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
pub(crate) const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// PostgreSQL's earliest `timestamptz` (4714-11-24 00:00 BC). Its latest is after
/// `i64::MAX` µs from 1970, so every later [`Timestamp`] fits.
pub(crate) const MIN_TIMESTAMP: Timestamp = Timestamp::from_micros(-210_866_803_200_000_000);

const TIMESTAMPTZ_OID: u32 = 1184;
const TIMESTAMPTZ_ARRAY_OID: u32 = 1185;

/// A [`Timestamp`] bound to or read from a `timestamptz` column or parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PgTime(pub(crate) Timestamp);

impl PgTime {
    /// Microseconds since 2000-01-01, or an error for a time before PostgreSQL's range.
    pub(crate) fn to_pg(self) -> Result<i64, BoxDynError> {
        if self.0 < MIN_TIMESTAMP {
            return Err(format!(
                "{} µs since 1970 is before PostgreSQL's earliest timestamp (4714 BC)",
                self.0.as_micros()
            )
            .into());
        }
        // Cannot overflow: the value is at least MIN_TIMESTAMP.
        Ok(self.0.as_micros() - PG_EPOCH_OFFSET_MICROS)
    }

    /// The timestamp for PostgreSQL's microseconds since 2000-01-01.
    pub(crate) fn from_pg(micros: i64) -> Result<Self, BoxDynError> {
        micros
            .checked_add(PG_EPOCH_OFFSET_MICROS)
            .map(|m| PgTime(Timestamp::from_micros(m)))
            .ok_or_else(|| {
                format!("timestamptz {micros} µs since 2000 (infinity?) does not fit a Timestamp")
                    .into()
            })
    }
}

impl Type<Postgres> for PgTime {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(TIMESTAMPTZ_OID))
    }
}

impl PgHasArrayType for PgTime {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(TIMESTAMPTZ_ARRAY_OID))
    }
}

impl Encode<'_, Postgres> for PgTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend(&self.to_pg()?.to_be_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        8
    }
}

impl Decode<'_, Postgres> for PgTime {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        if value.format() != PgValueFormat::Binary {
            return Err(
                "timestamptz arrived in text format; the store reads binary results".into(),
            );
        }
        let bytes: [u8; 8] = value
            .as_bytes()?
            .try_into()
            .map_err(|_| "a binary timestamptz is 8 bytes")?;
        PgTime::from_pg(i64::from_be_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_exact_and_ranges_checked() {
        let t = Timestamp::from_micros(PG_EPOCH_OFFSET_MICROS + 5);
        assert_eq!(PgTime(t).to_pg().ok(), Some(5));
        assert_eq!(PgTime::from_pg(5).ok(), Some(PgTime(t)));
        let max = Timestamp::from_micros(i64::MAX);
        let pg = PgTime(max)
            .to_pg()
            .expect("the latest Timestamp fits PostgreSQL");
        assert_eq!(PgTime::from_pg(pg).ok(), Some(PgTime(max)));
        assert!(PgTime(MIN_TIMESTAMP).to_pg().is_ok());
        assert!(PgTime(Timestamp::from_micros(i64::MIN)).to_pg().is_err());
        assert!(PgTime::from_pg(i64::MAX).is_err(), "infinity");
    }
}
