//! Run selections as the command line writes them, shared by the commands
//! that train runs and those that compare them.

use std::ops::Range;

/// Parses run indices: `N` (run N), `A..B` (B excluded) or `A-B` (B
/// included).
pub fn parse_range(s: &str) -> Result<Range<u32>, String> {
    let bad = || format!("{s:?} is not a run range; use N, A..B (B excluded) or A-B (B included)");
    let num = |t: &str| t.trim().parse::<u32>().map_err(|_| bad());
    let range = if let Some((a, b)) = s.split_once("..") {
        num(a)?..num(b)?
    } else if let Some((a, b)) = s.split_once('-') {
        num(a)?..num(b)?.checked_add(1).ok_or_else(bad)?
    } else {
        let n = num(s)?;
        n..n.checked_add(1).ok_or_else(bad)?
    };
    if range.is_empty() {
        Err(bad())
    } else {
        Ok(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ranges() {
        assert_eq!(parse_range("3"), Ok(3..4));
        assert_eq!(parse_range("0..10"), Ok(0..10));
        assert_eq!(parse_range("2-4"), Ok(2..5));
        assert!(parse_range("4..2").is_err());
        assert!(parse_range("x").is_err());
        assert!(parse_range("4294967295").is_err());
    }
}
