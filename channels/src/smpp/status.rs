//! Every SMPP `command_status` (3.4 §5.1.3 and 5.0 §4.7.6) → transient or permanent.
//! Transient errors are retried with backoff (throttling ones also slow the connector
//! down); permanent ones fail the attempt.

use std::time::Duration;

use hermod_core::ports::ChannelError;

/// What to do about a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Slow down and retry; never fail.
    Throttle,
    /// Retry later, perhaps on another connector.
    Transient,
    /// Retrying cannot help.
    Permanent,
}

use Class::*;

/// `(command_status, name, class)`.
pub const TABLE: &[(u32, &str, Class)] = &[
    (0x0000_0001, "ESME_RINVMSGLEN", Permanent),
    (0x0000_0002, "ESME_RINVCMDLEN", Permanent),
    (0x0000_0003, "ESME_RINVCMDID", Permanent),
    (0x0000_0004, "ESME_RINVBNDSTS", Transient),
    (0x0000_0005, "ESME_RALYBND", Transient),
    (0x0000_0006, "ESME_RINVPRTFLG", Permanent),
    (0x0000_0007, "ESME_RINVREGDLVFLG", Permanent),
    (0x0000_0008, "ESME_RSYSERR", Transient),
    (0x0000_000A, "ESME_RINVSRCADR", Permanent),
    (0x0000_000B, "ESME_RINVDSTADR", Permanent),
    (0x0000_000C, "ESME_RINVMSGID", Permanent),
    (0x0000_000D, "ESME_RBINDFAIL", Transient),
    (0x0000_000E, "ESME_RINVPASWD", Transient),
    (0x0000_000F, "ESME_RINVSYSID", Transient),
    (0x0000_0011, "ESME_RCANCELFAIL", Permanent),
    (0x0000_0013, "ESME_RREPLACEFAIL", Permanent),
    (0x0000_0014, "ESME_RMSGQFUL", Throttle),
    (0x0000_0015, "ESME_RINVSERTYP", Permanent),
    (0x0000_0033, "ESME_RINVNUMDESTS", Permanent),
    (0x0000_0034, "ESME_RINVDLNAME", Permanent),
    (0x0000_0040, "ESME_RINVDESTFLAG", Permanent),
    (0x0000_0042, "ESME_RINVSUBREP", Permanent),
    (0x0000_0043, "ESME_RINVESMCLASS", Permanent),
    (0x0000_0044, "ESME_RCNTSUBDL", Permanent),
    (0x0000_0045, "ESME_RSUBMITFAIL", Transient),
    (0x0000_0048, "ESME_RINVSRCTON", Permanent),
    (0x0000_0049, "ESME_RINVSRCNPI", Permanent),
    (0x0000_0050, "ESME_RINVDSTTON", Permanent),
    (0x0000_0051, "ESME_RINVDSTNPI", Permanent),
    (0x0000_0053, "ESME_RINVSYSTYP", Permanent),
    (0x0000_0054, "ESME_RINVREPFLAG", Permanent),
    (0x0000_0055, "ESME_RINVNUMMSGS", Permanent),
    (0x0000_0058, "ESME_RTHROTTLED", Throttle),
    (0x0000_0061, "ESME_RINVSCHED", Permanent),
    (0x0000_0062, "ESME_RINVEXPIRY", Permanent),
    (0x0000_0063, "ESME_RINVDFTMSGID", Permanent),
    (0x0000_0064, "ESME_RX_T_APPN", Transient),
    (0x0000_0065, "ESME_RX_P_APPN", Permanent),
    (0x0000_0066, "ESME_RX_R_APPN", Permanent),
    (0x0000_0067, "ESME_RQUERYFAIL", Transient),
    (0x0000_00C0, "ESME_RINVTLVSTREAM", Permanent),
    (0x0000_00C1, "ESME_RTLVNOTALLWD", Permanent),
    (0x0000_00C2, "ESME_RINVTLVLEN", Permanent),
    (0x0000_00C3, "ESME_RMISSINGTLV", Permanent),
    (0x0000_00C4, "ESME_RINVTLVVAL", Permanent),
    (0x0000_00FE, "ESME_RDELIVERYFAILURE", Transient),
    (0x0000_00FF, "ESME_RUNKNOWNERR", Transient),
    (0x0000_0100, "ESME_RSERTYPUNAUTH", Permanent),
    (0x0000_0101, "ESME_RPROHIBITED", Permanent),
    (0x0000_0102, "ESME_RSERTYPUNAVAIL", Transient),
    (0x0000_0103, "ESME_RSERTYPDENIED", Permanent),
    (0x0000_0104, "ESME_RINVDCS", Permanent),
    (0x0000_0105, "ESME_RINVSRCADDRSUBUNIT", Permanent),
    (0x0000_0106, "ESME_RINVDSTADDRSUBUNIT", Permanent),
    (0x0000_0107, "ESME_RINVBCASTFREQINT", Permanent),
    (0x0000_0108, "ESME_RINVBCASTALIAS_NAME", Permanent),
    (0x0000_0109, "ESME_RINVBCASTAREAFMT", Permanent),
    (0x0000_010A, "ESME_RINVNUMBCAST_AREAS", Permanent),
    (0x0000_010B, "ESME_RINVBCASTCNTTYPE", Permanent),
    (0x0000_010C, "ESME_RINVBCASTMSGCLASS", Permanent),
    (0x0000_010D, "ESME_RBCASTFAIL", Transient),
    (0x0000_010E, "ESME_RBCASTQUERYFAIL", Transient),
    (0x0000_010F, "ESME_RBCASTCANCELFAIL", Transient),
    (0x0000_0110, "ESME_RINVBCAST_REP", Permanent),
    (0x0000_0111, "ESME_RINVBCASTSRVGRP", Permanent),
    (0x0000_0112, "ESME_RINVBCASTCHANIND", Permanent),
];

