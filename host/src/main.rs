//! The `sluice` command line.

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use sluice::app;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "An AI-agent gateway whose every policy runs as a sandboxed WebAssembly component"
)]
struct Cli {
    /// Config file(s); several are merged in order. A file may be a bare list of routes.
    #[arg(
        long = "config",
        short = 'c',
        global = true,
        default_value = "config/sluice.yaml"
    )]
    config: Vec<PathBuf>,
    /// Log level or filter (e.g. `info`, `sluice=debug`). RUST_LOG is used when absent.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    /// Listen on another port than a bind's configured one: `CONFIGURED=ACTUAL` (0 = any free port).
    #[arg(long = "port-map", value_name = "FROM=TO")]
    port_map: Vec<String>,
    /// Pin an upstream host to an address, keeping the name for TLS: `host:port=ip:port`.
    #[arg(long = "resolve", value_name = "HOST:PORT=ADDR")]
    resolve: Vec<String>,
    /// Admin listener address (overrides `admin.address`).
    #[arg(long)]
    admin: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check the config files and print every problem (exit 1 if any).
    Validate,
    /// Write, check and try plugins without a gateway (`--config` is then
    /// the plugin's own config file).
    Plugin {
        #[command(subcommand)]
        cmd: sluice::workbench::PluginCommand,
    },
    /// Manage runtime API keys through a running gateway's admin API.
    Keys(sluice::keys::cli::KeysArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Some(Command::Plugin { cmd }) => {
            sluice::workbench::record::init_logging(cli.log_level.as_deref().unwrap_or("warn"));
            plugin_config(&matches, &cli.config)
                .and_then(|config| sluice::workbench::main(cmd, config))
        }
        Some(Command::Keys(args)) => {
            init_logging(
                Some(cli.log_level.as_deref().unwrap_or("warn")),
                cli.log_json,
            );
            keys(args)
        }
        Some(Command::Validate) => {
            init_logging(cli.log_level.as_deref(), cli.log_json);
            validate(&cli.config)
        }
        None => {
            init_logging(cli.log_level.as_deref(), cli.log_json);
            serve(cli)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// For `sluice plugin`: the one `--config` given on the command line (the
/// plugin's own config), not the gateway's default config path.
fn plugin_config(
    matches: &clap::ArgMatches,
    config: &[PathBuf],
) -> anyhow::Result<Option<PathBuf>> {
    let given = std::iter::successors(Some(matches), |m| m.subcommand().map(|(_, m)| m))
        .any(|m| m.value_source("config") == Some(clap::parser::ValueSource::CommandLine));
    match (given, config) {
        (false, _) => Ok(None),
        (true, [one]) => Ok(Some(one.clone())),
        (true, _) => anyhow::bail!("`sluice plugin` takes one --config file (the plugin's config)"),
    }
}

fn keys(args: sluice::keys::cli::KeysArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let ok = rt.block_on(sluice::keys::cli::run(args))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn validate(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let loaded = match sluice::config::load(paths) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                println!("error: {e}");
            }
            println!("{} problem(s) found", errors.0.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
    // Every plugin checks its own config, exactly as at startup.
    let c = &loaded.config;
    let metrics = sluice::metrics::Metrics::new();
    let upstreams = sluice::proxy::client::Upstreams::new(
        Default::default(),
        std::time::Duration::from_secs(10),
    );
    let client = upstreams.fetch_client()?;
    let problems = match sluice::plugins::runtime(&metrics, client, &c.state) {
        Err(e) => vec![format!("policy runtime: {e}")],
        Ok(rt) => match sluice::plugins::PluginSet::load(rt, c) {
            Err(errors) => errors,
            Ok(set) => set.check(c),
        },
    };
    if !problems.is_empty() {
        for p in &problems {
            println!("error: {p}");
        }
        println!("{} problem(s) found", problems.len());
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "ok: {} bind(s), {} route(s), {} policy layer(s), {} plugin(s)",
        c.binds.len(),
        c.routes.len(),
        c.layers.len(),
        c.plugins.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn serve(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut port_map = HashMap::new();
    for m in &cli.port_map {
        let (from, to) = m
            .split_once('=')
            .with_context(|| format!("--port-map {m:?}: expected FROM=TO"))?;
        port_map.insert(
            from.parse()
                .with_context(|| format!("--port-map {m:?}: bad port"))?,
            to.parse()
                .with_context(|| format!("--port-map {m:?}: bad port"))?,
        );
    }
    let options = app::Options {
        config_paths: cli.config,
        port_map,
        resolve: cli.resolve,
        admin: cli.admin,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(app::run(options))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(level: Option<&str>, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
