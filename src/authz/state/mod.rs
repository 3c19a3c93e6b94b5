//! What the authorization server remembers: registered clients, authorization requests in
//! flight, codes, consents, refresh-token families and its signing keys. Records are opaque
//! bytes under a table and a key, each with an optional lifetime; the rules (single-use codes,
//! rotation, reuse detection) are written once above this trait, in terms of its three atomic
//! operations, so that every backend — the embedded one here, a shared one for replicas later —
//! behaves the same. `suite` is the test every backend passes.

mod embedded;
#[cfg(test)]
pub(crate) mod suite;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use embedded::Embedded;

/// The kinds of record: one namespace each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// A registered client (RFC 7591 or a fetched metadata document), by `client_id`.
    Client,
    /// An authorization request waiting for consent and the provider's sign-in.
    Request,
    /// A sign-in at the provider in flight, by its `state`.
    Login,
    /// An authorization code (by its hash): single use.
    Code,
    /// A refresh token (by its hash).
    Refresh,
    /// A family of refresh tokens descending from one code: revoked whole.
    Family,
    /// A user's consent to a client.
    Consent,
    /// The gateway's signing keys.
    Key,
    /// A user's tokens for an upstream server they signed in to (`perUser`), by server and user.
    UpstreamToken,
    /// A user's sign-in at an upstream server's authorization server in flight, by its `state`.
    UpstreamLogin,
    /// The gateway's registration at an upstream server's authorization server, by issuer.
    UpstreamClient,
}

impl Table {
    fn prefix(self) -> &'static str {
        match self {
            Table::Client => "client/",
            Table::Request => "request/",
            Table::Login => "login/",
            Table::Code => "code/",
            Table::Refresh => "refresh/",
            Table::Family => "family/",
            Table::Consent => "consent/",
            Table::Key => "key/",
            Table::UpstreamToken => "upstream-token/",
            Table::UpstreamLogin => "upstream-login/",
            Table::UpstreamClient => "upstream-client/",
        }
    }
}

/// A failure of the storage itself (disk, corruption): the request fails with a 500-class
/// answer, and nothing is half-written.
#[derive(Debug, thiserror::Error)]
#[error("the authorization state store failed: {0}")]
pub struct StateError(pub String);

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// A backend. Every operation is atomic; an expired record is absent.
pub trait State: Send + Sync + 'static {
    fn get<'a>(&'a self, table: Table, key: &'a str) -> Fut<'a, Option<Vec<u8>>>;

    /// Writes (or, with `None`, deletes) the record only if its current value is `expected`
    /// (`None`: absent). Whether it was written: the one compare-and-swap that rotation,
    /// consumption and revocation are built on.
    fn swap<'a>(
        &'a self,
        table: Table,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<&'a [u8]>,
        ttl: Option<Duration>,
    ) -> Fut<'a, bool>;

    /// Every live record of a table (small tables only: the signing keys).
    fn all<'a>(&'a self, table: Table) -> Fut<'a, Vec<(String, Vec<u8>)>>;
}

impl dyn State {
    /// Writes unconditionally.
    pub async fn put(&self, table: Table, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StateError> {
        loop {
            let current = self.get(table, key).await?;
            if self.swap(table, key, current.as_deref(), Some(value), ttl).await? {
                return Ok(());
            }
        }
    }

    /// Reads and deletes, once: of two callers taking the same record, one gets it.
    pub async fn take(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        loop {
            let Some(current) = self.get(table, key).await? else { return Ok(None) };
            if self.swap(table, key, Some(&current), None, None).await? {
                return Ok(Some(current));
            }
        }
    }
}

/// Seconds since the epoch of `ttl` from now (0: never expires).
pub(crate) fn deadline(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => (SystemTime::now() + ttl).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs().max(1)),
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
