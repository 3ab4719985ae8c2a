//! The dashboard's HTML pieces, written with maud: every value spliced into
//! a page is escaped by the template engine (text and attribute values
//! alike); the one thing written raw is this file's own constant style,
//! which the CSP pins by its hash. maud over askama: the pages are small and
//! built from Rust values, so templates in Rust code are checked by the
//! compiler (an unknown field or a missing `else` does not build) with no
//! template files to keep in step, and its one raw escape hatch,
//! `PreEscaped`, is easy to grep for.

use crate::stats::DayStats;
use maud::{DOCTYPE, Markup, PreEscaped, html};

pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |p| format!("{p:.1}%"))
}

pub fn money(v: Option<f64>, currency: Option<&str>) -> String {
    match v {
        Some(x) => format!("{x:.2} {}", currency.unwrap_or(""))
            .trim_end()
            .to_owned(),
        None => "—".to_owned(),
    }
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;justify-content:space-between;align-items:center;flex-wrap:wrap;gap:12px}
header h1{font-size:18px;margin:0}header form{display:flex;gap:8px;align-items:center}
header input,header button{font:inherit;padding:4px 8px;border-radius:6px;border:1px solid #ccd}
main{padding:20px 24px;max-width:1100px}section{background:#fff;border-radius:10px;padding:16px 20px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
h2{font-size:16px;margin:0 0 12px}h3{font-size:14px;margin:18px 0 8px;color:#4a5262}
.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:12px}
.card{border:1px solid #e3e6ec;border-radius:8px;padding:12px 14px}
.card .label{font-size:12px;color:#6a7282;text-transform:uppercase;letter-spacing:.03em}
.card .value{font-size:24px;font-weight:600;margin-top:4px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eef0f4}
th{color:#6a7282;font-weight:500}.yes{color:#1a7f37;font-weight:600}.no{color:#9aa1ad}
.muted{color:#6a7282;font-size:12px}a{color:#2456c7}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.legend .lead{background:#4c7bd9}.legend .registration{background:#f0a030}.legend .schedule{background:#3aa676}
header form.logout button{background:none;color:#fff;border-color:#667}
header a.setup,header nav a{color:#fff}.error{color:#b42318;font-weight:600}
form label{margin-right:8px}pre.prompt{white-space:pre-wrap;background:#f5f6f8;padding:8px;border-radius:6px;font-size:12px}select[multiple]{min-width:320px;vertical-align:top}
.banner{background:#fdecea;border:1px solid #e5a29b;color:#7a1c12;border-radius:10px;padding:12px 16px;margin-bottom:18px}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.status.active{background:#e3f4e8;color:#1a7f37}.status.test{background:#e8effc;color:#2456c7}
.status.failing{background:#fdecea;color:#b42318}.status.silent{background:#fff4e0;color:#9a5b00}
";

/// The dashboard's Content-Security-Policy: nothing from anywhere but the
/// page's own inline style (allowed by its hash, so no other style can be
/// injected), forms only to this origin, never in a frame. No script at all.
pub fn csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

/// A whole page: title, the header's right-hand side, the body.
pub fn page(title: &str, header_right: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // Raw on purpose: a constant of this file, allowed by its hash.
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { h1 { (title) } (header_right) }
                main { (body) }
            }
        }
    }
}

pub const LEVEL_COLOURS: [(&str, &str); 3] = [
    ("Lead", "#4c7bd9"),
    ("Registration", "#f0a030"),
    ("Schedule", "#3aa676"),
];

/// Daily events by level as grouped bars (SVG elements are closed
/// explicitly: inside `<svg>` HTML has no void elements).
pub fn chart(days: &[DayStats]) -> Markup {
    let (w, h, pad) = (760.0_f64, 200.0_f64, 24.0_f64);
    let max = days
        .iter()
        .map(|d| {
            d.events
                .lead
                .max(d.events.registration)
                .max(d.events.schedule)
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let n = days.len().max(1) as f64;
    let group = (w - pad) / n;
    let bar = (group * 0.8 / 3.0).max(1.0);
    let labelled = |i: usize| days.len() <= 16 || i.is_multiple_of((days.len() / 8).max(1));
    html! {
        svg id="events-chart" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (h + 18.0) }
            width="100%" role="img" aria-label="CAPI events per day" {
            line x1=(pad) y1=(h) x2=(w) y2=(h) stroke="#ccd" {}
            text x="0" y="12" font-size="11" fill="#6a7282" { (max) }
            @for (i, d) in days.iter().enumerate() {
                @let x0 = pad + i as f64 * group + group * 0.1;
                @for (j, v) in [d.events.lead, d.events.registration, d.events.schedule].into_iter().enumerate() {
                    @let bh = (v as f64 / max as f64) * (h - 16.0);
                    @let (name, colour) = LEVEL_COLOURS[j];
                    rect x=(format!("{:.1}", x0 + j as f64 * bar)) y=(format!("{:.1}", h - bh))
                        width=(format!("{bar:.1}")) height=(format!("{bh:.1}")) fill=(colour) {
                        title { (d.date) " " (name) ": " (v) }
                    }
                }
                @if labelled(i) {
                    text x=(format!("{x0:.1}")) y=(h + 14.0) font-size="10" fill="#6a7282" {
                        (d.date.format("%m-%d"))
                    }
                }
            }
        }
        div.legend {
            @for (name, _) in LEVEL_COLOURS {
                span { i class=(name.to_ascii_lowercase()) {} (name) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(pct(Some(40.0)), "40.0%");
        assert_eq!(pct(None), "—");
        assert_eq!(money(Some(12.5), Some("USD")), "12.50 USD");
        assert_eq!(money(None, Some("USD")), "—");
    }

    /// The style goes out byte for byte as hashed into the CSP (else the
    /// browser drops it), and whatever a title carries is text.
    #[test]
    fn the_style_is_the_hashed_one_and_the_title_is_escaped() {
        let out = page("<b>\"Clinic\" & co</b>", html! {}, html! {}).into_string();
        assert!(out.contains(&format!("<style>{STYLE}</style>")));
        assert!(
            out.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{out}"
        );
        assert!(
            out.contains("<title>&lt;b&gt;&quot;Clinic&quot; &amp; co&lt;/b&gt;</title>"),
            "{out}"
        );
        assert!(!out.contains("<b>"), "{out}");
    }
}
