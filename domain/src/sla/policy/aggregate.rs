//! The SLA policy aggregate: its current version rebuilt from events, and `decide`.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::validation::{self, Violations};

use super::commands::SlaPolicyCommand;
use super::definition::SlaPolicyDefinition;
use super::errors::SlaPolicyError;
use super::events::{SlaPolicyCreated, SlaPolicyEvent, SlaPolicyUpdated};
use super::selection::PolicyRef;

/// An SLA policy and how many versions it has had.
///
/// `Default` is the state before `SlaPolicyCreated`: a policy that does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicy {
    current: Option<Current>,
    /// Events applied so far, which is the aggregate sequence of the last one.
    version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Current {
    policy_id: String,
    definition: SlaPolicyDefinition,
}

impl SlaPolicy {
    /// Whether the policy has been created.
    pub fn exists(&self) -> bool {
        self.current.is_some()
    }

    /// The current version number: 1 after creation, one more per update, 0 before creation.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The current version and its definition, if the policy exists.
    pub fn current(&self) -> Option<(PolicyRef, &SlaPolicyDefinition)> {
        self.current.as_ref().map(|current| {
            let policy = PolicyRef {
                id: current.policy_id.clone(),
                version: self.version,
            };
            (policy, &current.definition)
        })
    }

    /// Decides which events `command` produces, or why it is refused. Pure.
    pub fn decide(&self, command: SlaPolicyCommand) -> Result<Vec<SlaPolicyEvent>, SlaPolicyError> {
        let event = match (command, &self.current) {
            (SlaPolicyCommand::Create { .. }, Some(_)) => {
                return Err(SlaPolicyError::AlreadyExists);
            }
            (SlaPolicyCommand::Update { .. }, None) => return Err(SlaPolicyError::NotFound),
            (
                SlaPolicyCommand::Create {
                    policy_id,
                    definition,
                },
                None,
            ) => {
                let mut errors = Violations::default();
                validation::id(&policy_id, "/policy_id", &mut errors);
                let definition = checked(definition, errors)?;
                SlaPolicyEvent::SlaPolicyCreated(SlaPolicyCreated {
                    policy_id,
                    definition,
                })
            }
            (SlaPolicyCommand::Update { definition }, Some(current)) => {
                let definition = checked(definition, Violations::default())?;
                if definition == current.definition {
                    return Err(SlaPolicyError::NoChange);
                }
                SlaPolicyEvent::SlaPolicyUpdated(SlaPolicyUpdated { definition })
            }
        };
        Ok(vec![event])
    }
}

/// The definition with its name trimmed, if it and the violations found so far pass.
fn checked(
    mut definition: SlaPolicyDefinition,
    mut errors: Violations,
) -> Result<SlaPolicyDefinition, SlaPolicyError> {
    definition.name = definition.name.trim().to_owned();
    if let Err(violations) = definition.validate() {
        errors.0.extend(violations.0);
    }
    errors
        .into_result(definition)
        .map_err(SlaPolicyError::Invalid)
}

impl Aggregate for SlaPolicy {
    const TYPE: &'static str = "SlaPolicy";
    type Command = SlaPolicyCommand;
    type Event = SlaPolicyEvent;
    type Error = SlaPolicyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        match event {
            SlaPolicyEvent::SlaPolicyCreated(created) => {
                self.current = Some(Current {
                    policy_id: created.policy_id,
                    definition: created.definition,
                });
            }
            SlaPolicyEvent::SlaPolicyUpdated(updated) => {
                // An update only ever follows the creation; `apply` must not fail, so an
                // (impossible) update of a policy that does not exist only counts the version.
                if let Some(current) = self.current.as_mut() {
                    current.definition = updated.definition;
                }
            }
        }
    }
}
