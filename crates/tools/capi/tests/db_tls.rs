//! PostgreSQL over TLS (`sslmode`, `sslrootcert` in the database URL)
//! against the private PostgreSQL of `scripts/test`, switched to TLS with a
//! certificate this test makes: a CA of its own (openssl) signs a server
//! certificate for `localhost` only; a second CA signs nothing.
//!
//! The server's TLS files go into its data directory (it must read them; a
//! reload loads them). TLS stays switched on only for the test's middle
//! part: plain-text clients (every other test) are unaffected either way.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use diesel::{QueryableByName, sql_types::Bool, sql_types::Nullable, sql_types::Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use pipeline_tests::TestEnv;
use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};
use storage::PgTarget;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
    #[diesel(sql_type = Nullable<Text>)]
    version: Option<String>,
}

/// Whether this session is encrypted, as the server sees it.
async fn session_ssl(conn: &mut AsyncPgConnection) -> Ssl {
    diesel::sql_query("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(conn)
        .await
        .expect("pg_stat_ssl")
}

async fn sql(conn: &mut AsyncPgConnection, statement: &str) {
    diesel::sql_query(statement)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A self-signed CA: `<name>.crt`, `<name>.key`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, crt, subject) = (
        format!("{name}.key"),
        format!("{name}.crt"),
        format!("/CN=capi test {name}"),
    );
    let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
    args.extend(EC);
    args.extend([
        "-keyout",
        &key,
        "-out",
        &crt,
        "-subj",
        &subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
    dir.join(crt)
}

/// A server certificate for `localhost` (and no IP address) signed by `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    let mut args = vec!["req", "-nodes", "-subj", "/CN=localhost"];
    args.extend(EC);
    args.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
    )
    .unwrap();
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
}

/// The test database's URL with another host and query.
fn url_with(env: &TestEnv, host: &str, query: &str) -> String {
    assert!(env.db_url.contains("@127.0.0.1:"), "{}", env.db_url);
    let url = env.db_url.replacen("@127.0.0.1:", &format!("@{host}:"), 1);
    format!("{url}?{query}")
}

async fn connect(url: &str) -> Result<AsyncPgConnection, String> {
    let target = PgTarget::parse(url).map_err(|e| format!("parse: {e}"))?;
    target.connect().await.map_err(|e| e.to_string())
}

