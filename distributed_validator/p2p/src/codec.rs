//! The wire format of [`Envelope`]s and [`Ack`]s: plain bytes, one message
//! per request-response stream (the stream's end delimits it).
//!
//! An envelope is `version (u16) | slot (u64) | duty (u32) | topic (u8) |
//! payload`, integers big-endian, the payload as it is (it was hex inside
//! JSON: twice the bytes, and text to encode and parse). An ack is
//! `accepted (u8: 0 or 1) | reason (UTF-8, may be empty)`.

use crate::{Ack, Envelope, Topic};
use async_trait::async_trait;
use futures::prelude::*;
use libp2p::StreamProtocol;
use std::io;

/// Bytes before an envelope's payload.
pub const ENVELOPE_HEADER_BYTES: usize = 2 + 8 + 4 + 1;
/// Largest ack accepted (a refusal's reason is short).
const MAX_ACK_BYTES: u64 = 4096;

#[derive(Debug, Clone)]
pub struct EnvelopeCodec {
    /// Largest encoded envelope accepted, in bytes.
    pub max_request_bytes: u64,
}

impl Envelope {
    /// The envelope as sent on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENVELOPE_HEADER_BYTES + self.payload.len());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.slot.to_be_bytes());
        out.extend_from_slice(&self.duty.to_be_bytes());
        out.push(match self.topic {
            Topic::Consensus => 0,
            Topic::PartialSignatures => 1,
            Topic::Dkg => 2,
        });
        out.extend_from_slice(&self.payload);
        out
    }

    /// An envelope from the wire; the error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < ENVELOPE_HEADER_BYTES {
            return Err(format!(
                "envelope of {} bytes, shorter than its {ENVELOPE_HEADER_BYTES}-byte header",
                bytes.len()
            ));
        }
        let (version, rest) = bytes.split_at(2);
        let (slot, rest) = rest.split_at(8);
        let (duty, rest) = rest.split_at(4);
        let (topic, payload) = rest.split_at(1);
        let topic = match topic[0] {
            0 => Topic::Consensus,
            1 => Topic::PartialSignatures,
            2 => Topic::Dkg,
            other => return Err(format!("unknown topic {other}")),
        };
        Ok(Envelope {
            version: u16::from_be_bytes([version[0], version[1]]),
            slot: u64::from_be_bytes(slot.try_into().map_err(|_| "slot")?),
            duty: u32::from_be_bytes(duty.try_into().map_err(|_| "duty")?),
            topic,
            payload: payload.to_vec(),
        })
    }

    /// Bytes of this envelope on the wire.
    pub fn encoded_len(&self) -> usize {
        ENVELOPE_HEADER_BYTES + self.payload.len()
    }
}

impl Ack {
    /// The flag (1 byte), the answering member's clock (unix ms, 8 bytes
    /// big-endian), then the reason (UTF-8, possibly empty).
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.accepted)];
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        if let Some(reason) = &self.reason {
            out.extend_from_slice(reason.as_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (accepted, rest) = bytes.split_first().ok_or("empty ack")?;
        let accepted = match accepted {
            0 => false,
            1 => true,
            other => return Err(format!("ack flag {other}")),
        };
        let (time, reason) = rest
            .split_first_chunk::<8>()
            .ok_or("ack shorter than its clock")?;
        let reason = String::from_utf8(reason.to_vec()).map_err(|_| "ack reason not UTF-8")?;
        Ok(Ack {
            accepted,
            reason: (!reason.is_empty()).then_some(reason),
            time_ms: u64::from_be_bytes(*time),
        })
    }
}

/// Reads a whole stream of at most `max` bytes (an error past that).
async fn read_at_most<T: AsyncRead + Unpin + Send>(io: &mut T, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() as u64 > max {
        return Err(invalid(format!("message over the {max}-byte limit")));
    }
    Ok(bytes)
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

#[async_trait]
impl libp2p::request_response::Codec for EnvelopeCodec {
    type Protocol = StreamProtocol;
    type Request = Envelope;
    type Response = Ack;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Envelope>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_at_most(io, self.max_request_bytes).await?;
        Envelope::decode(&bytes).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Ack>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_at_most(io, MAX_ACK_BYTES).await?;
        Ack::decode(&bytes).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Envelope,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&request.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Ack,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&response.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_acks_round_trip() {
        for env in [
            Envelope::new(0, 0, Topic::Consensus, Vec::new()),
            Envelope::new(u64::MAX, 7, Topic::PartialSignatures, vec![0x5a; 1000]),
        ] {
            let bytes = env.encode();
            assert_eq!(bytes.len(), env.encoded_len());
            assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        }
        for ack in [
            Ack {
                accepted: true,
                reason: None,
                time_ms: 1_700_000_000_123,
            },
            Ack {
                accepted: false,
                reason: Some("unsupported version 9".into()),
                time_ms: 0,
            },
        ] {
            assert_eq!(Ack::decode(&ack.encode()).unwrap(), ack);
        }
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let good = Envelope::new(3, 1, Topic::Consensus, vec![1, 2, 3]).encode();
        for cut in 0..ENVELOPE_HEADER_BYTES {
            assert!(Envelope::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_topic = good.clone();
        bad_topic[ENVELOPE_HEADER_BYTES - 1] = 9;
        assert!(Envelope::decode(&bad_topic)
            .unwrap_err()
            .contains("topic 9"));
        assert!(Ack::decode(&[]).is_err());
        assert!(Ack::decode(&[2]).is_err());
        assert!(Ack::decode(&[0, 0xff, 0xfe]).is_err());
    }

    #[tokio::test]
    async fn a_stream_over_the_limit_is_refused() {
        let bytes = vec![0u8; 101];
        let mut reader = futures::io::Cursor::new(bytes);
        assert!(read_at_most(&mut reader, 100).await.is_err());
        let mut reader = futures::io::Cursor::new(vec![0u8; 100]);
        assert_eq!(read_at_most(&mut reader, 100).await.unwrap().len(), 100);
    }
}
