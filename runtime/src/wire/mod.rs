//! The wire: the CloudEvents codec (one envelope builder and its decoder) and a consumed record
//! copied out of librdkafka. The names it writes are in [`headers`](crate::headers).

pub(crate) mod codec;
pub(crate) mod received;