async fn ssl_of(url: &str) -> Ssl {
    let mut conn = connect(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    session_ssl(&mut conn).await
}

async fn refusal(url: &str) -> String {
    match connect(url).await {
        Ok(mut conn) => panic!("{url} connected: {:?}", session_ssl(&mut conn).await),
        Err(e) => e,
    }
}

/// Switches the server's TLS on (files made by this test) or off, and waits
/// until new sessions see it.
async fn server_tls(admin: &mut AsyncPgConnection, files: Option<&Path>) {
    match files {
        Some(dir) => {
            let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
            sql(
                admin,
                &format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()),
            )
            .await;
            sql(
                admin,
                &format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
            )
            .await;
            sql(admin, "ALTER SYSTEM SET ssl = 'on'").await;
        }
        None => {
            for setting in ["ssl", "ssl_cert_file", "ssl_key_file"] {
                sql(admin, &format!("ALTER SYSTEM RESET {setting}")).await;
            }
        }
    }
    sql(admin, "SELECT pg_reload_conf()").await;
    let want = if files.is_some() { "on" } else { "off" };
    for _ in 0..100 {
        let mut fresh = pipeline_tests::admin_connection().await;
        let now: Setting = diesel::sql_query("SELECT current_setting('ssl') AS value")
            .get_result(&mut fresh)
            .await
            .unwrap();
        if now.value == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the server's ssl did not become {want} (see its log: a bad key file is refused there)");
}

fn capi(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(args)
        .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
        .output()
        .expect("run capi");
    pipeline_tests::exit_and_output(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_against_a_server_with_a_certificate_of_our_own() {
    let env = TestEnv::unmigrated().await;
    let mut admin = pipeline_tests::admin_connection().await;

    // The server's files, in its data directory, owned like it.
    let data: Setting = diesel::sql_query("SELECT current_setting('data_directory') AS value")
        .get_result(&mut admin)
        .await
        .unwrap();
    let data = PathBuf::from(data.value);
    let server_dir = data.join("capi-test-tls");
    let _ = std::fs::remove_dir_all(&server_dir);
    std::fs::create_dir_all(&server_dir).unwrap();
    // The clients' CA files, anywhere.
    let client_dir = std::env::temp_dir().join(format!("capi-db-tls-{}", std::process::id()));
    std::fs::create_dir_all(&client_dir).unwrap();
    let right_ca = make_ca(&client_dir, "right-ca");
    let wrong_ca = make_ca(&client_dir, "wrong-ca");
    for f in ["right-ca.crt", "right-ca.key"] {
        std::fs::copy(client_dir.join(f), server_dir.join(f)).unwrap();
    }
    make_server_cert(&server_dir, "right-ca");
    let owner = std::fs::metadata(&data).unwrap();
    for f in ["server.crt", "server.key"] {
        let path = server_dir.join(f);
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (right, wrong) = (right_ca.display(), wrong_ca.display());

    // Plain-text server: `require` does not fall back, `prefer` does.
    server_tls(&mut admin, None).await;
    let no_tls = refusal(&url_with(&env, "localhost", "sslmode=require")).await;
    assert!(no_tls.contains("TLS"), "{no_tls}");
    assert_eq!(
        ssl_of(&url_with(&env, "localhost", "sslmode=prefer")).await,
        Ssl {
            ssl: false,
            version: None
        }
    );

    server_tls(&mut admin, Some(&server_dir)).await;

    // verify-full: the right CA and the certificate's name.
    let full = url_with(
        &env,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={right}"),
    );
    let seen = ssl_of(&full).await;
    assert!(seen.ssl, "{seen:?}");
    assert!(
        seen.version
            .as_deref()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{seen:?}"
    );
    // …a CA that did not sign it…
    let unknown = refusal(&url_with(
        &env,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={wrong}"),
    ))
    .await;
    assert!(unknown.contains("UnknownIssuer"), "{unknown}");
    // …a host name the certificate does not carry: verify-full refuses,
    // verify-ca (the chain only) connects.
    let by_ip = refusal(&url_with(
        &env,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={right}"),
    ))
    .await;
    assert!(
        by_ip.contains("certificate not valid for name \"127.0.0.1\""),
        "{by_ip}"
    );
    assert!(
        ssl_of(&url_with(
            &env,
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={right}")
        ))
        .await
        .ssl
    );
    let ca_wrong = refusal(&url_with(
        &env,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={wrong}"),
    ))
    .await;
    assert!(ca_wrong.contains("UnknownIssuer"), "{ca_wrong}");
    // require: encrypted without a CA; with one, checked as verify-ca (libpq).
    assert!(
        ssl_of(&url_with(&env, "127.0.0.1", "sslmode=require"))
            .await
            .ssl
    );
    let require_wrong = refusal(&url_with(
        &env,
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={wrong}"),
    ))
    .await;
    assert!(require_wrong.contains("UnknownIssuer"), "{require_wrong}");
    // The default (no sslmode) is plain text, as before.
    assert!(!ssl_of(&env.db_url).await.ssl);

    // The services' pool and the migrations go the same way.
    let pool = storage::connect_pool(&full, 2).unwrap();
    storage::ping(&pool).await.unwrap();
    assert!(session_ssl(&mut pool.get().await.unwrap()).await.ssl);
    // The CLI: `capi migrate` over verify-full applies the schema; with the
    // wrong CA it stops and says why.
    let wrong_url = url_with(
        &env,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={wrong}"),
    );
    let (code, _, err) = capi(&["migrate", "--database-url", &wrong_url]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot connect to PostgreSQL") && err.contains("UnknownIssuer"),
        "{err}"
    );
    let (code, out, err) = capi(&["migrate", "--database-url", &full]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(r#""applied":["#) && !out.contains(r#""applied":[]"#),
        "{out}"
    );
    let mut conn = connect(&full).await.unwrap();
    let pending = storage::migrations::pending(&mut conn).await.unwrap();
    assert!(pending.is_empty(), "{pending:?}");

    server_tls(&mut admin, None).await;
    let _ = std::fs::remove_dir_all(&client_dir);
}
