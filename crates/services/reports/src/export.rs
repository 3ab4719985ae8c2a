//! CSV exports of the leads table and the ads table for a range, for
//! spreadsheet programs: UTF-8 with a byte-order mark; `;` between fields
//! and a decimal comma for Russian-language accounts (what a Russian
//! spreadsheet expects), `,` and a decimal point otherwise. A cell that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first)
//! is written with a leading `'`, so a customer's name cannot become one.
//!
//! Streamed: the leads are read in batches of [`BATCH`] (keyset paging)
//! and each batch is written to the response as it is read, so an export
//! of any size holds one batch in memory.

use crate::ads::{AdRow, AdsTable, RowKind};
use actix_web::{HttpResponse, http::header, web::Bytes};
use chrono::NaiveDate;
use domain::account::ReportLanguage;
use domain::analytics::Funnel;
use domain::ids::UserAccountId;
use storage::analytics::{LeadEvents, LevelColumn};
use tokio::sync::mpsc;

/// Leads read and written per round.
pub const BATCH: i64 = 1000;
/// Chunks the response may hold unsent before the reader waits.
const CHANNEL: usize = 4;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How numbers and fields are written for an account's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub decimal: char,
}

impl Dialect {
    pub fn of(language: ReportLanguage) -> Dialect {
        match language {
            ReportLanguage::Ru => Dialect {
                delimiter: b';',
                decimal: ',',
            },
            ReportLanguage::En => Dialect {
                delimiter: b',',
                decimal: '.',
            },
        }
    }

    fn number(self, x: Option<f64>) -> String {
        x.map(|x| format!("{x:.2}").replace('.', &self.decimal.to_string()))
            .unwrap_or_default()
    }

    fn writer(self) -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .from_writer(Vec::new())
    }
}

