//! `helpdesk`: run the product, or operate it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "helpdesk",
    version,
    about = "An event-sourced customer-support helpdesk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole product in one process (migrates the database first).
    Up,
    /// Run only the relay (events table → JetStream).
    Relay,
    /// Run one projection's consumer alone (copies share the work).
    Project {
        /// The projection, e.g. ticket_summary.
        name: String,
    },
    /// Operate projections.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Inspect and redrive dead letters.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Check the event store's hash chains, or anchor them.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Mint a development token (HS256, signed with HELPDESK_JWT_SECRET or the development
    /// secret `up` uses when no key is configured).
    Token {
        /// customer, agent, manager, auditor or admin.
        #[arg(long)]
        role: String,
        /// The user id (token subject).
        #[arg(long)]
        sub: String,
        /// Comma-separated groups, e.g. billing,tech.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// For customers: the customer id (defaults to --sub).
        #[arg(long)]
        customer_id: Option<String>,
        /// Lifetime: 90s, 30m, 8h, 7d.
        #[arg(long, default_value = "8h", value_parser = helpdesk_platform::auth::parse_ttl)]
        ttl: std::time::Duration,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Drop a read model and replay it from the event store.
    Rebuild { name: String },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List a projection's dead letters.
    List { projection: String },
    /// Apply a projection's dead letters again.
    Redrive { projection: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-walk every hash chain (or one aggregate's) and the latest anchor; report the first
    /// broken link of each aggregate. Exits non-zero when anything is broken.
    Verify {
        /// Only this aggregate (its chain alone: a deleted tail needs the full check).
        #[arg(long)]
        aggregate: Option<String>,
        /// The aggregate's type, with --aggregate.
        #[arg(long, default_value = "Ticket", requires = "aggregate")]
        aggregate_type: String,
        /// Database connections walking the store side by side (Postgres does the hashing).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
    },
    /// Append an anchor now: an event hashing every chain head, so that deleting an
    /// aggregate's newest events becomes detectable.
    Anchor,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Openapi => helpdesk::openapi_json()
            .map(|json| helpdesk::announce(&json))
            .map_err(Into::into),
        Command::Migrate => match helpdesk::load_config() {
            Ok(config) => helpdesk::migrate(&config).await.map(|_| {
                helpdesk::announce("migrations applied\n");
            }),
            Err(error) => Err(error),
        },
        Command::Token {
            role,
            sub,
            groups,
            customer_id,
            ttl,
        } => helpdesk::load_config().and_then(|config| {
            let request = helpdesk::TokenRequest {
                sub,
                role,
                groups,
                customer_id,
                ttl,
            };
            helpdesk::mint_token(&config, request)
                .map(|token| helpdesk::announce(&format!("{token}\n")))
        }),
        Command::Project { name } => match helpdesk::load_config() {
            Ok(config) => helpdesk::project(config, &name).await,
            Err(error) => Err(error),
        },
        Command::Projections {
            command: ProjectionsCommand::Rebuild { name },
        } => match helpdesk::load_config() {
            Ok(config) => helpdesk::rebuild_projection(config, &name).await,
            Err(error) => Err(error),
        },
        Command::Dlq { command } => match helpdesk::load_config() {
            Ok(config) => match command {
                DlqCommand::List { projection } => {
                    helpdesk::list_dead_letters(config, &projection).await
                }
                DlqCommand::Redrive { projection } => {
                    helpdesk::redrive_dead_letters(config, &projection).await
                }
            },
            Err(error) => Err(error),
        },
        Command::Audit { command } => match helpdesk::load_config() {
            Ok(config) => match command {
                AuditCommand::Verify {
                    aggregate: Some(id),
                    aggregate_type,
                    ..
                } => helpdesk::audit::verify_aggregate(config, &aggregate_type, &id).await,
                AuditCommand::Verify {
                    aggregate: None,
                    jobs,
                    ..
                } => helpdesk::audit::verify_store(config, usize::from(jobs)).await,
                AuditCommand::Anchor => helpdesk::audit::write_anchor(config).await,
            },
            Err(error) => Err(error),
        },
        Command::Relay => match helpdesk::load_config() {
            Ok(config) => helpdesk::relay_alone(config).await,
            Err(error) => Err(error),
        },
        Command::Up => match helpdesk::load_config() {
            Ok(config) => helpdesk::up(config).await,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => helpdesk::fail(&error),
    }
}
