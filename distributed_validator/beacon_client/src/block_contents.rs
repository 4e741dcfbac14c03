//! The Beacon API's SSZ shapes around blocks: `BlockContents` (a produced
//! full block with its KZG proofs and blobs), `SignedBlockContents` and
//! `SignedBeaconBlock`, split into their parts and put together, for the
//! node's validator API and the simulated chain alike.

use crate::BlobsBundle;
use dv_types::{SignatureBytes, Slot};

/// SSZ of a container whose fields are all variable-size: offsets, then the parts.
pub fn ssz_container(parts: &[&[u8]]) -> Vec<u8> {
    let mut offset = 4 * parts.len();
    let mut out = Vec::with_capacity(offset + parts.iter().map(|p| p.len()).sum::<usize>());
    for part in parts {
        out.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += part.len();
    }
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The byte range of the `index`-th variable-size field of an SSZ
/// container whose offsets sit at the byte positions `fixed`.
pub fn ssz_field(bytes: &[u8], fixed: &[usize], index: usize) -> Result<(usize, usize), String> {
    let read = |at: usize| -> Result<usize, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "SSZ shorter than its offsets".to_string())
    };
    let start = read(fixed[index])?;
    let end = match fixed.get(index + 1) {
        Some(at) => read(*at)?,
        None => bytes.len(),
    };
    if start > end || end > bytes.len() {
        return Err(format!(
            "SSZ offsets {start}..{end} outside {} bytes",
            bytes.len()
        ));
    }
    Ok((start, end))
}

/// `SignedBeaconBlock` / `SignedBlindedBeaconBlock` SSZ: (message, signature).
pub fn split_signed_block(bytes: &[u8]) -> Result<(&[u8], SignatureBytes), String> {
    let (start, _) = ssz_field(bytes, &[0], 0)?;
    let sig = bytes
        .get(4..100)
        .ok_or("signed block SSZ shorter than its signature")?;
    let mut signature = [0u8; 96];
    signature.copy_from_slice(sig);
    if start != 100 {
        return Err(format!(
            "signed block SSZ: message offset {start}, expected 100"
        ));
    }
    Ok((&bytes[start..], SignatureBytes(signature)))
}

/// `BlockContents` / `SignedBlockContents` SSZ: (block or signed block, its
/// blobs bundle as the Beacon API's JSON carries it).
pub fn split_contents(bytes: &[u8]) -> Result<(&[u8], BlobsBundle), String> {
    let part = |i| ssz_field(bytes, &[0, 4, 8], i).map(|(start, end)| &bytes[start..end]);
    let blobs = BlobsBundle::from_ssz(part(1)?, part(2)?)?;
    Ok((part(0)?, blobs))
}

/// `BlockContents` / `SignedBlockContents` SSZ from the block's (or signed
/// block's) SSZ and its blobs.
pub fn contents_ssz(block: &[u8], blobs: &BlobsBundle) -> Result<Vec<u8>, String> {
    Ok(ssz_container(&[
        block,
        &blobs.proofs_ssz()?,
        &blobs.blobs_ssz()?,
    ]))
}

/// `SignedBeaconBlock` SSZ from the block's SSZ and its signature.
pub fn signed_block_ssz(message: &[u8], signature: &SignatureBytes) -> Vec<u8> {
    let mut out = Vec::with_capacity(100 + message.len());
    out.extend_from_slice(&100u32.to_le_bytes());
    out.extend_from_slice(&signature.0);
    out.extend_from_slice(message);
    out
}

/// The slot of a block's SSZ (its first field).
pub fn block_slot(message: &[u8]) -> Result<Slot, String> {
    message
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .ok_or_else(|| "block SSZ shorter than its slot".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssz_containers_split_back_into_their_parts_and_bad_offsets_are_errors() {
        let bytes = ssz_container(&[b"abc", b"", b"de"]);
        assert_eq!(
            ssz_field(&bytes, &[0, 4, 8], 0).map(|(s, e)| &bytes[s..e]),
            Ok(&b"abc"[..])
        );
        assert_eq!(
            ssz_field(&bytes, &[0, 4, 8], 1).map(|(s, e)| &bytes[s..e]),
            Ok(&b""[..])
        );
        assert_eq!(
            ssz_field(&bytes, &[0, 4, 8], 2).map(|(s, e)| &bytes[s..e]),
            Ok(&b"de"[..])
        );
        assert!(ssz_field(&[1, 0], &[0], 0).is_err());
        assert!(ssz_field(&[200, 0, 0, 0], &[0], 0).is_err());
        let signed = signed_block_ssz(b"block", &SignatureBytes([7u8; 96]));
        let (message, signature) = split_signed_block(&signed).unwrap();
        assert_eq!((message, signature.0[0]), (&b"block"[..], 7));
        assert!(split_signed_block(&signed[..50]).is_err());
    }

    #[test]
    fn block_contents_round_trip() {
        let blobs = BlobsBundle {
            kzg_proofs: vec![format!("0x{}", "11".repeat(48)); 2],
            blobs: vec![format!("0x{}", "22".repeat(131_072))],
        };
        let bytes = contents_ssz(b"signed block", &blobs).unwrap();
        let (block, back) = split_contents(&bytes).unwrap();
        assert_eq!((block, back), (&b"signed block"[..], blobs));
        assert!(split_contents(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(block_slot(&[9, 0, 0, 0, 0, 0, 0, 0, 1]), Ok(9));
        assert!(block_slot(&[9]).is_err());
    }
}
