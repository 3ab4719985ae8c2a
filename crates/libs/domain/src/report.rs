//! The daily conversation report: its per-direction data (the spec's
//! `DirectionReportData`, stored as `conversation_reports.directions_data`)
//! and its text as sent to Telegram, in Russian or English.
//!
//! Rules of the text: the general block always; a section per direction
//! with dialogs or CAPI events that day, most dialogs first, "No direction"
//! last; inside a section the CAPI funnel only when the direction has CAPI
//! on and events that day, the conversion (qualified ÷ interest) only when
//! interest > 0, the interest line only when some dialog has a level, the
//! response time only when some reply was timed.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::account::ReportLanguage;

text_enum! {
    /// Where a report's delivery to Telegram stands (`conversation_reports.telegram_status`).
    pub enum TelegramStatus {
        Pending = "pending",
        Sent = "sent",
        /// Given up: an error retrying cannot fix, or too many attempts.
        Failed = "failed",
        /// The account has no Telegram chat: nothing to deliver.
        NotConfigured = "not_configured",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapiDistribution {
    pub interest: i64,
    pub qualified: i64,
    pub scheduled: i64,
    /// Purchases Meta accepted (reports from before the level have none).
    #[serde(default)]
    pub purchase: i64,
    /// Their values per currency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revenue: Vec<crate::analytics::Money>,
}

impl CapiDistribution {
    pub fn any(&self) -> bool {
        self.interest + self.qualified + self.scheduled + self.purchase > 0
    }

    pub fn add(&mut self, o: &CapiDistribution) {
        self.interest += o.interest;
        self.qualified += o.qualified;
        self.scheduled += o.scheduled;
        self.purchase += o.purchase;
        crate::analytics::add_revenue(&mut self.revenue, &o.revenue);
    }

    /// qualified ÷ interest, in whole percent; `None` without interest.
    pub fn conversion_pct(&self) -> Option<i64> {
        (self.interest > 0)
            .then(|| (self.qualified as f64 * 100.0 / self.interest as f64).round() as i64)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterestDistribution {
    pub hot: i64,
    pub warm: i64,
    pub cold: i64,
}

impl InterestDistribution {
    pub fn any(&self) -> bool {
        self.hot + self.warm + self.cold > 0
    }
}

/// One section of the report. `direction_id` is `null` for the dialogs that
/// belong to no direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionReportData {
    pub direction_id: Option<String>,
    pub direction_name: String,
    pub total_dialogs: i64,
    pub new_dialogs: i64,
    pub capi_enabled: bool,
    pub capi_has_data: bool,
    pub capi_distribution: CapiDistribution,
    pub interest_distribution: InterestDistribution,
    pub incoming_messages: i64,
    pub outgoing_messages: i64,
    pub avg_response_time_minutes: Option<f64>,
}

/// What one group of dialogs (a direction, or none) did during the day, as
/// counted by the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupCounts {
    pub total_dialogs: i64,
    pub new_dialogs: i64,
    pub interest: InterestDistribution,
    pub incoming_messages: i64,
    pub outgoing_messages: i64,
    /// Sum and count of the timed replies (ms).
    pub response_ms_sum: i64,
    pub responses: i64,
}

/// A direction of the account, with its day.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionDay {
    pub id: Option<crate::ids::DirectionId>,
    pub name: String,
    pub capi_enabled: bool,
    pub counts: GroupCounts,
    pub capi: CapiDistribution,
}

impl DirectionDay {
    fn has_data(&self) -> bool {
        self.counts.total_dialogs > 0 || self.capi.any()
    }

    pub fn data(&self) -> DirectionReportData {
        let c = &self.counts;
        DirectionReportData {
            direction_id: self.id.map(|id| id.to_string()),
            direction_name: self.name.clone(),
            total_dialogs: c.total_dialogs,
            new_dialogs: c.new_dialogs,
            capi_enabled: self.capi_enabled,
            capi_has_data: self.capi.any(),
            capi_distribution: self.capi.clone(),
            interest_distribution: c.interest,
            incoming_messages: c.incoming_messages,
            outgoing_messages: c.outgoing_messages,
            avg_response_time_minutes: (c.responses > 0).then(|| {
                let minutes = c.response_ms_sum as f64 / c.responses as f64 / 60_000.0;
                (minutes * 100.0).round() / 100.0
            }),
        }
    }
}

/// The report of one account's day, ready to store and send.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyReport {
    pub date: NaiveDate,
    pub language: ReportLanguage,
    pub directions: Vec<DirectionReportData>,
    pub totals: Totals,
    /// Legacy fields (spec "Обратная совместимость").
    pub capi_distribution: Option<CapiDistribution>,
    pub capi_source_used: bool,
    pub capi_direction_id: Option<crate::ids::DirectionId>,
    /// The day's best ads by cost per qualified lead (at most three; none
    /// without spend): see [`top_ads`].
    pub top_ads: Vec<TopAd>,
}

