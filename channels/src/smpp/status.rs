//! SMPP `command_status` → transient or permanent. Transient errors are retried with
//! backoff; permanent ones fail the attempt.

use std::time::Duration;

use hermod_core::ports::SendError;

/// Classifies a non-zero `command_status` of a submit_sm_resp or generic_nack.
pub fn classify(status: u32) -> SendError {
    let code = format!("smpp:0x{status:08X}");
    match status {
        // Throttled / queue full: slow down and retry, never fail.
        0x58 | 0x14 => SendError::Transient {
            code,
            retry_after: Some(Duration::from_secs(1)),
        },
        // System error, submit failed, bind status, temporary app error, delivery failure.
        0x08 | 0x45 | 0x04 | 0x64 | 0xFE | 0xFF => SendError::Transient {
            code,
            retry_after: None,
        },
        // Malformed or refused content and addresses: retrying cannot help.
        0x01
        | 0x02
        | 0x03
        | 0x0A
        | 0x0B
        | 0x0C
        | 0x43
        | 0x48
        | 0x49
        | 0x50
        | 0x51
        | 0x61
        | 0x62
        | 0x63
        | 0x65
        | 0xC0..=0xC4
        | 0x100..=0x106 => SendError::Permanent { code },
        _ => SendError::Transient {
            code,
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(s: u32) -> bool {
        matches!(classify(s), SendError::Transient { .. })
    }

    #[test]
    fn table() {
        assert!(transient(0x58), "ESME_RTHROTTLED");
        assert!(transient(0x14), "ESME_RMSGQFUL");
        assert!(transient(0x08), "ESME_RSYSERR");
        assert!(transient(0x64), "ESME_RX_T_APPN");
        assert!(!transient(0x0B), "ESME_RINVDSTADR");
        assert!(!transient(0x0A), "ESME_RINVSRCADR");
        assert!(!transient(0x01), "ESME_RINVMSGLEN");
        assert!(!transient(0x65), "ESME_RX_P_APPN");
        assert!(!transient(0x104), "ESME_RINVDCS");
        assert_eq!(
            classify(0x0B),
            SendError::Permanent {
                code: "smpp:0x0000000B".into()
            }
        );
    }
}
