//! A consumed message, taken out of librdkafka with as few allocations as possible: the polling
//! thread cannot hand librdkafka's borrowed message to a tokio task, and rdkafka's own
//! `OwnedMessage` copies every header separately (a dozen allocations for a CloudEvent). Here the
//! key and the headers are one shared buffer and one index, and the topic name is shared per
//! partition; the decoded event borrows its metadata from that buffer (see `codec::Incoming`).

use std::sync::Arc;

use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Header, Headers, Message, Timestamp};

/// Every header of a consumed message as `(name, value)` bytes, in order. rdkafka's own reader
/// (`Headers::iter` on `BorrowedHeaders`) panics on a name that is not UTF-8, which any producer
/// can write; this reads librdkafka's list directly and takes names as bytes.
pub(crate) fn header_pairs(headers: &BorrowedHeaders) -> Vec<(&[u8], Option<&[u8]>)> {
    native_headers(headers).collect()
}

/// [`header_pairs`] without collecting them: the polling thread copies each straight into
/// herald's buffer.
fn native_headers(headers: &BorrowedHeaders) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
    use rdkafka::bindings as rd;
    let native = headers as *const BorrowedHeaders as *const rd::rd_kafka_headers_t;
    // SAFETY: `BorrowedHeaders` is librdkafka's header list (rdkafka casts it the same way).
    let count = unsafe { rd::rd_kafka_header_cnt(native) };
    (0..count).map_while(move |idx| {
        // SAFETY: as above; the names (NUL-terminated) and values librdkafka hands out live as
        // long as the list, which outlives the returned borrows.
        unsafe {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0);
            let error = rd::rd_kafka_header_get_all(native, idx, &mut name, &mut value, &mut size);
            if error != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return None;
            }
            let name = std::ffi::CStr::from_ptr(name).to_bytes();
            let value =
                (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast::<u8>(), size));
            Some((name, value))
        }
    })
}

/// A header name for people: the name itself, or its bytes in hex when it is not UTF-8.
pub(crate) fn printable_name(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(name) => name.to_owned(),
        Err(_) => name.iter().map(|b| format!("\\x{b:02x}")).collect(),
    }
}

/// The key and every header of a message in one buffer: the key, then header names and values back
/// to back, with an index.
#[derive(Debug, Default, Clone)]
pub(crate) struct RawHeaders {
    bytes: Vec<u8>,
    /// Where the key ends (it starts the buffer); `None`: the message has no key.
    key_end: Option<u32>,
    /// Per header: where its name ends and its value starts, where its value ends, and whether it
    /// has a value (`None` and empty differ in Kafka).
    index: Vec<(u32, u32, u32, bool)>,
    /// The first header name that is not UTF-8, for people (such a message is undecodable).
    bad_name: Option<String>,
    /// Every header name and value is UTF-8 (checked once over the whole headers part of the
    /// buffer, instead of once per name and value): [`RawHeaders::text_headers`] can hand them
    /// out as `&str` without checking each again.
    text: bool,
}

impl RawHeaders {
    fn copy<'a>(
        key: Option<&[u8]>,
        headers: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Self {
        let key_len = key.map_or(0, <[u8]>::len);
        // librdkafka's count, or the slice's length.
        let count = headers.size_hint().1.unwrap_or(8);
        let mut out = Self {
            bytes: Vec::with_capacity(key_len + count * 40),
            key_end: key.map(|k| k.len() as u32),
            index: Vec::with_capacity(count),
            bad_name: None,
            text: false,
        };
        if let Some(key) = key {
            out.bytes.extend_from_slice(key);
        }
        for (name, value) in headers {
            let start = out.bytes.len() as u32;
            out.bytes.extend_from_slice(name);
            let name_end = out.bytes.len() as u32;
            if let Some(value) = value {
                out.bytes.extend_from_slice(value);
            }
            out.index
                .push((start, name_end, out.bytes.len() as u32, value.is_some()));
        }
        // One check for the usual case, every name and value text; name by name only when not.
        // The whole being UTF-8 makes each piece UTF-8 only if no piece starts or ends inside a
        // character (a name ending in the first byte of `é` and a value starting with its second).
        out.text = std::str::from_utf8(&out.bytes[key_len..]).is_ok_and(|tail| {
            let boundary = |at: u32| tail.is_char_boundary(at as usize - key_len);
            out.index.iter().all(|&(start, name_end, end, _)| {
                boundary(start) && boundary(name_end) && boundary(end)
            })
        });
        if !out.text {
            let bad_name = out
                .names()
                .find(|name| std::str::from_utf8(name).is_err())
                .map(printable_name);
            out.bad_name = bad_name;
        }
        out
    }

