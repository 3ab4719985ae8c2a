//! Prepared statements for the hand-written SQL. diesel treats
//! `sql_query` text as possibly dynamic and never caches it, so each
//! statement costs PostgreSQL a parse and a plan and the client an extra
//! round trip to prepare it. The services' SQL is static text: `.prepared()`
//! lets the connection keep it prepared (keyed by the text), which halves the
//! round trips of the hot paths. Only for `&'static str` SQL: a statement
//! built at run time would fill the cache.

use diesel::{
    QueryResult,
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
};

/// A query the connection may keep prepared (`PreparedExt::prepared`).
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(Q);

pub trait PreparedExt: Sized {
    /// Marks a query on static SQL text as safe to keep prepared.
    fn prepared(self) -> Prepared<Self> {
        Prepared(self)
    }
}

impl<Q> PreparedExt for Q {}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    // No type id: cached by the SQL text and bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}
