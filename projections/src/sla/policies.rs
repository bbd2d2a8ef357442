//! The current version of every SLA policy, folded from the `SlaPolicy` events in the store.

use cqrs_es::Aggregate;
use helpdesk_domain::sla::{PolicyRef, SlaPolicy, SlaPolicyDefinition, SlaPolicyEvent};

/// Every SLA policy's current version, in selection order (`position`, then id).
pub async fn current_policies<'e>(
    executor: impl sqlx::PgExecutor<'e>,
) -> Result<Vec<(PolicyRef, SlaPolicyDefinition)>, sqlx::Error> {
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT aggregate_id, payload FROM events \
          WHERE aggregate_type = 'SlaPolicy' ORDER BY aggregate_id, sequence",
    )
    .fetch_all(executor)
    .await?;
    let mut policies: Vec<(PolicyRef, SlaPolicyDefinition)> = Vec::new();
    let mut current: Option<(String, SlaPolicy)> = None;
    let mut finish = |policy: Option<(String, SlaPolicy)>| {
        if let Some((_, policy)) = policy
            && let Some((reference, definition)) = policy.current()
        {
            policies.push((reference, definition.clone()));
        }
    };
    for (id, payload) in rows {
        let event: SlaPolicyEvent = serde_json::from_value(payload)
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        match &mut current {
            Some((open, policy)) if *open == id => policy.apply(event),
            _ => {
                finish(current.take());
                let mut policy = SlaPolicy::default();
                policy.apply(event);
                current = Some((id, policy));
            }
        }
    }
    finish(current.take());
    policies.sort_by(|(a, da), (b, db)| da.position.cmp(&db.position).then(a.id.cmp(&b.id)));
    Ok(policies)
}
