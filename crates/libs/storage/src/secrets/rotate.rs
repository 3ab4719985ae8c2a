//! Re-sealing stored credentials: plaintext rows (from before encryption,
//! or written by hand) and rows sealed with an earlier key. Each row is
//! replaced only if it still holds what was read (a concurrent write wins),
//! so this runs safely beside the services.

use super::{COLUMNS, Column, Keyring, keyring::PREFIX};
use crate::DbError;
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use secrecy::ExposeSecret;

const BATCH: i64 = 500;

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    value: String,
}

/// What one pass changed in one column.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resealed {
    pub column: String,
    /// Plaintext values now sealed.
    pub encrypted: u64,
    /// Values sealed with an earlier key, now sealed with the primary one.
    pub rotated: u64,
}

/// Seals every plaintext credential and re-seals every one sealed with
/// another key than the primary one. With `rotate: false` only plaintext
/// is touched (what `capi migrate` does).
pub async fn reseal(
    conn: &mut AsyncPgConnection,
    ring: &Keyring,
    rotate: bool,
) -> anyhow::Result<Vec<Resealed>> {
    let mut all = Vec::new();
    for column in COLUMNS {
        all.push(reseal_column(conn, ring, column, rotate).await?);
    }
    Ok(all)
}

async fn reseal_column(
    conn: &mut AsyncPgConnection,
    ring: &Keyring,
    column: Column,
    rotate: bool,
) -> anyhow::Result<Resealed> {
    let Column {
        table,
        column: col,
        id,
        ..
    } = column;
    let current = format!("{PREFIX}{}:%", ring.primary_id());
    // Plaintext, and (when rotating) sealed under another key.
    let select = format!(
        "SELECT {id}::text AS id, {col} AS value FROM {table} \
         WHERE {col} IS NOT NULL AND {col} <> '' \
           AND ({col} NOT LIKE 'enc:v1:%' OR ($2 AND {col} NOT LIKE $1)) \
           AND {id}::text > $3 \
         ORDER BY {id}::text LIMIT {BATCH}"
    );
    let update = format!("UPDATE {table} SET {col} = $1 WHERE {id}::text = $2 AND {col} = $3");
    let mut done = Resealed {
        column: column.name(),
        ..Resealed::default()
    };
    let mut after = String::new();
    loop {
        let rows: Vec<Row> = diesel::sql_query(&select)
            .bind::<Text, _>(&current)
            .bind::<diesel::sql_types::Bool, _>(rotate)
            .bind::<Text, _>(&after)
            .load(conn)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        for row in rows {
            let plain = if row.value.starts_with(PREFIX) {
                ring.open(column, &row.value)?
            } else {
                secrecy::SecretString::from(row.value.clone())
            };
            let sealed = ring.seal(column, plain.expose_secret());
            let n = diesel::sql_query(&update)
                .bind::<Text, _>(&sealed)
                .bind::<Text, _>(&row.id)
                .bind::<Text, _>(&row.value)
                .execute(conn)
                .await?;
            if n == 1 {
                if row.value.starts_with(PREFIX) {
                    done.rotated += 1;
                } else {
                    done.encrypted += 1;
                }
            }
        }
    }
    Ok(done)
}

/// How many values of a column each key sealed, and how many are plaintext.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ColumnStatus {
    pub column: String,
    /// `(key id, values)`, plaintext under the id `plaintext`.
    pub by_key: Vec<(String, i64)>,
}

#[derive(QueryableByName)]
struct KeyCount {
    #[diesel(sql_type = Text)]
    key_id: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Per column, the values each key sealed (and the plaintext ones).
pub async fn status(conn: &mut AsyncPgConnection) -> Result<Vec<ColumnStatus>, DbError> {
    let mut all = Vec::new();
    for column in COLUMNS {
        let Column {
            table, column: col, ..
        } = column;
        let rows: Vec<KeyCount> = diesel::sql_query(format!(
            "SELECT CASE WHEN {col} LIKE 'enc:v1:%' THEN split_part({col}, ':', 3) ELSE 'plaintext' END AS key_id, \
                    count(*) AS n \
             FROM {table} WHERE {col} IS NOT NULL AND {col} <> '' GROUP BY 1 ORDER BY 1"
        ))
        .load(conn)
        .await?;
        all.push(ColumnStatus {
            column: column.name(),
            by_key: rows.into_iter().map(|r| (r.key_id, r.n)).collect(),
        });
    }
    Ok(all)
}
