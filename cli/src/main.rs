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
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
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
