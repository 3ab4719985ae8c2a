//! Who may change the set-up from the dashboard: a viewer gets 403 on every
//! set-up page and form (even with its own valid CSRF token); an editor's
//! form without the token, or with another session's, gets 403; none of
//! them changes anything or leaves an audit entry.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use domain::api_key::Role;
use pipeline_tests::dashboard_session::DashboardSession;
use pipeline_tests::{
    DASHBOARD_SECRET, ReportsService, SeedOptions, TestEnv, count, reports_settings, seed,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_editor_with_its_sessions_token_changes_the_set_up() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let service = ReportsService::start(&env, reports_settings("http://127.0.0.1:9")).await;
    let account = s.user_account_id.uuid();
    let d = s.direction_id;
    let viewer = DashboardSession::sign_in(&service, account, Role::Viewer).await;
    let editor = DashboardSession::sign_in(&service, account, Role::Editor).await;
    let other_editor = DashboardSession::sign_in(&service, account, Role::Editor).await;

    let pages = [
        "/dashboard/setup".to_owned(),
        format!("/dashboard/setup/directions/{d}"),
        format!("/dashboard/setup/directions/{d}/crm"),
        "/dashboard/setup/audit".to_owned(),
    ];
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/dashboard/setup/directions".into(),
            vec![("name", "Viewer's")],
        ),
        (
            format!("/dashboard/setup/directions/{d}"),
            vec![("pixel", "999")],
        ),
        (
            format!("/dashboard/setup/directions/{d}/bot"),
            vec![("bot_enabled", "false")],
        ),
        (format!("/dashboard/setup/directions/{d}/dataset"), vec![]),
        (
            format!("/dashboard/setup/directions/{d}/crm-rules"),
            vec![("level", "qualified"), ("pick", "status_id|142")],
        ),
        (
            format!("/dashboard/setup/directions/{d}/crm-test"),
            vec![("deal", "1")],
        ),
        (
            "/dashboard/setup/instances".into(),
            vec![
                ("instance", "x"),
                ("direction", "00000000-0000-0000-0000-000000000000"),
            ],
        ),
    ];

    // The viewer: the dashboard, without a way into the set-up.
    let dash = viewer.get("/dashboard").await;
    assert_eq!(dash.status, 200);
    assert!(
        !dash.body.contains("/dashboard/setup"),
        "no set-up link for a viewer"
    );
    assert!(
        editor
            .get("/dashboard")
            .await
            .body
            .contains(r#"href="/dashboard/setup""#)
    );
    for p in &pages {
        let a = viewer.get(p).await;
        assert_eq!(a.status, 403, "viewer GET {p}: {}", a.body);
        assert!(a.body.contains("read-only"), "{}", a.body);
        assert_eq!(editor.get(p).await.status, 200, "editor GET {p}");
    }
    // Even with a token that is valid for its own session.
    let viewer_hash = domain::api_key::hash(viewer.cookie.split_once('=').unwrap().1);
    let viewer_token = domain::api_key::csrf_token(DASHBOARD_SECRET.as_bytes(), &viewer_hash);
    let foreign_token = other_editor.csrf().await;
    for (path, fields) in &forms {
        let mut with = vec![("csrf", viewer_token.as_str())];
        with.extend_from_slice(fields);
        let a = viewer.post(path, &with).await;
        assert_eq!(a.status, 403, "viewer POST {path}: {}", a.body);
        // An editor's form without the token, or with another session's.
        let a = editor.post(path, fields).await;
        assert_eq!(a.status, 403, "no token POST {path}");
        assert!(a.body.contains("security token"), "{}", a.body);
        let mut foreign = vec![("csrf", foreign_token.as_str())];
        foreign.extend_from_slice(fields);
        let a = editor.post(path, &foreign).await;
        assert_eq!(a.status, 403, "foreign token POST {path}");
    }
    // Nothing changed.
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM setup_changes").await,
        0
    );
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM account_directions").await,
        1
    );
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM account_directions WHERE pixel_id = '1234567890' AND bot_enabled").await,
        1
    );
    // Signed out: sign in first.
    let gone = reqwest::Client::new()
        .get(service.url("/dashboard/setup"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 401);
    // An attacker's 1 MiB form: refused by size before it is read, even
    // with a session.
    let huge = format!("csrf=x&name={}", "a".repeat(1 << 20));
    let a = reqwest::Client::new()
        .post(service.url("/dashboard/setup/directions"))
        .header("cookie", &editor.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(a.status().as_u16(), 413);
    // The editor with its token: the change is made and audited.
    let a = editor
        .post_form(
            &format!("/dashboard/setup/directions/{d}"),
            &[("pixel", "999")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM setup_changes WHERE actor LIKE 'link:%'"
        )
        .await,
        1
    );
    service.stop().await;
}
