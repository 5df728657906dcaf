//! GSM 03.38 default alphabet (with the extension table), UCS-2 fallback, and
//! splitting into concatenated parts with a UDH (153 septets / 67 UCS-2 units per
//! part), never splitting an escape pair or a surrogate pair.

/// The basic table, indexed by septet value. 0x1B is the escape to the extension table.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: (septet after 0x1B, character).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Septets for one character: one byte, or the escape pair.
fn septets(c: char) -> Option<([u8; 2], usize)> {
    if c != '\u{1b}'
        && let Some(i) = BASIC.iter().position(|&b| b == c)
    {
        {
            return Some(([i as u8, 0], 1));
        }
    }
    EXTENSION
        .iter()
        .find(|(_, e)| *e == c)
        .map(|(s, _)| ([0x1B, *s], 2))
}

/// The text as unpacked GSM septets (one per octet), if every character has one.
pub fn encode_gsm7(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (s, n) = septets(c)?;
        out.extend_from_slice(&s[..n]);
    }
    Some(out)
}

/// Decodes unpacked septets (for receipts' `text:` and tests).
pub fn decode_gsm7(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        if b == 0x1B {
            if let Some(&n) = it.next() {
                match EXTENSION.iter().find(|(s, _)| *s == n) {
                    Some((_, c)) => out.push(*c),
                    None => out.push(' '),
                }
            }
        } else {
            out.push(BASIC.get(usize::from(b & 0x7F)).copied().unwrap_or('?'));
        }
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// GSM 03.38, unpacked; SMPP data_coding 0x00 (SMSC default alphabet).
    Gsm7,
    /// ISO-8859-1; data_coding 0x03.
    Latin1,
    /// UCS-2 (UTF-16BE); data_coding 0x08.
    Ucs2,
}

impl Coding {
    pub fn data_coding(self) -> u8 {
        match self {
            Coding::Gsm7 => 0x00,
            Coding::Latin1 => 0x03,
            Coding::Ucs2 => 0x08,
        }
    }
}

/// A connector's preferred alphabet; UCS-2 is the fallback for text it cannot carry.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Preferred {
    #[default]
    Gsm,
    Latin1,
    Ucs2,
}

/// Splits `text` in the preferred alphabet, falling back to UCS-2.
pub fn segment_as(text: &str, pref: Preferred) -> Segments {
    match pref {
        Preferred::Gsm => segment(text),
        Preferred::Latin1 => match latin1_units(text) {
            Some(units) => Segments {
                coding: Coding::Latin1,
                parts: pack(units, 140, 134, 1),
            },
            None => ucs2(text),
        },
        Preferred::Ucs2 => ucs2(text),
    }
}

fn latin1_units(text: &str) -> Option<Vec<Vec<u8>>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok().map(|b| vec![b]))
        .collect()
}

fn ucs2(text: &str) -> Segments {
    Segments {
        coding: Coding::Ucs2,
        parts: pack(ucs2_units(text), 70, 67, 2),
    }
}

/// Decodes a short message by its SMPP data_coding (GSM unpacked septets, IA5,
/// Latin-1, UCS-2); unknown codings are read as Latin-1.
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        0x00 => decode_gsm7(bytes),
        0x01 => bytes.iter().map(|&b| char::from(b & 0x7F)).collect(),
        0x08 | 0x18 => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Splits a user data header off `data`: the concatenation info (IEI 0x00 or 0x08)
/// and the rest.
pub fn split_udh(data: &[u8]) -> (Option<crate::inbound::Concat>, &[u8]) {
    let Some(&len) = data.first() else {
        return (None, data);
    };
    let end = 1 + usize::from(len);
    let Some(header) = data.get(1..end) else {
        return (None, data);
    };
    let mut concat = None;
    let mut i = 0;
    while i + 1 < header.len() {
        let (iei, l) = (header[i], usize::from(header[i + 1]));
        let Some(v) = header.get(i + 2..i + 2 + l) else {
            break;
        };
        match (iei, v) {
            (0x00, [r, t, s]) => {
                concat = Some(crate::inbound::Concat {
                    reference: u16::from(*r),
                    total: *t,
                    seq: *s,
                })
            }
            (0x08, [r1, r2, t, s]) => {
                concat = Some(crate::inbound::Concat {
                    reference: u16::from_be_bytes([*r1, *r2]),
                    total: *t,
                    seq: *s,
                })
            }
            _ => {}
        }
        i += 2 + l;
    }
    (concat, &data[end..])
}

/// A message split for SMPP: payloads without UDH, one per part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segments {
    pub coding: Coding,
    pub parts: Vec<Vec<u8>>,
}

/// Splits `text`: GSM 03.38 when every character fits (160 septets in one part, 153
/// per concatenated part), otherwise UCS-2 (70 units, 67 per part).
pub fn segment(text: &str) -> Segments {
    match gsm_units(text) {
        Some(units) => Segments {
            coding: Coding::Gsm7,
            parts: pack(units, 160, 153, 1),
        },
        None => ucs2(text),
    }
}

/// Indivisible units: an escape pair, or a surrogate pair, stays in one part.
fn gsm_units(text: &str) -> Option<Vec<Vec<u8>>> {
    text.chars()
        .map(|c| septets(c).map(|(s, n)| s[..n].to_vec()))
        .collect()
}

fn ucs2_units(text: &str) -> Vec<Vec<u8>> {
    text.chars()
        .map(|c| {
            let mut buf = [0u16; 2];
            c.encode_utf16(&mut buf)
                .iter()
                .flat_map(|u| u.to_be_bytes())
                .collect()
        })
        .collect()
}

