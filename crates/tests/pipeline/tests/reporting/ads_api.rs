//! Results per campaign, ad set and ad against real PostgreSQL: the rows
//! equal a hand-computed fixture (two campaigns, three ads, a dialog
//! without an ad id, one whose ad insights never named, a purchase), they
//! add up to the summary's cards, and a direction's cost is its ads' spend.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::reports_api::{get, key_for};
use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{ReportsService, SandboxServer, TestEnv, report_day as day, reports_settings};
use serde_json::{Value, json};

/// The day fixture (11-20, Asia/Almaty) with ads. New dialogs of the CAPI
/// direction in 11-19..11-21: a1 (ad 901), a2 (no ad id), a4 (ad 903), a5
/// (ad 777, never in insights); a3 (ad 901) began before the range.
/// Events: e1 and e3 (Leads) and e4 (Registration) from a1/a3's ad 901,
/// e2 (Lead) from a2, e6 (Lead) from a5, purchase p1 (120.00 USD, logged
/// twice) from a4. Spend in the range: 901 (Spring / Set 1 / Ad A) 30.00,
/// 902 (Spring / Set 1 / Ad B) 5.00, 903 (Autumn / Set 2 / Ad C) 40.00 —
/// and 100.00 on 11-10, outside —, a CSV row for Autumn without an ad 5.00.
async fn world() -> (TestEnv, ReportsService, day::Fixture, String, SandboxServer) {
    let env = TestEnv::new().await;
    let f = day::seed_day(&env, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()).await;
    let dialog = |i: usize| {
        format!(
            "(SELECT id FROM dialog_analysis WHERE lead_id = '{}')",
            f.leads[i]
        )
    };
    let (a1, a2, a3, a4, a5) = (dialog(0), dialog(1), dialog(2), dialog(3), dialog(4));
    env.conn()
        .await
        .batch_execute(&format!(
            "UPDATE dialog_analysis SET ad_id = '901' WHERE id IN ({a1}, {a3});
             UPDATE dialog_analysis SET ad_id = '903' WHERE id = {a4};
             UPDATE dialog_analysis SET ad_id = '777' WHERE id = {a5};
             UPDATE capi_events_log SET dialog_id = {a1} WHERE event_id IN ('e1', 'e4');
             UPDATE capi_events_log SET dialog_id = {a3} WHERE event_id = 'e3';
             UPDATE capi_events_log SET dialog_id = {a2} WHERE event_id = 'e2';
             UPDATE capi_events_log SET dialog_id = {a5} WHERE event_id = 'e6';
             INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, status, finished_at,
                                          order_ref, purchase_value, purchase_currency)
               VALUES ({a4}, 4, 'p1', '2026-11-20T08:00:00Z', 'success', '2026-11-20T08:00:05Z', 'INV-1', 120.00, 'USD');
             INSERT INTO capi_events_log (dialog_id, direction_id, user_account_id, event_level, event_name, event_id, status, created_at)
               VALUES ({a4}, '{d}', '{u}', 4, 'Purchase', 'p1', 'success', '2026-11-20T08:00:05Z'),
                      ({a4}, '{d}', '{u}', 4, 'Purchase', 'p1', 'success', '2026-11-20T08:00:06Z');
             INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, campaign_name, adset_id, adset_name,
                                   ad_id, ad_name, spend, currency, source) VALUES
               ('{a}', '2026-11-20', 'c1', 'Spring', 's1', 'Set 1', '901', 'Ad A', 20.00, 'USD', 'api'),
               ('{a}', '2026-11-21', 'c1', 'Spring', 's1', 'Set 1', '901', 'Ad A', 10.00, 'USD', 'api'),
               ('{a}', '2026-11-20', 'c1', 'Spring', 's1', 'Set 1', '902', 'Ad B', 5.00, 'USD', 'api'),
               ('{a}', '2026-11-20', 'c2', 'Autumn', 's2', 'Set 2', '903', 'Ad C', 40.00, 'USD', 'api'),
               ('{a}', '2026-11-10', 'c2', 'Autumn', 's2', 'Set 2', '903', 'Ad C', 100.00, 'USD', 'api'),
               ('{a}', '2026-11-21', 'c2', 'Autumn', '', NULL, '', NULL, 5.00, 'USD', 'csv');",
            a = f.ad_account,
            d = f.cosmetology,
            u = f.account,
        ))
        .await
        .unwrap();
    let (_, key) = key_for(&env, f.account).await;
    let sandbox = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    (env, service, f, key, sandbox)
}

/// The figures a marketer compares, of one row or the totals.
fn figures(r: &Value) -> Value {
    json!({
        "dialogs": r["leads"], "lead": r["lead"], "registration": r["registration"],
        "schedule": r["schedule"], "purchase": r["purchase"],
        "spend": r["spend"]["amount"], "revenue": r["revenue"][0]["amount"], "roas": r["revenue"][0]["roas"],
        "cost_per_lead": r["cost_per_lead"], "cost_per_registration": r["cost_per_registration"],
        "cost_per_purchase": r["cost_per_purchase"],
        "lead_to_registration_pct": r["conversions"]["lead_to_registration_pct"],
    })
}