/// An ad of the day with its qualified leads (CompleteRegistration events
/// Meta accepted from its dialogs) and its spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopAd {
    pub ad_id: String,
    pub name: Option<String>,
    pub campaign_name: Option<String>,
    pub qualified: i64,
    pub spend: crate::analytics::Money,
}

impl TopAd {
    /// Spend ÷ qualified leads, in cents.
    pub fn cost_cents(&self) -> i64 {
        self.spend.cents / self.qualified.max(1)
    }
}

/// How many ads the report names.
pub const TOP_ADS: usize = 3;

/// The ads with qualified leads and spend, cheapest qualified lead first
/// (more leads first on a tie), at most [`TOP_ADS`].
pub fn top_ads(mut ads: Vec<TopAd>) -> Vec<TopAd> {
    ads.retain(|a| a.qualified > 0 && a.spend.cents > 0);
    ads.sort_by(|a, b| {
        a.cost_cents()
            .cmp(&b.cost_cents())
            .then(b.qualified.cmp(&a.qualified))
            .then(a.ad_id.cmp(&b.ad_id))
    });
    ads.truncate(TOP_ADS);
    ads
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub total_dialogs: i64,
    pub new_dialogs: i64,
    pub incoming_messages: i64,
    pub outgoing_messages: i64,
}

/// Builds the report from the account's directions (every one, in any
/// order; the group without a direction has `id: None`).
pub fn build(
    date: NaiveDate,
    language: ReportLanguage,
    mut days: Vec<DirectionDay>,
) -> DailyReport {
    let mut totals = Totals::default();
    for d in &days {
        totals.total_dialogs += d.counts.total_dialogs;
        totals.new_dialogs += d.counts.new_dialogs;
        totals.incoming_messages += d.counts.incoming_messages;
        totals.outgoing_messages += d.counts.outgoing_messages;
    }
    // The first CAPI direction by name, for the legacy field.
    let mut capi_dirs: Vec<&DirectionDay> = days
        .iter()
        .filter(|d| d.capi_enabled && d.id.is_some())
        .collect();
    capi_dirs.sort_by(|a, b| a.name.cmp(&b.name));
    let capi_direction_id = capi_dirs.first().and_then(|d| d.id);
    let capi_distribution = (!capi_dirs.is_empty()).then(|| {
        let mut sum = CapiDistribution::default();
        for d in &capi_dirs {
            sum.add(&d.capi);
        }
        sum
    });
    let capi_source_used = capi_dirs.iter().any(|d| d.capi.any());
    days.retain(DirectionDay::has_data);
    days.sort_by(|a, b| {
        (a.id.is_none(), -a.counts.total_dialogs, &a.name).cmp(&(
            b.id.is_none(),
            -b.counts.total_dialogs,
            &b.name,
        ))
    });
    DailyReport {
        date,
        language,
        directions: days.iter().map(DirectionDay::data).collect(),
        totals,
        capi_distribution,
        capi_source_used,
        capi_direction_id,
        top_ads: Vec::new(),
    }
}

/// The name of the group of dialogs without a direction.
pub fn no_direction_name(language: ReportLanguage) -> &'static str {
    match language {
        ReportLanguage::Ru => "Без направления",
        ReportLanguage::En => "No direction",
    }
}

const RULE: &str = "━━━━━━━━━━━━━━━━━━━━━━";

struct Words {
    title: &'static str,
    general: &'static str,
    total: &'static str,
    new: &'static str,
    messages: &'static str,
    by_direction: &'static str,
    dialogs: &'static str,
    new_in: &'static str,
    funnel: &'static str,
    interest: &'static str,
    qualified: &'static str,
    scheduled: &'static str,
    purchases: &'static str,
    conversion: &'static str,
    temperature: &'static str,
    response: &'static str,
    sec: &'static str,
    min: &'static str,
    hour: &'static str,
    top_ads: &'static str,
    qualified_leads: &'static str,
    spend: &'static str,
}

