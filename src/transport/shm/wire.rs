//! Messages on a segment socket (`SOCK_SEQPACKET`, so each is one packet of
//! a fixed size; anything else is dropped as hostile).
//!
//! importer -> exporter: `Request` once, right after connect; later a
//! `Status` for each `Ask` (the exporter watches the connection for
//! hang-up alone and reads these when it needs them).
//! exporter -> importer: `Reply` once (on success with, by `SCM_RIGHTS`,
//! the segment's descriptor if any rights were granted, and the
//! connection's token and secret); later its event channel (a `Reply`
//! with four descriptors, see below), an `Ask` whenever it is surveyed
//! (`rsminfo`) before the importer has its channel, and at most one
//! `Notice`.
//!
//! The event channel is made on first use: the importer opens a second
//! connection to the segment's socket and sends an `Attach` naming its
//! connection (token and secret); the answer is a `Reply` with the
//! channel (its page and its two doorbells), and that connection closes.
//! Signals do not use the sockets: they go through the channel.
//!
//! A survey (`rsminfo`) sends a `Query` instead of a `Request` and gets
//! one packet of text back (`transport::survey`); it never becomes an
//! importer.

/// "RSM1", little-endian.
pub const MAGIC: u32 = 0x314D_5352;
/// Protocol version; a different one is refused. 2: event channels;
/// 3: event channels made on first use (`Attach`), map status asked for.
pub const VERSION: u32 = 3;

/// Connect request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The importer's node id.
    pub node: u32,
    /// Requested `RSM_PERM_*` bits.
    pub perm: u32,
}

/// Connect answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// 0, or the RSMERR that refuses the connect.
    pub status: i32,
    /// Rights granted.
    pub rights: u32,
    /// Descriptors attached.
    pub fds: u32,
    /// Segment length.
    pub size: u64,
    /// The connection's token with the exporter (for `Attach`).
    pub token: u64,
    /// The connection's secret (for `Attach`): another process cannot
    /// guess it to take this connection's event channel.
    pub secret: u64,
}

/// "RSMA": an importer asks for its connection's event channel.
pub const ATTACH_MAGIC: u32 = 0x414D_5352;
/// Size of an attach request on the wire.
pub const ATTACH_LEN: usize = 24;

/// An attach request: which connection, proven by its secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attach {
    /// The token the connect's reply gave.
    pub token: u64,
    /// The secret the connect's reply gave.
    pub secret: u64,
}

/// "RSMK": the exporter asks an importer for its map status.
pub const ASK_MAGIC: u32 = 0x4B4D_5352;
/// "RSMS": an importer's map status (for `rsminfo`).
pub const STATUS_MAGIC: u32 = 0x534D_5352;
/// Size of an ask and of a status packet on the wire.
pub const STATUS_LEN: usize = 16;

/// An ask, numbered so its answer can be told from older ones.
pub fn encode_ask(nonce: u64) -> [u8; STATUS_LEN] {
    let mut b = [0u8; STATUS_LEN];
    b[0..4].copy_from_slice(&ASK_MAGIC.to_le_bytes());
    b[8..16].copy_from_slice(&nonce.to_le_bytes());
    b
}

/// The number of the ask in `b`, if it is exactly one.
pub fn decode_ask(b: &[u8]) -> Option<u64> {
    (b.len() == STATUS_LEN && u32_at(b, 0) == ASK_MAGIC && u32_at(b, 4) == 0).then(|| u64_at(b, 8))
}

/// A status packet answering ask `nonce`: whether the importer holds an
/// explicit mapping.
pub fn encode_status(mapped: bool, nonce: u64) -> [u8; STATUS_LEN] {
    let mut b = [0u8; STATUS_LEN];
    b[0..4].copy_from_slice(&STATUS_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&u32::from(mapped).to_le_bytes());
    b[8..16].copy_from_slice(&nonce.to_le_bytes());
    b
}

/// The status in `b` and the ask it answers, if it is exactly a status
/// packet.
pub fn decode_status(b: &[u8]) -> Option<(bool, u64)> {
    (b.len() == STATUS_LEN && u32_at(b, 0) == STATUS_MAGIC && u32_at(b, 4) <= 1)
        .then(|| (u32_at(b, 4) == 1, u64_at(b, 8)))
}

impl Attach {
    /// Bytes on the wire.
    pub fn encode(&self) -> [u8; ATTACH_LEN] {
        let mut b = [0u8; ATTACH_LEN];
        b[0..4].copy_from_slice(&ATTACH_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.token.to_le_bytes());
        b[16..24].copy_from_slice(&self.secret.to_le_bytes());
        b
    }

    /// An attach request, if `b` is exactly one.
    pub fn decode(b: &[u8]) -> Option<Attach> {
        (b.len() == ATTACH_LEN && u32_at(b, 0) == ATTACH_MAGIC && u32_at(b, 4) == VERSION).then(
            || Attach {
                token: u64_at(b, 8),
                secret: u64_at(b, 16),
            },
        )
    }
}

/// "RSMQ": a survey's query.
pub const QUERY_MAGIC: u32 = 0x514D_5352;
/// Size of a query on the wire.
pub const QUERY_LEN: usize = 8;
/// Largest answer to a query.
pub const ANSWER_MAX: usize = 160 * 1024;

