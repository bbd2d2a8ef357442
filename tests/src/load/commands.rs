//! The command mix of the load generator and how one command is sent.
//!
//! A ticket's life under load is five commands, one open to four follow-ups, each valid
//! exactly once in this order: open (status `new`), change the status to `open`, a public
//! reply, assign an agent, add a tag. Every command appends exactly one event, so a command's
//! response version is the version of the push it causes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The kinds of command, in the order a ticket takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Open,
    Status,
    Reply,
    Assign,
    Tags,
}

impl Kind {
    /// Every kind, in a ticket's order.
    pub const ALL: [Kind; 5] = [
        Kind::Open,
        Kind::Status,
        Kind::Reply,
        Kind::Assign,
        Kind::Tags,
    ];

    /// The `step`-th command of a ticket (0 is the open).
    pub fn of_step(step: usize) -> Kind {
        Kind::ALL[step % Kind::ALL.len()]
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Open => "open ticket",
            Kind::Status => "change status",
            Kind::Reply => "add reply",
            Kind::Assign => "assign",
            Kind::Tags => "change tags",
        }
    }
}

/// The commands a ticket takes.
pub const STEPS: usize = Kind::ALL.len();

/// The method, path and body of a ticket's command of kind `kind`. `serial` numbers the
/// ticket (it picks the customer and the agent); `probe` is a word no other ticket's subject
/// holds, for the search probe.
pub fn request(
    kind: Kind,
    ticket: &str,
    serial: u64,
    probe: Option<&str>,
) -> (Method, String, Value) {
    let path = |what: &str| format!("/api/v1/tickets/{ticket}/{what}");
    match kind {
        Kind::Open => {
            let mut subject = format!("Printer on fire, floor {serial}");
            if let Some(word) = probe {
                subject = format!("{subject} {word}");
            }
            let body = json!({
                "subject": subject,
                "description": "The printer on our floor is on fire again. Please send someone \
                                before the paper runs out; we have a deadline at five.",
                "priority": "normal",
                "channel": "web",
                "requester": {"customer_id": format!("cust-{}", serial % 500)},
            });
            (Method::POST, "/api/v1/tickets".into(), body)
        }
        Kind::Status => (Method::PUT, path("status"), json!({"status": "open"})),
        Kind::Reply => (
            Method::POST,
            path("interactions"),
            json!({"body": "We are on it; a technician is on the way.", "visibility": "public"}),
        ),
        Kind::Assign => (
            Method::PUT,
            path("assign"),
            json!({"assignee": format!("agent-{}", serial % 50)}),
        ),
        Kind::Tags => (Method::PUT, path("tags"), json!({"add": ["printer"]})),
    }
}

/// What the API answered to an accepted command.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: String,
    pub version: u64,
    pub position: i64,
}

/// Why a command did not succeed: the HTTP status, or what failed before one arrived.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    Status(u16),
    Timeout,
    Connect,
    /// Sent, but no usable answer (a broken connection, an unreadable body).
    Transport,
    /// Never sent: the ticket's open failed.
    NoTicket,
}

impl Failure {
    /// How reports name it.
    pub fn label(&self) -> String {
        match self {
            Failure::Status(status) => status.to_string(),
            Failure::Timeout => "timeout".into(),
            Failure::Connect => "connect".into(),
            Failure::Transport => "transport".into(),
            Failure::NoTicket => "not sent (open failed)".into(),
        }
    }
}

/// Sends commands to one product as one agent.
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client of the product at `base` (`http://host:port`) sending `token`.
    pub fn new(base: &str, token: String) -> Api {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .expect("a reqwest client with default TLS settings");
        Api {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The product's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client (connection pool) it sends with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The bearer token it sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Sends one command and reads the answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Accepted, Failure> {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|error| classify(&error))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|_| Failure::Transport)?;
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        let id = body["id"].as_str().ok_or(Failure::Transport)?.to_owned();
        let version = body["version"].as_u64().ok_or(Failure::Transport)?;
        let position = body["position"].as_i64().ok_or(Failure::Transport)?;
        Ok(Accepted {
            id,
            version,
            position,
        })
    }

    /// `GET /api/v1/tickets/search?q=<query>&limit=1[&min_position=…]`: the number of hits
    /// (`total`), or the status of a failed search.
    pub async fn search_total(
        &self,
        query: &str,
        min_position: Option<i64>,
    ) -> Result<u64, Failure> {
        let mut params = vec![("q", query.to_owned()), ("limit", "1".to_owned())];
        if let Some(position) = min_position {
            params.push(("min_position", position.to_string()));
        }
        let response = self
            .client
            .get(format!("{}/api/v1/tickets/search", self.base))
            .bearer_auth(&self.token)
            .query(&params)
            .send()
            .await
            .map_err(|error| classify(&error))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(Failure::Status(status.as_u16()));
        }
        let body: Value = response.json().await.map_err(|_| Failure::Transport)?;
        body["total"].as_u64().ok_or(Failure::Transport)
    }
}

fn classify(error: &reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::Timeout
    } else if error.is_connect() {
        Failure::Connect
    } else {
        Failure::Transport
    }
}
