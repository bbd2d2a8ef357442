//! The engine's one decision: compare what the clocks record with what the ticket's facts and
//! the policy in force say they should be, and emit the events that close the gap.
//!
//! Deciding by difference rather than per ticket event means one code path covers a reply, a
//! status change, a priority or group change and a policy edit alike.

use chrono::{DateTime, Utc};

use crate::sla::{ClockError, PolicyRef, SlaMetric, SlaPolicyDefinition};

use super::clocks::{Activation, Outcome, SlaClocks};
use super::events::{SlaEngineError, SlaEvent};
use super::facts::{Cycle, TicketFacts};
use super::timing::{due_at, running_time};

/// Applies each event to the clocks as it is emitted, so later decisions see it.
pub(super) struct Recorder<'a> {
    pub clocks: &'a mut SlaClocks,
    pub events: Vec<SlaEvent>,
}

impl Recorder<'_> {
    fn emit(&mut self, event: SlaEvent) {
        self.clocks.apply(&event);
        self.events.push(event);
    }

    /// Records every breach due at or before `now`.
    pub fn breaches_until(&mut self, now: DateTime<Utc>) {
        for breach in self.clocks.due_breaches(now) {
            self.emit(breach);
        }
    }

    fn latest(&self, metric: SlaMetric) -> Option<Activation> {
        self.clocks.get(metric).cloned()
    }
}

/// The target a metric has under the policy in force.
#[derive(Clone, Copy)]
struct Target<'a> {
    policy: &'a PolicyRef,
    definition: &'a SlaPolicyDefinition,
    minutes: u32,
}

/// Brings every metric's clock in line with `facts` under the `selected` policy, at `at`.
pub(super) fn reconcile(
    facts: &TicketFacts,
    selected: Option<&(PolicyRef, SlaPolicyDefinition)>,
    at: DateTime<Utc>,
    recorder: &mut Recorder<'_>,
) -> Result<(), SlaEngineError> {
    for metric in SlaMetric::ALL {
        let target = selected.and_then(|(policy, definition)| {
            let minutes = definition.target(facts.priority, metric)?;
            Some(Target {
                policy,
                definition,
                minutes,
            })
        });
        settle_open_activation(metric, facts, target, at, recorder)?;
        activate_new_measurement(metric, facts, target, at, recorder)?;
    }
    Ok(())
}

/// An open activation follows the target in force (retarget or withdraw), ends when its
/// measurement ended, and otherwise pauses or resumes with the ticket's status.
fn settle_open_activation(
    metric: SlaMetric,
    facts: &TicketFacts,
    target: Option<Target<'_>>,
    at: DateTime<Utc>,
    recorder: &mut Recorder<'_>,
) -> Result<(), SlaEngineError> {
    let Some(open) = recorder.latest(metric).filter(Activation::is_open) else {
        return Ok(());
    };
    let activation = open.activation;
    let withdrawn = SlaEvent::Withdrawn {
        metric,
        activation,
        at,
    };
    let (Some(target), Some(cycle)) = (target, facts.cycles(metric).get(activation)) else {
        recorder.emit(withdrawn);
        return Ok(());
    };
    if *target.policy != open.policy || target.minutes != open.target_minutes {
        let due_at = due(metric, activation, facts, target, cycle.started_at, at)?;
        recorder.emit(SlaEvent::Retargeted {
            metric,
            activation,
            at,
            policy: target.policy.clone(),
            due_at,
            target_minutes: target.minutes,
        });
    }
    if let Some(ended_at) = cycle.ended_at {
        // A fulfilment never hides a breach that was due first.
        recorder.breaches_until(ended_at);
        recorder.emit(fulfilled(
            metric, activation, facts, target, cycle, ended_at,
        ));
        return Ok(());
    }
    let stopped = target.definition.clock_stops_in(facts.status());
    if stopped && !open.paused {
        recorder.emit(SlaEvent::Paused {
            metric,
            activation,
            at,
        });
    } else if !stopped && open.paused {
        let due_at = due(metric, activation, facts, target, cycle.started_at, at)?;
        recorder.emit(SlaEvent::Resumed {
            metric,
            activation,
            at,
            due_at,
        });
    }
    Ok(())
}

/// A measurement under way with a target but no activation yet gets one (paused at once if
/// the ticket's status stops the clock). An activation withdrawn earlier in the same
/// measurement is activated again.
fn activate_new_measurement(
    metric: SlaMetric,
    facts: &TicketFacts,
    target: Option<Target<'_>>,
    at: DateTime<Utc>,
    recorder: &mut Recorder<'_>,
) -> Result<(), SlaEngineError> {
    let Some(cycle) = facts
        .cycles(metric)
        .current
        .filter(|c| c.ended_at.is_none())
    else {
        return Ok(());
    };
    let Some(target) = target else {
        return Ok(());
    };
    let needs_activation = match recorder.latest(metric) {
        None => true,
        Some(latest) => {
            latest.activation < cycle.number
                || (latest.activation == cycle.number
                    && matches!(latest.outcome, Outcome::Withdrawn { .. }))
        }
    };
    if !needs_activation {
        return Ok(());
    }
    let activation = cycle.number;
    let due_at = due(metric, activation, facts, target, cycle.started_at, at)?;
    recorder.emit(SlaEvent::Activated {
        metric,
        activation,
        policy: target.policy.clone(),
        at,
        started_at: cycle.started_at,
        due_at,
        target_minutes: target.minutes,
    });
    if target.definition.clock_stops_in(facts.status()) {
        recorder.emit(SlaEvent::Paused {
            metric,
            activation,
            at,
        });
    }
    Ok(())
}

fn fulfilled(
    metric: SlaMetric,
    activation: u32,
    facts: &TicketFacts,
    target: Target<'_>,
    cycle: Cycle,
    ended_at: DateTime<Utc>,
) -> SlaEvent {
    let on_clock = running_time(
        &facts.statuses,
        target.definition,
        cycle.started_at,
        ended_at,
    );
    SlaEvent::Fulfilled {
        metric,
        activation,
        at: ended_at,
        // Never negative: it is a sum of non-negative business times.
        business_minutes: u64::try_from(on_clock.num_minutes()).unwrap_or(0),
    }
}

fn due(
    metric: SlaMetric,
    activation: u32,
    facts: &TicketFacts,
    target: Target<'_>,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, SlaEngineError> {
    due_at(
        &facts.statuses,
        target.definition,
        started_at,
        now,
        target.minutes,
    )
    .ok_or_else(|| SlaEngineError::NoDueTime {
        metric,
        activation,
        policy: target.policy.clone(),
        source: ClockError::BeyondHorizon {
            minutes: target.minutes,
        },
    })
}
