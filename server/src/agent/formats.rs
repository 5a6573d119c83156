//! The message format a session writes, and the log line a source writes when the device stays
//! silent (an SSH server speaks first, so silence usually means the wrong format).

use burrow_proto::Format;

use super::session::BANNER_WAIT;

/// The message format the session writes: the configured one, lowered to the subprotocol's.
pub fn effective_format(format: Format, subprotocol: &str) -> Format {
    // The service only ever picks one of the offered subprotocols; anything else is read as
    // the most capable format, as before.
    let allowed = Format::from_subprotocol(subprotocol).unwrap_or(Format::V3);
    match (format, allowed) {
        (Format::V1, _) | (_, Format::V1) => Format::V1,
        (Format::V2, _) | (_, Format::V2) => Format::V2,
        (Format::V3, Format::V3) => Format::V3,
    }
}

/// The log line for a source connection that heard nothing from the device in time.
pub fn no_answer_hint(format: Format) -> String {
    let secs = BANNER_WAIT.as_secs();
    match format {
        Format::V1 => format!(
            "nothing came back from the device within {secs} s (an SSH server answers at once): \
             check that the device's agent is connected to this tunnel and that its local service \
             is running"
        ),
        Format::V2 | Format::V3 => format!(
            "nothing came back from the device within {secs} s (an SSH server answers at once): \
             the {format:?} message format is the likely cause. A device running the AWS IoT \
             Device Client or Greengrass speaks V1: restart this agent with --format V1 (and, \
             for the Device Client, a new destination token for the device, which drops its \
             tunnel when the format changes); localproxy 3.x and burrow agent answer V3"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_subprotocol() {
        use burrow_proto::handshake::{SUBPROTOCOL_V1, SUBPROTOCOL_V2, SUBPROTOCOL_V3};
        let (v1, v2, v3) = (SUBPROTOCOL_V1, SUBPROTOCOL_V2, SUBPROTOCOL_V3);
        assert_eq!(effective_format(Format::V3, v3), Format::V3);
        assert_eq!(effective_format(Format::V3, v2), Format::V2);
        assert_eq!(effective_format(Format::V3, v1), Format::V1);
        assert_eq!(effective_format(Format::V1, v3), Format::V1);
        assert_eq!(effective_format(Format::V2, v3), Format::V2);
        assert_eq!(effective_format(Format::V2, v1), Format::V1);
    }

    #[test]
    fn the_no_answer_hint_names_the_format_and_the_fix() {
        let v3 = no_answer_hint(Format::V3);
        for words in [
            "V3 message format",
            "--format V1",
            "Device Client",
            "Greengrass",
        ] {
            assert!(v3.contains(words), "{words:?} in {v3:?}");
        }
        let v1 = no_answer_hint(Format::V1);
        assert!(!v1.contains("--format V1"), "{v1:?}");
    }
}
