//! A client that drives a flow the way the flow page does: it passes the page's
//! query string as `query`, follows 302s with a GET, and keeps one session.

use serde_json::Value;

use crate::flow::{Executor, Response, Session};

/// Largest number of redirects followed for one call.
const MAX_REDIRECTS: usize = 32;

/// One browser session on one flow page.
pub struct FlowClient<'a> {
    ex: &'a Executor,
    /// The session (cookie) state.
    pub session: Session,
    slug: String,
    query: String,
}

impl<'a> FlowClient<'a> {
    /// Opens `/if/flow/<slug>/?<query>` in a fresh session.
    pub fn open(ex: &'a Executor, slug: &str, query: &str) -> Self {
        Self {
            ex,
            session: Session::default(),
            slug: slug.to_string(),
            query: query.to_string(),
        }
    }

    /// Opens a link `…/if/flow/<slug>/?<query>` (as found in a mail) in `session`.
    pub fn open_link(ex: &'a Executor, link: &str, session: Session) -> Option<Self> {
        let path = link.split_once("/if/flow/")?.1;
        let (slug, query) = path.split_once('/')?;
        let query = query.strip_prefix('?').unwrap_or(query);
        Some(Self {
            ex,
            session,
            slug: slug.to_string(),
            query: query.to_string(),
        })
    }

    /// Fetches the current challenge.
    pub fn get(&mut self) -> Value {
        let r = self.ex.get(&mut self.session, &self.slug, &self.query);
        self.follow(r)
    }

    /// Submits a challenge response.
    pub fn post(&mut self, body: Value) -> Value {
        let r = self
            .ex
            .post(&mut self.session, &self.slug, &self.query, &body);
        self.follow(r)
    }

    fn follow(&mut self, mut r: Response) -> Value {
        for _ in 0..MAX_REDIRECTS {
            match r {
                Response::Challenge(v) => return v,
                Response::NotFound => return serde_json::json!({"component": "404"}),
                Response::Redirect(_) => {
                    r = self.ex.get(&mut self.session, &self.slug, &self.query);
                }
            }
        }
        serde_json::json!({"component": "redirect-loop"})
    }
}
