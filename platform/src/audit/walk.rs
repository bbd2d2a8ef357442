//! The bookkeeping of one aggregate's walk: which link is the first broken one, and why.
//!
//! A row whose stored hash differs from the hash recomputed from its fields (chained onto the
//! previous stored hash) is a suspect. Its successor tells the two causes apart: when the
//! successor still chains from the suspect's stored hash, that hash is original and the
//! event's fields were edited (`hash-mismatch`); when it does not, the stored hash itself was
//! rewritten (`broken-chain`). A suspect without a successor is reported as `hash-mismatch`.

use super::{BrokenLink, ChainProblem, to_hex};

/// One stored event as the walk sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct ChainRow {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    /// The hash stored in the row.
    pub hash: Vec<u8>,
    /// The hash recomputed from the row's fields, chained onto the stored hash of the
    /// aggregate's previous row (the genesis for sequence 1); `None` when there is no previous
    /// row to chain onto.
    pub recomputed: Option<Vec<u8>>,
}

/// A row whose hash did not match, waiting for its successor's verdict.
#[derive(Debug)]
struct Suspect {
    sequence: i64,
    stored: Vec<u8>,
    recomputed: Option<Vec<u8>>,
}

/// The walk over one aggregate's rows, fed in sequence order.
#[derive(Debug)]
pub(super) struct ChainWalk {
    aggregate_type: String,
    aggregate_id: String,
    events: u64,
    next_sequence: i64,
    suspect: Option<Suspect>,
    first_broken: Option<BrokenLink>,
}

impl ChainWalk {
    /// A walk over the aggregate of `row` (feed `row` next).
    pub fn starting_at(row: &ChainRow) -> Self {
        ChainWalk {
            aggregate_type: row.aggregate_type.clone(),
            aggregate_id: row.aggregate_id.clone(),
            events: 0,
            next_sequence: 1,
            suspect: None,
            first_broken: None,
        }
    }

    /// True when `row` belongs to this walk's aggregate.
    pub fn is_for(&self, row: &ChainRow) -> bool {
        row.aggregate_id == self.aggregate_id && row.aggregate_type == self.aggregate_type
    }

    /// Takes the aggregate's next row (in sequence order).
    pub fn push(&mut self, row: &ChainRow) {
        self.events += 1;
        if self.first_broken.is_some() {
            return;
        }
        if let Some(suspect) = self.suspect.take() {
            let successor_chains = row.sequence == suspect.sequence + 1
                && row.recomputed.as_deref() == Some(row.hash.as_slice());
            self.first_broken = Some(self.judge(suspect, successor_chains));
            return;
        }
        if row.sequence != self.next_sequence {
            self.first_broken = Some(self.out_of_sequence(row.sequence));
            return;
        }
        self.next_sequence += 1;
        if row.recomputed.as_deref() != Some(row.hash.as_slice()) {
            self.suspect = Some(Suspect {
                sequence: row.sequence,
                stored: row.hash.clone(),
                recomputed: row.recomputed.clone(),
            });
        }
    }

    /// The number of events seen, and the first broken link, if any.
    pub fn finish(mut self) -> (u64, Option<BrokenLink>) {
        if let Some(suspect) = self.suspect.take() {
            // No successor to ask: the event's fields no longer match its hash.
            self.first_broken = Some(self.judge(suspect, true));
        }
        (self.events, self.first_broken)
    }

    fn judge(&self, suspect: Suspect, successor_chains: bool) -> BrokenLink {
        let recomputed = suspect
            .recomputed
            .as_deref()
            .map_or("nothing".into(), short);
        let stored = short(&suspect.stored);
        let (problem, detail) = if successor_chains {
            (
                ChainProblem::HashMismatch,
                format!(
                    "the stored fields hash to {recomputed}, the stored hash is {stored}: the \
                     event was changed after it was appended"
                ),
            )
        } else {
            (
                ChainProblem::BrokenChain,
                format!(
                    "the stored hash {stored} (recomputed: {recomputed}) is not the one the \
                     next event was chained onto: the hash was rewritten or the event replaced"
                ),
            )
        };
        self.link(suspect.sequence, problem, detail)
    }

    fn out_of_sequence(&self, found: i64) -> BrokenLink {
        let expected = self.next_sequence;
        if found > expected {
            let detail = format!(
                "sequence {expected} is missing (the next stored event is sequence {found})"
            );
            self.link(expected, ChainProblem::MissingEvent, detail)
        } else {
            let detail = format!("sequence {found} is outside the chain, which starts at 1");
            self.link(found, ChainProblem::BrokenChain, detail)
        }
    }

    fn link(&self, sequence: i64, problem: ChainProblem, detail: String) -> BrokenLink {
        BrokenLink {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence,
            problem,
            detail,
        }
    }
}

/// The first 16 hex digits of a hash, enough to tell two apart in a report.
fn short(hash: &[u8]) -> String {
    let hex = to_hex(hash);
    format!("{}…", &hex[..hex.len().min(16)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sequence: i64, hash: u8, recomputed: u8) -> ChainRow {
        ChainRow {
            aggregate_type: "Ticket".into(),
            aggregate_id: "t".into(),
            sequence,
            hash: vec![hash],
            recomputed: Some(vec![recomputed]),
        }
    }

    fn walk(rows: &[ChainRow]) -> (u64, Option<(i64, ChainProblem)>) {
        let mut walk = ChainWalk::starting_at(&rows[0]);
        for row in rows {
            walk.push(row);
        }
        let (events, broken) = walk.finish();
        (events, broken.map(|b| (b.sequence, b.problem)))
    }

    #[test]
    fn an_intact_chain_has_no_broken_link() {
        assert_eq!(walk(&[row(1, 1, 1), row(2, 2, 2), row(3, 3, 3)]), (3, None));
    }

    #[test]
    fn an_edited_event_whose_successor_still_chains_is_a_hash_mismatch() {
        let rows = [row(1, 1, 1), row(2, 2, 9), row(3, 3, 3)];
        assert_eq!(walk(&rows), (3, Some((2, ChainProblem::HashMismatch))));
    }

    #[test]
    fn an_edited_last_event_is_a_hash_mismatch() {
        let rows = [row(1, 1, 1), row(2, 2, 9)];
        assert_eq!(walk(&rows), (2, Some((2, ChainProblem::HashMismatch))));
    }

    #[test]
    fn a_rewritten_hash_that_the_successor_does_not_chain_from_is_a_broken_chain() {
        let rows = [row(1, 1, 1), row(2, 7, 2), row(3, 3, 8), row(4, 4, 4)];
        assert_eq!(walk(&rows), (4, Some((2, ChainProblem::BrokenChain))));
    }

    #[test]
    fn a_gap_is_a_missing_event_at_the_first_absent_sequence() {
        let rows = [row(1, 1, 1), row(2, 2, 2), row(5, 5, 5)];
        assert_eq!(walk(&rows), (3, Some((3, ChainProblem::MissingEvent))));
        assert_eq!(
            walk(&[row(2, 2, 2)]),
            (1, Some((1, ChainProblem::MissingEvent)))
        );
    }

    #[test]
    fn only_the_first_broken_link_is_reported() {
        let rows = [row(1, 1, 1), row(3, 3, 9), row(4, 4, 9)];
        assert_eq!(walk(&rows), (3, Some((2, ChainProblem::MissingEvent))));
    }

    #[test]
    fn a_sequence_zero_is_outside_the_chain() {
        let rows = [row(0, 0, 0), row(1, 1, 1)];
        assert_eq!(walk(&rows), (2, Some((0, ChainProblem::BrokenChain))));
    }
}
