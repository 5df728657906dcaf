//! Quiet hours: non-urgent messages wait while it is night where the recipient is.
//!
//! The recipient's time zone comes from the number's country calling code (the
//! country's main zone: `+1` is taken as `America/New_York`, `+7` as
//! `Europe/Moscow`); a tenant overrides it per prefix (`"+1808": "Pacific/Honolulu"`)
//! and a message with `timezone`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Msisdn;

/// A tenant's quiet hours: from `start` to `end` local time (wrapping midnight when
/// `end` is earlier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, e.g. `21:00`.
    pub start: String,
    /// `HH:MM`, e.g. `08:00`.
    pub end: String,
    /// Number prefixes (`+1808`) to IANA zones, over the built-in country table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timezones: BTreeMap<String, String>,
}

fn hhmm(s: &str) -> Option<(i8, i8)> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h, m))
}

/// Whether `name` is an IANA time zone this build knows.
pub fn valid_zone(name: &str) -> bool {
    jiff::tz::TimeZone::get(name).is_ok()
}

impl QuietHours {
    /// Checks the times and zones; errors name the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (field, v) in [("start", &self.start), ("end", &self.end)] {
            if hhmm(v).is_none() {
                return Err((field.into(), format!("{field} must be HH:MM (24 h)")));
            }
        }
        if self.start == self.end {
            return Err(("end".into(), "end must differ from start".into()));
        }
        for (prefix, zone) in &self.timezones {
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err((
                    format!("timezones.{prefix}"),
                    "keys must be number prefixes such as +1808".into(),
                ));
            }
            if !valid_zone(zone) {
                return Err((
                    format!("timezones.{prefix}"),
                    format!("unknown time zone '{zone}'"),
                ));
            }
        }
        Ok(())
    }

    /// The recipient's zone: the longest matching override, else the country's.
    pub fn zone_for(&self, to: &Msisdn) -> Option<String> {
        let digits = to.as_str().trim_start_matches('+');
        self.timezones
            .iter()
            .filter(|(p, _)| digits.starts_with(p.trim_start_matches('+')))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, z)| z.clone())
            .or_else(|| country_zone(to).map(str::to_owned))
    }

    /// When a message due at `at` (Unix ms) may go out in `zone`: `None` when `at` is
    /// outside the quiet hours, else the end of them (Unix ms).
    pub fn defer(&self, zone: &str, at: i64) -> Option<i64> {
        let tz = jiff::tz::TimeZone::get(zone).ok()?;
        let (sh, sm) = hhmm(&self.start)?;
        let (eh, em) = hhmm(&self.end)?;
        let local = jiff::Timestamp::from_millisecond(at)
            .ok()?
            .to_zoned(tz.clone());
        let mins = i32::from(local.hour()) * 60 + i32::from(local.minute());
        let (s, e) = (
            i32::from(sh) * 60 + i32::from(sm),
            i32::from(eh) * 60 + i32::from(em),
        );
        let quiet = if s < e {
            mins >= s && mins < e
        } else {
            mins >= s || mins < e
        };
        if !quiet {
            return None;
        }
        // The end is today, or tomorrow when the night has not passed midnight yet.
        let day = if s > e && mins >= s {
            local.date().tomorrow().ok()?
        } else {
            local.date()
        };
        let end = day.at(eh, em, 0, 0).to_zoned(tz).ok()?;
        Some(end.timestamp().as_millisecond())
    }
}

/// Country calling codes to each country's main IANA zone (longest prefix wins).
const COUNTRY_ZONES: &[(&str, &str)] = &[
    ("1", "America/New_York"),
    ("1416", "America/Toronto"),
    ("1604", "America/Vancouver"),
    ("1808", "Pacific/Honolulu"),
    ("7", "Europe/Moscow"),
    ("77", "Asia/Almaty"),
    ("20", "Africa/Cairo"),
    ("27", "Africa/Johannesburg"),
    ("30", "Europe/Athens"),
    ("31", "Europe/Amsterdam"),
    ("32", "Europe/Brussels"),
    ("33", "Europe/Paris"),
    ("34", "Europe/Madrid"),
    ("351", "Europe/Lisbon"),
    ("352", "Europe/Luxembourg"),
    ("353", "Europe/Dublin"),
    ("354", "Atlantic/Reykjavik"),
    ("356", "Europe/Malta"),
    ("357", "Asia/Nicosia"),
    ("358", "Europe/Helsinki"),
    ("359", "Europe/Sofia"),
    ("36", "Europe/Budapest"),
    ("370", "Europe/Vilnius"),
    ("371", "Europe/Riga"),
    ("372", "Europe/Tallinn"),
    ("380", "Europe/Kyiv"),
    ("381", "Europe/Belgrade"),
    ("385", "Europe/Zagreb"),
    ("386", "Europe/Ljubljana"),
    ("39", "Europe/Rome"),
    ("40", "Europe/Bucharest"),
    ("41", "Europe/Zurich"),
    ("420", "Europe/Prague"),
    ("421", "Europe/Bratislava"),
    ("43", "Europe/Vienna"),
    ("44", "Europe/London"),
    ("45", "Europe/Copenhagen"),
    ("46", "Europe/Stockholm"),
    ("47", "Europe/Oslo"),
    ("48", "Europe/Warsaw"),
    ("49", "Europe/Berlin"),
    ("51", "America/Lima"),
    ("52", "America/Mexico_City"),
    ("54", "America/Argentina/Buenos_Aires"),
    ("55", "America/Sao_Paulo"),
    ("56", "America/Santiago"),
    ("57", "America/Bogota"),
    ("58", "America/Caracas"),
    ("60", "Asia/Kuala_Lumpur"),
    ("61", "Australia/Sydney"),
    ("62", "Asia/Jakarta"),
    ("63", "Asia/Manila"),
    ("64", "Pacific/Auckland"),
    ("65", "Asia/Singapore"),
    ("66", "Asia/Bangkok"),
    ("81", "Asia/Tokyo"),
    ("82", "Asia/Seoul"),
    ("84", "Asia/Ho_Chi_Minh"),
    ("86", "Asia/Shanghai"),
    ("852", "Asia/Hong_Kong"),
    ("880", "Asia/Dhaka"),
    ("886", "Asia/Taipei"),
    ("90", "Europe/Istanbul"),
    ("91", "Asia/Kolkata"),
    ("92", "Asia/Karachi"),
    ("94", "Asia/Colombo"),
    ("98", "Asia/Tehran"),
    ("212", "Africa/Casablanca"),
    ("213", "Africa/Algiers"),
    ("216", "Africa/Tunis"),
    ("233", "Africa/Accra"),
    ("234", "Africa/Lagos"),
    ("254", "Africa/Nairobi"),
    ("255", "Africa/Dar_es_Salaam"),
    ("256", "Africa/Kampala"),
    ("966", "Asia/Riyadh"),
    ("971", "Asia/Dubai"),
    ("972", "Asia/Jerusalem"),
    ("974", "Asia/Qatar"),
];

