//! The agent query language: text to [`crate::query::Query`].
//!
//! A query is a list of clauses separated by whitespace, all of which must hold:
//!
//! - a free-text word (`refund`) or a `"quoted phrase"`;
//! - a field condition `field<op>value`, where `<op>` is one of `:`, `<`, `<=`, `>`, `>=` and
//!   the value may be quoted (`group:"level 2"`);
//! - any of these negated with a leading `-` (`-tags:spam`, `-"out of office"`).
//!
//! Relative parts are resolved here, against a [`ParseContext`]: `assignee:me` becomes the
//! caller's id, `updated<7d` an absolute [`TimeRange`], `status<solved` the statuses before
//! `solved`. Staff-only fields (`sla:`) are refused unless the context allows internal
//! information. The user-facing grammar, with examples, is in `docs/search.md`.
//!
//! The parser works on characters, so every [`ParseError::position`] is a character offset
//! (what a user sees in a text box), never a byte offset. It never panics.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use helpdesk_domain::ticket::{Channel, Priority, Status};
use serde::Serialize;

use crate::document::{priority_rank, status_rank, wire_name};
use crate::query::{Clause, Condition, ParseContext, ParseError, Query, TimeRange};
use crate::sla::SlaState;

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;

/// The most clauses one query may have.
pub const MAX_CLAUSES: usize = 50;

/// Every status, in the order `status<…` compares by.
const STATUSES: [Status; 6] = [
    Status::New,
    Status::Open,
    Status::Pending,
    Status::OnHold,
    Status::Solved,
    Status::Closed,
];

/// Every priority, in the order `priority<…` compares by.
const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Urgent,
];

/// Every channel.
const CHANNELS: [Channel; 5] = [
    Channel::Web,
    Channel::Email,
    Channel::Api,
    Channel::Chat,
    Channel::Phone,
];

