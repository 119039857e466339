//! The command line: one binary, one subcommand per job. Every flag can also be set through
//! an environment variable named `SENDCONNECTOR_<FLAG>`.
use crate::telemetry::LogFormat;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sendconnector-operator",
    version,
    about = "Keeps OVHcloud Exchange send connectors equal to Kubernetes resources"
)]
pub struct Cli {
    /// Log format: `plain` for people, `json` for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain, env = "SENDCONNECTOR_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log level or filter directive (`info`, `debug`, `sendconnector_operator=debug`);
    /// `RUST_LOG` wins when set.
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "SENDCONNECTOR_LOG_LEVEL"
    )]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print both CRDs as YAML (the only source of `crds/crds.yaml`).
    Crds,
    /// Run a local simulator of the OVHcloud Exchange API (for tests, demos and pipelines).
    Simulator(crate::simulator::SimulatorArgs),
}
