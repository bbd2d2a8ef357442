//! The projection runtime (consumers, checkpoints, retries, dead letters, rebuilds) and the read
//! model projections (search, SLA, real-time).
//!
//! Empty until the event pipeline issue: the foundation only writes events. Keeping the crate
//! in the workspace now makes the architecture visible from `ls`.
