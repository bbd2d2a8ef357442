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
