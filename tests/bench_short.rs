//! The convergence benchmark in its short form (workload S once, one short resync interval
//! at rest) against this package's `run`: it must converge and produce its table and JSON.
//! Times are printed, never asserted on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../benches/convergence/bench/mod.rs"]
#[allow(dead_code)]
mod bench;

use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_benchmark_converges_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let plan = bench::Plan::short(json_path.clone());
    let binary = Path::new(env!("CARGO_BIN_EXE_sendconnector-operator"));
    let report = bench::run(binary, &plan).await.unwrap();
    let table = report.table();
    println!("{table}");

    let s = bench::workload::S;
    assert_eq!(report.convergence.len(), 1);
    let run = &report.convergence[0];
    let writes = run.k8s_writes();
    assert_eq!(writes.objects, (s.connectors + s.bindings) as u64);
    // Every resource got at least its finalizer and a Ready status.
    assert!(writes.finalizer >= writes.objects, "{writes:?}");
    assert!(writes.status >= writes.objects, "{writes:?}");
    let minimum = bench::ovh_requests::Minimum::of(&s);
    assert!(
        run.requests.writes >= minimum.writes,
        "fewer OVH writes than bindings need: {:?}",
        run.requests
    );
    assert!(run.requests.total() >= minimum.total());
    assert!(run.peak_kib > 0 && run.events > 0);

    assert_eq!(report.at_rest.len(), 1);
    assert_eq!(
        report.at_rest[0].requests.writes, 0,
        "OVH writes at rest: {:?}",
        report.at_rest[0].requests.by_route
    );

    assert!(table.contains("÷min") && table.lines().any(|l| l.starts_with("S ")));
    bench::write_json(&report, &json_path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let runs = &json["convergence"][0]["runs"];
    assert_eq!(runs[0]["workload"], "S");
    assert_eq!(runs[0]["ovh"]["total"].as_u64(), Some(run.requests.total()));
    assert_eq!(json["atRest"][0]["services"], 2);
}

#[test]
fn the_minimum_of_l_is_its_writes_and_46_reads() {
    use bench::ovh_requests::Minimum;
    let m = Minimum::of(&bench::workload::L);
    assert_eq!(m.writes, 100 + 2000 + 10);
    // Per service: 1 listing + 1 (50 connectors) + 20 (1,000 mailboxes) + 1 (5 domains).
    assert_eq!(m.reads, 2 * 23);
    assert_eq!(
        Minimum::of(&bench::workload::S).total(),
        10 + 200 + 4 + 2 * (1 + 1 + 2 + 1)
    );
    // XL: 250 connectors, 5,000 mailboxes and 10 domains per service.
    assert_eq!(
        Minimum::of(&bench::workload::XL).reads,
        4 * (1 + 5 + 100 + 1)
    );
}

#[test]
fn requests_are_classified_by_route() {
    let p = "/email/exchange/{organizationName}/service/{exchangeService}";
    let counters: std::collections::BTreeMap<String, u64> = [
        (format!("POST {p}/sendConnector"), 3),
        (format!("GET {p}/sendConnector"), 2),
        (format!("GET {p}/task/{{id}}"), 5),
        (format!("GET {p}/task"), 1),
        (
            format!("GET {p}/account/{{primaryEmailAddress}}/tasks/{{id}}"),
            7,
        ),
        (format!("GET {p}/account/{{primaryEmailAddress}}/tasks"), 4),
        (format!("PUT {p}/account/{{primaryEmailAddress}}"), 11),
        ("GET /auth/time".to_owned(), 1),
    ]
    .into_iter()
    .collect();
    let r = bench::ovh_requests::Requests::classify(&counters);
    assert_eq!(
        (r.writes, r.reads, r.task_polls, r.task_lists),
        (14, 3, 12, 5)
    );
    assert_eq!(r.on_connectors, 3 + 2 + 5 + 1);
    assert_eq!(r.total(), 34);
}

#[test]
fn every_binding_fits_its_connectors_service_in_the_seed() {
    for w in bench::workload::ALL {
        let seed = w.seed(0.2, 0.5);
        let services = seed["services"].as_array().unwrap();
        assert_eq!(services.len(), w.services);
        let mut mailboxes = 0;
        for i in 0..w.bindings {
            let connector = w.connector(i);
            let binding = w.binding(i);
            assert_eq!(
                binding["spec"]["connectorRef"]["name"],
                connector["metadata"]["name"]
            );
            let org = connector["spec"]["organization"].as_str().unwrap();
            let service = services.iter().find(|s| s["organization"] == org).unwrap();
            let has = |list: &str, item: &serde_json::Value| {
                service[list].as_array().unwrap().contains(item)
            };
            for m in binding["spec"]["mailboxes"].as_array().unwrap() {
                assert!(has("accounts", m), "{} binding {i}: {m}", w.name);
                mailboxes += 1;
            }
            for d in binding["spec"]["defaultForDomains"].as_array().unwrap() {
                assert!(has("domains", d), "{} binding {i}: {d}", w.name);
            }
        }
        assert_eq!(mailboxes, w.mailbox_total());
        let defaults: usize = (0..w.bindings)
            .map(|i| {
                w.binding(i)["spec"]["defaultForDomains"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(defaults, w.domain_defaults, "{}", w.name);
    }
}
