//! The age v1 header and key schedule (age-encryption.org/v1), for the writer that keeps a
//! crashed file decryptable and for chunk-by-chunk recovery. Wrapping and unwrapping the file
//! key is left to the `age` crate's recipients and identities; this module only lays out
//! and parses the header text and derives the keys as the specification says:
//!
//! ```text
//! age-encryption.org/v1
//! -> X25519 <share>
//! <wrapped file key, base64 without padding, 64 columns>
//! --- <HMAC-SHA-256(HKDF(file key, "header"), header up to "---")>
//! <16-byte nonce><STREAM chunks: ChaCha20-Poly1305, key HKDF(file key, nonce, "payload")>
//! ```

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use base64::Engine;
use base64::prelude::BASE64_STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const INTRO: &str = "age-encryption.org/v1";
/// A header longer than this is not one of ours (nor a sane age file).
pub const MAX_HEADER: usize = 1 << 20;

/// A parsed header.
#[derive(Debug)]
pub struct Header {
    pub stanzas: Vec<Stanza>,
    mac: [u8; 32],
    /// Bytes covered by the MAC (up to and including `---`).
    mac_input: usize,
    /// Bytes of the header text, including the MAC line.
    pub len: usize,
}

fn mac_key(file_key: &FileKey) -> [u8; 32] {
    age_core::primitives::hkdf(&[], b"header", file_key.expose_secret())
}

/// The key of the payload's STREAM chunks.
pub fn payload_key(file_key: &FileKey, nonce: &[u8; 16]) -> [u8; 32] {
    age_core::primitives::hkdf(nonce, b"payload", file_key.expose_secret())
}

fn mac_of(file_key: &FileKey, text: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&mac_key(file_key)).expect("any key length");
    mac.update(text);
    mac
}

/// The header text for `stanzas`, MAC'd with `file_key`.
pub fn write(file_key: &FileKey, stanzas: &[Stanza]) -> Vec<u8> {
    let mut text = format!("{INTRO}\n");
    for stanza in stanzas {
        text.push_str("->");
        for part in std::iter::once(&stanza.tag).chain(&stanza.args) {
            text.push(' ');
            text.push_str(part);
        }
        text.push('\n');
        let body = BASE64_STANDARD_NO_PAD.encode(&stanza.body);
        // Lines of 64 columns; the last one is shorter, possibly empty.
        let mut rest = body.as_str();
        while rest.len() >= 64 {
            text.push_str(&rest[..64]);
            text.push('\n');
            rest = &rest[64..];
        }
        text.push_str(rest);
        text.push('\n');
    }
    text.push_str("---");
    let mac = mac_of(file_key, text.as_bytes()).finalize().into_bytes();
    text.push(' ');
    text.push_str(&BASE64_STANDARD_NO_PAD.encode(mac));
    text.push('\n');
    text.into_bytes()
}

/// Parses the header at the start of `data`.
pub fn parse(data: &[u8]) -> Result<Header, String> {
    let data = &data[..data.len().min(MAX_HEADER)];
    let mut lines = LineReader { data, at: 0 };
    if lines.next().ok_or("empty file")? != INTRO.as_bytes() {
        return Err("it does not start with 'age-encryption.org/v1'".into());
    }
    let mut stanzas = Vec::new();
    loop {
        let line_start = lines.at;
        let line = lines.next().ok_or("the header has no MAC line")?;
        if let Some(mac) = line.strip_prefix(b"--- ") {
            let mac = BASE64_STANDARD_NO_PAD
                .decode(mac)
                .ok()
                .and_then(|mac| <[u8; 32]>::try_from(mac).ok())
                .ok_or("the header MAC is not 32 bytes of base64")?;
            return Ok(Header {
                stanzas,
                mac,
                mac_input: line_start + 3,
                len: lines.at,
            });
        }
        let stanza = line
            .strip_prefix(b"-> ")
            .ok_or("a header line is neither a stanza nor the MAC")?;
        let stanza = std::str::from_utf8(stanza).map_err(|_| "a stanza is not text")?;
        let mut parts = stanza.split(' ');
        let tag = parts
            .next()
            .filter(|t| !t.is_empty())
            .ok_or("empty stanza")?;
        let args = parts.map(str::to_string).collect();
        let mut body = Vec::new();
        loop {
            let line = lines.next().ok_or("a stanza body is cut off")?;
            if line.len() > 64 {
                return Err("a stanza body line is longer than 64 columns".into());
            }
            body.extend_from_slice(line);
            if line.len() < 64 {
                break;
            }
        }
        let body = BASE64_STANDARD_NO_PAD
            .decode(&body)
            .map_err(|_| "a stanza body is not base64")?;
        stanzas.push(Stanza {
            tag: tag.to_string(),
            args,
            body,
        });
    }
}

impl Header {
    /// Whether the MAC proves the header was made with `file_key` and not changed since.
    pub fn verify(&self, data: &[u8], file_key: &FileKey) -> bool {
        mac_of(file_key, &data[..self.mac_input])
            .verify_slice(&self.mac)
            .is_ok()
    }
}

struct LineReader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for LineReader<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.data[self.at..];
        let end = rest.iter().position(|&b| b == b'\n')?;
        self.at += end + 1;
        Some(&rest[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FileKey {
        FileKey::new(Box::new([7u8; 16]))
    }

    #[test]
    fn written_headers_parse_and_verify() {
        let stanzas = vec![
            Stanza {
                tag: "X25519".into(),
                args: vec!["abc".into()],
                body: vec![1u8; 48],
            },
            Stanza {
                tag: "X25519".into(),
                args: vec!["def".into()],
                body: vec![2u8; 32],
            },
        ];
        let mut text = write(&key(), &stanzas);
        let header = parse(&text).unwrap();
        assert_eq!(header.stanzas, stanzas);
        assert_eq!(header.len, text.len());
        assert!(header.verify(&text, &key()));
        assert!(!header.verify(&text, &FileKey::new(Box::new([8u8; 16]))));
        // A changed stanza no longer verifies.
        text[30] ^= 1;
        if let Ok(header) = parse(&text) {
            assert!(!header.verify(&text, &key()));
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(parse(b"").is_err());
        assert!(
            parse(b"hello\n")
                .unwrap_err()
                .contains("age-encryption.org/v1")
        );
        assert!(parse(b"age-encryption.org/v1\n-> X\n").is_err());
        assert!(parse(b"age-encryption.org/v1\n--- !!!\n").is_err());
    }
}
