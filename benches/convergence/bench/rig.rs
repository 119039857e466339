//! One measured setup: the in-memory Kubernetes API served over HTTP, the OVH simulator, the
//! workload's Namespace and Secrets, and `run` as its own process.
use super::workload::{CREDENTIALS, NS, Workload};
use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use memory_apiserver::ApiServer;
use ovh_simulator::{Faults, RunningSimulator, Seed, Simulator, SimulatorConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The simulator's latency and task timings of every measurement.
pub const LATENCY_MS: u64 = 20;
pub const TASK_TODO_SECONDS: f64 = 0.2;
pub const TASK_DOING_SECONDS: f64 = 0.5;

/// How the operator is started.
#[derive(Clone, Debug)]
pub struct OperatorSettings {
    pub rate: f64,
    pub burst: u32,
    pub resync: Duration,
}

/// The API server, the simulator and a scratch directory; the operator once started.
pub struct Rig {
    pub k8s: ApiServer,
    pub client: kube::Client,
    pub sim: RunningSimulator,
    pub dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    server: tokio::task::JoinHandle<()>,
    operator: Option<Operator>,
}

/// `run` as a child process.
pub struct Operator {
    child: tokio::process::Child,
    pub pid: u32,
    pub started: Instant,
    pub metrics: SocketAddr,
    log: PathBuf,
}

impl Rig {
    /// Serves an API with both CRDs and the workload's Namespace and Secrets, and a simulator
    /// seeded with the workload's services.
    pub async fn start(workload: &Workload) -> Result<Self> {
        let k8s = ApiServer::with_config(memory_apiserver::Config {
            // Large enough that neither the operator's watches nor the bench's own ever have to
            // relist in the middle of a run (the bench counts every change of every object).
            history_limit: 2_000_000,
            ..memory_apiserver::Config::default()
        });
        for crd in sendconnector_operator::crd::crds() {
            k8s.register_crd(&crd);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let api = k8s.clone();
        let server = tokio::spawn(async move {
            if let Err(error) = api.serve(listener).await {
                eprintln!("bench: the API server stopped: {error}");
            }
        });
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_for(addr))?;

        let seed = serde_json::to_string(&workload.seed(TASK_TODO_SECONDS, TASK_DOING_SECONDS))?;
        let sim = Simulator::start(
            SimulatorConfig {
                seed: Seed::from_yaml(&seed)?,
                ..SimulatorConfig::default()
            },
            "127.0.0.1:0".parse()?,
        )
        .await?;
        sim.sim().set_faults(Faults {
            latency_ms: LATENCY_MS,
            ..Faults::default()
        });

        let client = k8s.client();
        let rig = Self {
            k8s,
            client,
            sim,
            dir,
            kubeconfig,
            server,
            operator: None,
        };
        rig.create(
            &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
        )
        .await?;
        let secret = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
        for (name, data) in [
            (CREDENTIALS, Workload::credentials(&rig.sim.base_url())),
            ("relay-password", json!({"password": "relay-password-1"})),
        ] {
            rig.create(
                &secret,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "stringData": data}),
            )
            .await?;
        }
        Ok(rig)
    }

    /// Creates one object (in its manifest's namespace, if any).
    pub async fn create(&self, resource: &ApiResource, object: Value) -> Result<()> {
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let object: DynamicObject = serde_json::from_value(object)?;
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating {} {name}", resource.kind))?;
        Ok(())
    }

    /// Starts `binary run` against this API, with the flags of `settings` that `binary` knows.
    pub async fn start_operator(
        &mut self,
        binary: &Path,
        settings: &OperatorSettings,
    ) -> Result<()> {
        let metrics = free_port()?;
        // `BENCH_LOG_DIR` keeps each operator's log (`BENCH_LOG_LEVEL`, `warn` by default)
        // after the run, to see where its requests went.
        let log = match std::env::var_os("BENCH_LOG_DIR") {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                let n = std::fs::read_dir(&dir)?.count();
                std::path::PathBuf::from(dir).join(format!("operator-{n:02}.log"))
            }
            None => self.dir.path().join("operator.log"),
        };
        let level = std::env::var("BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".to_owned());
        let flags = Flags::of(binary).await?;
        let mut args: Vec<String> = vec!["run".into()];
        let mut flag = |name: &str, value: String| {
            if flags.knows(name) {
                args.push(name.to_owned());
                args.push(value);
            }
        };
        flag("--ovh-rate", settings.rate.to_string());
        flag("--ovh-burst", settings.burst.to_string());
        flag(
            "--resync-interval",
            format!("{}ms", settings.resync.as_millis()),
        );
        flag("--listen", metrics.to_string());
        flag("--log-level", level);
        let child = tokio::process::Command::new(binary)
            .args(&args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::options().append(true).open(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the operator exited at once")?;
        self.operator = Some(Operator {
            child,
            pid,
            started: Instant::now(),
            metrics,
            log,
        });
        Ok(())
    }

    pub fn operator(&self) -> Result<&Operator> {
        self.operator
            .as_ref()
            .context("the operator is not started")
    }

    /// Fails with the end of the operator's log if it has exited.
    pub fn check_operator(&mut self) -> Result<()> {
        let Some(op) = self.operator.as_mut() else {
            return Ok(());
        };
        if let Some(status) = op.child.try_wait()? {
            bail!("the operator exited ({status}):\n{}", op.log_tail());
        }
        Ok(())
    }

    /// Stops the operator (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop_operator(&mut self) -> Result<()> {
        if let Some(mut op) = self.operator.take() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &op.pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), op.child.wait())
                .await
                .is_err()
            {
                op.child.kill().await?;
            }
        }
        Ok(())
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Operator {
    /// `VmHWM` (peak) and `VmRSS` (now) of the process, in KiB.
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no {name} in /proc/{}/status", self.pid))
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if http_status(self.metrics, "/readyz").await == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("/readyz not 200 after {timeout:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the operator's output.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// The flags `run --help` lists, so that a flag is passed only to a binary that has it.
struct Flags(String);

impl Flags {
    async fn of(binary: &Path) -> Result<Self> {
        let out = tokio::process::Command::new(binary)
            .args(["run", "--help"])
            .output()
            .await
            .with_context(|| format!("running {} run --help", binary.display()))?;
        if !out.status.success() {
            bail!("{} run --help failed", binary.display());
        }
        Ok(Self(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    fn knows(&self, flag: &str) -> bool {
        self.0
            .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[')
            .any(|word| word == flag)
    }
}

fn kubeconfig_for(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: http://{addr}\nusers:\n- name: bench\n  user: {{}}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\n    namespace: default\ncurrent-context: bench\n"
    )
}

/// A loopback port free at the time of asking.
fn free_port() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The status code of a plain HTTP/1.0 GET, or `None` when nothing answers.
async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = vec![0; 32];
    let n = stream.read(&mut head).await.ok()?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
