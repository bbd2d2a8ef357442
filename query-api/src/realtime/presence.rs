//! Presence: who is viewing or replying to a ticket, shared by every query-api instance.
//!
//! Each instance publishes the presence of its own connections on the core NATS subject
//! `<prefix>.presence.<ticket>`: on every change, and again every [`HEARTBEAT`] while the
//! connection stays. Every instance (itself included) subscribes to `<prefix>.presence.>` and
//! keeps a table of entries; an entry not refreshed within [`TTL`] expires (an instance that
//! died), and a closed connection withdraws its entries at once. Core NATS is enough: a lost
//! beat is repaired by the next one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::Instant;
use utoipa::ToSchema;

/// How often an instance repeats the presence of its connections.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long an entry lives without a beat.
pub const TTL: Duration = Duration::from_secs(30);
/// How often expired entries are swept.
const SWEEP: Duration = Duration::from_secs(1);

/// What an agent is doing on a ticket.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// Not on the ticket (withdraws an announcement).
    Idle,
    Viewing,
    /// Writing a reply: others should hold theirs.
    Replying,
}

/// One agent on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Viewer {
    /// The agent's id (token subject).
    pub agent: String,
    pub state: PresenceState,
}

/// The viewers of a ticket changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub ticket: String,
    pub viewers: Vec<Viewer>,
}

/// One beat on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Beat {
    instance: String,
    connection: u64,
    agent: String,
    ticket: String,
    state: PresenceState,
}

/// One connection's presence on a ticket: the agent, its state, and when it expires.
type Entry = (String, PresenceState, Instant);

/// The entries of every ticket, by (instance, connection). Pure: the clock is passed in.
#[derive(Debug, Default)]
pub struct PresenceTable {
    tickets: HashMap<String, HashMap<(String, u64), Entry>>,
}

impl PresenceTable {
    /// Applies a beat; returns the ticket's viewers when they changed.
    fn apply(&mut self, beat: Beat, now: Instant) -> Option<PresenceChange> {
        let before = self.viewers(&beat.ticket);
        let entries = self.tickets.entry(beat.ticket.clone()).or_default();
        let key = (beat.instance, beat.connection);
        if beat.state == PresenceState::Idle {
            entries.remove(&key);
        } else {
            entries.insert(key, (beat.agent, beat.state, now + TTL));
        }
        if entries.is_empty() {
            self.tickets.remove(&beat.ticket);
        }
        let after = self.viewers(&beat.ticket);
        (before != after).then_some(PresenceChange {
            ticket: beat.ticket,
            viewers: after,
        })
    }

    /// Drops entries that expired by `now`; returns the tickets whose viewers changed.
    pub fn expire(&mut self, now: Instant) -> Vec<PresenceChange> {
        let mut changes = Vec::new();
        let tickets: Vec<String> = self.tickets.keys().cloned().collect();
        for ticket in tickets {
            let before = self.viewers(&ticket);
            if let Some(entries) = self.tickets.get_mut(&ticket) {
                entries.retain(|_, (_, _, expires)| *expires > now);
                if entries.is_empty() {
                    self.tickets.remove(&ticket);
                }
            }
            let after = self.viewers(&ticket);
            if before != after {
                changes.push(PresenceChange {
                    ticket,
                    viewers: after,
                });
            }
        }
        changes
    }

    /// The ticket's viewers, one per agent (the busiest state of its connections), by id.
    pub fn viewers(&self, ticket: &str) -> Vec<Viewer> {
        let mut agents: BTreeMap<&str, PresenceState> = BTreeMap::new();
        for (agent, state, _) in self
            .tickets
            .get(ticket)
            .into_iter()
            .flat_map(|e| e.values())
        {
            let slot = agents.entry(agent).or_insert(*state);
            *slot = (*slot).max(*state);
        }
        agents
            .into_iter()
            .map(|(agent, state)| Viewer {
                agent: agent.to_owned(),
                state,
            })
            .collect()
    }
}

/// This instance's presence service.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

struct Inner {
    nats: async_nats::Client,
    prefix: String,
    instance: String,
    table: Mutex<PresenceTable>,
    /// This instance's announcements: (connection, ticket) → (agent, state).
    local: Mutex<HashMap<(u64, String), (String, PresenceState)>>,
    changes: broadcast::Sender<Arc<PresenceChange>>,
}

impl Presence {
    /// Subscribes to every instance's beats and starts the heartbeat and the sweeper.
    pub async fn start(nats: async_nats::Client, prefix: &str) -> Result<Presence, String> {
        let beats = nats
            .subscribe(format!("{prefix}.presence.>"))
            .await
            .map_err(|e| format!("cannot subscribe to presence: {e}"))?;
        let (changes, _) = broadcast::channel(1024);
        let presence = Presence {
            inner: Arc::new(Inner {
                nats,
                prefix: prefix.to_owned(),
                instance: uuid::Uuid::new_v4().simple().to_string(),
                table: Mutex::new(PresenceTable::default()),
                local: Mutex::new(HashMap::new()),
                changes,
            }),
        };
        tokio::spawn(receive(presence.clone(), beats));
        tokio::spawn(heartbeat(presence.clone()));
        Ok(presence)
    }

    /// Announces `agent`'s state on `ticket` for `connection` to every instance.
    pub async fn announce(&self, connection: u64, agent: &str, ticket: &str, state: PresenceState) {
        {
            let mut local = lock(&self.inner.local);
            let key = (connection, ticket.to_owned());
            if state == PresenceState::Idle {
                local.remove(&key);
            } else {
                local.insert(key, (agent.to_owned(), state));
            }
        }
        self.publish(connection, agent, ticket, state).await;
    }

