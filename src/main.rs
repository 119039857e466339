use clap::Parser;
use sendconnector_operator::cli::{Cli, Command, RunArgs, subcommand};
use sendconnector_operator::{allocator, controller, crd, local, simulator_cli, telemetry};

fn main() {
    // Before the runtime's threads exist: they take their allocator arenas as they start.
    allocator::tune();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            std::process::exit(1)
        }
    };
    runtime.block_on(operator());
}

async fn operator() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `local` keeps 2 for "calls planned" (`--dry-run`): its usage errors are errors, 1.
        Err(e) if e.use_stderr() && subcommand(std::env::args()).as_deref() == Some("local") => {
            let _ = e.print();
            std::process::exit(1)
        }
        Err(e) => e.exit(),
    };
    telemetry::init(cli.log_format, &cli.log_level);
    let result = match cli.command {
        Command::Crds => crd::crds_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(anyhow::Error::from),
        Command::Simulator(args) => simulator_cli::run(args).await,
        Command::Run(args) => run(args).await,
        Command::VerifyHeader(args) => {
            std::process::exit(sendconnector_operator::verify_header::run(&args).await)
        }
        // 0: everything Ready (dry run: nothing to change); 1: not Ready, or an error;
        // 2: dry run with calls planned.
        Command::Local(args) => local::run(args).await.map(|exit| {
            if exit.code() != 0 {
                std::process::exit(exit.code())
            }
        }),
    };
    if let Err(e) = result {
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
}

/// The operator: both controllers until SIGTERM or Ctrl-C.
async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args
        .controller_config(|var| std::env::var(var).ok())
        .map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!(
            "no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}"
        )
    })?;
    let namespaces = if config.namespaces.is_empty() {
        "all".to_owned()
    } else {
        config.namespaces.join(",")
    };
    let default_credentials = match (
        &config.default_credentials_secret,
        &config.default_credentials_env,
    ) {
        (Some((ns, name)), _) => format!("Secret {ns}/{name}"),
        (None, Some(_)) => "OVH_* environment variables".to_owned(),
        (None, None) => "none".to_owned(),
    };
    if config.default_credentials_secret.is_some() || config.default_credentials_env.is_some() {
        if config.default_credentials_namespaces.is_empty() {
            tracing::warn!(
                "default OVH credentials are set but no namespace may use them (--default-credentials-namespaces)"
            );
        }
    } else if !config.default_credentials_namespaces.is_empty() {
        tracing::warn!(
            "--default-credentials-namespaces is set but there are no default OVH credentials (--default-credentials-secret or OVH_* variables)"
        );
    }
    // The CRDs first, so that their absence is what a user is told about; then the
    // metrics and health server, whose address must be free.
    controller::check_crds(&client).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (--listen): {e}", args.listen))?;
    let listen = listener.local_addr().map_or(args.listen, |a| a);
    let leader_election = config.leader_election.as_ref().map_or_else(
        || "off".to_owned(),
        |l| format!("Lease {}/{} as {}", l.namespace, l.lease_name, l.identity),
    );
    tracing::info!(
        namespaces,
        listen = %listen,
        leader_election,
        resync_interval = %humantime::format_duration(config.resync_interval),
        ovh_rate = config.budget.rate,
        ovh_burst = config.budget.burst,
        default_credentials,
        default_credentials_namespaces = config.default_credentials_namespaces.join(","),
        "starting the operator"
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        sendconnector_operator::cli::shutdown_signal().await;
        tracing::info!("stopping: finishing the reconciles in progress");
        let _ = stop_tx.send(());
        // A second signal stops at once.
        sendconnector_operator::cli::shutdown_signal().await;
        tracing::warn!("second signal: stopping now");
        std::process::exit(1);
    });
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(telemetry::health::serve(
        listener,
        config.telemetry.clone(),
        async move {
            let _ = http_stopped.await;
        },
    ));
    let result = Box::pin(controller::run(client, config, async move {
        let _ = stop_rx.await;
    }))
    .await;
    // The probes and metrics stay up while the reconciles in progress finish.
    let _ = http_stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), http).await;
    result?;
    tracing::info!("stopped");
    Ok(())
}
