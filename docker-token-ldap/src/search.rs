//! Searches and binds on pooled connections, with result codes mapped to outcomes.

use docker_token_core::BackendError;
use ldap3::exop::WhoAmI;
use ldap3::{LdapError, ResultEntry, Scope, SearchOptions, SearchResult};

use crate::labels::Attrs;
use crate::pool::{BACKEND, Pool, Pooled, transport_error};

/// One entry: its DN and its (UTF-8) attribute values.
pub(crate) type Entry = (String, Attrs);

/// Decodes a search result entry without panicking on malformed input (ldap3's
/// `SearchEntry::construct` panics). Binary values are skipped.
fn parse_entry(re: ResultEntry) -> Option<Entry> {
    let mut parts = re.0.match_id(4)?.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let mut attrs = Attrs::new();
    for attribute in parts.next()?.expect_constructed()? {
        let mut av = attribute.expect_constructed()?.into_iter();
        let name = String::from_utf8(av.next()?.expect_primitive()?).ok()?;
        let values = av
            .next()?
            .expect_constructed()?
            .into_iter()
            .filter_map(|v| v.expect_primitive())
            .filter_map(|v| String::from_utf8(v).ok());
        attrs.entry(name).or_default().extend(values);
    }
    Some((dn, attrs))
}

/// What a search returned: the entries (referrals and malformed entries dropped) and the
/// result code.
pub(crate) struct Found {
    pub(crate) entries: Vec<Entry>,
    pub(crate) rc: u32,
}

/// Runs one search on a checked-out connection.
pub(crate) async fn search_on(
    conn: &mut Pooled<'_>,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[String],
    size_limit: i32,
) -> Result<Found, LdapError> {
    let SearchResult(raw, result) = conn
        .op()
        .with_search_options(SearchOptions::new().sizelimit(size_limit))
        .search(base, scope, filter, attrs)
        .await?;
    let entries = raw
        .into_iter()
        .filter(|re| !re.is_ref() && !re.is_intermediate())
        .filter_map(parse_entry)
        .collect();
    Ok(Found {
        entries,
        rc: result.rc,
    })
}

/// Checks a search's result code: success, size limit (we ask for few entries on purpose)
/// and referrals (ignored) are fine; everything else is an error.
pub(crate) fn check_search_rc(what: &str, base: &str, rc: u32) -> Result<(), BackendError> {
    match rc {
        0 | 4 | 10 => Ok(()),
        32 => Err(BackendError::misconfigured(
            BACKEND,
            format!("{what}: the base {base:?} does not exist"),
        )),
        51 | 52 => Err(BackendError::unavailable(
            BACKEND,
            format!("{what}: server busy or unavailable (result code {rc})"),
        )),
        50 => Err(BackendError::misconfigured(
            BACKEND,
            format!("{what}: insufficient access rights (result code 50)"),
        )),
        rc => Err(BackendError::misconfigured(
            BACKEND,
            format!("{what}: search failed with result code {rc}"),
        )),
    }
}

/// Runs one search on a checked-out connection and checks its result code
/// ([`check_search_rc`]); `what` names the search in errors.
pub(crate) async fn search_checked(
    conn: &mut Pooled<'_>,
    what: &str,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[String],
    size_limit: i32,
) -> Result<Vec<Entry>, BackendError> {
    let found = search_on(conn, base, scope, filter, attrs, size_limit)
        .await
        .map_err(|e| transport_error(what, &e))?;
    check_search_rc(what, base, found.rc)?;
    Ok(found.entries)
}

/// Runs a search on a connection from `pool` ([`Pool::retrying`]).
pub(crate) async fn search(
    pool: &Pool,
    what: &str,
    base: &str,
    filter: &str,
    attrs: &[String],
    size_limit: i32,
) -> Result<Vec<Entry>, BackendError> {
    let (conn, found) = pool
        .retrying(what, |mut conn| async move {
            let found = search_on(&mut conn, base, Scope::Subtree, filter, attrs, size_limit).await;
            (conn, found)
        })
        .await?;
    conn.release();
    check_search_rc(what, base, found.rc)?;
    Ok(found.entries)
}

/// What a user's bind said.
pub(crate) fn bind_outcome(rc: u32) -> Result<bool, BackendError> {
    match rc {
        0 => Ok(true),
        // invalidCredentials, inappropriateAuthentication, unwillingToPerform (e.g. empty or
        // disabled), constraintViolation (password policy lockout)
        49 | 48 | 53 | 19 => Ok(false),
        51 | 52 => Err(BackendError::unavailable(
            BACKEND,
            format!("user bind: server busy or unavailable (result code {rc})"),
        )),
        rc => Err(BackendError::internal(
            BACKEND,
            format!("user bind: unexpected result code {rc}"),
        )),
    }
}

/// A cheap round trip (WhoAmI) on a pooled connection.
pub(crate) async fn ping(pool: &Pool) -> Result<(), BackendError> {
    let (conn, rc) = pool
        .retrying("readiness check", |mut conn| async move {
            let rc = conn.op().extended(WhoAmI).await.map(|res| res.1.rc);
            (conn, rc)
        })
        .await?;
    if rc != 0 {
        return Err(BackendError::misconfigured(
            BACKEND,
            format!("WhoAmI failed with result code {rc}"),
        ));
    }
    conn.release();
    Ok(())
}
