//! One settings file for every service: each service's settings types are
//! its declaration of its sections (no list of names anywhere else), so
//! the file made of every service's defaults must load in every service,
//! each noting the sections it leaves to the others, and a slip of a
//! section's name must stop the services that read it.

#![allow(clippy::expect_used)] // test code: a failed expectation is the test failing

use runtime::settings::LoadNotes;
use std::path::Path;

type Load = fn(Option<&Path>) -> anyhow::Result<LoadNotes>;

/// Each service: its name, its defaults' layers (its declared sections), its loader.
fn services() -> [(&'static str, Vec<&'static str>, Load); 5] {
    [
        ("webhook-gateway", vec![webhook_gateway::DEFAULTS], |f| {
            Ok(webhook_gateway::Settings::load(f)?.common.notes)
        }),
        (
            "chatbot-service",
            vec![chatbot_service::DEFAULTS, llm::DEFAULTS],
            |f| Ok(chatbot_service::Settings::load(f)?.common.notes),
        ),
        (
            "qualification-agent",
            vec![qualification_agent::DEFAULTS, llm::DEFAULTS],
            |f| Ok(qualification_agent::Settings::load(f)?.common.notes),
        ),
        ("capi-sender", vec![capi_sender::DEFAULTS], |f| {
            Ok(capi_sender::Settings::load(f)?.common.notes)
        }),
        (
            "reports",
            vec![reports::DEFAULTS, dashboard_link::DEFAULTS],
            |f| Ok(reports::Settings::load(f)?.common.notes),
        ),
    ]
}

/// The tables of `layers`, merged key by key (a later layer wins).
fn merged(layers: &[&str]) -> toml::Table {
    let mut all = toml::Table::new();
    for layer in layers {
        let table: toml::Table = toml::from_str(layer).expect("defaults are TOML");
        for (section, keys) in table {
            let toml::Value::Table(keys) = keys else {
                panic!("`{section}` is not a section");
            };
            match all
                .entry(section)
                .or_insert_with(|| toml::Value::Table(Default::default()))
            {
                toml::Value::Table(into) => into.extend(keys),
                _ => unreachable!("only tables are inserted"),
            }
        }
    }
    all
}

struct File(std::path::PathBuf);

impl File {
    fn new(table: &toml::Table) -> File {
        let path = std::env::temp_dir().join(format!(
            "capi-every-section-{}-{}.toml",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::write(&path, toml::to_string(table).expect("writes")).expect("write");
        File(path)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

#[test]
fn one_file_with_every_services_sections_loads_in_each_and_a_slip_stops_its_readers() {
    let common = merged(&[runtime::settings::COMMON_DEFAULTS]);
    let mut layers = vec![runtime::settings::COMMON_DEFAULTS];
    for (_, own, _) in services() {
        layers.extend(own);
    }
    let every = merged(&layers);
    let file = File::new(&every);

    let mut read_by_none: Vec<&String> = every.keys().collect();
    for (service, own, load) in services() {
        let notes = load(Some(&file.0)).unwrap_or_else(|e| panic!("{service}: {e}"));
        let declared = merged(&own);
        for section in declared.keys().chain(common.keys()) {
            assert!(
                !notes.unread_sections.contains(section),
                "{service} declares `{section}` yet noted it unread: {:?}",
                notes.unread_sections
            );
        }
        for section in &notes.unread_sections {
            assert!(every.contains_key(section), "{service} noted `{section}`");
        }
        read_by_none.retain(|s| notes.unread_sections.contains(s));
    }
    assert!(
        read_by_none.is_empty(),
        "sections no service reads: {read_by_none:?}"
    );
    assert!(
        every.len() > common.len() + 5,
        "the services' own sections are in the file: {:?}",
        every.keys().collect::<Vec<_>>()
    );

    // A slip (two neighbouring letters swapped) of each section a service declares.
    for (service, own, load) in services() {
        for (section, keys) in merged(&own) {
            let mut letters: Vec<char> = section.chars().collect();
            let at = (0..letters.len() - 1)
                .find(|&i| letters[i] != letters[i + 1])
                .expect("a name of two different letters");
            letters.swap(at, at + 1);
            let slip: String = letters.into_iter().collect();
            let mut with_slip = every.clone();
            with_slip.insert(slip.clone(), keys);
            let file = File::new(&with_slip);
            let err = load(Some(&file.0))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{service} accepted `[{slip}]`"));
            assert_eq!(
                err,
                format!(
                    "invalid configuration: key `{slip}`: unknown section (did you mean `{section}`?)"
                ),
                "{service}"
            );
        }
    }

    // A service that does not read `qualification` takes the slip as
    // another service's section: noted, not refused.
    let mut with_slip = every.clone();
    with_slip.insert("qualificaton".into(), every["qualification"].clone());
    let file = File::new(&with_slip);
    let notes = (services()[0].2)(Some(&file.0)).expect("the gateway loads");
    assert!(
        notes.unread_sections.contains(&"qualificaton".to_owned()),
        "{:?}",
        notes.unread_sections
    );
}
