//! The two encodings the Beacon API speaks, SSZ and JSON: which one a
//! request or answer carries, which one a client asked for, and SSZ list
//! lengths read before decoding. Validator clients such as Lodestar's ask
//! for SSZ wherever the API offers it and post SSZ bodies where the API
//! takes them; `application/octet-stream;q=1.0,application/json;q=0.9` is
//! the header the Beacon API suggests and Lighthouse's HTTP client sends.

use reqwest::header::{self, HeaderMap};

/// The Beacon API's SSZ media type.
pub const SSZ: &str = "application/octet-stream";
pub const JSON: &str = "application/json";

fn content_type_is(headers: &HeaderMap, prefix: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with(prefix))
}

/// The body is SSZ.
pub fn is_ssz(headers: &HeaderMap) -> bool {
    content_type_is(headers, SSZ)
}

/// The body is JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    content_type_is(headers, JSON)
}

/// The client prefers an SSZ answer: its `Accept` header weighs SSZ above
/// JSON (quality values as RFC 9110 defines them; a type not named has
/// quality 0; a wildcard stands for JSON, the API's default, but loses a
/// tie to SSZ named outright).
pub fn wants_ssz(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut ssz, mut json, mut wildcard) = (0.0f32, 0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media {
            SSZ => ssz = ssz.max(quality),
            JSON => json = json.max(quality),
            "*/*" | "application/*" => wildcard = wildcard.max(quality),
            _ => {}
        }
    }
    ssz > 0.0 && ssz > json && ssz >= wildcard
}

/// How many items an SSZ list of `T` in `bytes` holds, read from its
/// length (fixed-size items) or its first offset (variable-size items),
/// so that a list too long is refused before it is decoded.
pub fn ssz_list_len<T: dv_types::ssz::Decode>(bytes: &[u8]) -> Result<usize, String> {
    if bytes.is_empty() {
        return Ok(0);
    }
    if T::is_ssz_fixed_len() {
        let size = T::ssz_fixed_len();
        if size == 0 || !bytes.len().is_multiple_of(size) {
            return Err(format!(
                "an SSZ list of {size}-byte items cannot be {} bytes long",
                bytes.len()
            ));
        }
        return Ok(bytes.len() / size);
    }
    let first = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("SSZ list shorter than its first offset")?;
    if !first.is_multiple_of(4) || first == 0 || first > bytes.len() {
        return Err(format!("SSZ list with a first offset of {first}"));
    }
    Ok(first / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_accept_header_is_weighed() {
        assert!(wants_ssz(&accept(
            "application/octet-stream;q=1.0,application/json;q=0.9"
        )));
        assert!(wants_ssz(&accept("application/octet-stream")));
        assert!(!wants_ssz(&accept(
            "application/octet-stream;q=0.5, application/json"
        )));
        assert!(!wants_ssz(&accept("application/json")));
        assert!(!wants_ssz(&accept("*/*")));
        assert!(wants_ssz(&accept("application/octet-stream, */*")));
        assert!(!wants_ssz(&accept("application/octet-stream;q=0.5, */*")));
        assert!(!wants_ssz(&accept("application/octet-stream;q=0")));
        assert!(!wants_ssz(&HeaderMap::new()));
    }

    #[test]
    fn ssz_list_lengths_come_from_the_bytes() {
        use dv_types::ssz::Encode;
        let fixed: Vec<u64> = vec![1, 2, 3];
        assert_eq!(ssz_list_len::<u64>(&fixed.as_ssz_bytes()), Ok(3));
        assert!(ssz_list_len::<u64>(&[0; 7]).is_err());
        let variable: Vec<Vec<u8>> = vec![vec![1], vec![], vec![2, 3]];
        assert_eq!(ssz_list_len::<Vec<u8>>(&variable.as_ssz_bytes()), Ok(3));
        assert!(ssz_list_len::<Vec<u8>>(&[200, 0, 0, 0]).is_err());
        assert_eq!(ssz_list_len::<Vec<u8>>(&[]), Ok(0));
    }
}
