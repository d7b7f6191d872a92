//! A consumed message, taken out of librdkafka with as few allocations as possible: the polling
//! thread cannot hand librdkafka's borrowed message to a tokio task, and rdkafka's own
//! `OwnedMessage` copies every header separately (a dozen allocations for a CloudEvent). Here the
//! key, the headers and the value are one shared buffer with its index, in a single allocation
//! when they fit [`INLINE_BYTES`], and the topic name is shared per partition; the decoded event
//! borrows its metadata and its data from that buffer (see `codec::Incoming`).
//!
//! One allocation matters beyond its own cost: the polling thread allocates what a partition
//! worker, on another thread, frees, and glibc's allocator serialises such frees on the
//! allocating thread's arena lock. With four allocations a message, that lock was a fifth of the
//! consumer's CPU on a real Kafka (docs/performance.md).

use std::sync::Arc;

use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Header, Headers, Message, Timestamp};
use smallvec::SmallVec;

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

/// How many bytes of key, headers and value a consumed message keeps inside its one allocation; a
/// larger message keeps them in a second. herald's CloudEvents headers take about 280 bytes.
pub(crate) const INLINE_BYTES: usize = 512;

/// How many headers' places a consumed message keeps inside its one allocation (herald writes 8,
/// 10 with a trace context).
const INLINE_HEADERS: usize = 10;

/// One header's place in the buffer: where its name starts, where its name ends and its value
/// starts, where its value ends, and whether it has a value (`None` and empty differ in Kafka).
type Place = (u32, u32, u32, bool);

/// The key, every header and the value of a message in one buffer: the key, then header names
/// and values back to back, then the value, with an index.
#[derive(Debug, Default, Clone)]
pub(crate) struct MessageBytes {
    bytes: SmallVec<[u8; INLINE_BYTES]>,
    /// Where the key ends (it starts the buffer); `None`: the message has no key.
    key_end: Option<u32>,
    /// Where the headers end and the value starts; the value runs to the end of the buffer.
    headers_end: u32,
    /// Whether the message has a value (`None` and empty differ in Kafka).
    has_payload: bool,
    /// Every header's place, in order.
    index: SmallVec<[Place; INLINE_HEADERS]>,
    /// The first header name that is not UTF-8, for people (such a message is undecodable).
    bad_name: Option<String>,
    /// Every header name and value is UTF-8 (checked once over the whole headers part of the
    /// buffer, instead of once per name and value): [`MessageBytes::text_headers`] can hand them
    /// out as `&str` without checking each again.
    text: bool,
}