const RU: Words = Words {
    title: "Отчёт по перепискам за",
    general: "ОБЩАЯ СТАТИСТИКА",
    total: "Всего диалогов",
    new: "Новых",
    messages: "Сообщений",
    by_direction: "ПО НАПРАВЛЕНИЯМ",
    dialogs: "Диалогов",
    new_in: "новых",
    funnel: "Воронка CAPI",
    interest: "Интерес",
    qualified: "Квалиф.",
    scheduled: "Записался",
    purchases: "Покупки",
    conversion: "Конверсия",
    temperature: "Интерес",
    response: "Среднее время ответа",
    sec: "сек",
    min: "мин",
    hour: "ч",
    top_ads: "ЛУЧШИЕ ОБЪЯВЛЕНИЯ (цена квалифицированного лида)",
    qualified_leads: "квалиф.",
    spend: "расход",
};

const EN: Words = Words {
    title: "Conversation report for",
    general: "OVERALL",
    total: "Dialogs",
    new: "New",
    messages: "Messages",
    by_direction: "BY DIRECTION",
    dialogs: "Dialogs",
    new_in: "new",
    funnel: "CAPI funnel",
    interest: "Interest",
    qualified: "Qualified",
    scheduled: "Booked",
    purchases: "Purchases",
    conversion: "Conversion",
    temperature: "Interest",
    response: "Average response time",
    sec: "sec",
    min: "min",
    hour: "h",
    top_ads: "TOP ADS (cost per qualified lead)",
    qualified_leads: "qualified",
    spend: "spend",
};

const MONTHS_RU: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn long_date(date: NaiveDate, language: ReportLanguage) -> String {
    let months = match language {
        ReportLanguage::Ru => &MONTHS_RU,
        ReportLanguage::En => &MONTHS_EN,
    };
    let month = months[date.month0() as usize];
    format!("{} {month} {}", date.day(), date.year())
}

/// Minutes as the report says them: "45 сек", "12 мин", "1 ч 5 мин".
fn duration_words(minutes: f64, w: &Words) -> String {
    let secs = (minutes * 60.0).round() as i64;
    if secs < 60 {
        return format!("{secs} {}", w.sec);
    }
    let mins = (minutes.round()) as i64;
    if mins < 60 {
        return format!("{mins} {}", w.min);
    }
    match mins % 60 {
        0 => format!("{} {}", mins / 60, w.hour),
        m => format!("{} {} {m} {}", mins / 60, w.hour, w.min),
    }
}

/// An amount as the report writes it: `15000 RUB`, `1500.50 USD`.
fn money_words(m: &crate::analytics::Money) -> String {
    let (units, cents) = (m.cents / 100, (m.cents % 100).abs());
    if cents == 0 {
        format!("{units} {}", m.currency)
    } else {
        format!("{units}.{cents:02} {}", m.currency)
    }
}

/// The report's text, as sent to Telegram.
pub fn render(r: &DailyReport) -> String {
    let w = match r.language {
        ReportLanguage::Ru => &RU,
        ReportLanguage::En => &EN,
    };
    let t = &r.totals;
    let mut out = format!(
        "📊 {} {}\n{RULE}\n\n📈 {}\n• {}: {}\n• {}: {}\n• {}: 📥 {} / 📤 {}\n",
        w.title,
        long_date(r.date, r.language),
        w.general,
        w.total,
        t.total_dialogs,
        w.new,
        t.new_dialogs,
        w.messages,
        t.incoming_messages,
        t.outgoing_messages,
    );
    if !r.top_ads.is_empty() {
        out.push_str(&format!("\n{RULE}\n🏆 {}\n", w.top_ads));
        for (i, a) in r.top_ads.iter().enumerate() {
            let name = a.name.as_deref().unwrap_or(&a.ad_id);
            let campaign = a
                .campaign_name
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let cost = crate::analytics::Money {
                cents: a.cost_cents(),
                currency: a.spend.currency.clone(),
            };
            out.push_str(&format!(
                "{}. {name}{campaign}: {} · {} {} · {} {}\n",
                i + 1,
                money_words(&cost),
                a.qualified,
                w.qualified_leads,
                w.spend,
                money_words(&a.spend)
            ));
        }
    }
    if r.directions.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "\n{RULE}\n📁 {} ({})\n",
        w.by_direction,
        r.directions.len()
    ));
    for d in &r.directions {
        out.push_str(&format!(
            "\n📌 {}\n• {}: {} ({}: {})\n• {}: 📥 {} / 📤 {}\n",
            d.direction_name,
            w.dialogs,
            d.total_dialogs,
            w.new_in,
            d.new_dialogs,
            w.messages,
            d.incoming_messages,
            d.outgoing_messages,
        ));
        if d.capi_enabled && d.capi_has_data {
            let c = &d.capi_distribution;
            out.push_str(&format!(
                "\n🎯 {}:\n  👋 {}: {}\n  ✅ {}: {}\n  📅 {}: {}\n",
                w.funnel,
                w.interest,
                c.interest,
                w.qualified,
                c.qualified,
                w.scheduled,
                c.scheduled
            ));
            if c.purchase > 0 {
                let revenue: Vec<String> = c.revenue.iter().map(money_words).collect();
                out.push_str(&format!("  💰 {}: {}", w.purchases, c.purchase));
                if !revenue.is_empty() {
                    out.push_str(&format!(" · {}", revenue.join(" + ")));
                }
                out.push('\n');
            }
            if let Some(pct) = c.conversion_pct() {
                out.push_str(&format!("  📊 {}: {pct}%\n", w.conversion));
            }
        }
        let i = &d.interest_distribution;
        let extras = [
            i.any().then(|| {
                format!(
                    "🌡️ {}: 🔥{} ☀️{} ❄️{}\n",
                    w.temperature, i.hot, i.warm, i.cold
                )
            }),
            d.avg_response_time_minutes
                .map(|m| format!("⏱️ {}: {}\n", w.response, duration_words(m, w))),
        ];
        if extras.iter().any(Option::is_some) {
            out.push('\n');
            for line in extras.into_iter().flatten() {
                out.push_str(&line);
            }
        }
    }
    out
}

