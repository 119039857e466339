//! The `simulator` subcommand: serve the simulated OVH API until Ctrl-C or SIGTERM.
use anyhow::Context;
use ovh_simulator::{Seed, Settings, Simulator, SimulatorConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct SimulatorArgs {
    /// Address to listen on.
    #[arg(long, env = "SENDCONNECTOR_LISTEN", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Seed YAML: credentials, services (domains, mailboxes) and task timings.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// JSON file the objects are loaded from at start and saved to on every change.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// YAML file of behaviour switches (camelCase `Settings` keys).
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
}

pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    let seed = match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading seed {}", path.display()))?;
            Seed::from_yaml(&text)?
        }
        None => Seed::default(),
    };
    let settings = match &args.settings {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading settings {}", path.display()))?;
            Settings::from_yaml(&text)
                .map_err(|e| anyhow::anyhow!("invalid settings {}: {e}", path.display()))?
        }
        None => Settings::default(),
    };
    let sim = Simulator::new(SimulatorConfig {
        seed,
        settings,
        state_file: args.state.clone(),
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "OVH API simulator listening on http://{addr}/1.0");
    tokio::select! {
        result = sim.serve(listener) => result?,
        () = crate::cli::shutdown_signal() => tracing::info!("OVH API simulator stopping"),
    }
    Ok(())
}
