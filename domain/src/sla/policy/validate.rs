//! The rules on a policy definition's values, reported all at once as field violations.

use crate::sla::calendar::WEEK;
use crate::sla::{Calendar, CalendarError, SlaMetric};
use crate::ticket::Status;
use crate::validation::{self, Violations};

use super::definition::SlaPolicyDefinition;

/// The longest target, in business minutes: a year of a 24×7 calendar (365 days).
pub const MAX_TARGET_MINUTES: u32 = 365 * 24 * 60;

/// Weeks of a calendar's opening hours a target may span: about a year. Beyond that a target is
/// surely a typo, and the clock's ten-year horizon keeps ample room for holidays.
const MAX_TARGET_WEEKS: u32 = 52;

impl SlaPolicyDefinition {
    /// Checks every rule deserialization cannot and reports every broken one, each with a JSON
    /// Pointer relative to the definition object (`/name`, `/targets/urgent/first_reply`,
    /// `/calendar/hours/mon/0`, …):
    ///
    /// - the name is 1–200 characters after trimming, without control characters;
    /// - group ids are valid ids;
    /// - there is at least one target, and each is 1 minute to a year: at most
    ///   [`MAX_TARGET_MINUTES`], and for business hours at most 52 weeks of opening hours;
    /// - the calendar passes [`Calendar::validate`];
    /// - pause statuses are `pending` or `on_hold`, each listed once.
    pub fn validate(&self) -> Result<(), Violations> {
        let mut errors = Violations::default();
        check_name(&self.name, &mut errors);
        for (index, group) in self.applies_to.groups.iter().enumerate() {
            validation::id(group, &format!("/applies_to/groups/{index}"), &mut errors);
        }
        self.check_targets(&mut errors);
        if let Err(error) = self.calendar.validate() {
            errors.add(
                format!("/calendar{}", error.pointer()),
                calendar_code(&error),
                error.to_string(),
            );
        }
        check_pause_statuses(&self.pause_statuses, &mut errors);
        errors.into_result(())
    }

    fn check_targets(&self, errors: &mut Violations) {
        let limit = target_limit(&self.calendar);
        let mut any = false;
        for (priority, targets) in self.targets.iter() {
            let Some(targets) = targets else { continue };
            for metric in SlaMetric::ALL {
                let Some(minutes) = targets.get(metric) else {
                    continue;
                };
                any = true;
                let pointer = format!("/targets/{}/{metric}", priority_key(priority));
                if minutes == 0 {
                    errors.add(
                        pointer,
                        "too_small",
                        "a target is at least 1 business minute",
                    );
                } else if minutes > limit {
                    errors.add(
                        pointer,
                        "too_large",
                        format!(
                            "a target of {minutes} business minutes is longer than a year of \
                             this calendar ({limit} minutes)"
                        ),
                    );
                }
            }
        }
        if !any {
            errors.add(
                "/targets",
                "required",
                "a policy needs at least one target for some priority",
            );
        }
    }
}

fn check_name(name: &str, errors: &mut Violations) {
    let trimmed = validation::name(name, "/name", errors);
    if trimmed.is_empty() {
        errors.add("/name", "required", "name must not be empty");
    }
}

fn check_pause_statuses(statuses: &[Status], errors: &mut Violations) {
    for (index, status) in statuses.iter().enumerate() {
        let pointer = format!("/pause_statuses/{index}");
        if !matches!(status, Status::Pending | Status::OnHold) {
            errors.add(
                pointer,
                "not_pausable",
                format!(
                    "only pending and on_hold can pause SLA clocks, not {}",
                    status.as_str()
                ),
            );
        } else if statuses[..index].contains(status) {
            errors.add(
                pointer,
                "duplicate",
                format!("{} is listed twice", status.as_str()),
            );
        }
    }
}

/// The largest target `calendar` accepts: a year of 24×7 time, or 52 weeks of its opening
/// hours, whichever is less.
fn target_limit(calendar: &Calendar) -> u32 {
    let Calendar::BusinessHours(business_hours) = calendar else {
        return MAX_TARGET_MINUTES;
    };
    let weekly: u32 = WEEK
        .iter()
        .flat_map(|day| business_hours.hours.on(*day))
        .map(|interval| {
            let start = interval.start.minutes_since_midnight();
            let end = interval.end.minutes_since_midnight();
            u32::from(end.saturating_sub(start))
        })
        .sum();
    if weekly == 0 {
        // The calendar itself is reported; do not add a violation to every target as well.
        return MAX_TARGET_MINUTES;
    }
    MAX_TARGET_MINUTES.min(weekly.saturating_mul(MAX_TARGET_WEEKS))
}

fn calendar_code(error: &CalendarError) -> &'static str {
    match error {
        CalendarError::EmptyInterval { .. } => "empty_interval",
        CalendarError::OutOfOrder { .. } => "out_of_order",
        CalendarError::NoBusinessHours => "no_business_hours",
    }
}

/// The wire name of a priority, as used in `targets`.
fn priority_key(priority: crate::ticket::Priority) -> &'static str {
    use crate::ticket::Priority;
    match priority {
        Priority::Low => "low",
        Priority::Normal => "normal",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    }
}
