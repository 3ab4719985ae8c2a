//! The audit trail page: every set-up change of the account, from these
//! pages and the CLI, newest first — who, when, what, before → after of
//! what changed (secrets show as "set"/"unset" only).

use super::{conn, editor, refused, run, setup_page};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde_json::Value;

fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

pub async fn page(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let e = match editor(&req, &state).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let pool = state.pool.clone();
    let account = e.account;
    let rows = match run(&state, async move {
        let mut c = conn(&pool).await?;
        setup::audit::list(&mut c, Some(account), 200).await
    })
    .await
    {
        Ok(rows) => rows,
        Err(err) => return refused(err, "/dashboard/setup"),
    };
    let body = html! {
        section id="audit" {
            h2 { "Audit trail" }
            p.muted { "The newest 200 set-up changes of this account, from these pages (link:…) and the capi CLI (cli:…)." }
            table {
                tr { th { "When (UTC)" } th { "Who" } th { "What" } th { "Target" } th { "Changed: before → after" } }
                @for r in &rows {
                    tr.change {
                        td { (r.at.format("%Y-%m-%d %H:%M:%S")) }
                        td.actor { (r.actor) }
                        td.action { (r.action) }
                        td { (r.target) }
                        td {
                            @for k in setup::audit::changed_keys(r.before.as_ref(), r.after.as_ref()) {
                                div {
                                    b { (k) } ": "
                                    (shown(r.before.as_ref().and_then(|b| b.get(&k))))
                                    " → "
                                    (shown(r.after.as_ref().and_then(|a| a.get(&k))))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    setup_page("Audit trail", body)
}
