//! A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager
//! on loopback, started by `scripts/testenv up` in a temporary directory and stopped by
//! `scripts/testenv down` when the value is dropped. The script is given this process's pid as
//! the owner, so a test process that dies without dropping it (killed, aborted) leaves nothing
//! running.
//!
//! A test includes it with `#[path = "common/testenv.rs"] mod testenv;` (or through `mod common`
//! once `common` declares it).
#![allow(dead_code)]

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's `scripts/testenv`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testenv")
}

pub struct TestEnv {
    dir: tempfile::TempDir,
    kubectl: PathBuf,
    server: String,
    stopped: bool,
}

impl TestEnv {
    /// Starts a control plane owned by this process, building the binaries first if they are
    /// missing (minutes, once). An error carries the script's output, including the log tail of
    /// a process that failed to start.
    pub fn start() -> Result<Self> {
        Self::start_owned_by(std::process::id())
    }

    /// Starts a control plane that is taken down when the process `owner` exits.
    pub fn start_owned_by(owner: u32) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("testenv-")
            .tempdir()
            .context("creating the control plane's directory")?;
        let output = Command::new(script())
            .arg("up")
            .arg(dir.path())
            .arg("--owner-pid")
            .arg(owner.to_string())
            .output()
            .context("running scripts/testenv up")?;
        if !output.status.success() {
            bail!(
                "scripts/testenv up failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let env = std::fs::read_to_string(dir.path().join("env"))
            .context("reading the control plane's env file")?;
        let value = |key: &str| -> Result<String> {
            env.lines()
                .find_map(|line| line.strip_prefix(&format!("export {key}=")))
                .map(ToOwned::to_owned)
                .with_context(|| format!("{key} missing from the env file:\n{env}"))
        };
        Ok(Self {
            kubectl: PathBuf::from(value("TESTENV_KUBECTL")?),
            server: value("TESTENV_SERVER")?,
            dir,
            stopped: false,
        })
    }

    /// The directory holding the control plane's data, certificates and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin's kubeconfig (user `admin`, group `system:masters`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir().join("admin.kubeconfig")
    }

    /// The kubectl built with the server, of the same version.
    pub fn kubectl_path(&self) -> &Path {
        &self.kubectl
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// kubectl with the admin kubeconfig and a discovery cache of this control plane's own.
    pub fn kubectl_command(&self) -> Command {
        let mut command = Command::new(&self.kubectl);
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig_path().display()))
            .arg(format!(
                "--cache-dir={}",
                self.dir().join("kubectl-cache").display()
            ))
            .arg("--request-timeout=30s");
        command
    }

    /// Runs kubectl with `args`, successful or not.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.kubectl.display()))
    }

    /// A kube client as the admin.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig_path())?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// The last lines of a component's log (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`), for failure messages.
    pub fn log_tail(&self, component: &str) -> String {
        let log = std::fs::read_to_string(self.dir().join("logs").join(format!("{component}.log")))
            .unwrap_or_default();
        let lines: Vec<_> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the control plane and removes its data, reporting a failure.
    pub fn stop(mut self) -> Result<()> {
        self.down()
    }

    fn down(&mut self) -> Result<()> {
        // Already down, or taken down by the owner watchdog.
        if self.stopped || !self.dir().exists() {
            return Ok(());
        }
        self.stopped = true;
        let output = Command::new(script())
            .arg("down")
            .arg(self.dir())
            .output()
            .context("running scripts/testenv down")?;
        if !output.status.success() {
            bail!(
                "scripts/testenv down failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("{e:#}");
        }
    }
}