    /// Withdraws every announcement of a closed connection.
    pub async fn forget(&self, connection: u64) {
        let mine: Vec<((u64, String), (String, PresenceState))> = {
            let mut local = lock(&self.inner.local);
            let keys: Vec<(u64, String)> = local
                .keys()
                .filter(|(c, _)| *c == connection)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|key| local.remove(&key).map(|value| (key, value)))
                .collect()
        };
        for ((_, ticket), (agent, _)) in mine {
            self.publish(connection, &agent, &ticket, PresenceState::Idle)
                .await;
        }
    }

    /// Who is on `ticket` now.
    pub fn viewers(&self, ticket: &str) -> Vec<Viewer> {
        lock(&self.inner.table).viewers(ticket)
    }

    /// Changes of every ticket's viewers, from now on.
    pub fn changes(&self) -> broadcast::Receiver<Arc<PresenceChange>> {
        self.inner.changes.subscribe()
    }

    async fn publish(&self, connection: u64, agent: &str, ticket: &str, state: PresenceState) {
        let beat = Beat {
            instance: self.inner.instance.clone(),
            connection,
            agent: agent.to_owned(),
            ticket: ticket.to_owned(),
            state,
        };
        let Ok(payload) = serde_json::to_vec(&beat) else {
            return;
        };
        let subject = format!("{}.presence.{ticket}", self.inner.prefix);
        if let Err(error) = self.inner.nats.publish(subject, payload.into()).await {
            tracing::warn!(%error, "presence beat not published; the next heartbeat repeats it");
        }
    }

    fn record(&self, changes: Vec<PresenceChange>) {
        for change in changes {
            // Nobody listening is fine.
            let _ = self.inner.changes.send(Arc::new(change));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Applies every instance's beats, and sweeps expired entries.
async fn receive(presence: Presence, mut beats: async_nats::Subscriber) {
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            message = beats.next() => {
                let Some(message) = message else {
                    tracing::warn!("presence subscription ended");
                    return;
                };
                let Ok(beat) = serde_json::from_slice::<Beat>(&message.payload) else {
                    continue;
                };
                let change = lock(&presence.inner.table).apply(beat, Instant::now());
                presence.record(change.into_iter().collect());
            }
            _ = sweep.tick() => {
                let changes = lock(&presence.inner.table).expire(Instant::now());
                presence.record(changes);
            }
        }
    }
}

/// Repeats this instance's announcements so that other instances keep them.
async fn heartbeat(presence: Presence) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.tick().await;
    loop {
        every.tick().await;
        let announcements: Vec<((u64, String), (String, PresenceState))> =
            lock(&presence.inner.local)
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
        for ((connection, ticket), (agent, state)) in announcements {
            presence.publish(connection, &agent, &ticket, state).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(instance: &str, connection: u64, agent: &str, state: PresenceState) -> Beat {
        Beat {
            instance: instance.into(),
            connection,
            agent: agent.into(),
            ticket: "t-1".into(),
            state,
        }
    }

    #[test]
    fn an_agent_shows_once_with_its_busiest_state_and_leaves_when_all_its_connections_do() {
        let mut table = PresenceTable::default();
        let now = Instant::now();
        let change = table.apply(beat("a", 1, "agent-7", PresenceState::Viewing), now);
        assert_eq!(
            change.map(|c| c.viewers),
            Some(vec![Viewer {
                agent: "agent-7".into(),
                state: PresenceState::Viewing
            }])
        );
        let change = table.apply(beat("b", 9, "agent-7", PresenceState::Replying), now);
        assert_eq!(
            change.map(|c| c.viewers),
            Some(vec![Viewer {
                agent: "agent-7".into(),
                state: PresenceState::Replying
            }])
        );
        // A heartbeat that changes nothing is not a change.
        assert_eq!(
            table.apply(beat("a", 1, "agent-7", PresenceState::Viewing), now),
            None
        );
        assert!(
            table
                .apply(beat("b", 9, "agent-7", PresenceState::Idle), now)
                .is_some()
        );
        let change = table.apply(beat("a", 1, "agent-7", PresenceState::Idle), now);
        assert_eq!(change.map(|c| c.viewers), Some(vec![]));
        assert!(table.tickets.is_empty());
    }

    #[test]
    fn entries_without_a_heartbeat_expire_after_the_ttl_and_refreshed_ones_stay() {
        let mut table = PresenceTable::default();
        let start = Instant::now();
        table.apply(beat("dead", 1, "agent-1", PresenceState::Viewing), start);
        table.apply(beat("live", 2, "agent-2", PresenceState::Viewing), start);
        assert!(table.expire(start + TTL / 2).is_empty());
        table.apply(
            beat("live", 2, "agent-2", PresenceState::Viewing),
            start + TTL / 2,
        );
        let changes = table.expire(start + TTL + Duration::from_millis(1));
        assert_eq!(
            changes,
            vec![PresenceChange {
                ticket: "t-1".into(),
                viewers: vec![Viewer {
                    agent: "agent-2".into(),
                    state: PresenceState::Viewing
                }],
            }]
        );
        assert_eq!(table.expire(start + TTL * 2).len(), 1);
        assert!(table.viewers("t-1").is_empty());
    }
}
