//! A consumed message, taken out of librdkafka with as few allocations as possible: the polling
//! thread cannot hand librdkafka's borrowed message to a tokio task, and rdkafka's own
//! `OwnedMessage` copies every header separately (a dozen allocations for a CloudEvent). Here the
//! key and the headers are one shared buffer and one index, and the topic name is shared per
//! partition; the decoded event borrows its metadata from that buffer (see `codec::Incoming`).

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Header, Headers, Message, Timestamp};

/// The key and every header of a message in one buffer: the key, then header names and values back
/// to back, with an index.
#[derive(Debug, Default, Clone)]
pub(crate) struct RawHeaders {
    bytes: Vec<u8>,
    /// Where the key ends (it starts the buffer); `None`: the message has no key.
    key_end: Option<u32>,
    /// Per header: where its name ends and its value starts, where its value ends, and whether it
    /// has a value (`None` and empty differ in Kafka). Names are UTF-8 (they were `&str`).
    index: Vec<(u32, u32, u32, bool)>,
}

impl RawHeaders {
    fn copy<H: Headers>(key: Option<&[u8]>, headers: Option<&H>) -> Self {
        let count = headers.map_or(0, Headers::count);
        let key_len = key.map_or(0, <[u8]>::len);
        let mut out = Self {
            bytes: Vec::with_capacity(key_len + count * 40),
            key_end: key.map(|k| k.len() as u32),
            index: Vec::with_capacity(count),
        };
        if let Some(key) = key {
            out.bytes.extend_from_slice(key);
        }
        for header in headers.into_iter().flat_map(Headers::iter) {
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

    /// The whole buffer: the key and the headers' names and values.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The message's key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key_end.map(|end| &self.bytes[..end as usize])
    }

    /// The value of the last header named `name`, if it has one; compares names as bytes.
    pub fn last_value(&self, name: &str) -> Option<&[u8]> {
        self.index
            .iter()
            .rev()
            .find(|&&(start, name_end, _, _)| {
                &self.bytes[start as usize..name_end as usize] == name.as_bytes()
            })
            .and_then(|&(_, name_end, end, has_value)| {
                has_value.then(|| &self.bytes[name_end as usize..end as usize])
            })
    }
}

impl Headers for RawHeaders {
    fn count(&self) -> usize {
        self.index.len()
    }

    fn try_get(&self, idx: usize) -> Option<Header<'_, &[u8]>> {
        let &(start, name_end, end, has_value) = self.index.get(idx)?;
        let name = &self.bytes[start as usize..name_end as usize];
        // SAFETY: names were copied from `&str`s (see `copy`), so they are UTF-8.
        let key = unsafe { std::str::from_utf8_unchecked(name) };
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
    /// Shared with the decoded event's data (binary mode), not copied again.
    payload: Option<Arc<[u8]>>,
    /// The key and the headers, shared with the decoded event's metadata.
    raw: Arc<RawHeaders>,
    /// Whether the message has headers (`None` and none at all differ in rdkafka's API).
    has_headers: bool,
}

impl Received {
    /// Copies `message` out of librdkafka; `topic` is the shared name of its topic.
    pub fn copy(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        let headers = message.headers();
        Self {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp(),
            payload: message.payload().map(Arc::from),
            raw: Arc::new(RawHeaders::copy(message.key(), headers)),
            has_headers: headers.is_some(),
        }
    }
}

#[cfg(test)]
impl Received {
    /// A message as if consumed, for tests.
    pub fn for_test<H: Headers>(
        position: &crate::envelope::Position,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<&H>,
    ) -> Self {
        Self {
            topic: position.topic.as_str().into(),
            partition: position.partition,
            offset: position.offset,
            timestamp: Timestamp::NotAvailable,
            payload: payload.map(Arc::from),
            raw: Arc::new(RawHeaders::copy(key, headers)),
            has_headers: headers.is_some(),
        }
    }
}

impl Received {
    /// The value, in the buffer the decoded event shares.
    pub fn shared_payload(&self) -> Option<&Arc<[u8]>> {
        self.payload.as_ref()
    }

    /// The key and headers, in the buffer the decoded event's metadata shares.
    pub fn shared_raw(&self) -> &Arc<RawHeaders> {
        &self.raw
    }

    /// The topic's shared name.
    pub fn shared_topic(&self) -> &Arc<str> {
        &self.topic
    }

    /// The value of the last header named `name`, if it has one.
    pub fn header_value(&self, name: &str) -> Option<&[u8]> {
        self.raw.last_value(name)
    }

    /// About how many bytes it holds: key, value and headers.
    pub fn size(&self) -> usize {
        self.payload.as_ref().map_or(0, |p| p.len()) + self.raw.bytes.len()
    }
}

impl Message for Received {
    type Headers = RawHeaders;

    fn key(&self) -> Option<&[u8]> {
        self.raw.key()
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
        self.has_headers.then_some(&*self.raw)
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
        let copy = RawHeaders::copy(Some(b"k\x00y"), Some(&original));
        assert_eq!(copy.key(), Some(&b"k\x00y"[..]));
        assert_eq!(copy.last_value("trace"), Some(&b"\x00\xff"[..]));
        assert_eq!(copy.last_value("nothing"), None);
        assert_eq!(copy.last_value("absent"), None);
        assert_eq!(RawHeaders::copy(None, Some(&original)).key(), None);
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
