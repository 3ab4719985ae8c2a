//! Reports, spend, API keys and dashboard links.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_reports_spend_keys_and_dashboard_links_from_the_cli() {
    let env = pipeline_tests::TestEnv::new().await;
    let db = env.db_url.as_str();
    let day = "2026-11-20";
    let f = pipeline_tests::report_day::seed_day(
        &env,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    )
    .await;
    let account = f.account.to_string();

    // Report settings: a bad zone is refused naming the flag; the token from stdin.
    let (code, _, err) = capi_on(
        db,
        &["account", "set", &account, "--timezone", "Mars/Olympus"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--timezone: \"Mars/Olympus\" is not a time zone"),
        "{err}"
    );
    let (code, _, err) = capi_stdin(
        &[
            "account",
            "set",
            &account,
            "--report-language",
            "en",
            "--telegram-chat-id",
            "-1001",
            "--telegram-bot-token",
            "-",
            "--database-url",
            db,
        ],
        "123456:SECRET-bot-token\n",
    );
    assert_eq!(code, 0, "{err}");

    // Generate, then regenerate: the second changes nothing.
    let out: Value = capi_json(
        db,
        &[
            "report",
            "generate",
            "--user-account",
            &account,
            "--date",
            day,
        ],
    );
    assert_eq!(out["stored"], "created");
    assert!(
        out["text"]
            .as_str()
            .unwrap()
            .starts_with("📊 Conversation report for 20 November 2026")
    );
    assert_eq!(out["directions_data"].as_array().unwrap().len(), 3);
    let again: Value = capi_json(
        db,
        &[
            "report",
            "generate",
            "--user-account",
            &account,
            "--date",
            day,
        ],
    );
    assert_eq!(again["stored"], "unchanged");
    let shown: Value = capi_json(
        db,
        &["report", "show", "--user-account", &account, "--date", day],
    );
    assert_eq!(shown["telegram_status"], "pending");
    assert!(
        !shown.to_string().contains("SECRET"),
        "the bot token is never printed"
    );

    // Spend from a CSV: all rows, or none with the line named.
    let dir = std::env::temp_dir().join(format!("capi-spend-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(&good, "date,campaign_id,campaign_name,spend,currency\n2026-11-20,c1,Spring,12.30,USD\n2026-11-21,c1,Spring,7.70,USD\n").unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "date,spend\n2026-11-22,3.00\n2026-11-23,lots\n").unwrap();
    let ad = f.ad_account.to_string();
    let out = capi_ok(
        db,
        &[
            "spend",
            "import",
            good.to_str().unwrap(),
            "--ad-account",
            &ad,
        ],
    );
    assert!(out.contains("\"rows\":2"), "{out}");
    let (code, _, err) = capi_on(
        db,
        &[
            "spend",
            "import",
            bad.to_str().unwrap(),
            "--ad-account",
            &ad,
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("line 3: spend: expected a non-negative amount"),
        "{err}"
    );
    assert_eq!(
        pipeline_tests::count(
            &env,
            "SELECT count(*) AS n FROM ad_spend WHERE source = 'csv'"
        )
        .await,
        2
    );
    assert_eq!(
        pipeline_tests::count(&env, "SELECT (sum(spend) * 100)::bigint AS n FROM ad_spend").await,
        2000
    );
    // Re-importing the same file replaces, never doubles.
    capi_ok(
        db,
        &[
            "spend",
            "import",
            good.to_str().unwrap(),
            "--ad-account",
            &ad,
        ],
    );
    assert_eq!(
        pipeline_tests::count(&env, "SELECT count(*) AS n FROM ad_spend").await,
        2
    );

    // API keys: printed once, stored hashed, revocable.
    let created: Value = capi_json(
        db,
        &[
            "api-key",
            "create",
            "--user-account",
            &account,
            "--name",
            "roi",
        ],
    );
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("capi_") && key.len() == 69);
    assert_eq!(
        pipeline_tests::count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM api_keys WHERE key_hash = '{}'",
                domain::api_key::hash(key)
            )
        )
        .await,
        1
    );
    assert_eq!(
        pipeline_tests::count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM api_keys WHERE key_hash LIKE '%{}%'",
                &key[5..20]
            )
        )
        .await,
        0
    );
    let listed = capi_ok(db, &["api-key", "list", "--user-account", &account]);
    assert!(!listed.contains(key), "{listed}");
    let id = created["id"].as_str().unwrap();
    capi_ok(db, &["api-key", "revoke", id]);
    let (code, _, err) = capi_on(db, &["api-key", "revoke", id]);
    assert_eq!(code, 2, "{err}");

    // A dashboard link: refused without the secret, signed with it.
    let link = |secret: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_capi"));
        cmd.env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY);
        cmd.args([
            "dashboard-link",
            "--user-account",
            &account,
            "--database-url",
            db,
        ]);
        cmd.env_remove("CAPI_REPORTS__DASHBOARD_SECRET");
        if let Some(s) = secret {
            cmd.env("CAPI_REPORTS__DASHBOARD_SECRET", s)
                .env("CAPI_REPORTS__PUBLIC_URL", "https://reports.example.com");
        }
        cmd.output().unwrap()
    };
    let off = link(None);
    assert_eq!(off.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&off.stderr).contains("reports.dashboard_secret is not set"));
    let weak = link(Some("s3cret"));
    assert_eq!(weak.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("is not a strong key"),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );
    let secret = pipeline_tests::DASHBOARD_SECRET;
    let on = link(Some(secret));
    assert_eq!(
        on.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&on.stderr)
    );
    let printed: Value = serde_json::from_slice(&on.stdout).unwrap();
    let url = printed["url"].as_str().unwrap();
    let token = url
        .strip_prefix("https://reports.example.com/dashboard/login?token=")
        .expect(url);
    let now = chrono::Utc::now().timestamp();
    let grant = domain::api_key::verify_link(secret.as_bytes(), token, now).expect("a valid link");
    assert_eq!(
        (grant.account, grant.generation),
        (domain::ids::UserAccountId::from(f.account), 0)
    );
    assert_eq!(
        domain::api_key::verify_link(secret.as_bytes(), token, now + 16 * 60),
        None,
        "short-lived: 15 minutes"
    );
    // Ending the account's sessions moves it to the next generation: the
    // next link carries it.
    let revoked: Value = serde_json::from_str(&capi_ok(
        db,
        &["dashboard-sessions", "revoke", "--user-account", &account],
    ))
    .unwrap();
    assert_eq!(revoked["generation"], 1, "{revoked}");
    assert_eq!(revoked["sessions_ended"], 0, "{revoked}");
    let again: Value = serde_json::from_slice(&link(Some(secret)).stdout).unwrap();
    let token = again["url"]
        .as_str()
        .unwrap()
        .rsplit_once("token=")
        .unwrap()
        .1
        .to_owned();
    assert_eq!(
        domain::api_key::verify_link(secret.as_bytes(), &token, now).map(|g| g.generation),
        Some(1)
    );
    let (code, _, err) = capi_on(
        db,
        &[
            "dashboard-sessions",
            "revoke",
            "--user-account",
            &uuid::Uuid::new_v4().to_string(),
        ],
    );
    assert_eq!(code, 2, "{err}");
}
