//! How the domain's types become columns and come back: ids as BIGINT, names and
//! enums as TEXT. Decoding re-validates: a row written by anything but this code (a
//! manual fix, a future migration) must not smuggle an invalid name into PromQL or an
//! unknown state into a decision, so such a row is an error naming the value.
//!
//! A leaf, like `sql`: the entity modules import it, it imports none of them.

use sqlx::any::AnyRow;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Any, Database, Decode, Encode, FromRow, Row, Type};

use crate::domain::{
    AnalysisId, AnalysisKey, AuditId, CanaryName, CanaryRef, Checksum, DecisionId, EventId,
    LoadRunId, LookId, Namespace, OutboxId,
};

/// Stores a newtype over `i64` as BIGINT.
macro_rules! integer_column {
    ($($t:ty),* $(,)?) => {$(
        impl Type<Any> for $t {
            fn type_info() -> <Any as Database>::TypeInfo {
                <i64 as Type<Any>>::type_info()
            }

            fn compatible(ty: &<Any as Database>::TypeInfo) -> bool {
                <i64 as Type<Any>>::compatible(ty)
            }
        }

        impl<'q> Encode<'q, Any> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <Any as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <i64 as Encode<'q, Any>>::encode_by_ref(&self.get(), buf)
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self::new(<i64 as Decode<'r, Any>>::decode(value)?))
            }
        }
    )*};
}

integer_column!(AnalysisId, LookId, DecisionId, EventId, LoadRunId, AuditId, OutboxId);

/// Stores a type as TEXT: written with `to_text`, read back through `from_text`, whose
/// error becomes the column's decode error. The entity modules use it for their enums.
macro_rules! text_column {
    ($($t:ty: $to_text:expr, $from_text:expr;)*) => {$(
        impl ::sqlx::Type<::sqlx::Any> for $t {
            fn type_info() -> <::sqlx::Any as ::sqlx::Database>::TypeInfo {
                <String as ::sqlx::Type<::sqlx::Any>>::type_info()
            }

            fn compatible(ty: &<::sqlx::Any as ::sqlx::Database>::TypeInfo) -> bool {
                <String as ::sqlx::Type<::sqlx::Any>>::compatible(ty)
            }
        }

        impl<'q> ::sqlx::Encode<'q, ::sqlx::Any> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <::sqlx::Any as ::sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                let to_text: fn(&$t) -> String = $to_text;
                <String as ::sqlx::Encode<'q, ::sqlx::Any>>::encode(to_text(self), buf)
            }
        }

        impl<'r> ::sqlx::Decode<'r, ::sqlx::Any> for $t {
            fn decode(
                value: <::sqlx::Any as ::sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, ::sqlx::error::BoxDynError> {
                let from_text: fn(String) -> Result<$t, ::sqlx::error::BoxDynError> = $from_text;
                from_text(<String as ::sqlx::Decode<'r, ::sqlx::Any>>::decode(value)?)
            }
        }
    )*};
}

pub(super) use text_column;

text_column! {
    Namespace: |v| v.to_string(), |s| Ok(Namespace::try_from(s)?);
    CanaryName: |v| v.to_string(), |s| Ok(CanaryName::try_from(s)?);
    Checksum: |v| v.to_string(), |s| Ok(Checksum::try_from(s)?);
    // A whole canary in one column: the audit log's `target`.
    CanaryRef: |v| v.to_string(), |s| Ok(CanaryRef::parse(&s)?);
}

/// A canary from its `namespace` and `name` columns.
impl FromRow<'_, AnyRow> for CanaryRef {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            namespace: row.try_get("namespace")?,
            name: row.try_get("name")?,
        })
    }
}

/// A canary revision from its canary's columns and `checksum`.
impl FromRow<'_, AnyRow> for AnalysisKey {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        let CanaryRef { namespace, name } = CanaryRef::from_row(row)?;
        let checksum = row.try_get("checksum")?;
        Ok(Self {
            namespace,
            name,
            checksum,
        })
    }
}