/// Parses a query typed by an agent (or sent by an integration) into a [`Query`].
///
/// Empty or whitespace-only input is the empty query, which matches every ticket the caller
/// may see. Errors carry the 0-based character offset of the offending part of `input`.
pub fn parse(input: &str, context: &ParseContext) -> Result<Query, ParseError> {
    if input.chars().nth(MAX_QUERY_CHARS).is_some() {
        return Err(error_at(
            MAX_QUERY_CHARS,
            format!("the query is too long: at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Parser {
        chars: input.chars().collect(),
        cursor: 0,
        context,
    }
    .query()
}

/// The longest run of letters and digits the indexes keep as a term (tantivy's default
/// tokenizer drops longer ones).
pub const MAX_WORD_PART_CHARS: usize = 40;

/// The character offset of the first run of letters and digits longer than
/// [`MAX_WORD_PART_CHARS`].
fn overlong_word_part(text: &str) -> Option<usize> {
    let mut run_start = 0;
    let mut run = 0;
    for (offset, c) in text.chars().enumerate() {
        if c.is_alphanumeric() {
            if run == 0 {
                run_start = offset;
            }
            run += 1;
            if run > MAX_WORD_PART_CHARS {
                return Some(run_start);
            }
        } else {
            run = 0;
        }
    }
    None
}

fn error_at(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

/// Whitespace and control characters separate clauses.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

/// The fields a clause may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Status,
    Priority,
    Assignee,
    Group,
    Tag,
    Requester,
    Channel,
    Created,
    Updated,
    Solved,
    Sla,
}

/// Every field name, lower-case (names are matched case-insensitively), and what it names.
const FIELD_NAMES: [(&str, Field); 12] = [
    ("status", Field::Status),
    ("priority", Field::Priority),
    ("assignee", Field::Assignee),
    ("group", Field::Group),
    ("tags", Field::Tag),
    ("tag", Field::Tag),
    ("requester", Field::Requester),
    ("channel", Field::Channel),
    ("created", Field::Created),
    ("updated", Field::Updated),
    ("solved", Field::Solved),
    ("sla", Field::Sla),
];

impl Field {
    fn named(lowercase_name: &str) -> Option<Field> {
        FIELD_NAMES
            .iter()
            .find(|(name, _)| *name == lowercase_name)
            .map(|&(_, field)| field)
    }

    /// An example of the field's use, for error messages.
    fn example(self) -> &'static str {
        match self {
            Field::Status => "status<solved",
            Field::Priority => "priority>=high",
            Field::Assignee => "assignee:me",
            Field::Group => "group:\"level 2\"",
            Field::Tag => "tags:vip",
            Field::Requester => "requester:ana@example.org",
            Field::Channel => "channel:email",
            Field::Created => "created>=2026-01-01",
            Field::Updated => "updated<7d",
            Field::Solved => "solved:2026-01-31",
            Field::Sla => "sla:breached",
        }
    }

    /// Whether only callers who may see internal information may use the field.
    fn staff_only(self) -> bool {
        self == Field::Sla
    }
}

fn known_fields() -> String {
    let names: Vec<&str> = FIELD_NAMES.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

/// How a field is compared with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    /// `:`
    Is,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Operator {
    fn symbol(self) -> &'static str {
        match self {
            Operator::Is => ":",
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
        }
    }

    /// Whether a value of rank `rank` satisfies `self` against `target`.
    fn holds(self, rank: u64, target: u64) -> bool {
        match self {
            Operator::Is => rank == target,
            Operator::Less => rank < target,
            Operator::LessOrEqual => rank <= target,
            Operator::Greater => rank > target,
            Operator::GreaterOrEqual => rank >= target,
        }
    }
}

/// A field's value as written.
#[derive(Debug)]
struct Value {
    text: String,
    /// Character offset of the value (of its opening quote when quoted).
    position: usize,
    /// Quoted values are taken literally: `assignee:"me"` is the agent whose id is `me`.
    quoted: bool,
}

/// A field clause's name and operator, as written.
#[derive(Debug)]
struct FieldSyntax {
    field: Field,
    /// Character offset of the field name.
    position: usize,
    /// The name as typed, lower-cased (`tag` or `tags`), for messages.
    name: String,
    operator: Operator,
    operator_position: usize,
}

impl FieldSyntax {
    /// `status<` as typed, for messages.
    fn prefix(&self) -> String {
        format!("{}{}", self.name, self.operator.symbol())
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    /// The next character to read.
    cursor: usize,
    context: &'a ParseContext,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.cursor).copied()
    }

    fn peek_at(&self, index: usize) -> Option<char> {
        self.chars.get(index).copied()
    }

    fn at_clause_end(&self) -> bool {
        self.peek().is_none_or(is_separator)
    }

    fn query(mut self) -> Result<Query, ParseError> {
        let mut clauses = Vec::new();
        loop {
            while self.peek().is_some_and(is_separator) {
                self.cursor += 1;
            }
            if self.peek().is_none() {
                return Ok(Query { clauses });
            }
            if clauses.len() == MAX_CLAUSES {
                return Err(error_at(
                    self.cursor,
                    format!("too many clauses: a query may have at most {MAX_CLAUSES}"),
                ));
            }
            clauses.push(self.clause()?);
        }
    }

    fn clause(&mut self) -> Result<Clause, ParseError> {
        let start = self.cursor;
        let negated = self.peek() == Some('-');
        if negated {
            self.cursor += 1;
            if self.at_clause_end() {
                return Err(error_at(
                    start,
                    "a lone '-': write it directly before what to exclude, as in -tags:spam",
                ));
            }
            if self.peek() == Some('-') {
                return Err(error_at(self.cursor, "a clause can be negated only once"));
            }
        }
        let text_start = self.cursor;
        let condition = if self.peek() == Some('"') {
            self.phrase()?
        } else {
            self.field_or_word()?
        };
        if let Condition::Word(text) | Condition::Phrase(text) = &condition
            && let Some(offset) = overlong_word_part(text)
        {
            let quote = usize::from(matches!(condition, Condition::Phrase(_)));
            return Err(error_at(
                text_start + quote + offset,
                format!(
                    "a run of more than {MAX_WORD_PART_CHARS} letters and digits is never \
                     indexed, so it cannot match; shorten it"
                ),
            ));
        }
        Ok(Clause { negated, condition })
    }

    fn phrase(&mut self) -> Result<Condition, ParseError> {
        let open = self.cursor;
        let text = self.quoted()?;
        if text.trim().is_empty() {
            return Err(error_at(
                open,
                "an empty phrase: put words between the quotes",
            ));
        }
        Ok(Condition::Phrase(text))
    }

    /// Reads `"…"` at the cursor, which must be followed by a separator or the end.
    fn quoted(&mut self) -> Result<String, ParseError> {
        let open = self.cursor;
        let content_start = open + 1;
        let Some(length) = self
            .chars
            .get(content_start..)
            .and_then(|rest| rest.iter().position(|&c| c == '"'))
        else {
            return Err(error_at(open, "this quote is never closed"));
        };
        let close = content_start + length;
        let text: String = self
            .chars
            .get(content_start..close)
            .unwrap_or_default()
            .iter()
            .collect();
        self.cursor = close + 1;
        if !self.at_clause_end() {
            return Err(error_at(
                self.cursor,
                "expected a space after the closing quote",
            ));
        }
        Ok(text)
    }

    /// Reads unquoted text up to the next separator. A quote may only open a phrase or a
    /// value, so one inside bare text is an error.
    fn bare(&mut self) -> Result<String, ParseError> {
        let mut text = String::new();
        while let Some(c) = self.peek().filter(|&c| !is_separator(c)) {
            if c == '"' {
                return Err(error_at(
                    self.cursor,
                    "a quote may only start a phrase or a field value, not sit inside a word",
                ));
            }
            text.push(c);
            self.cursor += 1;
        }
        Ok(text)
    }

    /// A clause not starting with a quote: `field<op>value` when it starts with a known field
    /// name followed by an operator, else a free-text word (`http://x`, `a<b`, `10:30`).
    fn field_or_word(&mut self) -> Result<Condition, ParseError> {
        let start = self.cursor;
        let operator_position = (start..self.chars.len())
            .take_while(|&index| {
                self.peek_at(index)
                    .is_some_and(|c| !is_separator(c) && c != '"')
            })
            .find(|&index| matches!(self.peek_at(index), Some(':' | '<' | '>')));
        let Some(operator_position) = operator_position.filter(|&index| index > start) else {
            return Ok(Condition::Word(self.bare()?));
        };
        let typed: String = self
            .chars
            .get(start..operator_position)
            .unwrap_or_default()
            .iter()
            .collect();
        let name = typed.to_lowercase();
        let Some(field) = Field::named(&name) else {
            self.reject_unknown_field(&typed, &name, start, operator_position)?;
            return Ok(Condition::Word(self.bare()?));
        };
        self.cursor = operator_position;
        let operator = self.operator();
        let syntax = FieldSyntax {
            field,
            position: start,
            name,
            operator,
            operator_position,
        };
        self.field_condition(&syntax)
    }

    /// Decides whether `name<op>…`, with `name` not a field, is still meant as a field: when
    /// its value is quoted (`foo:"a b"`) or the name is a near miss of a field (`stauts:open`).
    /// Anything else (`http://x`, `a<b`) stays free text.
    fn reject_unknown_field(
        &self,
        typed: &str,
        name: &str,
        start: usize,
        operator_position: usize,
    ) -> Result<(), ParseError> {
        let looks_like_a_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !looks_like_a_name {
            return Ok(());
        }
        let after_operator = match self.peek_at(operator_position + 1) {
            Some('=') if self.peek_at(operator_position) != Some(':') => operator_position + 2,
            _ => operator_position + 1,
        };
        let suggestion = closest_field_name(name);
        if suggestion.is_none() && self.peek_at(after_operator) != Some('"') {
            return Ok(());
        }
        let hint = suggestion
            .map(|field| format!(" (did you mean {field}?)"))
            .unwrap_or_default();
        Err(error_at(
            start,
            format!(
                "unknown field '{typed}'{hint}; the fields are {}",
                known_fields()
            ),
        ))
    }

    /// Reads the operator at the cursor (the caller made sure there is one).
    fn operator(&mut self) -> Operator {
        let first = self.peek();
        self.cursor += 1;
        let or_equal = first != Some(':') && self.peek() == Some('=');
        if or_equal {
            self.cursor += 1;
        }
        match (first, or_equal) {
            (Some('<'), false) => Operator::Less,
            (Some('<'), true) => Operator::LessOrEqual,
            (Some('>'), false) => Operator::Greater,
            (Some('>'), true) => Operator::GreaterOrEqual,
            _ => Operator::Is,
        }
    }

    /// Reads a field's value: quoted, or bare up to the next separator. Never empty.
    fn value(&mut self, syntax: &FieldSyntax) -> Result<Value, ParseError> {
        let position = self.cursor;
        let missing = || {
            error_at(
                position,
                format!(
                    "'{}' needs a value, as in {}",
                    syntax.prefix(),
                    syntax.field.example()
                ),
            )
        };
        if self.at_clause_end() {
            return Err(missing());
        }
        if self.peek() == Some('"') {
            let text = self.quoted()?;
            if text.trim().is_empty() {
                return Err(missing());
            }
            return Ok(Value {
                text,
                position,
                quoted: true,
            });
        }
        Ok(Value {
            text: self.bare()?,
            position,
            quoted: false,
        })
    }

    fn field_condition(&mut self, syntax: &FieldSyntax) -> Result<Condition, ParseError> {
        if syntax.field.staff_only() && !self.context.include_internal {
            return Err(error_at(
                syntax.position,
                format!(
                    "the {} field is staff information and cannot be searched by customers",
                    syntax.name
                ),
            ));
        }
        let ordered = matches!(
            syntax.field,
            Field::Status | Field::Priority | Field::Created | Field::Updated | Field::Solved
        );
        if !ordered && syntax.operator != Operator::Is {
            return Err(error_at(
                syntax.operator_position,
                format!(
                    "{} can only be matched with ':', as in {}",
                    syntax.name,
                    syntax.field.example()
                ),
            ));
        }
        let value = self.value(syntax)?;
        let keyword = |word: &str| !value.quoted && value.text.eq_ignore_ascii_case(word);
        let condition = match syntax.field {
            Field::Status => {
                let target = vocabulary(&STATUSES, "status", &value)?;
                Condition::Status(select_by_rank(
                    &STATUSES,
                    status_rank,
                    syntax.operator,
                    target,
                ))
            }
            Field::Priority => {
                let target = vocabulary(&PRIORITIES, "priority", &value)?;
                Condition::Priority(select_by_rank(
                    &PRIORITIES,
                    priority_rank,
                    syntax.operator,
                    target,
                ))
            }
            Field::Assignee if keyword("me") => Condition::Assignee(Some(self.context.me.clone())),
            Field::Assignee if keyword("none") => Condition::Assignee(None),
            Field::Assignee => Condition::Assignee(Some(value.text)),
            Field::Group if keyword("none") => Condition::Group(None),
            Field::Group => Condition::Group(Some(value.text)),
            // Tags are always stored lower-case.
            Field::Tag => Condition::Tag(value.text.to_lowercase()),
            Field::Requester if value.text.contains('@') => {
                Condition::RequesterEmail(value.text.to_lowercase())
            }
            Field::Requester => Condition::RequesterId(value.text),
            Field::Channel => Condition::Channel(vocabulary(&CHANNELS, "channel", &value)?),
            Field::Created => Condition::Created(self.time_range(syntax, &value)?),
            Field::Updated => Condition::Updated(self.time_range(syntax, &value)?),
            Field::Solved => Condition::Solved(self.time_range(syntax, &value)?),
            Field::Sla => Condition::Sla(vocabulary(&SlaState::ALL, "SLA state", &value)?),
        };
        Ok(condition)
    }

    fn time_range(&self, syntax: &FieldSyntax, value: &Value) -> Result<TimeRange, ParseError> {
        let out_of_range = || error_at(value.position, "this time is out of the supported range");
        let range = match time_value(value)? {
            TimeValue::Day(day) => {
                let start = day.and_time(NaiveTime::MIN).and_utc();
                let next = day
                    .succ_opt()
                    .ok_or_else(out_of_range)?
                    .and_time(NaiveTime::MIN)
                    .and_utc();
                match syntax.operator {
                    Operator::Is => bounded(Some(start), Some(next)),
                    Operator::Less => bounded(None, Some(start)),
                    Operator::LessOrEqual => bounded(None, Some(next)),
                    Operator::Greater => bounded(Some(next), None),
                    Operator::GreaterOrEqual => bounded(Some(start), None),
                }
            }
            TimeValue::Instant(instant) => {
                let just_after = instant
                    .checked_add_signed(TimeDelta::microseconds(1))
                    .ok_or_else(out_of_range)?;
                match syntax.operator {
                    Operator::Is => {
                        let name = &syntax.name;
                        return Err(error_at(
                            syntax.operator_position,
                            format!(
                                "'{name}:' with an exact time matches almost nothing: compare \
                                 it ({name}>=…, {name}<…) or give a whole day (2026-01-31)"
                            ),
                        ));
                    }
                    Operator::Less => bounded(None, Some(instant)),
                    Operator::LessOrEqual => bounded(None, Some(just_after)),
                    Operator::Greater => bounded(Some(just_after), None),
                    Operator::GreaterOrEqual => bounded(Some(instant), None),
                }
            }
            TimeValue::Age(age) => {
                let cutoff = self
                    .context
                    .now
                    .checked_sub_signed(age)
                    .ok_or_else(|| error_at(value.position, "this age is too large"))?;
                match syntax.operator {
                    Operator::Is => {
                        let (name, age) = (&syntax.name, &value.text);
                        return Err(error_at(
                            syntax.operator_position,
                            format!(
                                "'{name}:{age}' is ambiguous: use {name}<{age} (less than {age} \
                                 ago) or {name}>{age} (more than {age} ago)"
                            ),
                        ));
                    }
                    // Younger than the age: changed after the cutoff.
                    Operator::Less | Operator::LessOrEqual => bounded(Some(cutoff), None),
                    // Older than the age: changed before the cutoff.
                    Operator::Greater | Operator::GreaterOrEqual => bounded(None, Some(cutoff)),
                }
            }
        };
        Ok(range)
    }
}

fn bounded(from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> TimeRange {
    TimeRange { from, until }
}

/// Finds a vocabulary value by its wire name, case-insensitively.
fn vocabulary<T: Copy + Serialize>(all: &[T], what: &str, value: &Value) -> Result<T, ParseError> {
    let wanted = value.text.to_lowercase();
    all.iter()
        .copied()
        .find(|candidate| wire_name(candidate) == wanted)
        .ok_or_else(|| {
            let names: Vec<String> = all.iter().map(wire_name).collect();
            error_at(
                value.position,
                format!(
                    "unknown {what} '{}'; expected one of {}",
                    value.text,
                    names.join(", ")
                ),
            )
        })
}

/// The values of `all` whose rank satisfies `operator` against `target`'s, in rank order.
fn select_by_rank<T: Copy>(all: &[T], rank: fn(T) -> u64, operator: Operator, target: T) -> Vec<T> {
    let target_rank = rank(target);
    let mut selected: Vec<T> = all
        .iter()
        .copied()
        .filter(|&candidate| operator.holds(rank(candidate), target_rank))
        .collect();
    selected.sort_by_key(|&candidate| rank(candidate));
    selected
}

/// A time as written in a `created`, `updated` or `solved` clause.
#[derive(Debug)]
enum TimeValue {
    /// `2026-01-31`: a whole UTC day.
    Day(NaiveDate),
    /// `2026-01-31T09:30:00Z`, kept to the microsecond.
    Instant(DateTime<Utc>),
    /// `7d`: this long before now.
    Age(TimeDelta),
}

const TIME_FORMS: &str =
    "a date (2026-01-31), an RFC 3339 time (2026-01-31T09:30:00Z) or an age (30m, 4h, 7d, 2w)";

fn time_value(value: &Value) -> Result<TimeValue, ParseError> {
    let text = value.text.as_str();
    let invalid = |message: String| error_at(value.position, message);
    if let Some((year, month, day)) = date_parts(text) {
        return NaiveDate::from_ymd_opt(year, month, day)
            .map(TimeValue::Day)
            .ok_or_else(|| invalid(format!("there is no date {text}")));
    }
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    if !number.is_empty() && unit.chars().all(|c| c.is_ascii_alphabetic()) {
        if unit.is_empty() {
            return Err(invalid(format!(
                "an age needs a unit: {number}m, {number}h, {number}d or {number}w"
            )));
        }
        let too_large = || invalid(format!("the age {text} is too large"));
        let count: i64 = number.parse().map_err(|_| too_large())?;
        let age = match unit.to_ascii_lowercase().as_str() {
            "m" | "min" | "mins" | "minute" | "minutes" => TimeDelta::try_minutes(count),
            "h" | "hour" | "hours" => TimeDelta::try_hours(count),
            "d" | "day" | "days" => TimeDelta::try_days(count),
            "w" | "week" | "weeks" => TimeDelta::try_weeks(count),
            _ => {
                return Err(invalid(format!(
                    "unknown unit '{unit}': use m (minutes), h (hours), d (days) or w (weeks)"
                )));
            }
        };
        return age.map(TimeValue::Age).ok_or_else(too_large);
    }
    let instant = DateTime::parse_from_rfc3339(text)
        .map_err(|_| invalid(format!("'{text}' is not {TIME_FORMS}")))?
        .with_timezone(&Utc);
    let microsecond_nanos = instant.nanosecond() / 1_000 * 1_000;
    let instant = instant
        .with_nanosecond(microsecond_nanos)
        .unwrap_or(instant);
    Ok(TimeValue::Instant(instant))
}

/// Splits `YYYY-MM-DD` (exactly: four, two and two digits) into its numbers.
fn date_parts(text: &str) -> Option<(i32, u32, u32)> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, &byte)| match index {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    Some((
        text.get(0..4)?.parse().ok()?,
        text.get(5..7)?.parse().ok()?,
        text.get(8..10)?.parse().ok()?,
    ))
}

/// The field name one typo away from `name` (one character added, dropped, changed, or two
/// neighbours swapped), for names of four characters or more.
fn closest_field_name(name: &str) -> Option<&'static str> {
    if name.len() < 4 {
        return None;
    }
    FIELD_NAMES
        .iter()
        .map(|(field_name, _)| *field_name)
        .find(|field_name| {
            field_name.len().abs_diff(name.len()) <= 1
                && typo_distance(name.as_bytes(), field_name.as_bytes()) <= 1
        })
}

/// The optimal string alignment distance between two ASCII strings: the number of
/// insertions, deletions, substitutions and swaps of adjacent characters between them.
fn typo_distance(a: &[u8], b: &[u8]) -> usize {
    // distances[i][j]: distance between a[..i] and b[..j].
    let mut distances = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in distances.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in distances[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (distances[i - 1][j] + 1)
                .min(distances[i][j - 1] + 1)
                .min(distances[i - 1][j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(distances[i - 2][j - 2] + 1);
            }
            distances[i][j] = best;
        }
    }
    distances[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> ParseContext {
        ParseContext {
            me: "agent-7".into(),
            now: at("2026-03-15T12:00:00Z"),
            include_internal: true,
        }
    }

    /// A customer's context: no internal information.
    fn customer() -> ParseContext {
        ParseContext {
            me: "cust-1".into(),
            include_internal: false,
            ..context()
        }
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn clauses(input: &str) -> Vec<Clause> {
        match parse(input, &context()) {
            Ok(query) => query.clauses,
            Err(error) => panic!("{input:?} should parse, got {error}"),
        }
    }

    /// The condition of a query of one positive clause.
    fn condition(input: &str) -> Condition {
        let mut clauses = clauses(input);
        assert_eq!(clauses.len(), 1, "{input:?}: {clauses:?}");
        let clause = clauses.remove(0);
        assert!(!clause.negated, "{input:?}");
        clause.condition
    }

    fn error(input: &str) -> ParseError {
        match parse(input, &context()) {
            Ok(query) => panic!("{input:?} should fail, got {query:?}"),
            Err(error) => error,
        }
    }

    /// Asserts `input` fails at `position` with a message containing `fragment`.
    fn assert_error(input: &str, position: usize, fragment: &str) {
        let error = error(input);
        assert_eq!(error.position, position, "{input:?}: {error}");
        assert!(
            error.message.contains(fragment),
            "{input:?}: {:?} should mention {fragment:?}",
            error.message
        );
    }

    fn range(from: Option<&str>, until: Option<&str>) -> TimeRange {
        TimeRange {
            from: from.map(at),
            until: until.map(at),
        }
    }

    fn word(text: &str) -> Condition {
        Condition::Word(text.into())
    }

    // --- Structure -------------------------------------------------------------------------

    #[test]
    fn words_too_long_to_be_indexed_are_refused_where_they_start() {
        let long = "x".repeat(41);
        assert_error(&format!("refund {long}"), 7, "never indexed");
        assert_error(&format!("\"a {long}\""), 3, "never indexed");
        assert_error(&format!("-ab-{long}"), 4, "never indexed");
        assert_eq!(condition(&"y".repeat(40)), word(&"y".repeat(40)));
    }

    #[test]
    fn empty_and_blank_queries_match_everything() {
        for input in ["", " ", "   \t\n  ", "\u{3000}"] {
            assert_eq!(parse(input, &context()), Ok(Query::default()), "{input:?}");
        }
    }

    #[test]
    fn words_are_anded_in_order_and_keep_their_text() {
        let parsed = clauses("  Refund\tDOUBLE-charged\n café ");
        let conditions: Vec<Condition> = parsed.into_iter().map(|c| c.condition).collect();
        assert_eq!(
            conditions,
            vec![word("Refund"), word("DOUBLE-charged"), word("café")]
        );
    }

    #[test]
    fn control_characters_separate_clauses() {
        let conditions: Vec<Condition> = clauses("refund\u{0}vip\u{7}status:open")
            .into_iter()
            .map(|c| c.condition)
            .collect();
        assert_eq!(
            conditions,
            vec![
                word("refund"),
                word("vip"),
                Condition::Status(vec![Status::Open])
            ]
        );
    }

    #[test]
    fn colons_and_comparisons_after_unknown_names_are_free_text() {
        for input in [
            "http://example.org/a?b=c",
            "a<b",
            "x>y",
            "x>=y",
            "10:30",
            ":open",
            "::",
            "<<",
            ">=",
            "re:refund",
            "ünï:code",
            "state:open",
        ] {
            assert_eq!(condition(input), word(input), "{input:?}");
        }
    }

    #[test]
    fn phrases_keep_their_text_including_colons() {
        assert_eq!(
            condition("\"Out of Office: back Monday\""),
            Condition::Phrase("Out of Office: back Monday".into())
        );
        assert_eq!(
            condition("\"status:open\""),
            Condition::Phrase("status:open".into())
        );
        let conditions: Vec<Condition> = clauses("\"a b\" c \"d\"")
            .into_iter()
            .map(|c| c.condition)
            .collect();
        assert_eq!(
            conditions,
            vec![
                Condition::Phrase("a b".into()),
                word("c"),
                Condition::Phrase("d".into())
            ]
        );
    }

    #[test]
    fn phrase_errors_point_at_the_quote() {
        assert_error("refund \"out of office", 7, "never closed");
        assert_error("\"", 0, "never closed");
        assert_error("a \"\"", 2, "empty phrase");
        assert_error("\"   \"", 0, "empty phrase");
        assert_error("\"out\"of", 5, "space after the closing quote");
        assert_error("refund\"s", 6, "quote");
        assert_error("tags:vi\"p", 7, "quote");
    }

    #[test]
    fn a_dash_negates_any_clause() {
        let parsed = clauses("-tags:spam -refund -\"out of office\" -status<solved");
        assert!(parsed.iter().all(|clause| clause.negated));
        let conditions: Vec<Condition> = parsed.into_iter().map(|c| c.condition).collect();
        assert_eq!(
            conditions,
            vec![
                Condition::Tag("spam".into()),
                word("refund"),
                Condition::Phrase("out of office".into()),
                Condition::Status(vec![
                    Status::New,
                    Status::Open,
                    Status::Pending,
                    Status::OnHold
                ]),
            ]
        );
        // A dash inside a word is part of it.
        assert_eq!(condition("e-mail"), word("e-mail"));
        assert_eq!(
            condition("requester:-x"),
            Condition::RequesterId("-x".into())
        );
    }

    #[test]
    fn dash_errors() {
        assert_error("-", 0, "lone '-'");
        assert_error("refund - vip", 7, "lone '-'");
        assert_error("refund -", 7, "lone '-'");
        assert_error("--refund", 1, "negated only once");
    }

    #[test]
    fn field_names_are_case_insensitive() {
        assert_eq!(
            condition("STATUS:open"),
            Condition::Status(vec![Status::Open])
        );
        assert_eq!(
            condition("Priority:HIGH"),
            Condition::Priority(vec![Priority::High])
        );
        assert_eq!(condition("Tags:vip"), Condition::Tag("vip".into()));
        assert_eq!(
            condition("UPDATED<1d"),
            Condition::Updated(range(Some("2026-03-14T12:00:00Z"), None))
        );
    }

    // --- Status and priority --------------------------------------------------------------

    #[test]
    fn status_takes_every_operator_over_the_status_order() {
        use Status::*;
        let cases: [(&str, Vec<Status>); 9] = [
            ("status:open", vec![Open]),
            ("status:on_hold", vec![OnHold]),
            ("status:\"Solved\"", vec![Solved]),
            ("status<solved", vec![New, Open, Pending, OnHold]),
            ("status<=pending", vec![New, Open, Pending]),
            ("status>pending", vec![OnHold, Solved, Closed]),
            ("status>=solved", vec![Solved, Closed]),
            ("status<new", vec![]),
            ("status>closed", vec![]),
        ];
        for (input, expected) in cases {
            assert_eq!(condition(input), Condition::Status(expected), "{input:?}");
        }
    }

    #[test]
    fn priority_takes_every_operator_over_the_priority_order() {
        use Priority::*;
        let cases: [(&str, Vec<Priority>); 7] = [
            ("priority:urgent", vec![Urgent]),
            ("priority<high", vec![Low, Normal]),
            ("priority<=normal", vec![Low, Normal]),
            ("priority>normal", vec![High, Urgent]),
            ("priority>=high", vec![High, Urgent]),
            ("priority<low", vec![]),
            ("priority>urgent", vec![]),
        ];
        for (input, expected) in cases {
            assert_eq!(condition(input), Condition::Priority(expected), "{input:?}");
        }
    }

    #[test]
    fn unknown_statuses_priorities_and_channels_list_the_valid_values() {
        assert_error(
            "status:bogus",
            7,
            "unknown status 'bogus'; expected one of new, open, pending, on_hold, solved, closed",
        );
        assert_error("status<on-hold", 7, "unknown status 'on-hold'");
        assert_error(
            "vip priority>=critical",
            14,
            "expected one of low, normal, high, urgent",
        );
        assert_error(
            "channel:fax",
            8,
            "unknown channel 'fax'; expected one of web, email, api, chat, phone",
        );
        assert_error("status::open", 7, "unknown status ':open'");
    }

    // --- People, groups, tags, channels ---------------------------------------------------

    #[test]
    fn assignee_resolves_me_and_none() {
        assert_eq!(
            condition("assignee:me"),
            Condition::Assignee(Some("agent-7".into()))
        );
        assert_eq!(
            condition("assignee:ME"),
            Condition::Assignee(Some("agent-7".into()))
        );
        assert_eq!(condition("assignee:none"), Condition::Assignee(None));
        assert_eq!(condition("assignee:None"), Condition::Assignee(None));
        assert_eq!(
            condition("assignee:Agent-9"),
            Condition::Assignee(Some("Agent-9".into()))
        );
        // Quoted values are literal ids.
        assert_eq!(
            condition("assignee:\"me\""),
            Condition::Assignee(Some("me".into()))
        );
        assert_eq!(
            condition("assignee:\"none\""),
            Condition::Assignee(Some("none".into()))
        );
    }

    #[test]
    fn group_resolves_none_and_takes_quoted_names() {
        assert_eq!(condition("group:none"), Condition::Group(None));
        assert_eq!(condition("group:NONE"), Condition::Group(None));
        assert_eq!(
            condition("group:billing"),
            Condition::Group(Some("billing".into()))
        );
        assert_eq!(
            condition("group:\"level 2\""),
            Condition::Group(Some("level 2".into()))
        );
        assert_eq!(
            condition("group:\"none\""),
            Condition::Group(Some("none".into()))
        );
    }

    #[test]
    fn tags_and_tag_are_the_same_field_and_lower_case() {
        assert_eq!(condition("tags:vip"), Condition::Tag("vip".into()));
        assert_eq!(condition("tag:VIP"), Condition::Tag("vip".into()));
        assert_eq!(
            condition("TAG:billing_2-eu"),
            Condition::Tag("billing_2-eu".into())
        );
    }

    #[test]
    fn requester_is_an_email_when_it_has_an_at_sign() {
        assert_eq!(
            condition("requester:Ana@Example.ORG"),
            Condition::RequesterEmail("ana@example.org".into())
        );
        assert_eq!(
            condition("requester:Cust-42"),
            Condition::RequesterId("Cust-42".into())
        );
        assert_eq!(
            condition("requester:\"cust 42\""),
            Condition::RequesterId("cust 42".into())
        );
    }

    #[test]
    fn channel_is_validated() {
        for (name, channel) in [
            ("web", Channel::Web),
            ("email", Channel::Email),
            ("API", Channel::Api),
            ("chat", Channel::Chat),
            ("phone", Channel::Phone),
        ] {
            assert_eq!(
                condition(&format!("channel:{name}")),
                Condition::Channel(channel)
            );
        }
    }

    #[test]
    fn equality_only_fields_reject_comparisons_at_the_operator() {
        for (input, position) in [
            ("assignee<me", 8),
            ("group>=x", 5),
            ("tags<vip", 4),
            ("tag>vip", 3),
            ("requester<=a", 9),
            ("x channel>email", 9),
            ("sla>=breached", 3),
        ] {
            assert_error(input, position, "can only be matched with ':'");
        }
    }

    #[test]
    fn sla_takes_the_three_states_case_insensitively_and_negated() {
        for (name, state) in [
            ("breached", SlaState::Breached),
            ("ACTIVE", SlaState::Active),
            ("Paused", SlaState::Paused),
            ("\"paused\"", SlaState::Paused),
        ] {
            assert_eq!(condition(&format!("sla:{name}")), Condition::Sla(state));
        }
        assert_eq!(
            condition("SLA:breached"),
            Condition::Sla(SlaState::Breached)
        );
        assert_eq!(
            clauses("refund -sla:breached"),
            vec![
                Clause {
                    negated: false,
                    condition: word("refund"),
                },
                Clause {
                    negated: true,
                    condition: Condition::Sla(SlaState::Breached),
                },
            ]
        );
    }

    #[test]
    fn an_unknown_sla_state_lists_the_valid_ones_at_the_value() {
        assert_error(
            "refund sla:late",
            11,
            "unknown SLA state 'late'; expected one of breached, active, paused",
        );
        assert_error("sla:none", 4, "expected one of breached, active, paused");
        assert_error("sla:", 4, "'sla:' needs a value, as in sla:breached");
    }

    #[test]
    fn customers_may_not_search_by_sla_state() {
        let refused = |input: &str| match parse(input, &customer()) {
            Ok(query) => panic!("{input:?} should be refused for a customer, got {query:?}"),
            Err(error) => error,
        };
        for (input, position) in [
            ("sla:breached", 0),
            ("refund -sla:active", 8),
            // Refused whatever follows: the field itself is what customers may not use.
            ("SLA:late", 0),
            ("sla<x", 0),
        ] {
            let error = refused(input);
            assert_eq!(error.position, position, "{input:?}: {error}");
            assert!(
                error.message.contains("staff information"),
                "{input:?}: {error}"
            );
        }
        // Everything else still parses for a customer.
        assert!(parse("refund status<solved -tags:spam", &customer()).is_ok());
    }

    // --- Times --------------------------------------------------------------------------------

    #[test]
    fn a_date_is_a_whole_utc_day() {
        let cases = [
            (
                "created:2026-01-01",
                range(Some("2026-01-01T00:00:00Z"), Some("2026-01-02T00:00:00Z")),
            ),
            (
                "created>2026-01-01",
                range(Some("2026-01-02T00:00:00Z"), None),
            ),
            (
                "created>=2026-01-01",
                range(Some("2026-01-01T00:00:00Z"), None),
            ),
            (
                "created<2026-01-01",
                range(None, Some("2026-01-01T00:00:00Z")),
            ),
            (
                "created<=2026-01-01",
                range(None, Some("2026-01-02T00:00:00Z")),
            ),
            (
                "created:\"2024-02-29\"",
                range(Some("2024-02-29T00:00:00Z"), Some("2024-03-01T00:00:00Z")),
            ),
            (
                "created:2025-12-31",
                range(Some("2025-12-31T00:00:00Z"), Some("2026-01-01T00:00:00Z")),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(condition(input), Condition::Created(expected), "{input:?}");
        }
    }

    #[test]
    fn an_instant_is_compared_to_the_microsecond() {
        let cases = [
            (
                "updated>=2026-01-01T09:30:00Z",
                range(Some("2026-01-01T09:30:00Z"), None),
            ),
            (
                "updated>2026-01-01T09:30:00Z",
                range(Some("2026-01-01T09:30:00.000001Z"), None),
            ),
            (
                "updated<2026-01-01T09:30:00Z",
                range(None, Some("2026-01-01T09:30:00Z")),
            ),
            (
                "updated<=2026-01-01T09:30:00Z",
                range(None, Some("2026-01-01T09:30:00.000001Z")),
            ),
            // Offsets are converted to UTC.
            (
                "updated>=2026-01-01T09:30:00+02:00",
                range(Some("2026-01-01T07:30:00Z"), None),
            ),
            // Finer than a microsecond is dropped.
            (
                "updated<2026-01-01T09:30:00.123456789Z",
                range(None, Some("2026-01-01T09:30:00.123456Z")),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(condition(input), Condition::Updated(expected), "{input:?}");
        }
        assert_error("updated:2026-01-01T09:30:00Z", 7, "exact time");
    }

    #[test]
    fn relative_ages_count_back_from_now() {
        // now = 2026-03-15T12:00:00Z
        let younger_than_a_week = range(Some("2026-03-08T12:00:00Z"), None);
        let older_than_a_week = range(None, Some("2026-03-08T12:00:00Z"));
        assert_eq!(
            condition("updated<7d"),
            Condition::Updated(younger_than_a_week)
        );
        assert_eq!(
            condition("updated<=7d"),
            Condition::Updated(younger_than_a_week)
        );
        assert_eq!(
            condition("updated>7d"),
            Condition::Updated(older_than_a_week)
        );
        assert_eq!(
            condition("updated>=7d"),
            Condition::Updated(older_than_a_week)
        );
        assert_eq!(
            condition("solved<1w"),
            Condition::Solved(younger_than_a_week)
        );
        assert_eq!(
            condition("created>1week"),
            Condition::Created(older_than_a_week)
        );
        assert_eq!(
            condition("updated<0m"),
            Condition::Updated(range(Some("2026-03-15T12:00:00Z"), None))
        );
    }

    #[test]
    fn every_unit_spelling_is_understood() {
        let cases = [
            (
                &["30m", "30min", "30mins", "30minute", "30minutes", "30MIN"][..],
                "2026-03-15T11:30:00Z",
            ),
            (&["4h", "4hour", "4hours", "4H"][..], "2026-03-15T08:00:00Z"),
            (&["2d", "2day", "2days"][..], "2026-03-13T12:00:00Z"),
            (&["2w", "2week", "2weeks"][..], "2026-03-01T12:00:00Z"),
        ];
        for (spellings, cutoff) in cases {
            for age in spellings {
                assert_eq!(
                    condition(&format!("created<{age}")),
                    Condition::Created(range(Some(cutoff), None)),
                    "{age}"
                );
            }
        }
    }

    #[test]
    fn time_errors_point_at_the_value_or_the_operator() {
        assert_error("updated:7d", 7, "ambiguous");
        assert_error("x solved:30m", 8, "ambiguous");
        assert_error("updated<7", 8, "needs a unit");
        assert_error("updated<7y", 8, "unknown unit 'y'");
        assert_error("updated<7 d", 8, "needs a unit");
        assert_error("created<2026-02-30", 8, "no date 2026-02-30");
        assert_error("created<2026-13-01", 8, "no date");
        assert_error("created<2026-1-1", 8, "is not a date");
        assert_error("created<yesterday", 8, "is not a date");
        assert_error("created<-7d", 8, "is not a date");
        assert_error("created:<7d", 8, "is not a date");
        assert_error("updated<99999999999999999999d", 8, "too large");
        assert_error("updated<9999999999999w", 8, "too large");
        assert_error("updated<99999999999d", 8, "too large");
    }

    // --- Other errors -------------------------------------------------------------------------

    #[test]
    fn a_missing_value_is_reported_right_after_the_operator() {
        assert_error("status:", 7, "'status:' needs a value");
        assert_error("status: open", 7, "needs a value");
        assert_error("-status:", 8, "needs a value");
        assert_error("refund created<=", 16, "'created<=' needs a value");
        assert_error("group:\"\"", 6, "'group:' needs a value");
        assert_error("group:\"  \"", 6, "needs a value");
        assert_error("Tag:", 4, "'tag:' needs a value");
        assert_error("group:\"level 2", 6, "never closed");
        assert_error("group:\"level 2\"x", 15, "space after the closing quote");
    }

    #[test]
    fn unknown_fields_are_reported_when_clearly_meant_as_fields() {
        assert_error(
            "foo:\"a b\"",
            0,
            "unknown field 'foo'; the fields are status, priority, assignee, group, tags, tag, \
             requester, channel, created, updated, solved, sla",
        );
        assert_error(
            "refund stauts:open",
            7,
            "unknown field 'stauts' (did you mean status?)",
        );
        assert_error("Assigned:me", 0, "did you mean assignee?");
        assert_error("create>2026-01-01", 0, "did you mean created?");
        assert_error("requestor:x", 0, "did you mean requester?");
        assert_error("tgas:vip", 0, "did you mean tags?");
        assert_error("-update<7d", 1, "did you mean updated?");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        // 'é' and '🎫' are one character each but two and four bytes.
        assert_error("café 🎫 status:bogus", 14, "unknown status");
        assert_error("日本語 \"未完", 4, "never closed");
        assert_error("ü -", 2, "lone '-'");
        assert_error("🎫🎫 group:", 9, "needs a value");
        assert_error("ñ stauts:x", 2, "unknown field");
        assert_error("🎫 updated:7d", 9, "ambiguous");
    }

    #[test]
    fn queries_are_limited_to_a_thousand_characters() {
        let longest = "é-".repeat(MAX_QUERY_CHARS / 2);
        assert_eq!(clauses(&longest).len(), 1);
        assert_error(&"é".repeat(MAX_QUERY_CHARS + 1), 1000, "too long");
        assert_error(&format!("{} x", "a ".repeat(600)), 1000, "too long");
    }

    #[test]
    fn queries_are_limited_to_fifty_clauses() {
        let fifty = vec!["-tags:x"; MAX_CLAUSES].join(" ");
        assert_eq!(clauses(&fifty).len(), MAX_CLAUSES);
        // The 51st clause starts at 50 * 8 = 400.
        let fifty_one = format!("{fifty}  -x");
        assert_error(&fifty_one, 401, "too many clauses");
        // Trailing whitespace is not a clause.
        assert_eq!(clauses(&format!("{fifty}   ")).len(), MAX_CLAUSES);
    }

    #[test]
    fn typo_distance_counts_single_edits() {
        assert_eq!(typo_distance(b"status", b"status"), 0);
        assert_eq!(typo_distance(b"stauts", b"status"), 1);
        assert_eq!(typo_distance(b"statu", b"status"), 1);
        assert_eq!(typo_distance(b"statuss", b"status"), 1);
        assert_eq!(typo_distance(b"state", b"status"), 2);
        assert_eq!(typo_distance(b"", b"tag"), 3);
        assert_eq!(closest_field_name("http"), None);
        assert_eq!(closest_field_name("tab"), None);
    }

    // --- Robustness --------------------------------------------------------------------------

    /// Checks that `input` parses or fails without panicking, and that a failure points inside
    /// the input (or just past its end).
    fn assert_total(input: &str) {
        let length = input.chars().count();
        if let Err(error) = parse(input, &context()) {
            assert!(
                error.position <= length.min(MAX_QUERY_CHARS),
                "{input:?}: position {} beyond {length}",
                error.position
            );
            assert!(!error.message.is_empty());
        }
    }

    #[test]
    fn no_input_panics() {
        let fragments = [
            "",
            " ",
            "-",
            "--",
            "\"",
            "\"\"",
            ":",
            "::",
            "<",
            "<<",
            "<=",
            ">",
            ">=",
            "=",
            "status",
            "STATUS",
            "priority",
            "assignee",
            "group",
            "tags",
            "tag",
            "requester",
            "channel",
            "created",
            "updated",
            "solved",
            "stauts",
            "foo",
            "open",
            "me",
            "none",
            "7d",
            "9",
            "x",
            "2026-01-01",
            "2026-01-01T00:00:00Z",
            "9999-12-31",
            "0000-01-01",
            "@",
            "é",
            "🎫",
            "\u{0}",
            "\u{200b}",
            "\u{feff}",
            "\u{301}",
            "\t",
            "\n",
            "\r\n",
            "\\",
            "'",
            "\u{7f}",
            "ǅ",
            "İ",
            "99999999999999999999w",
        ];
        let mut checked = 0;
        for a in fragments {
            for b in fragments {
                for c in ["", " ", "-", "\"", ":", "<=", "x"] {
                    assert_total(&format!("{a}{b}{c}"));
                    assert_total(&format!("{a}{c}{b}"));
                    assert_total(&format!("{c}{a} {b}"));
                    checked += 3;
                }
            }
        }
        assert!(checked > 10_000);

        // A deterministic pseudo-random walk over awkward characters.
        let alphabet: Vec<char> = "ab:<>=-\" \t7dmé🎫@_\u{0}\u{85}\u{2028}0123456789TZ+.,"
            .chars()
            .collect();
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = (state % 24) as usize;
            let input: String = (0..length)
                .map(|i| {
                    let index = (state.rotate_left(i as u32 * 5) % alphabet.len() as u64) as usize;
                    alphabet[index]
                })
                .collect();
            assert_total(&input);
        }

        // Field prefixes with every awkward value.
        for field in FIELD_NAMES.iter().map(|(name, _)| *name) {
            for operator in [":", "<", "<=", ">", ">=", "::", "<<", "=>", "<>"] {
                for value in fragments {
                    assert_total(&format!("{field}{operator}{value}"));
                    assert_total(&format!("-{field}{operator}\"{value}\""));
                }
            }
        }
        assert_total(&"\"".repeat(2_000));
        assert_total(&"-".repeat(999));
        assert_total(&"a:".repeat(500));
    }
}
