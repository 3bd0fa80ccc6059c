//! Human durations for the command line: a decimal number and a unit.

use std::time::Duration;

use crate::error::Error;

/// Parses `1.1s`, `500ms`, `2m`, `250us`. A unit is required, so a bare `1`
/// is never silently read as seconds or milliseconds.
pub fn parse_duration(input: &str) -> Result<Duration, Error> {
    let invalid = |reason| Error::Duration {
        input: input.to_owned(),
        reason,
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty()
        || number.starts_with('.')
        || number.ends_with('.')
        || number.matches('.').count() > 1
    {
        return Err(invalid(
            "expected a number such as 1.1 or 500 before the unit",
        ));
    }
    let nanos_per_unit: u128 = match unit {
        "" => return Err(invalid("missing unit (us, ms, s or m)")),
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        _ => return Err(invalid("unknown unit (use us, ms, s or m)")),
    };
    // Integer arithmetic: "1.1s" must be exactly 1100 ms, which f64 cannot promise.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let out_of_range = || invalid("out of range");
    let whole: u128 = whole.parse().map_err(|_| out_of_range())?;
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let digits: u128 = fraction.parse().map_err(|_| out_of_range())?;
        let scale = 10u128
            .checked_pow(fraction.len() as u32)
            .ok_or_else(out_of_range)?;
        digits
            .checked_mul(nanos_per_unit)
            .ok_or_else(out_of_range)?
            / scale
    };
    let nanos = whole
        .checked_mul(nanos_per_unit)
        .and_then(|n| n.checked_add(fraction_nanos))
        .ok_or_else(out_of_range)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| out_of_range())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_decimal_numbers_with_units() {
        assert_eq!(
            parse_duration("1.1s").expect("1.1s"),
            Duration::from_millis(1100)
        );
        assert_eq!(
            parse_duration("500ms").expect("500ms"),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("2m").expect("2m"), Duration::from_secs(120));
        assert_eq!(
            parse_duration("250us").expect("250us"),
            Duration::from_micros(250)
        );
        assert_eq!(parse_duration("0s").expect("0s"), Duration::ZERO);
        assert_eq!(
            parse_duration(" 3s ").expect("spaces"),
            Duration::from_secs(3)
        );
        assert_eq!(
            parse_duration("0.0015s").expect("fraction"),
            Duration::from_micros(1500)
        );
        assert_eq!(
            parse_duration("1.5m").expect("minutes"),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn rejects_missing_or_unknown_units_and_bad_numbers() {
        for (bad, what) in [
            ("1", "missing unit"),
            ("", "number"),
            ("1h", "unknown unit"),
            ("1 s", "unknown unit"),
            ("-1s", "number"),
            ("s", "number"),
            ("1.2.3s", "number"),
            (".5s", "number"),
            ("5.s", "number"),
            ("ms500", "number"),
            ("99999999999999999999999999999999999999999m", "out of range"),
        ] {
            let e = parse_duration(bad).expect_err(bad).to_string();
            assert!(e.contains(what) && e.contains(bad), "{bad}: {e}");
        }
    }
}
