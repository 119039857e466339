//! `make bench`: the convergence benchmark (see the README's Performance section). It runs
//! `sendconnector-operator run` as its own process (this package's release binary, or the
//! one `BENCH_BINARY` names) and prints one table; the JSON report goes to
//! `target/bench/convergence.json` (or `BENCH_JSON`).
//!
//! `BENCH_ONLY=S,L,XL,rest,fairness,idle` keeps some parts; `BENCH_RUNS=N` sets the runs of
//! each timed case (3); `BENCH_RESYNC=SECONDS` the resync interval (20); `BENCH_SHORT=1` runs
//! the short form only (S once, one short interval at rest). `BENCH_LOG_DIR=DIR` keeps each
//! operator log there, at `BENCH_LOG_LEVEL` (an `EnvFilter`, `warn` by default).
mod bench;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A test runner asking for the list of tests (nextest, `cargo test --benches`): none here.
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    // `cargo test` runs bench targets without `--bench`: a benchmark is not a test, and the
    // short form has its own test (tests/bench_short.rs).
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("convergence: a benchmark; run it with `make bench`");
        return ExitCode::SUCCESS;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let binary = std::env::var_os("BENCH_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_sendconnector-operator")),
        PathBuf::from,
    );
    let json = std::env::var_os("BENCH_JSON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/convergence.json"),
        PathBuf::from,
    );
    let mut plan = if std::env::var("BENCH_SHORT").is_ok_and(|v| v == "1") {
        bench::Plan::short(json)
    } else {
        bench::Plan::full(json)
    };
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        plan = plan.only(&only)?;
    }
    if let Ok(runs) = std::env::var("BENCH_RUNS") {
        plan.runs = runs.parse().context("BENCH_RUNS: a number of runs")?;
    }
    if let Ok(resync) = std::env::var("BENCH_RESYNC") {
        plan.resync = Duration::from_secs(resync.parse().context("BENCH_RESYNC: seconds")?);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(bench::run(&binary, &plan))?;
    bench::write_json(&report, &plan.json)?;
    println!("{}", report.table());
    println!("JSON: {}", plan.json.display());
    Ok(())
}