/// Our code for "no bind is up".
pub const NOT_BOUND: &str = "smpp:not_bound";

/// The class of a status; reserved and vendor-specific (0x400–0x4FF) ones are
/// transient: retrying an unknown condition is safer than dropping the message.
pub fn class_of(status: u32) -> Class {
    TABLE
        .iter()
        .find(|(c, _, _)| *c == status)
        .map_or(Transient, |(_, _, k)| *k)
}

pub fn name_of(status: u32) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(c, _, _)| *c == status)
        .map(|(_, n, _)| *n)
}

/// Classifies a non-zero `command_status` of a submit_sm_resp or generic_nack.
pub fn classify(status: u32) -> ChannelError {
    let code = format!("smpp:0x{status:08X}");
    match class_of(status) {
        Throttle => ChannelError::Transient {
            code,
            retry_after: Some(Duration::from_secs(1)),
        },
        Transient => ChannelError::Transient {
            code,
            retry_after: None,
        },
        Permanent => ChannelError::Permanent { code },
    }
}

pub fn is_throttle_status(status: u32) -> bool {
    class_of(status) == Throttle
}

/// True for the error codes `classify` gives throttling statuses.
pub fn is_throttle(code: &str) -> bool {
    code.strip_prefix("smpp:0x")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .is_some_and(is_throttle_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_one_class() {
        let mut seen = std::collections::HashSet::new();
        for (code, name, _) in TABLE {
            assert!(seen.insert(*code), "{name} twice");
            assert!(name.starts_with("ESME_R"));
        }
        // Every SMPP 3.4 error status (§5.1.3) is in the table.
        for code in [
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
            0x11, 0x13, 0x14, 0x15, 0x33, 0x34, 0x40, 0x42, 0x43, 0x44, 0x45, 0x48, 0x49, 0x50,
            0x51, 0x53, 0x54, 0x55, 0x58, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0xC0, 0xC1,
            0xC2, 0xC3, 0xC4, 0xFE, 0xFF,
        ] {
            assert!(name_of(code).is_some(), "0x{code:02X} missing");
        }
    }

    #[test]
    fn table() {
        let transient = |s| matches!(classify(s), ChannelError::Transient { .. });
        assert_eq!(class_of(0x58), Throttle, "ESME_RTHROTTLED");
        assert_eq!(class_of(0x14), Throttle, "ESME_RMSGQFUL");
        assert!(transient(0x58) && transient(0x14));
        assert!(transient(0x08), "ESME_RSYSERR");
        assert!(transient(0x64), "ESME_RX_T_APPN");
        assert!(transient(0x45), "ESME_RSUBMITFAIL");
        assert!(transient(0x400), "vendor-specific");
        assert!(!transient(0x0B), "ESME_RINVDSTADR");
        assert!(!transient(0x0A), "ESME_RINVSRCADR");
        assert!(!transient(0x01), "ESME_RINVMSGLEN");
        assert!(!transient(0x65), "ESME_RX_P_APPN");
        assert!(!transient(0x104), "ESME_RINVDCS");
        assert_eq!(
            classify(0x0B),
            ChannelError::Permanent {
                code: "smpp:0x0000000B".into()
            }
        );
        assert!(is_throttle("smpp:0x00000058"));
        assert!(!is_throttle("smpp:0x00000008"));
        assert!(!is_throttle(NOT_BOUND));
    }
}