/// Telegram's limit on one message, in UTF-16 code units.
pub const TELEGRAM_LIMIT: usize = 4096;

/// Splits a text into messages of at most `limit` UTF-16 units, at line
/// breaks where possible (a longer line is cut at a character boundary).
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    let units = |s: &str| s.encode_utf16().count();
    let mut parts = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if units(&current) + units(line) <= limit {
            current.push_str(line);
            continue;
        }
        if !current.is_empty() {
            parts.push(std::mem::take(&mut current));
        }
        let mut rest = line;
        while units(rest) > limit {
            let mut n = 0;
            let cut = rest
                .char_indices()
                .find(|(_, c)| {
                    n += c.len_utf16();
                    n > limit
                })
                .map_or(rest.len(), |(i, _)| i);
            parts.push(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
        current.push_str(rest);
    }
    if !current.trim().is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(name: &str, capi: bool, counts: GroupCounts, c: CapiDistribution) -> DirectionDay {
        DirectionDay {
            id: Some(crate::ids::DirectionId::from(uuid::Uuid::new_v4())),
            name: name.into(),
            capi_enabled: capi,
            counts,
            capi: c,
        }
    }

    /// The spec's example ("Формат отчёта"), number for number.
    #[test]
    fn the_top_three_ads_by_cost_per_qualified_lead_in_both_languages() {
        let ad = |id: &str, qualified: i64, cents: i64| TopAd {
            ad_id: id.to_owned(),
            name: Some(format!("Ad {id}")),
            campaign_name: Some("Spring".to_owned()),
            qualified,
            spend: crate::analytics::Money {
                cents,
                currency: "USD".to_owned(),
            },
        };
        let top = top_ads(vec![
            ad("1", 2, 3000),  // 15.00 each
            ad("2", 0, 500),   // no qualified lead: left out
            ad("3", 4, 2000),  // 5.00
            ad("4", 1, 0),     // no spend: left out
            ad("5", 1, 1500),  // 15.00, fewer leads than ad 1
            ad("6", 10, 9000), // 9.00
        ]);
        let ids: Vec<&str> = top.iter().map(|a| a.ad_id.as_str()).collect();
        assert_eq!(ids, ["3", "6", "1"]);
        let date = NaiveDate::from_ymd_opt(2025, 12, 28).unwrap_or_default();
        let mut r = build(date, ReportLanguage::Ru, vec![]);
        r.top_ads = top;
        let text = render(&r);
        assert!(
            text.ends_with(
                "🏆 ЛУЧШИЕ ОБЪЯВЛЕНИЯ (цена квалифицированного лида)\n\
                 1. Ad 3 (Spring): 5 USD · 4 квалиф. · расход 20 USD\n\
                 2. Ad 6 (Spring): 9 USD · 10 квалиф. · расход 90 USD\n\
                 3. Ad 1 (Spring): 15 USD · 2 квалиф. · расход 30 USD\n"
            ),
            "{text}"
        );
        r.language = ReportLanguage::En;
        assert!(
            render(&r).contains("🏆 TOP ADS (cost per qualified lead)\n1. Ad 3 (Spring): 5 USD · 4 qualified · spend 20 USD\n"),
            "{}",
            render(&r)
        );
        r.top_ads.clear();
        assert!(!render(&r).contains("🏆"), "no spend, no section");
    }

    #[test]
    fn renders_the_spec_example() {
        let cosmetology = day(
            "Косметология",
            true,
            GroupCounts {
                total_dialogs: 85,
                new_dialogs: 15,
                incoming_messages: 240,
                outgoing_messages: 200,
                ..GroupCounts::default()
            },
            CapiDistribution {
                interest: 45,
                qualified: 12,
                scheduled: 5,
                ..CapiDistribution::default()
            },
        );
        let dentistry = day(
            "Стоматология",
            false,
            GroupCounts {
                total_dialogs: 65,
                new_dialogs: 10,
                interest: InterestDistribution {
                    hot: 15,
                    warm: 30,
                    cold: 20,
                },
                incoming_messages: 180,
                outgoing_messages: 180,
                response_ms_sum: 45_000 * 4,
                responses: 4,
            },
            CapiDistribution::default(),
        );
        let date = NaiveDate::from_ymd_opt(2025, 12, 28).unwrap_or_default();
        let r = build(date, ReportLanguage::Ru, vec![dentistry, cosmetology]);
        let expected = "📊 Отчёт по перепискам за 28 декабря 2025
━━━━━━━━━━━━━━━━━━━━━━

📈 ОБЩАЯ СТАТИСТИКА
• Всего диалогов: 150
• Новых: 25
• Сообщений: 📥 420 / 📤 380

━━━━━━━━━━━━━━━━━━━━━━
📁 ПО НАПРАВЛЕНИЯМ (2)

📌 Косметология
• Диалогов: 85 (новых: 15)
• Сообщений: 📥 240 / 📤 200

🎯 Воронка CAPI:
  👋 Интерес: 45
  ✅ Квалиф.: 12
  📅 Записался: 5
  📊 Конверсия: 27%

📌 Стоматология
• Диалогов: 65 (новых: 10)
• Сообщений: 📥 180 / 📤 180

🌡️ Интерес: 🔥15 ☀️30 ❄️20
⏱️ Среднее время ответа: 45 сек
";
        assert_eq!(render(&r), expected);
        assert_eq!(r.directions[1].avg_response_time_minutes, Some(0.75));
    }

    #[test]
    fn purchases_have_their_line_with_revenue_per_currency() {
        let money = |cents, currency: &str| crate::analytics::Money {
            cents,
            currency: currency.into(),
        };
        let shop = day(
            "Shop",
            true,
            GroupCounts {
                total_dialogs: 3,
                new_dialogs: 3,
                ..GroupCounts::default()
            },
            CapiDistribution {
                interest: 3,
                qualified: 2,
                scheduled: 2,
                purchase: 2,
                revenue: vec![money(1_500_000, "RUB"), money(150_050, "USD")],
            },
        );
        let date = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap_or_default();
        let en = render(&build(date, ReportLanguage::En, vec![shop.clone()]));
        assert!(
            en.contains("  📅 Booked: 2\n  💰 Purchases: 2 · 15000 RUB + 1500.50 USD\n  📊 Conversion: 67%\n"),
            "{en}"
        );
        let ru = render(&build(date, ReportLanguage::Ru, vec![shop]));
        assert!(
            ru.contains("  💰 Покупки: 2 · 15000 RUB + 1500.50 USD\n"),
            "{ru}"
        );
        // A report stored before the purchase level reads as none.
        let old: CapiDistribution =
            serde_json::from_str(r#"{"interest": 1, "qualified": 0, "scheduled": 0}"#)
                .unwrap_or_default();
        assert_eq!((old.interest, old.purchase, old.revenue.len()), (1, 0, 0));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words(0.75, &RU), "45 сек");
        assert_eq!(duration_words(12.4, &EN), "12 min");
        assert_eq!(duration_words(65.0, &RU), "1 ч 5 мин");
        assert_eq!(duration_words(120.0, &EN), "2 h");
    }

    #[test]
    fn splits_at_lines_within_the_limit() {
        let text = "🔥🔥🔥\nabc\n".repeat(10);
        let parts = split_message(&text, 20);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= 20));
        assert_eq!(parts.concat(), text);
        let long = "я".repeat(50);
        let parts = split_message(&long, 16);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts.concat(), long);
    }
}
