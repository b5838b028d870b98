//! Durations on the command line: `90s`, `10m`, `2h`, `1d`, `1h30m`; a bare number is seconds.
//! Used by `trace --since` and `ipam gc --min-age`.

use std::time::Duration;

/// A word that is not a duration; the message shows the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration: use e.g. 90s, 10m, 2h, 1d or 1h30m")]
pub(crate) struct BadDuration(pub(crate) String);

/// Parse `90s`, `10m`, `2h`, `1d`, `1h30m` (units added up) or a bare number of seconds. Values
/// too large for a `u64` of seconds saturate.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(s.to_string());
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "m", "10x", "1h30", "-5s"] {
            assert_eq!(parse_duration(bad), Err(BadDuration(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn the_message_shows_the_word_and_the_accepted_forms() {
        assert_eq!(
            parse_duration("5 min").unwrap_err().to_string(),
            "`5 min` is not a duration: use e.g. 90s, 10m, 2h, 1d or 1h30m"
        );
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        assert_eq!(
            parse_duration("99999999999999999999d").unwrap_err(),
            BadDuration("99999999999999999999d".into())
        );
        assert_eq!(
            parse_duration("18446744073709551615d").unwrap(),
            Duration::from_secs(u64::MAX)
        );
    }
}
