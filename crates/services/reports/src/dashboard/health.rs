//! The dashboard's first section: is the signal reaching Meta? A banner
//! per refusal the business must fix, then each direction's status.

use crate::health::CapiHealth;
use chrono::{DateTime, Utc};
use domain::health::Status;
use maud::{Markup, html};

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

pub fn section(h: &CapiHealth) -> Markup {
    let shown: Vec<_> = h
        .directions
        .iter()
        .filter(|d| d.health.status != Status::Off)
        .collect();
    html! {
        @for (d, b) in h.banners() {
            div.banner role="alert" data-direction=(d.direction_id) data-refusal=(format!("{:?}", b.refusal).to_lowercase()) {
                strong { "Meta refuses the events of " (d.name) ": " }
                (b.message.trim_end_matches('.')) ". "
                "To fix: " (b.what_to_do) "."
            }
        }
        @if !shown.is_empty() {
            section id="capi-health" {
                h2 { "Is the signal reaching Meta?" }
                table {
                    tr {
                        th { "Direction" } th { "Status" } th { "Last accepted" }
                        th { "Last 24 h: accepted / refused / skipped" } th { "Waiting" }
                        th { "Ad dialogs without click id (7 days)" } th { "" }
                    }
                    @for d in &shown {
                        @let f = &d.facts;
                        @let skipped: i64 = f.skipped_24h.values().sum();
                        tr data-direction=(d.direction_id) data-status=(d.health.status.as_str()) {
                            td { (d.name) }
                            td.status {
                                span class={ "status " (d.health.status.as_str()) } { (d.health.status.as_str()) }
                                @if d.health.status == Status::Test && d.health.verified { " " span.muted { "(verified)" } }
                            }
                            td { (when(f.last_accepted_at)) }
                            td.counts {
                                (f.accepted_24h) " / " (f.refused_24h) " / " (skipped)
                                @if skipped > 0 {
                                    br;
                                    span.muted {
                                        @for (i, (reason, n)) in f.skipped_24h.iter().enumerate() {
                                            @if i > 0 { ", " } (reason) " " (n)
                                        }
                                    }
                                }
                            }
                            td { (f.waiting) }
                            td {
                                (crate::html::pct(d.health.without_click_id_pct))
                                " " span.muted { "(" (f.without_click_id_7d) " of " (f.ad_dialogs_7d) ")" }
                            }
                            td.summary { (d.health.summary) }
                        }
                    }
                }
            }
        }
    }
}
