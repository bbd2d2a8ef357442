//! NATS: connect, or explain which server to start.

use std::time::Duration;

/// The NATS server did not answer.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot reach NATS at {url} ({source}); start it with: start-stop-daemon --start --oknodo \
     --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server"
)]
pub struct NatsUnreachable {
    url: String,
    #[source]
    source: async_nats::ConnectError,
}

/// Connects to NATS, failing fast (within a few seconds) when nobody answers.
pub async fn connect(url: &str) -> Result<async_nats::Client, NatsUnreachable> {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|source| NatsUnreachable {
            url: url.to_owned(),
            source,
        })
}

/// Whether the client currently holds a live connection.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// How long JetStream remembers message ids to drop duplicates (at least the two minutes the
/// relay's republish-after-crash needs).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Creates the events stream `<PREFIX>_EVENTS` on `<prefix>.events.>` if it does not exist
/// (file storage, limits retention, the duplicate window above). The relay and every consumer
/// call it, so whichever starts first creates it.
pub async fn ensure_events_stream(
    js: &async_nats::jetstream::Context,
    prefix: &str,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    use async_nats::jetstream::stream;
    let config = stream::Config {
        name: helpdesk_schemas::events_stream_name(prefix),
        subjects: vec![format!(
            "{}.>",
            helpdesk_schemas::events_subject_root(prefix)
        )],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| e.to_string())
}

/// The durable consumer name of a projection (characters NATS does not allow become `_`).
pub fn consumer_name(projection: &str) -> String {
    projection.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-',
        "_",
    )
}

/// The dead-letter subject of a projection: `<prefix>.dlq.<projection>`.
pub fn dead_letter_subject(prefix: &str, projection: &str) -> String {
    format!("{prefix}.dlq.{}", consumer_name(projection))
}

/// Creates the dead-letter stream `<PREFIX>_DLQ` on `<prefix>.dlq.>` if it does not exist.
pub async fn ensure_dead_letter_stream(
    js: &async_nats::jetstream::Context,
    prefix: &str,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    use async_nats::jetstream::stream;
    let config = stream::Config {
        name: format!("{}_DLQ", prefix.to_uppercase()),
        subjects: vec![format!("{prefix}.dlq.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| e.to_string())
}
