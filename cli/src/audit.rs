//! `helpdesk audit …`: verify the event store's hash chains, write anchors, and the periodic
//! anchor task of `helpdesk up`.

use std::io::Write;
use std::time::Duration;

use helpdesk_platform::Config;
use helpdesk_platform::audit::{self, AnchorCheck, Progress, StoreReport};

use crate::{StartError, announce, migrate};

/// Width of the progress bar, in characters.
const BAR_WIDTH: usize = 30;

/// `helpdesk audit verify`: walks every chain on `jobs` connections (with a progress bar on
/// standard error) and checks the latest anchor, prints one line per broken link and a
/// summary; fails when anything is broken.
pub async fn verify_store(config: Config, jobs: usize) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let report = audit::verify_store(&pool, jobs, show_progress).await?;
    let _ = writeln!(std::io::stderr());
    let mut text = String::new();
    for link in &report.broken {
        text.push_str(&format!("broken: {link}\n"));
    }
    text.push_str(&anchor_line(&report.anchor));
    text.push_str(&summary(&report));
    announce(&text);
    if report.is_clean() {
        Ok(())
    } else {
        Err(format!("{} broken links", report.broken.len()).into())
    }
}

/// `helpdesk audit verify --aggregate <id>`: walks one aggregate's chain.
pub async fn verify_aggregate(
    config: Config,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let started = std::time::Instant::now();
    let report = audit::verify_aggregate(&pool, aggregate_type, aggregate_id).await?;
    if report.events == 0 {
        return Err(format!("no events for {aggregate_type} {aggregate_id}").into());
    }
    let seconds = started.elapsed().as_secs_f64();
    let verdict = match &report.first_broken {
        None => "clean".to_owned(),
        Some(link) => format!("broken\nbroken: {link}"),
    };
    announce(&format!(
        "{} events of {aggregate_type} {aggregate_id} verified in {seconds:.2} s: {verdict}\n",
        report.events
    ));
    match report.first_broken {
        None => Ok(()),
        Some(_) => Err(format!("{aggregate_type} {aggregate_id} is broken").into()),
    }
}

/// `helpdesk audit anchor`: appends an anchor over every chain head now.
pub async fn write_anchor(config: Config) -> Result<(), StartError> {
    let pool = migrate(&config).await?;
    let written = audit::write_anchor(&pool).await?;
    announce(&format!(
        "anchor #{} at global position {}: {} chain heads below transaction {} (up to position \
         {}) hash to {}\n",
        written.sequence,
        written.global_position,
        written.anchor.aggregates,
        written.anchor.below_tx_id,
        written.anchor.position,
        written.anchor.heads_hash
    ));
    Ok(())
}

/// Inside `helpdesk up`: every `every`, appends an anchor when events were added since the
/// last one. The first one comes after a full interval, not at start-up.
pub async fn anchor_periodically(pool: sqlx::PgPool, every: Duration) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match audit::anchor_if_due(&pool).await {
            Ok(Some(written)) => tracing::info!(
                sequence = written.sequence,
                position = written.anchor.position,
                aggregates = written.anchor.aggregates,
                "wrote an audit anchor"
            ),
            Ok(None) => tracing::debug!("no events since the last audit anchor"),
            Err(error) => tracing::warn!(%error, "could not write an audit anchor"),
        }
    }
}

/// Redraws the progress line on standard error.
fn show_progress(progress: &Progress) {
    let filled = (progress.percent() / 100.0 * BAR_WIDTH as f64) as usize;
    let bar = format!(
        "{}{}",
        "#".repeat(filled.min(BAR_WIDTH)),
        "-".repeat(BAR_WIDTH - filled.min(BAR_WIDTH))
    );
    let _ = write!(
        std::io::stderr(),
        "\rverifying [{bar}] {:5.1}%  {}/{} events  {:.0} events/s ",
        progress.percent(),
        progress.done,
        progress.total,
        progress.events_per_second()
    );
}

fn anchor_line(anchor: &AnchorCheck) -> String {
    match anchor {
        AnchorCheck::NoAnchor => "anchor: none written yet, so deleted newest events would go \
                                  unnoticed (write one with `helpdesk audit anchor`)\n"
            .to_owned(),
        AnchorCheck::Matches { sequence, anchor } => format!(
            "anchor: #{sequence} ({} chain heads up to position {}) matches\n",
            anchor.aggregates, anchor.position
        ),
        AnchorCheck::Mismatch(_) => "anchor: MISMATCH (see above)\n".to_owned(),
    }
}

fn summary(report: &StoreReport) -> String {
    let seconds = report.elapsed.as_secs_f64();
    let rate = report.events as f64 / seconds.max(1e-9);
    let verdict = if report.is_clean() {
        "clean".to_owned()
    } else {
        format!("{} broken", report.broken.len())
    };
    format!(
        "{} events in {} aggregates verified in {seconds:.2} s ({rate:.0} events/s): {verdict}\n",
        report.events, report.aggregates
    )
}
