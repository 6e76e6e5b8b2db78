//! Checks of what callers send: names, reasons, page sizes, cursors and times. Each
//! failure is a 422 naming the field.

use chrono::DateTime;

use super::error::ApiError;
use crate::domain::{CanaryName, CanaryRef, Millis, Namespace};
use crate::store::AnalysisStatus;

/// The page size when the caller asks for none.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest page size.
pub const MAX_LIMIT: i64 = 200;

/// The longest reason kept (it ends up in Kubernetes events through Flagger).
pub const MAX_REASON: usize = 500;

/// A namespace, as a Kubernetes name.
pub fn namespace(namespace: &str) -> Result<Namespace, ApiError> {
    Namespace::parse(namespace).map_err(|e| ApiError::invalid(e.to_string()))
}

/// A canary's name, as a Kubernetes name.
pub fn name(name: &str) -> Result<CanaryName, ApiError> {
    CanaryName::parse(name).map_err(|e| ApiError::invalid(e.to_string()))
}

/// A canary's namespace and name from the path, as Kubernetes names.
pub fn canary(namespace_: &str, name_: &str) -> Result<CanaryRef, ApiError> {
    Ok(CanaryRef {
        namespace: namespace(namespace_)?,
        name: name(name_)?,
    })
}

/// A reason: 1–500 characters after trimming, one line.
pub fn reason(reason: &str) -> Result<String, ApiError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(ApiError::invalid("reason: must not be empty"));
    }
    if r.chars().count() > MAX_REASON {
        return Err(ApiError::invalid(format!(
            "reason: at most {MAX_REASON} characters"
        )));
    }
    if r.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "reason: one line without control characters",
        ));
    }
    Ok(r.to_owned())
}

/// An analysis state filter: `running`, `failed`, `succeeded` or `aborted`.
pub fn outcome(outcome: Option<&str>) -> Result<Option<AnalysisStatus>, ApiError> {
    outcome
        .map(|o| {
            AnalysisStatus::parse(o).ok_or_else(|| {
                ApiError::invalid(format!(
                    "outcome: {o:?} is not one of running, failed, succeeded, aborted"
                ))
            })
        })
        .transpose()
}

/// The `mode` filter: `enforce` or `shadow`.
pub fn mode(mode: Option<&str>) -> Result<Option<crate::domain::Mode>, ApiError> {
    mode.map(|m| {
        crate::domain::Mode::parse(m).map_err(|why| ApiError::invalid(format!("mode: {why}")))
    })
    .transpose()
}

/// The `controller` filter: `flagger` or `argo`.
pub fn controller(controller: Option<&str>) -> Result<Option<crate::domain::Controller>, ApiError> {
    controller
        .map(|c| {
            crate::domain::Controller::parse(c)
                .map_err(|why| ApiError::invalid(format!("controller: {why}")))
        })
        .transpose()
}

/// `live` (the default) or `backtest`.
pub fn origin(origin: Option<&str>) -> Result<crate::store::Origin, ApiError> {
    origin.map_or(Ok(crate::store::Origin::Live), |o| {
        crate::store::Origin::parse(o).map_err(|why| ApiError::invalid(format!("origin: {why}")))
    })
}

/// `key=value,key=value` (a backtest's changed settings); each key at most once.
pub fn settings(set: Option<&str>) -> Result<std::collections::HashMap<String, String>, ApiError> {
    let mut out = std::collections::HashMap::new();
    for pair in set
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.trim().is_empty())
    {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ApiError::invalid(format!("set: {pair:?} is not key=value")))?;
        if out
            .insert(key.trim().to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(ApiError::invalid(format!("set: {key} is given twice")));
        }
    }
    Ok(out)
}

/// How far back "recent" reaches: a humantime duration (`24h`, `30m`) of at most 90 days.
pub fn recent(recent: Option<&str>) -> Result<std::time::Duration, ApiError> {
    const MAX: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);
    let Some(text) = recent else {
        return Ok(std::time::Duration::from_secs(24 * 3600));
    };
    match humantime::parse_duration(text) {
        Ok(d) if d <= MAX => Ok(d),
        Ok(_) => Err(ApiError::invalid(format!(
            "recent: {text:?} is longer than 90 days"
        ))),
        Err(e) => Err(ApiError::invalid(format!(
            "recent: {text:?} is not a duration like 24h or 30m ({e})"
        ))),
    }
}

/// The page size: 1–200, default 50.
pub fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(format!(
            "limit: {n} is outside 1–{MAX_LIMIT}"
        ))),
    }
}

/// The cursor of a page: the id below which the page starts.
pub fn cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                ApiError::invalid(format!("cursor: {c:?} is not a cursor this API gave out"))
            })
        })
        .transpose()
}

/// A page from rows fetched with `limit + 1` (one more than asked tells whether another
/// page follows): the first `limit` rows and the cursor of the next page (the last id),
/// or `None` on the last page.
pub fn page<T>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = more
        .then(|| rows.last().map(|r| id(r).to_string()))
        .flatten();
    (rows, next)
}

/// An RFC 3339 time as Unix milliseconds.
pub fn time(field: &str, value: &str) -> Result<Millis, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::invalid(format!(
                "{field}: {value:?} is not an RFC 3339 time ({e}); e.g. 2026-11-30T10:00:00Z"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_checked() {
        assert_eq!(reason("  launch  ").expect("ok"), "launch");
        assert!(reason("   ").is_err());
        assert!(reason("a\nb").is_err());
        assert!(reason(&"x".repeat(501)).is_err());
        assert!(reason(&"é".repeat(500)).is_ok());
    }

    #[test]
    fn limits_and_cursors() {
        assert_eq!(limit(None).expect("default"), 50);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(201)).is_err());
        assert_eq!(cursor(Some("17")).expect("ok"), Some(17));
        assert!(cursor(Some("-1")).is_err());
        assert!(cursor(Some("abc")).is_err());
        assert_eq!(
            page(vec![9, 8, 7, 6], 3, |i| *i),
            (vec![9, 8, 7], Some("7".into()))
        );
        assert_eq!(page(vec![9, 8, 7], 3, |i| *i), (vec![9, 8, 7], None));
    }

    #[test]
    fn times() {
        assert_eq!(time("since", "1970-01-01T00:00:01Z").expect("ok"), 1000);
        assert!(time("since", "yesterday").is_err());
    }
}
