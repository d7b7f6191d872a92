//! Durations as macro options write them: a whole number followed by a unit, `100ms`, `5s`, `2m`,
//! `1h`. Parsed at compile time into milliseconds, so generated code can build a `Duration` in a
//! `static`.

/// The accepted forms, for error messages.
pub const FORMS: &str = "a whole number followed by `ms`, `s`, `m` or `h`, without spaces or \
                         fractions";

/// Why a text is not a duration.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not `<digits><unit>`; with the duration the user probably meant, when there is one.
    Malformed(Option<String>),
    /// More milliseconds than a `u64` holds.
    TooLong,
}

impl Problem {
    /// What to tell the user about `text`; `example` is a well-formed value for the option.
    pub fn message(&self, text: &str, example: &str) -> String {
        match self {
            Self::Malformed(Some(fix)) => {
                format!("`{text}` is not a duration: write `{fix}` ({FORMS})")
            }
            Self::Malformed(None) if text.trim().is_empty() => {
                format!("a duration is missing: write {FORMS}, e.g. {example}")
            }
            Self::Malformed(None) => {
                format!("`{text}` is not a duration: write {FORMS}, e.g. {example}")
            }
            Self::TooLong => format!(
                "`{text}` is too long a duration to count in milliseconds: write a shorter one, \
                 e.g. {example}"
            ),
        }
    }
}

/// Milliseconds in one of each unit.
const UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// The number of milliseconds `text` stands for.
pub fn parse_millis(text: &str) -> Result<u64, Problem> {
    match strict(text) {
        Some(result) => result,
        None => Err(Problem::Malformed(suggestion(text))),
    }
}

/// `<digits><unit>` exactly; `None` when `text` does not have that form.
fn strict(text: &str) -> Option<Result<u64, Problem>> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let (_, millis_per_unit) = UNITS.iter().find(|(name, _)| *name == unit)?;
    Some(
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(*millis_per_unit))
            .ok_or(Problem::TooLong),
    )
}

/// The duration a malformed `text` probably means: without spaces, in lower case, or with a
/// fraction turned into whole milliseconds (`1.5s` → `1500ms`).
fn suggestion(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if compact != text {
        if let Some(Ok(_)) = strict(&compact) {
            return Some(compact);
        }
    }
    let (number, unit) = compact.split_at(compact.find(|c: char| c.is_ascii_alphabetic())?);
    let (whole, fraction) = number.split_once('.')?;
    let (_, millis_per_unit) = UNITS.iter().find(|(name, _)| *name == unit)?;
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    // Exact arithmetic: the value times 10^len(fraction), in milliseconds.
    let scale = 10u128.pow(fraction.len() as u32);
    let scaled: u128 = format!("{whole}{fraction}").parse().ok()?;
    let millis = scaled * u128::from(*millis_per_unit);
    (millis % scale == 0).then(|| format!("{}ms", millis / scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_millis("100ms"), Ok(100));
        assert_eq!(parse_millis("5s"), Ok(5_000));
        assert_eq!(parse_millis("2m"), Ok(120_000));
        assert_eq!(parse_millis("1h"), Ok(3_600_000));
        assert_eq!(parse_millis("0s"), Ok(0));
    }

    #[test]
    fn malformed_durations_get_a_fix_when_one_is_clear() {
        assert_eq!(
            parse_millis("1.5s"),
            Err(Problem::Malformed(Some("1500ms".into())))
        );
        assert_eq!(
            parse_millis("5 s"),
            Err(Problem::Malformed(Some("5s".into())))
        );
        assert_eq!(
            parse_millis("5S"),
            Err(Problem::Malformed(Some("5s".into())))
        );
        assert_eq!(parse_millis("1.0001ms"), Err(Problem::Malformed(None)));
        for text in [
            "",
            "5",
            "s",
            "5sec",
            "-5s",
            "5d",
            "ms5",
            "five seconds",
            ".",
        ] {
            assert_eq!(parse_millis(text), Err(Problem::Malformed(None)), "{text}");
        }
    }

    #[test]
    fn too_long() {
        assert_eq!(
            parse_millis("99999999999999999999ms"),
            Err(Problem::TooLong)
        );
        assert_eq!(parse_millis("18446744073709551615h"), Err(Problem::TooLong));
    }
}