    /// Every header name, as bytes.
    fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.index
            .iter()
            .map(|&(start, name_end, _, _)| &self.bytes[start as usize..name_end as usize])
    }

    /// Every header as `(name, value)` text, in order, when every name and value is UTF-8
    /// (`None` otherwise: read them with [`Headers::try_get`], checking each).
    pub fn text_headers(&self) -> Option<impl Iterator<Item = (&str, Option<&str>)>> {
        self.text.then(|| {
            self.index.iter().map(|&(start, name_end, end, has_value)| {
                let text = |from: u32, to: u32| {
                    // SAFETY: `text` says the buffer past the key is UTF-8, and every name and
                    // value starts and ends on a boundary of what was copied in, whole.
                    unsafe {
                        std::str::from_utf8_unchecked(&self.bytes[from as usize..to as usize])
                    }
                };
                (
                    text(start, name_end),
                    has_value.then(|| text(name_end, end)),
                )
            })
        })
    }

    /// The first header name that is not UTF-8 (in hex), if any.
    pub fn bad_name(&self) -> Option<&str> {
        self.bad_name.as_deref()
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
        // A name that is not UTF-8 reads as U+FFFD (such a message is undecodable: `bad_name`).
        let key = if self.text {
            // SAFETY: as in `text_headers`.
            unsafe { std::str::from_utf8_unchecked(name) }
        } else {
            std::str::from_utf8(name).unwrap_or("\u{fffd}")
        };
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
            raw: Arc::new(match headers {
                Some(headers) => RawHeaders::copy(message.key(), native_headers(headers)),
                None => RawHeaders::copy(message.key(), std::iter::empty()),
            }),
            has_headers: headers.is_some(),
        }
    }
}

impl Received {
    /// A record that never went through librdkafka (one of the in-process test bus's topics), as
    /// if consumed: `timestamp` in milliseconds since the epoch, `headers` as `(name, value)`.
    pub fn from_parts(
        (topic, partition, offset): (&str, i32, i64),
        timestamp: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Self {
        Self {
            topic: topic.into(),
            partition,
            offset,
            timestamp: Timestamp::CreateTime(timestamp),
            payload: payload.map(Arc::from),
            raw: Arc::new(RawHeaders::copy(key, headers.iter().copied())),
            has_headers: true,
        }
    }
}

/// The headers of a test message as `(name, value)` bytes.
#[cfg(test)]
fn pairs<H: Headers>(headers: Option<&H>) -> Vec<(&[u8], Option<&[u8]>)> {
    headers
        .into_iter()
        .flat_map(Headers::iter)
        .map(|h| (h.key.as_bytes(), h.value))
        .collect()
}

#[cfg(test)]
impl Received {
    /// A message as if consumed, for tests.
    pub fn for_test<H: Headers>(
        position: &crate::event::envelope::Position,
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
            raw: Arc::new(RawHeaders::copy(key, pairs(headers).into_iter())),
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
        let copy = RawHeaders::copy(
            Some(b"k\x00y"),
            header_pairs(original.as_borrowed()).into_iter(),
        );
        assert_eq!(copy.key(), Some(&b"k\x00y"[..]));
        assert_eq!(copy.last_value("trace"), Some(&b"\x00\xff"[..]));
        assert_eq!(copy.last_value("nothing"), None);
        assert_eq!(copy.last_value("absent"), None);
        assert_eq!(
            RawHeaders::copy(None, pairs(Some(&original)).into_iter()).key(),
            None
        );
        assert_eq!(copy.bad_name(), None);
        // A value that is not UTF-8: no text fast path, yet the names are still good.
        assert!(copy.text_headers().is_none());
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

    #[test]
    fn text_headers_are_read_without_checking_each_and_a_bad_name_is_still_found() {
        let headers: [(&[u8], Option<&[u8]>); 3] = [
            (b"ce_id", Some(b"x1")),
            (b"content-type", Some(b"application/json")),
            (b"nothing", None),
        ];
        // A key that is not UTF-8 does not matter: only the headers are checked.
        let copy = RawHeaders::copy(Some(b"\xff"), headers.into_iter());
        let text: Vec<_> = copy.text_headers().expect("all text").collect();
        assert_eq!(
            text,
            [
                ("ce_id", Some("x1")),
                ("content-type", Some("application/json")),
                ("nothing", None)
            ]
        );
        assert_eq!(copy.bad_name(), None);
        assert_eq!(copy.try_get(1).map(|h| h.key), Some("content-type"));

        // `é` split between a name and its value: the whole is UTF-8, the pieces are not.
        let split: [(&[u8], Option<&[u8]>); 1] = [(b"n\xc3", Some(b"\xa9"))];
        let copy = RawHeaders::copy(None, split.into_iter());
        assert!(copy.text_headers().is_none());
        assert_eq!(copy.bad_name(), Some("\\x6e\\xc3"));

        let bad: [(&[u8], Option<&[u8]>); 2] = [(b"ok", Some(b"v")), (b"b\xffd", Some(b"v"))];
        let copy = RawHeaders::copy(None, bad.into_iter());
        assert!(copy.text_headers().is_none());
        assert_eq!(copy.bad_name(), Some("\\x62\\xff\\x64"));
        assert_eq!(copy.try_get(1).map(|h| h.key), Some("\u{fffd}"));
        assert_eq!(copy.try_get(0).map(|h| h.key), Some("ok"));
    }
}