fn row(
    dialogs: i64,
    [lead, registration, purchase]: [i64; 3],
    spend: Option<f64>,
    revenue: Option<f64>,
) -> Value {
    let per = |n: i64| {
        spend
            .filter(|_| n > 0)
            .map(|s| (s / n as f64 * 100.0).round() / 100.0)
    };
    json!({
        "dialogs": dialogs, "lead": lead, "registration": registration, "schedule": 0, "purchase": purchase,
        "spend": spend, "revenue": revenue,
        "roas": revenue.zip(spend).map(|(r, s)| (r / s * 100.0).round() / 100.0),
        "cost_per_lead": per(lead), "cost_per_registration": per(registration), "cost_per_purchase": per(purchase),
        "lead_to_registration_pct": (lead > 0).then(|| (registration as f64 * 1000.0 / lead as f64).round() / 10.0),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_per_ad_equal_the_hand_computed_fixture_and_add_up_to_the_cards() {
    let (_env, service, f, key, _sandbox) = world().await;
    let range = format!(
        "user_account_id={}&since=2026-11-19&until=2026-11-21",
        f.account
    );
    let ads = |q: &str| {
        let path = format!("/analytics/ads?{range}{q}");
        let (service, key) = (&service, &key);
        async move {
            let (status, body) = get(service, &path, Some(key)).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };

    let by_ad = ads("&group=ad").await;
    assert_eq!(by_ad["group"], "ad");
    let rows: Vec<(Value, Value, Value, Value, Value)> = by_ad["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].clone(),
                r["id"].clone(),
                r["name"].clone(),
                json!([r["campaign_name"], r["adset_name"]]),
                figures(r),
            )
        })
        .collect();
    let expected = vec![
        (
            json!("insights"),
            json!("903"),
            json!("Ad C"),
            json!(["Autumn", "Set 2"]),
            row(1, [0, 0, 1], Some(40.0), Some(120.0)),
        ),
        (
            json!("insights"),
            json!("901"),
            json!("Ad A"),
            json!(["Spring", "Set 1"]),
            row(1, [2, 1, 0], Some(30.0), None),
        ),
        (
            json!("insights"),
            json!("902"),
            json!("Ad B"),
            json!(["Spring", "Set 1"]),
            row(0, [0, 0, 0], Some(5.0), None),
        ),
        (
            json!("no_ad_id"),
            Value::Null,
            Value::Null,
            json!([null, null]),
            row(1, [1, 0, 0], Some(5.0), None),
        ),
        (
            json!("not_in_insights"),
            Value::Null,
            Value::Null,
            json!([null, null]),
            row(1, [1, 0, 0], None, None),
        ),
    ];
    assert_eq!(rows, expected, "sorted by spend, the two special rows last");
    assert_eq!(
        figures(&by_ad["totals"]),
        row(4, [4, 1, 1], Some(80.0), Some(120.0))
    );

    let by_campaign = ads("&group=campaign&sort=roas").await;
    let campaigns: Vec<(Value, Value, Value)> = by_campaign["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].clone(), r["name"].clone(), figures(r)))
        .collect();
    assert_eq!(
        campaigns,
        vec![
            (
                json!("c2"),
                json!("Autumn"),
                row(1, [0, 0, 1], Some(45.0), Some(120.0))
            ),
            (
                json!("c1"),
                json!("Spring"),
                row(1, [2, 1, 0], Some(35.0), None)
            ),
            (Value::Null, Value::Null, row(1, [1, 0, 0], None, None)),
            (Value::Null, Value::Null, row(1, [1, 0, 0], None, None)),
        ],
        "ROAS first; the CSV row of Autumn counts in its campaign"
    );
    let by_set = ads("&group=adset&sort=dialogs&order=asc").await;
    let sets: Vec<&str> = by_set["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(sets, ["s1", "s2"]);

    // Every grouping adds up to the summary's cards.
    let (_, cards) = get(
        &service,
        &format!("/analytics/capi-stats?{range}"),
        Some(&key),
    )
    .await;
    for table in [&by_ad, &by_campaign, &by_set] {
        assert_eq!(
            figures(&table["totals"]),
            figures(&cards),
            "{}",
            table["group"]
        );
        let mut sums = [0i64; 5];
        for r in table["rows"].as_array().unwrap() {
            for (i, k) in ["leads", "lead", "registration", "purchase"]
                .iter()
                .enumerate()
            {
                sums[i] += r[k].as_i64().unwrap();
            }
            sums[4] += (r["spend"]["amount"].as_f64().unwrap_or(0.0) * 100.0).round() as i64;
        }
        assert_eq!(sums, [4, 4, 1, 1, 8000], "{}", table["group"]);
    }

    // The direction's cost: the spend of its dialogs' ads (901 and 903), not
    // the ad account's whole 80.00.
    let cosmetology = cards["directions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Косметология")
        .unwrap();
    assert_eq!(
        (
            &cosmetology["spend"],
            &cosmetology["spend_basis"],
            &cosmetology["cost_per_lead"]
        ),
        (
            &json!({"amount": 70.0, "currency": "USD"}),
            &json!("ads"),
            &json!(17.5)
        )
    );
    let dentistry = cards["directions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Стоматология")
        .unwrap();
    assert_eq!(
        (&dentistry["spend"], &dentistry["spend_basis"]),
        (&Value::Null, &Value::Null)
    );

    // Bad parameters are 400s naming them.
    for (q, name) in [
        ("&group=creative", "group"),
        ("&sort=ctr", "sort"),
        ("&order=up", "order"),
    ] {
        let (status, body) = get(&service, &format!("/analytics/ads?{range}{q}"), Some(&key)).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(body["code"], "bad_parameter");
        assert!(
            body["message"].as_str().unwrap().starts_with(name),
            "{body}"
        );
    }
}