/// The main time zone of the number's country, when known.
pub fn country_zone(to: &Msisdn) -> Option<&'static str> {
    let digits = to.as_str().trim_start_matches('+');
    COUNTRY_ZONES
        .iter()
        .filter(|(p, _)| digits.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, z)| *z)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn qh() -> QuietHours {
        QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
            timezones: BTreeMap::new(),
        }
    }

    #[test]
    fn zones_from_country_codes_and_overrides() {
        let n = |s: &str| Msisdn::parse(s).unwrap();
        assert_eq!(country_zone(&n("+447911123456")), Some("Europe/London"));
        assert_eq!(country_zone(&n("+4915112345678")), Some("Europe/Berlin"));
        assert_eq!(country_zone(&n("+12125550100")), Some("America/New_York"));
        assert_eq!(country_zone(&n("+18085550100")), Some("Pacific/Honolulu"));
        assert_eq!(country_zone(&n("+35312345678")), Some("Europe/Dublin"));
        let mut q = qh();
        q.timezones
            .insert("+1213".into(), "America/Los_Angeles".into());
        assert_eq!(
            q.zone_for(&n("+12135550100")).as_deref(),
            Some("America/Los_Angeles")
        );
        assert_eq!(
            q.zone_for(&n("+12125550100")).as_deref(),
            Some("America/New_York")
        );
        for (_, z) in COUNTRY_ZONES {
            assert!(valid_zone(z), "{z}");
        }
    }

    #[test]
    fn defers_to_the_end_of_the_night_in_the_recipients_zone() {
        let q = qh();
        // 23:30 in London (winter, UTC): wait until 08:00 the next morning.
        assert_eq!(
            q.defer("Europe/London", ms("2026-11-22T23:30:00Z")),
            Some(ms("2026-11-23T08:00:00Z"))
        );
        // 03:00 in Berlin (UTC+1): until 08:00 the same day.
        assert_eq!(
            q.defer("Europe/Berlin", ms("2026-11-22T02:00:00Z")),
            Some(ms("2026-11-22T07:00:00Z"))
        );
        // 12:00 in London: no wait; the same instant is 07:00 in New York: wait.
        assert_eq!(q.defer("Europe/London", ms("2026-11-22T12:00:00Z")), None);
        assert_eq!(
            q.defer("America/New_York", ms("2026-11-22T12:00:00Z")),
            Some(ms("2026-11-22T13:00:00Z"))
        );
        // Summer time: 22:00 BST is 21:00 UTC.
        assert_eq!(
            q.defer("Europe/London", ms("2026-07-01T21:00:00Z")),
            Some(ms("2026-07-02T07:00:00Z"))
        );
        // A daytime window (13:00–14:00) does not wrap.
        let lunch = QuietHours {
            start: "13:00".into(),
            end: "14:00".into(),
            timezones: BTreeMap::new(),
        };
        assert_eq!(
            lunch.defer("UTC", ms("2026-11-22T13:30:00Z")),
            Some(ms("2026-11-22T14:00:00Z"))
        );
        assert_eq!(lunch.defer("UTC", ms("2026-11-22T14:00:00Z")), None);
    }

    #[test]
    fn validation_names_the_field() {
        let mut q = qh();
        q.start = "9pm".into();
        assert_eq!(q.validate().unwrap_err().0, "start");
        let mut q = qh();
        q.timezones.insert("+1".into(), "Mars/Olympus".into());
        assert_eq!(q.validate().unwrap_err().0, "timezones.+1");
        assert!(qh().validate().is_ok());
    }
}