impl MessageBytes {
    /// Copies a message's key, headers and value (`payload`) into one buffer.
    fn copy<'a>(
        key: Option<&[u8]>,
        headers: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        payload: Option<&[u8]>,
    ) -> Self {
        let mut out = Self::default();
        out.fill(key, headers, payload);
        out
    }

    /// As [`copy`](Self::copy), into this buffer, which keeps its allocation.
    fn fill<'a>(
        &mut self,
        key: Option<&[u8]>,
        headers: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        payload: Option<&[u8]>,
    ) {
        let key_len = key.map_or(0, <[u8]>::len);
        let out = self;
        // The whole capacity made writable at once (the inline 512 bytes, or what a larger
        // message left), then each piece copied in place, growing only when it does not fit.
        out.bytes.clear();
        let room = out
            .bytes
            .capacity()
            .max(key_len + payload.map_or(0, <[u8]>::len));
        out.bytes.resize(room, 0);
        out.index.clear();
        out.key_end = key.map(|k| k.len() as u32);
        out.has_payload = payload.is_some();
        out.bad_name = None;
        // Copies `piece` at `at`, moves `at` past it and answers where it ends.
        fn put(bytes: &mut SmallVec<[u8; INLINE_BYTES]>, at: &mut usize, piece: &[u8]) -> u32 {
            let end = *at + piece.len();
            if end > bytes.len() {
                bytes.resize(end.max(bytes.len() * 2), 0);
            }
            bytes[*at..end].copy_from_slice(piece);
            *at = end;
            end as u32
        }
        let mut at = 0;
        put(&mut out.bytes, &mut at, key.unwrap_or_default());
        for (name, value) in headers {
            let start = at as u32;
            let name_end = put(&mut out.bytes, &mut at, name);
            let end = put(&mut out.bytes, &mut at, value.unwrap_or_default());
            out.index.push((start, name_end, end, value.is_some()));
        }
        out.headers_end = at as u32;
        put(&mut out.bytes, &mut at, payload.unwrap_or_default());
        out.bytes.truncate(at);
        // One check for the usual case, every name and value text; name by name only when not.
        // The whole being UTF-8 makes each piece UTF-8 only if no piece starts or ends inside a
        // character (a name ending in the first byte of `é` and a value starting with its second).
        let headers_part = &out.bytes[key_len..out.headers_end as usize];
        out.text = std::str::from_utf8(headers_part).is_ok_and(|tail| {
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

    /// The whole buffer: the key, the headers' names and values, and the value.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The message's key.
    pub fn key(&self) -> Option<&[u8]> {
        self.key_end.map(|end| &self.bytes[..end as usize])
    }

    /// The message's value.
    pub fn payload(&self) -> Option<&[u8]> {
        self.has_payload
            .then(|| &self.bytes[self.headers_end as usize..])
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

impl Headers for MessageBytes {
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
    /// The key, the headers and the value, shared with the decoded event's metadata and data
    /// (binary mode), not copied again.
    raw: Arc<MessageBytes>,
    /// Whether the message has headers (`None` and none at all differ in rdkafka's API).
    has_headers: bool,
}

impl Received {
    /// Copies `message` out of librdkafka; `topic` is the shared name of its topic.
    pub fn copy(message: &BorrowedMessage<'_>, topic: Arc<str>) -> Self {
        Self::copy_into(Arc::default(), message, topic)
    }

    /// As [`copy`](Self::copy), into a buffer `recycler` has back from a worker when it has one.
    pub fn copy_recycled(
        message: &BorrowedMessage<'_>,
        topic: Arc<str>,
        recycler: &Recycler,
    ) -> Self {
        Self::copy_into(recycler.take(), message, topic)
    }

    fn copy_into(
        mut raw: Arc<MessageBytes>,
        message: &BorrowedMessage<'_>,
        topic: Arc<str>,
    ) -> Self {
        let headers = message.headers();
        let (key, payload) = (message.key(), message.payload());
        let buffer = Arc::get_mut(&mut raw).expect("a new or recycled buffer is not shared");
        match headers {
            Some(headers) => buffer.fill(key, native_headers(headers), payload),
            None => buffer.fill(key, std::iter::empty(), payload),
        }
        Self {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp(),
            raw,
            has_headers: headers.is_some(),
        }
    }
}

/// Buffers of consumed messages that their partition workers are done with, handed back for the
/// polling thread to fill again, or to free itself. Without it, every message's buffer is
/// allocated on the polling thread and freed on a worker's, and glibc's allocator serialises those
/// frees with the polling thread's allocations on one arena lock: a fifth of the consumer's CPU,
/// measured on a real Kafka (docs/performance.md). The workers push what they are done with on a
/// lock-free queue; the polling thread takes from it, and when it has nothing to poll, frees what is
/// beyond [`Recycler::KEPT`].
#[derive(Debug, Default)]
pub(crate) struct Recycler {
    returned: crossbeam_queue::SegQueue<Arc<MessageBytes>>,
}

impl Recycler {
    /// How many buffers are kept for reuse while the consumer is idle, about 0.8 MB.
    pub const KEPT: usize = 1024;

    /// Takes back `message`'s buffer when nothing else holds it (the decoded event is dropped).
    pub fn give(&self, message: Received) {
        let mut raw = message.raw;
        if Arc::get_mut(&mut raw).is_some() {
            self.returned.push(raw);
        }
    }

    /// A buffer to fill, on the polling thread: one given back, or a new one. One that outgrew
    /// the inline size (a large message) is freed here rather than kept.
    fn take(&self) -> Arc<MessageBytes> {
        while let Some(raw) = self.returned.pop() {
            if !raw.bytes.spilled() && !raw.index.spilled() {
                return raw;
            }
        }
        Arc::default()
    }

    /// Frees, on the polling thread, the buffers beyond [`Recycler::KEPT`].
    pub fn trim(&self) {
        while self.returned.len() > Self::KEPT {
            drop(self.returned.pop());
        }
    }

    /// How many buffers wait to be reused.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.returned.len()
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
            raw: Arc::new(MessageBytes::copy(key, headers.iter().copied(), payload)),
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
            raw: Arc::new(MessageBytes::copy(key, pairs(headers).into_iter(), payload)),
            has_headers: headers.is_some(),
        }
    }
}

impl Received {
    /// The key, headers and value, in the buffer the decoded event's metadata and data share.
    pub fn shared_raw(&self) -> &Arc<MessageBytes> {
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
        self.raw.bytes.len()
    }
}

impl Message for Received {
    type Headers = MessageBytes;

    fn key(&self) -> Option<&[u8]> {
        self.raw.key()
    }

    fn payload(&self) -> Option<&[u8]> {
        self.raw.payload()
    }

    unsafe fn payload_mut(&mut self) -> Option<&mut [u8]> {
        let raw = Arc::get_mut(&mut self.raw)?;
        let start = raw.headers_end as usize;
        raw.has_payload.then(|| &mut raw.bytes[start..])
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

    fn headers(&self) -> Option<&MessageBytes> {
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
        let copy = MessageBytes::copy(
            Some(b"k\x00y"),
            header_pairs(original.as_borrowed()).into_iter(),
            Some(b"{}"),
        );
        assert_eq!(copy.key(), Some(&b"k\x00y"[..]));
        assert_eq!(copy.payload(), Some(&b"{}"[..]));
        assert_eq!(copy.last_value("trace"), Some(&b"\x00\xff"[..]));
        assert_eq!(copy.last_value("nothing"), None);
        assert_eq!(copy.last_value("absent"), None);
        assert_eq!(
            MessageBytes::copy(None, pairs(Some(&original)).into_iter(), None).key(),
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
        // Nor does a value that is not: it follows the headers.
        let copy = MessageBytes::copy(Some(b"\xff"), headers.into_iter(), Some(b"\xfe"));
        let text: Vec<_> = copy.text_headers().expect("all text").collect();
        assert_eq!(copy.payload(), Some(&b"\xfe"[..]));
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
        let copy = MessageBytes::copy(None, split.into_iter(), None);
        assert_eq!(copy.payload(), None);
        assert!(copy.text_headers().is_none());
        assert_eq!(copy.bad_name(), Some("\\x6e\\xc3"));

        let bad: [(&[u8], Option<&[u8]>); 2] = [(b"ok", Some(b"v")), (b"b\xffd", Some(b"v"))];
        let copy = MessageBytes::copy(None, bad.into_iter(), Some(b""));
        assert_eq!(
            copy.payload(),
            Some(&b""[..]),
            "an empty value is not no value"
        );
        assert!(copy.text_headers().is_none());
        assert_eq!(copy.bad_name(), Some("\\x62\\xff\\x64"));
        assert_eq!(copy.try_get(1).map(|h| h.key), Some("\u{fffd}"));
        assert_eq!(copy.try_get(0).map(|h| h.key), Some("ok"));
    }

    #[test]
    fn a_buffer_given_back_is_filled_again_unless_shared_or_large() {
        let recycler = Recycler::default();
        let position = crate::event::envelope::Position {
            topic: "t".into(),
            partition: 0,
            offset: 7,
        };
        let headers = OwnedHeaders::new().insert(Header {
            key: "ce_id",
            value: Some("x1"),
        });
        let message = Received::for_test(&position, Some(b"k"), Some(b"{}"), Some(&headers));
        let buffer = Arc::as_ptr(message.shared_raw());
        recycler.give(message);
        assert_eq!(recycler.len(), 1);
        let mut reused = recycler.take();
        assert_eq!(Arc::as_ptr(&reused), buffer, "the same allocation");
        Arc::get_mut(&mut reused).expect("not shared").fill(
            None,
            [(&b"a"[..], None)].into_iter(),
            Some(b"[1]"),
        );
        assert_eq!(reused.key(), None);
        assert_eq!(reused.payload(), Some(&b"[1]"[..]));
        assert_eq!(reused.last_value("ce_id"), None);
        assert_eq!(reused.count(), 1);

        // Still held by a decoded event: not taken.
        let message = Received::for_test(&position, None, Some(b"{}"), Some(&headers));
        let held = message.shared_raw().clone();
        recycler.give(message);
        assert_eq!(recycler.len(), 0);
        drop(held);

        // Larger than the inline buffer: freed when taken, not filled again.
        let large = vec![b'1'; INLINE_BYTES + 1];
        let message = Received::for_test(&position, None, Some(&large), Some(&headers));
        assert_eq!(message.payload(), Some(&large[..]));
        assert!(message.shared_raw().bytes.spilled());
        recycler.give(message);
        assert_eq!(recycler.len(), 1);
        assert!(!recycler.take().bytes.spilled());
        assert_eq!(recycler.len(), 0);

        // Beyond what is kept: freed by `trim`.
        for _ in 0..Recycler::KEPT + 5 {
            recycler.give(Received::for_test(
                &position,
                None,
                Some(b"{}"),
                Some(&headers),
            ));
        }
        recycler.trim();
        assert_eq!(recycler.len(), Recycler::KEPT);
    }
}
