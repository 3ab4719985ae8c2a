//! The `capi` binary as an operator runs it, one module per command group;
//! the helpers every group uses are here.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use serde_json::{Value, json};
use std::{path::PathBuf, process::Command};

mod crm;
mod customer;
mod doctor;
mod inspect;
mod qualification;
mod reports;
mod setup;
mod setup_pages;

fn capi(args: &[&str]) -> (i32, String, String) {
    capi_stdin(args, "")
}

/// `capi ARGS --database-url DB`.
fn capi_on(db: &str, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["--database-url", db]);
    capi(&all)
}

/// `capi_on` that must succeed; its standard output.
fn capi_ok(db: &str, args: &[&str]) -> String {
    let (code, out, err) = capi_on(db, args);
    assert_eq!(code, 0, "capi {args:?}: {err}");
    out
}

/// `capi_ok`'s one-line JSON answer.
fn capi_json(db: &str, args: &[&str]) -> Value {
    serde_json::from_str(capi_ok(db, args).trim()).expect("one JSON line")
}

/// The `id` of a one-line JSON answer.
fn id_of(out: &str) -> String {
    serde_json::from_str::<Value>(out.trim()).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn fixture(name: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "evolution",
        name,
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

fn parse(name: &str) -> Value {
    let (code, out, err) = capi(&["parse-webhook", "evolution", &fixture(name)]);
    assert_eq!(code, 0, "{name}: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: one JSON line: {out}");
    serde_json::from_str(lines[0]).expect("JSON line")
}

fn crm_fixture(crm: &str, name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", crm, name]
        .iter()
        .collect();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `capi` on `body` written to a file of its own.
fn capi_on_body(args: &[&str], body: &str, tag: &str) -> (i32, String, String) {
    let path = std::env::temp_dir().join(format!("capi-{tag}-{}.txt", std::process::id()));
    std::fs::write(&path, body).expect("write body");
    let path = path.to_string_lossy().into_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.push(&path);
    let out = capi(&all);
    std::fs::remove_file(&path).ok();
    out
}

fn parsed_line(out: (i32, String, String), what: &str) -> Value {
    let (code, out, err) = out;
    assert_eq!(code, 0, "{what}: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one JSON line: {out}");
    serde_json::from_str(lines[0]).expect("JSON line")
}

/// The amoCRM webhook bodies in the captures: raw bodies as they are; the
/// yandex capture's decoded body; each curl replay rebuilt as it went on the
/// wire (its keys already encoded, its values encoded by --data-urlencode).
fn amocrm_bodies() -> Vec<(String, String)> {
    let mut bodies = vec![
        (
            "unirock".to_owned(),
            crm_fixture("amocrm", "webhook_leads_update_2021_unirock.urlencoded"),
        ),
        (
            "apfitness".to_owned(),
            crm_fixture("amocrm", "webhook_leads_status_2018_apfitness.raw.txt"),
        ),
    ];
    let dp: Value = serde_json::from_str(&crm_fixture(
        "amocrm",
        "webhook_digital_pipeline_status_2023_yandexcloud.json",
    ))
    .expect("json");
    bodies.push((
        "digital pipeline".to_owned(),
        dp["body_decoded"].as_str().expect("body").to_owned(),
    ));
    let http = crm_fixture(
        "amocrm",
        "webhook_captured_with_headers_2025_etesttask.http",
    );
    for section in http.split("\n### ").skip(1) {
        let title = section.lines().next().unwrap_or_default().to_owned();
        let parts: Vec<String> = section
            .lines()
            .filter_map(|l| {
                l.trim()
                    .trim_end_matches('\\')
                    .trim_end()
                    .strip_prefix("--data-urlencode '")?
                    .strip_suffix('\'')
            })
            .map(|arg| {
                let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
                let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                format!("{key}={value}")
            })
            .collect();
        bodies.push((title, parts.join("&")));
    }
    bodies
}

/// `capi` with `input` on its standard input.
fn capi_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    capi_env(args, input, &[])
}

/// `capi ARGS` with `input` on standard input and `env` set.
fn capi_env(args: &[&str], input: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(args)
        .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run capi");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    pipeline_tests::exit_and_output(child.wait_with_output().expect("capi output"))
}
