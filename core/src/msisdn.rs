//! E.164 phone numbers. `Display` masks the middle so numbers never reach logs whole.

use std::fmt;

/// A phone number in E.164 form: `+`, a country code that does not start with 0, and at
/// most 15 digits in all.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

/// Why a string is not an E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    #[error("must start with '+' followed by the country code")]
    MissingPlus,
    #[error("must contain only digits after '+'")]
    NotDigits,
    #[error("must have between 8 and 15 digits")]
    Length,
    #[error("country code cannot start with 0")]
    LeadingZero,
}

impl Msisdn {
    pub fn parse(s: &str) -> Result<Self, MsisdnError> {
        let digits = s.strip_prefix('+').ok_or(MsisdnError::MissingPlus)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MsisdnError::NotDigits);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(MsisdnError::Length);
        }
        if digits.starts_with('0') {
            return Err(MsisdnError::LeadingZero);
        }
        Ok(Self(s.to_owned()))
    }

    /// The full number with its `+`. Only for the wire and the database, never for logs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as SMPP wants them with TON international.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// `+4479*****12`: keeps the country code area and the last two digits.
    pub fn masked(&self) -> String {
        let d = self.digits();
        let keep_head = 4.min(d.len());
        let keep_tail = 2.min(d.len() - keep_head);
        format!(
            "+{}{}{}",
            &d[..keep_head],
            "*".repeat(d.len() - keep_head - keep_tail),
            &d[d.len() - keep_tail..]
        )
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_e164() {
        assert_eq!(
            Msisdn::parse("+447911123456").map(|m| m.digits().to_owned()),
            Ok("447911123456".into())
        );
        assert_eq!(Msisdn::parse("447911123456"), Err(MsisdnError::MissingPlus));
        assert_eq!(Msisdn::parse("+44 7911"), Err(MsisdnError::NotDigits));
        assert_eq!(Msisdn::parse("+1234567"), Err(MsisdnError::Length));
        assert_eq!(Msisdn::parse("+1234567890123456"), Err(MsisdnError::Length));
        assert_eq!(
            Msisdn::parse("+0447911123456"),
            Err(MsisdnError::LeadingZero)
        );
    }

    #[test]
    fn display_masks_the_number() {
        let m = Msisdn::parse("+447911123456").unwrap();
        assert_eq!(m.to_string(), "+4479******56");
        assert!(!format!("{m:?}").contains("7911123456"));
    }
}
