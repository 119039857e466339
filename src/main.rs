use clap::Parser;
use sendconnector_operator::cli::{Cli, Command};
use sendconnector_operator::{crd, simulator, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Crds => {
            print!("{}", crd::crds_yaml()?);
            Ok(())
        }
        Command::Simulator(args) => simulator::run(args).await,
    }
}
