//! `sluice plugin …`: the plugin author's workbench.
//!
//! - [`scaffold`]: `plugin new` writes a plugin directory that builds as it is;
//! - [`check`]: `plugin check` loads a component and checks it against the
//!   contract, its config and its `init` answer;
//! - [`run`]: `plugin run` runs the hooks on a recorded exchange
//!   ([`exchange`]) without a gateway, recording every host call
//!   ([`record`]).
//!
//! Everything runs through the gateway's own policy runtime, so what the
//! workbench accepts is what the gateway accepts.

pub mod check;
pub mod exchange;
mod load;
pub mod record;
pub mod run;
pub mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;

/// The `sluice plugin` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// Write a new plugin directory that builds as it is, with a test.
    New {
        /// Plugin name (lowercase letters, digits and `-`).
        name: String,
        /// Language of the plugin.
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Load a component, check it against the contract, run `validate` and
    /// `init` with `--config FILE` (the plugin's own config, YAML or JSON),
    /// and print its exports, hooks, fetch hosts, size and compile time.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the plugin's hooks on a recorded exchange, without a gateway, and
    /// print each hook's action, edits, events and host calls.
    Run {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The request: JSON with method, path, headers, body (see sdk/fixtures).
        #[arg(long)]
        request: PathBuf,
        /// A recorded non-streaming response (JSON with status, headers, body).
        #[arg(long, conflicts_with = "sse")]
        response: Option<PathBuf>,
        /// A recorded streaming response (`text/event-stream` bytes).
        #[arg(long)]
        sse: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Run a workbench command. `config`: the plugin config file given with
/// `--config`, if one was given.
pub fn main(cmd: PluginCommand, config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::New { name, lang, dir } => scaffold::new(&name, lang, dir),
        PluginCommand::Check { file, json } => check::check(&file, config.as_deref(), json),
        PluginCommand::Run {
            file,
            request,
            response,
            sse,
            json,
        } => run::run(
            &file,
            config.as_deref(),
            &request,
            run::ResponseInput::from_args(response, sse),
            json,
        ),
    }
}
