//! Small encodings libcni's on-disk and on-wire formats need: SHA-512 (cnitool's container
//! IDs), standard base64 (Go's `[]byte` in JSON) and Go's JSON string escaping.

use base64::Engine;
use sha2::{Digest, Sha512};
use std::path::{Component, Path, PathBuf};

pub fn sha512(data: &[u8]) -> [u8; 64] {
    Sha512::digest(data).into()
}

/// Standard base64 with padding, as Go's `encoding/json` writes a `[]byte`.
pub fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64, padded or not, skipping `\r`/`\n` as Go's decoder does; `None`
/// if malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    LENIENT.decode(compact).ok()
}

/// Serializes `value` as Go's `json.Marshal` does: compact, map keys sorted (serde_json's map
/// is ordered by key), and `<`, `>`, `&`, U+2028 and U+2029 escaped.
pub fn go_json(value: &impl serde::Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let text = serde_json::to_string(value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    Ok(out.into_bytes())
}

/// Go's `filepath.Abs`: joined to the working directory when relative, then cleaned
/// lexically (`.` dropped, `..` resolved, repeated `/` collapsed), symlinks untouched.
pub fn absolute_clean(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::new();
    for comp in joined.components() {
        match comp {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() && !joined.is_absolute() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(if joined.is_absolute() { "/" } else { "." });
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_matches_known_vectors() {
        assert_eq!(
            hex(&sha512(b"")),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        );
        assert_eq!(
            hex(&sha512(b"abc")),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
        // Two blocks (the 896-bit FIPS example).
        assert_eq!(
            hex(&sha512(
                b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
            )),
            "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018\
             501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"
        );
        // Eight blocks.
        let a = vec![b'a'; 1000];
        assert_eq!(
            hex(&sha512(&a)),
            "67ba5535a46e3f86dbfbed8cbbaf0125c76ed549ff8b0b9e03e0c88cf90fa634\
             fa7b12b47d77b694de488ace8d9a65967dc96df599727d3292a8d9d447709c97"
        );
    }

    #[test]
    fn base64_round_trips_and_matches_go() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("{\"a\":1}", "eyJhIjoxfQ=="),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert!(base64_decode("Zm9v!").is_none());
        assert!(base64_decode("Z").is_none());
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn go_json_escapes_html_characters() {
        let v = serde_json::json!({"b": "<a&b>", "a": 1});
        assert_eq!(
            String::from_utf8(go_json(&v).unwrap()).unwrap(),
            r#"{"a":1,"b":"\u003ca\u0026b\u003e"}"#
        );
    }

    #[test]
    fn absolute_clean_is_lexical() {
        assert_eq!(
            absolute_clean(Path::new("/run//netns/./x")),
            Path::new("/run/netns/x")
        );
        assert_eq!(
            absolute_clean(Path::new("/run/netns/../x")),
            Path::new("/run/x")
        );
        assert_eq!(absolute_clean(Path::new("/..")), Path::new("/"));
        let rel = absolute_clean(Path::new("x"));
        assert!(rel.is_absolute() && rel.ends_with("x"));
    }
}
