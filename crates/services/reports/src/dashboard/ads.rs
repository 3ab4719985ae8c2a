//! The dashboard's results per campaign, ad set or ad: the table of
//! `/analytics/ads`, its grouping and sort chosen by links (no script).

use crate::ads::{AdRow, AdsTable, Group, RowKind, Sort, View};
use crate::html::{money, pct};
use maud::{Markup, html};
use std::collections::HashMap;

/// The table's grouping and sort from the page's query; anything unknown
/// is the default (per campaign, by spend, largest first).
pub fn view_of(q: &HashMap<String, String>) -> View {
    let default = View::default();
    View {
        group: q
            .get("group")
            .and_then(|g| Group::parse(g))
            .unwrap_or(default.group),
        sort: q
            .get("sort")
            .and_then(|s| Sort::parse(s))
            .unwrap_or(default.sort),
        descending: q.get("order").map(String::as_str) != Some("asc"),
    }
}

/// The link that shows the table as `group`, sorted by `sort`.
fn link(t: &AdsTable, group: Group, sort: Sort, descending: bool) -> String {
    format!(
        "/dashboard?since={}&until={}&group={}&sort={}&order={}#ads",
        t.since,
        t.until,
        group.as_str(),
        sort.as_str(),
        if descending { "desc" } else { "asc" }
    )
}

fn row_name(r: &AdRow) -> String {
    match r.kind {
        RowKind::NoAdId => "(no ad id)".to_owned(),
        RowKind::NotInInsights => "(ad not in insights)".to_owned(),
        RowKind::Insights => r.name.clone().or_else(|| r.id.clone()).unwrap_or_default(),
    }
}

pub fn section(t: &AdsTable, view: View) -> Markup {
    let header = |sort: Sort, label: &str| {
        // A second click on the sorted column turns the order round.
        let descending = !(view.sort == sort && view.descending);
        let mark = match (view.sort == sort, view.descending) {
            (true, true) => " ▼",
            (true, false) => " ▲",
            _ => "",
        };
        html! {
            th data-sort=(sort.as_str()) { a href=(link(t, view.group, sort, descending)) { (label) (mark) } }
        }
    };
    let groups = [
        (Group::Campaign, "Campaigns"),
        (Group::Adset, "Ad sets"),
        (Group::Ad, "Ads"),
    ];
    html! {
        section id="ads" {
            h2 { "Results by ad" }
            p {
                @for (g, label) in groups {
                    @if g == view.group { strong { (label) } } @else { a href=(link(t, g, view.sort, view.descending)) { (label) } }
                    " "
                }
            }
            p {
                a id="ads-csv" download href=(format!(
                    "/dashboard/ads.csv?since={}&until={}&group={}&sort={}&order={}",
                    t.since, t.until, view.group.as_str(), view.sort.as_str(),
                    if view.descending { "desc" } else { "asc" }
                )) { "Download CSV" }
            }
            p.muted {
                "A dialog counts for the ad it started from; spend is Meta's, per ad. "
                "“No ad id”: dialogs without one, events without a dialog, spend not broken down this far. "
                "“Ad not in insights”: ads Meta's insights have not named (yet)."
            }
            table id="ads-table" data-group=(view.group.as_str()) {
                tr {
                    (header(Sort::Name, "Name"))
                    (header(Sort::Dialogs, "Dialogs"))
                    (header(Sort::Lead, "Lead"))
                    (header(Sort::Registration, "Registration"))
                    (header(Sort::Schedule, "Schedule"))
                    (header(Sort::Purchase, "Purchase"))
                    th { "Revenue" }
                    (header(Sort::Spend, "Spend"))
                    (header(Sort::CostPerLead, "Cost per Lead"))
                    (header(Sort::CostPerRegistration, "Cost per Reg."))
                    (header(Sort::CostPerSchedule, "Cost per Schedule"))
                    th { "Lead → Reg." }
                    (header(Sort::Roas, "ROAS"))
                }
                @for r in &t.rows {
                    @let f = &r.funnel;
                    @let currency = f.spend.as_ref().map(|s| s.currency.as_str());
                    tr data-kind=(kind_name(r.kind)) data-id=(r.id.as_deref().unwrap_or("")) {
                        td {
                            (row_name(r))
                            @if let Some(c) = &r.campaign_name { br; span.muted { (c) @if let Some(s) = &r.adset_name { " / " (s) } } }
                        }
                        td { (f.leads) } td { (f.events.lead) } td { (f.events.registration) }
                        td { (f.events.schedule) } td.purchases { (f.events.purchase) }
                        td { (super::revenue(&f.revenue)) }
                        td.spend { (money(f.spend.as_ref().map(|s| s.amount), currency)) }
                        td { (money(f.costs.cost_per_lead, currency)) }
                        td { (money(f.costs.cost_per_registration, currency)) }
                        td { (money(f.costs.cost_per_schedule, currency)) }
                        td { (pct(f.conversions.lead_to_registration_pct)) }
                        td.roas { (super::roas(&f.revenue)) }
                    }
                }
                @let f = &t.totals;
                @let currency = f.spend.as_ref().map(|s| s.currency.as_str());
                tr.totals {
                    th { "Total" }
                    th { (f.leads) } th { (f.events.lead) } th { (f.events.registration) }
                    th { (f.events.schedule) } th { (f.events.purchase) }
                    th { (super::revenue(&f.revenue)) }
                    th { (money(f.spend.as_ref().map(|s| s.amount), currency)) }
                    th { (money(f.costs.cost_per_lead, currency)) }
                    th { (money(f.costs.cost_per_registration, currency)) }
                    th { (money(f.costs.cost_per_schedule, currency)) }
                    th { (pct(f.conversions.lead_to_registration_pct)) }
                    th { (super::roas(&f.revenue)) }
                }
            }
        }
    }
}

fn kind_name(k: RowKind) -> &'static str {
    match k {
        RowKind::Insights => "insights",
        RowKind::NoAdId => "no_ad_id",
        RowKind::NotInInsights => "not_in_insights",
    }
}
