//! Refresh tokens (RFC 6749 §6, OAuth 2.1 §4.3.1): each one is exchanged once for a new pair
//! (rotation). A token already exchanged is still honoured within `refreshGrace` of its first
//! use — two windows of one client refreshing at the same moment both stay signed in — each
//! such use getting its own new token. Past the grace window a second use is a replay: the
//! whole family (every token descending from that sign-in) is revoked, the thief's and the
//! user's alike (OAuth 2.0 Security BCP §4.14.2).

use http::{Response, StatusCode};

use super::AuthorizationServer;
use super::issue::{invalid_grant, issue, unavailable};
use super::records::{self, Client, Family, Refresh};
use super::state::{Table, now_secs};
use super::wire::{self, Params};
use crate::http::body::Body;

/// What a use of a refresh token amounts to.
enum Use {
    /// The first, or one within the grace window.
    Allowed,
    /// A replay past the grace window.
    Replay,
}

pub async fn exchange(server: &AuthorizationServer, client: &Client, params: &Params) -> Response<Body> {
    let Some(token) = params.get("refresh_token") else {
        return wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
    };
    let key = wire::digest(token);
    let state = &*server.state;
    let (record, raw) = match records::read_raw::<Refresh>(state, Table::Refresh, &key).await {
        Ok(Some(r)) => r,
        Ok(None) => return invalid_grant("the refresh token is unknown or expired"),
        Err(e) => return unavailable(e),
    };
    if record.client_id != client.client_id {
        // Another client holds it: it leaked.
        revoke_family(server, &record.family).await;
        tracing::warn!(client = %client.client_id, "a refresh token of another client was presented: that sign-in is revoked");
        return invalid_grant("the refresh token was issued to another client");
    }
    let family = match records::read::<Family>(state, Table::Family, &record.family).await {
        Ok(Some(f)) if !f.revoked && !server.revoked.contains(&record.family) => f,
        Ok(_) => return invalid_grant("the refresh token was revoked"),
        Err(e) => return unavailable(e),
    };
    let used = match mark_used(server, &key, record.clone(), raw).await {
        Ok(u) => u,
        Err(e) => return unavailable(e),
    };
    if let Use::Replay = used {
        revoke_family(server, &record.family).await;
        tracing::warn!(
            client = %client.client_id, user = %record.user.email.as_deref().unwrap_or(&record.user.sub),
            "a refresh token was used again after its grace window: every token of that sign-in is revoked"
        );
        return invalid_grant("the refresh token was already used; the sign-in is revoked");
    }
    // A narrower scope may be asked for, never a wider one.
    let scope = match params.get("scope") {
        None => record.scope.clone(),
        Some(asked) => {
            if !wire::scope_covers(&record.scope, asked) {
                return wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "more scope than was granted");
            }
            asked.to_owned()
        }
    };
    match issue(server, &client.client_id, &record.user, &scope, &record.resource, &record.family, family.expires).await
    {
        Ok(body) => wire::json(StatusCode::OK, &body),
        Err(e) => unavailable(e),
    }
}

/// Records the token's first use, or decides what a later one is. A few tries: each lost race
/// means another request used it, and what it recorded decides.
async fn mark_used(
    server: &AuthorizationServer,
    key: &str,
    mut record: Refresh,
    mut raw: Vec<u8>,
) -> Result<Use, String> {
    let now = now_secs();
    let grace = server.settings.refresh_grace.as_secs();
    for _ in 0..8 {
        match record.used_at {
            Some(at) if now.saturating_sub(at) <= grace => return Ok(Use::Allowed),
            Some(_) => return Ok(Use::Replay),
            None => {
                let used = Refresh { used_at: Some(now), ..record.clone() };
                // Kept (as used) as long as its family lives: a replay is recognised till then.
                let ttl = std::time::Duration::from_secs(server.settings.refresh_ttl.as_secs());
                if records::replace(&*server.state, Table::Refresh, key, &raw, &used, Some(ttl))
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Ok(Use::Allowed);
                }
                match records::read_raw(&*server.state, Table::Refresh, key).await.map_err(|e| e.to_string())? {
                    Some((now_record, now_raw)) => (record, raw) = (now_record, now_raw),
                    None => return Ok(Use::Replay),
                }
            }
        }
    }
    Err("a refresh token's record keeps changing".into())
}

/// The revoked sign-ins whose access tokens may still be unexpired, in memory for the check of
/// every request (empty, as it nearly always is, the check is one atomic load).
#[derive(Default)]
pub struct RevokedGrants {
    any: std::sync::atomic::AtomicBool,
    set: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl RevokedGrants {
    pub async fn load(state: &dyn super::state::State) -> Result<RevokedGrants, super::state::StateError> {
        let revoked = RevokedGrants::default();
        for (id, raw) in state.all(Table::Family).await? {
            if serde_json::from_slice::<Family>(&raw).is_ok_and(|f| f.revoked) {
                revoked.add(&id);
            }
        }
        Ok(revoked)
    }

    fn add(&self, id: &str) {
        self.set.write().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned());
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.any.load(std::sync::atomic::Ordering::Acquire)
            && self.set.read().unwrap_or_else(|p| p.into_inner()).contains(id)
    }
}

/// Marks a family revoked: none of its refresh tokens works again, nor its access tokens (at once
/// in this process, through the state for a restart).
pub async fn revoke_family(server: &AuthorizationServer, id: &str) {
    server.revoked.add(id);
    let state = &*server.state;
    for _ in 0..8 {
        let (family, raw) = match records::read_raw::<Family>(state, Table::Family, id).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("a revocation could not be recorded: {e}");
                return;
            }
        };
        if family.revoked {
            return;
        }
        let revoked = Family { revoked: true, ..family.clone() };
        let left = records::left_until(family.expires);
        if records::replace(state, Table::Family, id, &raw, &revoked, Some(left)).await.unwrap_or(false) {
            return;
        }
    }
    tracing::error!("a revocation could not be recorded: the record keeps changing");
}
