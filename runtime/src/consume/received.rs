//! A consumed message, taken out of librdkafka with as few allocations as possible: the polling
//! thread cannot hand librdkafka's borrowed message to a tokio task, and rdkafka's own
//! `OwnedMessage` copies every header separately (a dozen allocations for a CloudEvent). Here the
//! headers are one buffer and one index, and the topic name is shared per partition.

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Header, Headers, Message, Timestamp};

/// Every header of a message in one buffer: names and values back to back, with an index.
#[derive(Debug, Default, Clone)]
pub(crate) struct RawHeaders {
    bytes: Vec<u8>,
    /// Per header: where its name ends and its value starts, where its value ends, and whether it
    /// has a value (`None` and empty differ in Kafka).
    index: Vec<(u32, u32, u32, bool)>,
}

impl RawHeaders {
    fn copy<H: Headers>(headers: &H) -> Self {
        let count = headers.count();
        let mut out = Self {
            bytes: Vec::with_capacity(count * 40),
            index: Vec::with_capacity(count),
        };
        for header in headers.iter() {
            let start = out.bytes.len() as u32;
            out.bytes.extend_from_slice(header.key.as_bytes());
            let name_end = out.bytes.len() as u32;
            if let Some(value) = header.value {
                out.bytes.extend_from_slice(value);
            }
            out.index.push((
                start,
                name_end,
                out.bytes.len() as u32,
                header.value.is_some(),
            ));
        }
        out
    }
}

impl Headers for RawHeaders {
    fn count(&self) -> usize {
        self.index.len()
    }

    fn try_get(&self, idx: usize) -> Option<Header<'_, &[u8]>> {
        let &(start, name_end, end, has_value) = self.index.get(idx)?;
        let key = std::str::from_utf8(&self.bytes[start as usize..name_end as usize]).ok()?;
        let value = has_value.then(|| &self.bytes[name_end as usize..end as usize]);
        Some(Header { key, value })
    }
}

/// A consumed message owned by herald.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp: Timestamp,
    key: Option<Vec<u8>>,
    /// Shared with the decoded event's data (binary mode), not copied again.
    payload: Option<Arc<[u8]>>,
    headers: Option<RawHeaders>,
}

impl Received {
    /// Copies `message` out of librdkafka; `topic` is the shared name of its topic.
    pub fn copy(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        Self {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(Arc::from),
            headers: message.headers().map(RawHeaders::copy),
        }
    }
}

impl Received {
    /// The value, in the buffer the decoded event shares.
    pub fn shared_payload(&self) -> Option<&Arc<[u8]>> {
        self.payload.as_ref()
    }

    /// About how many bytes it holds: key, value and headers.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, |p| p.len())
            + self.headers.as_ref().map_or(0, |h| h.bytes.len())
    }
}

impl Message for Received {
    type Headers = RawHeaders;

    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    unsafe fn payload_mut(&mut self) -> Option<&mut [u8]> {
        self.payload.as_mut().and_then(Arc::get_mut)
    }

    fn topic(&self) -> &str {
        &self.topic
    }

    fn partition(&self) -> i32 {
        self.partition
    }

    fn offset(&self) -> i64 {
        self.offset
    }

    fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    fn headers(&self) -> Option<&RawHeaders> {
        self.headers.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::OwnedHeaders;

    #[test]
    fn headers_keep_their_order_bytes_and_absent_values() {
        let original = OwnedHeaders::new()
            .insert(Header {
                key: "ce_id",
                value: Some("x1"),
            })
            .insert(Header {
                key: "trace",
                value: Some(&b"\x00\xff"[..]),
            })
            .insert(Header::<&[u8]> {
                key: "nothing",
                value: None,
            })
            .insert(Header {
                key: "empty",
                value: Some(""),
            });
        let copy = RawHeaders::copy(&original);
        let pairs: Vec<(&str, Option<&[u8]>)> = copy.iter().map(|h| (h.key, h.value)).collect();
        assert_eq!(
            pairs,
            [
                ("ce_id", Some(&b"x1"[..])),
                ("trace", Some(&b"\x00\xff"[..])),
                ("nothing", None),
                ("empty", Some(&b""[..])),
            ]
        );
    }
}
