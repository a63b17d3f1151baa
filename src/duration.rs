//! Parsing of wall-clock budgets such as `90s`, `10m`, `1h30m` or `1.5h`.

/// Seconds in a duration written as numbers with `h`, `m` or `s` units (a bare
/// number is seconds).
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let err = || format!("invalid duration '{text}' (expected e.g. 90s, 10m, 1h30m or 1.5h)");
    let s = text.trim();
    if s.is_empty() {
        return Err(err());
    }
    let not_positive = || {
        format!(
            "invalid duration '{text}': a duration is a positive time such as 90s, 20m or 1h30m"
        )
    };
    if s.starts_with('-') || s.parse::<f64>().is_ok_and(|x| x <= 0.0) {
        return Err(not_positive());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs > 0.0 {
            Ok(secs)
        } else {
            Err(err())
        };
    }
    let mut total = 0.0;
    let mut number = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let value: f64 = number.parse().map_err(|_| err())?;
                total += value
                    * match c {
                        'h' => 3600.0,
                        'm' => 60.0,
                        _ => 1.0,
                    };
                number.clear();
            }
            _ => return Err(err()),
        }
    }
    if !number.is_empty() {
        return Err(err());
    }
    if total <= 0.0 {
        return Err(not_positive());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_garbage() {
        assert_eq!(parse_duration("90s"), Ok(90.0));
        assert_eq!(parse_duration("10m"), Ok(600.0));
        assert_eq!(parse_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_duration("45"), Ok(45.0));
        for bad in ["", "ten", "10x", "5m3", "0", "-3", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn negative_and_zero_durations_say_durations_are_positive() {
        for bad in ["-5m", "-3", "0", "0s", "-1h30m"] {
            let message = parse_duration(bad).unwrap_err();
            assert!(
                message.contains("a duration is a positive time such as 90s, 20m or 1h30m"),
                "{bad}: {message}"
            );
        }
    }
}
