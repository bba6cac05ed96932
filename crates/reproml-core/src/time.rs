//! Timestamps as the API writes them: RFC 3339 in UTC, to the second.
//! Pure (the caller reads the clock), so it is tested like the rest.

/// `unix_seconds` as `YYYY-MM-DDThh:mm:ssZ`.
///
/// ```
/// assert_eq!(reproml_core::time::rfc3339_utc(0), "1970-01-01T00:00:00Z");
/// assert_eq!(reproml_core::time::rfc3339_utc(1_795_737_600), "2026-11-27T00:00:00Z");
/// ```
pub fn rfc3339_utc(unix_seconds: u64) -> String {
    let (days, rem) = (unix_seconds / 86_400, unix_seconds % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (H. Hinnant's
/// algorithm, proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
        assert_eq!(rfc3339_utc(86_399), "1970-01-01T23:59:59Z");
    }
}
