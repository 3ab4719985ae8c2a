//! `capi audit list`: the set-up changes made from the dashboard's pages
//! and this CLI (who, when, what, before → after; secrets as "set"/"unset").

use crate::{Failure, connect, print_rows};
use domain::ids::UserAccountId;

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// The newest changes first, one JSON line each.
    List {
        #[arg(long)]
        user_account: Option<UserAccountId>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

pub async fn audit(url: &str, c: AuditCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    match c {
        AuditCommand::List {
            user_account,
            limit,
        } => print_rows(&setup::audit::list(&mut conn, user_account, limit).await?)?,
    }
    Ok(())
}