/// `single`/`multi` are limits in characters of the coding (septets, octets, UTF-16
/// units): a unit weighs its length in bytes divided by `width`.
fn pack(units: Vec<Vec<u8>>, single: usize, multi: usize, width: usize) -> Vec<Vec<u8>> {
    let weight = |u: &Vec<u8>| u.len() / width;
    let total: usize = units.iter().map(weight).sum();
    if total <= single {
        return vec![units.concat()];
    }
    let mut parts = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut used = 0;
    for u in units {
        let w = weight(&u);
        if used + w > multi {
            parts.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.extend_from_slice(&u);
        used += w;
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

/// The 6-octet concatenation UDH (IEI 0x00, 8-bit reference).
pub fn udh(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, 0x00, 0x03, reference, total, seq]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_extension_characters() {
        assert_eq!(encode_gsm7("hello").unwrap(), b"hello".to_vec());
        assert_eq!(encode_gsm7("@£$").unwrap(), vec![0x00, 0x01, 0x02]);
        assert_eq!(encode_gsm7("€").unwrap(), vec![0x1B, 0x65]);
        assert_eq!(encode_gsm7("{[~]}|\\^").unwrap().len(), 16);
        assert_eq!(encode_gsm7("Ωé¿"), Some(vec![0x15, 0x05, 0x60]));
        assert!(encode_gsm7("日本").is_none());
        assert!(encode_gsm7("`").is_none(), "backtick is not in GSM 03.38");
        let all: String = BASIC.iter().filter(|c| **c != '\u{1b}').collect();
        assert_eq!(decode_gsm7(&encode_gsm7(&all).unwrap()), all);
        assert_eq!(decode_gsm7(&encode_gsm7("a€{}").unwrap()), "a€{}");
    }

    #[test]
    fn single_part_limits() {
        assert_eq!(segment(&"a".repeat(160)).parts.len(), 1);
        assert_eq!(segment(&"a".repeat(161)).parts.len(), 2);
        // 80 euro signs = 160 septets: still one part.
        assert_eq!(segment(&"€".repeat(80)).parts.len(), 1);
        assert_eq!(segment(&"€".repeat(81)).parts.len(), 2);
        let u = segment(&"ж".repeat(70));
        assert_eq!((u.coding, u.parts.len()), (Coding::Ucs2, 1));
        assert_eq!(segment(&"ж".repeat(71)).parts.len(), 2);
    }

    #[test]
    fn concatenated_parts_are_153_septets_or_67_units() {
        let s = segment(&"a".repeat(306));
        assert_eq!(
            s.parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![153, 153]
        );
        let s = segment(&"ж".repeat(134));
        assert_eq!(
            s.parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![134, 134]
        );
    }

    #[test]
    fn escape_pair_is_never_split() {
        // The shared vector: 152 'x' then a euro sign does not fit one 153-septet part.
        let text = format!("{}€{}", "x".repeat(152), "y".repeat(10));
        let s = segment(&text);
        assert_eq!(s.coding, Coding::Gsm7);
        assert_eq!(s.parts[0].len(), 152);
        assert_eq!(&s.parts[1][..2], &[0x1B, 0x65]);
        for p in &s.parts {
            assert_ne!(p.last(), Some(&0x1B), "a part ends in a bare escape");
        }
    }

    #[test]
    fn surrogate_pair_is_never_split() {
        let text = format!("{}😀", "ж".repeat(66)); // 66 + 2 units = 68 > 67
        let text = format!("{text}{}", "ж".repeat(10));
        let s = segment(&text);
        assert_eq!(s.coding, Coding::Ucs2);
        assert_eq!(s.parts[0].len(), 132, "66 units; the pair moves to part 2");
        let second = u16::from_be_bytes([s.parts[1][0], s.parts[1][1]]);
        assert!(
            (0xD800..0xDC00).contains(&second),
            "part 2 starts with the high surrogate"
        );
        let joined: Vec<u16> = s
            .parts
            .concat()
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(String::from_utf16(&joined).unwrap(), text);
    }

    #[test]
    fn agrees_with_rusmpp_extra_encoder() {
        // An independent GSM 03.38 implementation.
        use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
        let text = "Hello @£$¥ èéùìò ÇØøÅå Δ_ΦΓΛΩΠΨΣΘΞ ÆæßÉ !\"#¤%&'()*+,-./ 0123456789:;<=>? ¡ÄÖÑÜ§ ¿äöñüà €{}[]~|^\\";
        let theirs = Gsm7BitUnpacked::new().encode_to_vec(text).unwrap();
        assert_eq!(encode_gsm7(text).unwrap(), theirs);
    }

    #[test]
    fn latin1_preference_and_fallback() {
        let s = segment_as("Grüße, ça va?", Preferred::Latin1);
        assert_eq!(s.coding, Coding::Latin1);
        assert_eq!(
            s.parts[0],
            "Grüße, ça va?".chars().map(|c| c as u8).collect::<Vec<_>>()
        );
        let long = "é".repeat(141);
        let s = segment_as(&long, Preferred::Latin1);
        assert_eq!(
            s.parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![134, 7]
        );
        assert_eq!(segment_as("€ ok", Preferred::Latin1).coding, Coding::Ucs2);
        assert_eq!(segment_as("plain", Preferred::Ucs2).coding, Coding::Ucs2);
        assert_eq!(segment_as("plain", Preferred::Gsm).coding, Coding::Gsm7);
    }

    #[test]
    fn decodes_every_coding() {
        assert_eq!(decode(0x00, &encode_gsm7("Hi @€").unwrap()), "Hi @€");
        assert_eq!(decode(0x01, b"STOP"), "STOP");
        assert_eq!(decode(0x03, &[0x47, 0xFC]), "Gü");
        assert_eq!(decode(0x08, &[0x00, 0x53, 0xD8, 0x3D, 0xDE, 0x00]), "S😀");
    }
}
