//! Dead letters: the events a projection gave up on, kept on `<prefix>.dlq.<projection>` in the
//! `<PREFIX>_DLQ` stream with their error and delivery count, until an operator redrives them.

use async_nats::jetstream;
use helpdesk_platform::nats::{dead_letter_subject, ensure_dead_letter_stream};
use helpdesk_schemas::EventEnvelope;

use crate::Projection;

/// One dead-lettered event.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub stream_sequence: u64,
    /// The event, or why the dead letter is not a readable event (it was dead-lettered for
    /// exactly that reason).
    pub envelope: Result<EventEnvelope, String>,
    /// The last error.
    pub error: String,
    /// How many deliveries failed.
    pub deliveries: String,
}

/// What a redrive did.
#[derive(Debug, Clone, Default)]
pub struct Redriven {
    /// Applied now (and removed from the dead letters).
    pub applied: usize,
    /// Still failing: (dead-letter sequence, error). They stay dead-lettered.
    pub failed: Vec<(u64, String)>,
}

/// Lists the dead letters of `projection`, oldest first.
pub async fn list(
    nats: &async_nats::Client,
    prefix: &str,
    projection: &str,
) -> Result<Vec<DeadLetter>, String> {
    let js = jetstream::new(nats.clone());
    let mut stream = ensure_dead_letter_stream(&js, prefix).await?;
    let state = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .clone();
    let subject = dead_letter_subject(prefix, projection);
    let mut letters = Vec::new();
    if state.messages == 0 {
        return Ok(letters);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue; // deleted after a redrive
        };
        if message.subject.as_str() != subject {
            continue;
        }
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        let envelope = serde_json::from_slice(&message.payload)
            .map_err(|e| format!("not an event envelope: {e}"));
        letters.push(DeadLetter {
            stream_sequence: sequence,
            envelope,
            error: header("Helpdesk-Error"),
            deliveries: header("Helpdesk-Deliveries"),
        });
    }
    Ok(letters)
}

/// Applies every dead letter of `projection` again; those that succeed are removed.
pub async fn redrive(
    nats: &async_nats::Client,
    prefix: &str,
    projection: &dyn Projection,
) -> Result<Redriven, String> {
    let js = jetstream::new(nats.clone());
    let stream = ensure_dead_letter_stream(&js, prefix).await?;
    let mut report = Redriven::default();
    for letter in list(nats, prefix, projection.name()).await? {
        let envelope = match &letter.envelope {
            Ok(envelope) => envelope,
            Err(error) => {
                report.failed.push((letter.stream_sequence, error.clone()));
                continue;
            }
        };
        match projection.apply(envelope).await {
            Ok(_) => {
                stream
                    .delete_message(letter.stream_sequence)
                    .await
                    .map_err(|e| e.to_string())?;
                report.applied += 1;
            }
            Err(error) => report
                .failed
                .push((letter.stream_sequence, error.to_string())),
        }
    }
    Ok(report)
}
