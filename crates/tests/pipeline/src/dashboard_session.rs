//! A signed-in dashboard session over plain HTTP (no browser): sign in
//! with a link of a role, read pages, post the set-up forms with or
//! without the session's CSRF token.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use crate::{ReportsService, reports_settings};
use domain::api_key::Role;

pub struct DashboardSession {
    http: reqwest::Client,
    base: String,
    pub cookie: String,
}

/// An answer: status, body, and where a redirect points.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

impl DashboardSession {
    /// Opens a fresh sign-in link of `role` for `account`.
    pub async fn sign_in(service: &ReportsService, account: uuid::Uuid, role: Role) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (url, _) = reports_settings("x")
            .dashboard_link(account.into(), 0, role)
            .unwrap();
        let query = url.split_once('?').unwrap().1;
        let resp = http
            .get(service.url(&format!("/dashboard/login?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 303, "the link signs in");
        let cookie = resp
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
            .expect("a session cookie");
        DashboardSession {
            http,
            base: service.url(""),
            cookie,
        }
    }

    async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        Answer {
            status,
            location,
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    /// Posts `fields` as a form (no token added).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        Self::answer(resp).await
    }

    /// The session's CSRF token, as its set-up page carries it.
    pub async fn csrf(&self) -> String {
        let page = self.get("/dashboard/setup").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let at = page
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a csrf field")
            + 19;
        page.body[at..].split('"').next().unwrap().to_owned()
    }

    /// Posts `fields` with the session's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }
}

/// The refusal a set-up page shows (`<p class="error">`), unescaped.
pub fn error_text(html: &str) -> Option<String> {
    let start = html.find(r#"<p class="error">"#)? + 17;
    let end = start + html[start..].find("</p>")?;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// The address of the first link with this id on a page, unescaped.
pub fn link_href(html: &str, id: &str) -> Option<String> {
    let marker = format!(r#"id="{id}" href=""#);
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}
