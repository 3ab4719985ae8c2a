//! A direction's CRM field rules (`capi_interest_fields`,
//! `capi_qualified_fields`, `capi_scheduled_fields`): list, set, clear.
//! The rules are checked before they are stored.

use crate::{Failure, admin::connect, admin::print_rows};
use clap::Subcommand;
use domain::{crm::mapping::FieldRule, level::Level};
use serde_json::json;
use std::io::Read;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum CrmFieldsCommand {
    /// Print each level's rules, one JSON line per level.
    List { direction: Uuid },
    /// Replace one level's rules with a JSON array of rules, from a file (or - for stdin):
    /// `[{"field_id": "…", "enum_id": "…"}, {"field_id": "…", "enum_value": "…", "entity_type": "deal"}]`.
    Set {
        direction: Uuid,
        #[arg(long, value_parser = |s: &str| s.parse::<Level>())]
        level: Level,
        #[arg(long)]
        rules: String,
    },
    /// Remove one level's rules.
    Clear {
        direction: Uuid,
        #[arg(long, value_parser = |s: &str| s.parse::<Level>())]
        level: Level,
    },
}

fn read_rules(file: &str) -> Result<Vec<FieldRule>, Failure> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::input(format!("reading standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| Failure::input(format!("reading {file}: {e}")))?;
    }
    serde_json::from_str(&text).map_err(|e| {
        Failure::input(format!(
            "{file}: not a list of rules (field_id, enum_id or enum_value, entity_type): {e}"
        ))
    })
}

pub async fn crm_fields(url: &str, c: CrmFieldsCommand) -> Result<(), Failure> {
    let missing = |id: Uuid| Failure::input(format!("no direction {id}"));
    let mut conn = connect(url).await?;
    match c {
        CrmFieldsCommand::List { direction } => {
            let mapping = storage::directions::crm_fields(&mut conn, direction)
                .await?
                .ok_or_else(|| missing(direction))?;
            let lines: Vec<_> = Level::ALL
                .iter()
                .map(|l| json!({"level": l, "rules": mapping.rules(*l)}))
                .collect();
            print_rows(&lines)?;
        }
        CrmFieldsCommand::Set {
            direction,
            level,
            rules,
        } => {
            let rules = read_rules(&rules)?;
            if !storage::directions::set_crm_fields(&mut conn, direction, level, &rules).await? {
                return Err(missing(direction));
            }
            println!(
                "{}",
                json!({"id": direction, "level": level, "rules": rules.len()})
            );
        }
        CrmFieldsCommand::Clear { direction, level } => {
            if !storage::directions::set_crm_fields(&mut conn, direction, level, &[]).await? {
                return Err(missing(direction));
            }
            println!("{}", json!({"id": direction, "level": level, "rules": 0}));
        }
    }
    Ok(())
}
