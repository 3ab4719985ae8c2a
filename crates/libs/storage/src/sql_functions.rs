//! SQL functions the typed queries call (PostgreSQL ignores NULL arguments
//! of `greatest`; `coalesce` takes the first non-NULL).

use diesel::sql_types::{SingleValue, SqlType};

diesel::define_sql_function! {
    /// The larger value.
    fn greatest<T: SqlType + SingleValue>(a: T, b: T) -> T;
}

diesel::define_sql_function! {
    /// The first value that is not NULL.
    fn coalesce<T: SqlType + SingleValue>(a: T, b: T) -> T;
}