/// A text cell a spreadsheet will show as text.
fn text(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

/// A response whose body is what `feed` sends down the channel.
fn streamed(filename: &str, body: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> HttpResponse {
    let stream = futures_util::stream::unfold(body, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream)
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Bytes, std::io::Error> {
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// What an export covers.
#[derive(Debug, Clone)]
pub struct Export {
    pub account: UserAccountId,
    pub timezone: String,
    pub dialect: Dialect,
    pub since: NaiveDate,
    pub until: NaiveDate,
}

const LEAD_HEADER: [&str; 15] = [
    "lead_id",
    "dialog_id",
    "name",
    "direction",
    "first_message_utc",
    "from_ad",
    "lead_sent_at_utc",
    "lead_event_id",
    "registration_sent_at_utc",
    "registration_event_id",
    "schedule_sent_at_utc",
    "schedule_event_id",
    "purchases",
    "revenue",
    "currency",
];

fn lead_record(l: &LeadEvents, d: Dialect) -> Vec<String> {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    let level = |c: &LevelColumn| {
        if c.sent {
            (at(c.sent_at), c.event_id.clone().unwrap_or_default())
        } else {
            (String::new(), String::new())
        }
    };
    let (li, le) = level(&l.interest);
    let (qi, qe) = level(&l.qualified);
    let (si, se) = level(&l.scheduled);
    let paid: Vec<_> = l
        .purchases
        .iter()
        .filter(|p| p.status == "success")
        .collect();
    // One currency: its sum; several: each order's amount and currency.
    let currencies: std::collections::BTreeSet<&str> =
        paid.iter().map(|p| p.currency.as_str()).collect();
    let (revenue, currency) = match currencies.len() {
        0 => (String::new(), String::new()),
        1 => (
            d.number(Some(paid.iter().map(|p| p.value).sum())),
            currencies
                .iter()
                .next()
                .map(|c| (*c).to_owned())
                .unwrap_or_default(),
        ),
        _ => (
            paid.iter()
                .map(|p| format!("{} {}", d.number(Some(p.value)), p.currency))
                .collect::<Vec<_>>()
                .join(" + "),
            String::new(),
        ),
    };
    vec![
        l.lead_id.to_string(),
        l.dialog_id.to_string(),
        text(l.contact_name.as_deref().unwrap_or("")),
        text(l.direction_name.as_deref().unwrap_or("")),
        at(l.first_message),
        if l.from_ad { "yes" } else { "no" }.to_owned(),
        li,
        le,
        qi,
        qe,
        si,
        se,
        paid.len().to_string(),
        revenue,
        currency,
    ]
}

/// The leads of the range, newest first, as CSV, read and sent batch by batch.
pub fn leads(pool: storage::DbPool, main: &runtime::MainRuntime, e: Export) -> HttpResponse {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let filename = format!("leads-{}-{}.csv", e.since, e.until);
    main.spawn(async move {
        let feed = async {
            let mut w = e.dialect.writer();
            w.write_record(LEAD_HEADER)?;
            let mut first = BOM.to_vec();
            first.extend_from_slice(&finish(w)?);
            if tx.send(Ok(Bytes::from(first))).await.is_err() {
                return Ok(());
            }
            let mut conn = pool.get().await.map_err(std::io::Error::other)?;
            let mut after = None;
            loop {
                let batch = storage::analytics::leads_batch(
                    &mut conn,
                    e.account,
                    e.since,
                    e.until,
                    &e.timezone,
                    after,
                    BATCH,
                )
                .await
                .map_err(std::io::Error::other)?;
                let Some(last) = batch.last() else {
                    return Ok(());
                };
                after = last.first_message.map(|t| (t, last.dialog_id));
                let mut w = e.dialect.writer();
                for l in &batch {
                    w.write_record(lead_record(l, e.dialect))?;
                }
                if tx.send(finish(w)).await.is_err() || after.is_none() {
                    return Ok(()); // the client went away
                }
                if (batch.len() as i64) < BATCH {
                    return Ok(());
                }
            }
        };
        let result: Result<(), std::io::Error> = feed.await;
        if let Err(err) = result {
            tracing::error!(error = %err, "leads export stopped");
            // The body ends in an error: the client sees a broken download,
            // never a short file that looks whole.
            let _ = tx.send(Err(err)).await;
        }
    });
    streamed(&filename, rx)
}

const AD_HEADER: [&str; 18] = [
    "kind",
    "id",
    "name",
    "campaign",
    "adset",
    "dialogs",
    "lead",
    "registration",
    "schedule",
    "purchase",
    "revenue",
    "spend",
    "currency",
    "cost_per_lead",
    "cost_per_registration",
    "cost_per_schedule",
    "lead_to_registration_pct",
    "roas",
];

fn funnel_record(f: &Funnel, d: Dialect, roas: Option<f64>) -> Vec<String> {
    let revenue = match f.revenue.as_slice() {
        [] => String::new(),
        [one] => d.number(Some(one.amount)),
        many => many
            .iter()
            .map(|r| format!("{} {}", d.number(Some(r.amount)), r.currency))
            .collect::<Vec<_>>()
            .join(" + "),
    };
    vec![
        f.leads.to_string(),
        f.events.lead.to_string(),
        f.events.registration.to_string(),
        f.events.schedule.to_string(),
        f.events.purchase.to_string(),
        revenue,
        d.number(f.spend.as_ref().map(|s| s.amount)),
        f.spend
            .as_ref()
            .map(|s| s.currency.clone())
            .unwrap_or_default(),
        d.number(f.costs.cost_per_lead),
        d.number(f.costs.cost_per_registration),
        d.number(f.costs.cost_per_schedule),
        d.number(f.conversions.lead_to_registration_pct),
        d.number(roas),
    ]
}

fn ad_record(r: &AdRow, d: Dialect) -> Vec<String> {
    let kind = match r.kind {
        RowKind::Insights => "insights",
        RowKind::NoAdId => "no_ad_id",
        RowKind::NotInInsights => "not_in_insights",
    };
    let mut out = vec![
        kind.to_owned(),
        r.id.clone().unwrap_or_default(),
        text(r.name.as_deref().unwrap_or("")),
        text(r.campaign_name.as_deref().unwrap_or("")),
        text(r.adset_name.as_deref().unwrap_or("")),
    ];
    out.extend(funnel_record(&r.funnel, d, r.roas()));
    out
}

/// The ads table (as sorted) and its totals row, as CSV.
pub fn ads(table: &AdsTable, dialect: Dialect) -> HttpResponse {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let filename = format!(
        "ads-{}-{}-{}.csv",
        table.group.as_str(),
        table.since,
        table.until
    );
    let body = (|| -> Result<Bytes, std::io::Error> {
        let mut w = dialect.writer();
        w.write_record(AD_HEADER)?;
        for r in &table.rows {
            w.write_record(ad_record(r, dialect))?;
        }
        let roas = table.totals.revenue.iter().find_map(|r| r.roas);
        let mut total = vec![
            "total".to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ];
        total.extend(funnel_record(&table.totals, dialect, roas));
        w.write_record(total)?;
        let mut out = BOM.to_vec();
        out.extend_from_slice(&finish(w)?);
        Ok(Bytes::from(out))
    })();
    // The table is one page of rows (per campaign, ad set or ad), already
    // in memory for its totals; it goes out as one chunk.
    if tx.try_send(body).is_err() {
        tracing::error!("ads export: the channel refused its only chunk");
    }
    streamed(&filename, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_fields_follow_the_accounts_language_and_formulas_stay_text() {
        let ru = Dialect::of(ReportLanguage::Ru);
        assert_eq!(
            (ru.delimiter, ru.number(Some(1234.5))),
            (b';', "1234,50".to_owned())
        );
        let en = Dialect::of(ReportLanguage::En);
        assert_eq!(
            (en.delimiter, en.number(Some(0.126))),
            (b',', "0.13".to_owned())
        );
        assert_eq!(en.number(None), "");
        assert_eq!(
            text("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(text("-1"), "'-1");
        assert_eq!(text("Ana; \"Maria\""), "Ana; \"Maria\"");
    }
}