/// A query's bytes.
pub fn encode_query() -> [u8; QUERY_LEN] {
    let mut b = [0u8; QUERY_LEN];
    b[0..4].copy_from_slice(&QUERY_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&VERSION.to_le_bytes());
    b
}

/// Whether `b` is exactly a query.
pub fn is_query(b: &[u8]) -> bool {
    b.len() == QUERY_LEN && u32_at(b, 0) == QUERY_MAGIC && u32_at(b, 4) == VERSION
}

/// The one kind of notice, exporter -> importer: the segment is gone.
pub const NOTICE_UNPUBLISHED: u32 = 1;

/// Size of every request on the wire.
pub const REQUEST_LEN: usize = 16;
/// Size of every reply on the wire.
pub const REPLY_LEN: usize = 40;
/// Size of every notice on the wire.
pub const NOTICE_LEN: usize = 12;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

impl Request {
    /// Bytes on the wire.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&VERSION.to_le_bytes());
        b[8..12].copy_from_slice(&self.node.to_le_bytes());
        b[12..16].copy_from_slice(&self.perm.to_le_bytes());
        b
    }

    /// A request, if `b` is exactly one.
    pub fn decode(b: &[u8]) -> Option<Request> {
        (b.len() == REQUEST_LEN && u32_at(b, 0) == MAGIC && u32_at(b, 4) == VERSION).then(|| {
            Request {
                node: u32_at(b, 8),
                perm: u32_at(b, 12),
            }
        })
    }
}

impl Reply {
    /// Bytes on the wire.
    pub fn encode(&self) -> [u8; REPLY_LEN] {
        let mut b = [0u8; REPLY_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.status.to_le_bytes());
        b[8..12].copy_from_slice(&self.rights.to_le_bytes());
        b[12..16].copy_from_slice(&self.fds.to_le_bytes());
        b[16..24].copy_from_slice(&self.size.to_le_bytes());
        b[24..32].copy_from_slice(&self.token.to_le_bytes());
        b[32..40].copy_from_slice(&self.secret.to_le_bytes());
        b
    }

    /// A reply, if `b` is exactly one.
    pub fn decode(b: &[u8]) -> Option<Reply> {
        (b.len() == REPLY_LEN && u32_at(b, 0) == MAGIC).then(|| Reply {
            status: u32_at(b, 4) as i32,
            rights: u32_at(b, 8),
            fds: u32_at(b, 12),
            size: u64_at(b, 16),
            token: u64_at(b, 24),
            secret: u64_at(b, 32),
        })
    }
}

/// A notice's bytes.
pub fn encode_notice(kind: u32) -> [u8; NOTICE_LEN] {
    let mut b = [0u8; NOTICE_LEN];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&VERSION.to_le_bytes());
    b[8..12].copy_from_slice(&kind.to_le_bytes());
    b
}

/// The kind of a notice, if `b` is exactly one (the importer treats any
/// readable event on its socket as the end, so only tests decode).
#[cfg(test)]
pub fn decode_notice(b: &[u8]) -> Option<u32> {
    (b.len() == NOTICE_LEN && u32_at(b, 0) == MAGIC && u32_at(b, 4) == VERSION)
        .then(|| u32_at(b, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let r = Request {
            node: 7,
            perm: 0o600,
        };
        assert_eq!(Request::decode(&r.encode()), Some(r));
        let a = Reply {
            status: 27,
            rights: 0o400,
            fds: 4,
            size: 1 << 33,
            token: 9,
            secret: u64::MAX - 3,
        };
        assert_eq!(Reply::decode(&a.encode()), Some(a));
        let t = Attach {
            token: 12,
            secret: 1 << 60,
        };
        assert_eq!(Attach::decode(&t.encode()), Some(t));
        assert_eq!(Attach::decode(&t.encode()[..23]), None);
        assert_eq!(Request::decode(&t.encode()[..16]), None);
        assert_eq!(decode_status(&encode_status(true, 7)), Some((true, 7)));
        assert_eq!(decode_status(&encode_status(false, 8)), Some((false, 8)));
        assert_eq!(decode_status(&encode_ask(8)), None);
        assert_eq!(decode_ask(&encode_ask(9)), Some(9));
        let mut padded = encode_ask(9);
        padded[6] = 1;
        assert_eq!(decode_ask(&padded), None, "padding must be zero");
        assert_eq!(decode_ask(&encode_status(true, 9)), None);
        assert_eq!(decode_status(&r.encode()), None);
        let mut two = encode_status(true, 1);
        two[4] = 2;
        assert_eq!(decode_status(&two), None, "a word other than 0 or 1");
        assert_eq!(Request::decode(&[0; REQUEST_LEN]), None);
        assert_eq!(Request::decode(&r.encode()[..15]), None);
        let mut v = r.encode();
        v[4] = 9;
        assert_eq!(Request::decode(&v), None, "other version");
        assert_eq!(Reply::decode(&[1; 3]), None);
        assert!(is_query(&encode_query()));
        assert!(!is_query(&encode_query()[..7]));
        assert!(!is_query(&r.encode()));
        assert_eq!(Request::decode(&encode_query()), None);
        assert_eq!(
            decode_notice(&encode_notice(NOTICE_UNPUBLISHED)),
            Some(NOTICE_UNPUBLISHED)
        );
        assert_eq!(
            decode_notice(&encode_notice(NOTICE_UNPUBLISHED)[..11]),
            None
        );
    }
}
