//! The in-memory API held to a real one: every manifest of `tests/conformance/` is written to
//! a real kube-apiserver (v1.34, started by the repository's `scripts/testenv`) and to the
//! in-memory API through the same kube client calls, and both must answer alike: accepted with
//! the same stored spec and status after defaulting, or refused with the same code and the
//! same fields named. The real server's verdict must also be the one the manifest expects.
//!
//! Each manifest starts with `# expect: accepted` or `# expect: rejected FIELD[, FIELD]` and
//! `# via: create|replace|merge|json|apply|status`. Updates carry two documents: the object
//! created first, then the object after (`replace`, `apply`) or the patch (`merge`, `json`,
//! `status`: a merge patch of the status subresource).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use memory_apiserver::ApiServer;
use serde_json::{Value, json};

const NAMESPACE: &str = "conformance";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// One manifest of the corpus.
#[derive(Debug)]
struct Case {
    file: String,
    expect: Option<BTreeSet<String>>,
    via: String,
    documents: Vec<Value>,
}

impl Case {
    fn object(&self) -> &Value {
        &self.documents[0]
    }

    fn name(&self) -> &str {
        self.object()["metadata"]["name"].as_str().unwrap()
    }

    fn path(&self) -> String {
        let plural = match self.object()["kind"].as_str().unwrap() {
            "SendConnector" => "sendconnectors",
            "MailboxBinding" => "mailboxbindings",
            other => panic!("{}: unexpected kind {other}", self.file),
        };
        format!("/apis/sendconnector.io/v1alpha1/namespaces/{NAMESPACE}/{plural}")
    }
}

fn header<'a>(text: &'a str, key: &str, file: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .unwrap_or_else(|| panic!("{file}: no `# {key}:` line"))
        .trim()
}

fn corpus() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.starts_with("# expect: "),
                "{file}: the first line must be `# expect: ...`"
            );
            let expect = match header(&text, "expect", &file) {
                "accepted" => None,
                rejected => Some(
                    rejected
                        .strip_prefix("rejected ")
                        .unwrap_or_else(|| panic!("{file}: bad expectation {rejected}"))
                        .split(',')
                        .map(|f| f.trim().to_owned())
                        .collect(),
                ),
            };
            let via = header(&text, "via", &file).to_owned();
            let documents: Vec<Value> = text
                .split("\n---\n")
                .map(|doc| serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
                .collect();
            let wanted = if via == "create" { 1 } else { 2 };
            assert_eq!(
                documents.len(),
                wanted,
                "{file}: {via} takes {wanted} documents"
            );
            Case {
                file,
                expect,
                via,
                documents,
            }
        })
        .collect()
}

/// What a backend answered to a case.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// Stored: `spec` and `status` as read back.
    Accepted { spec: Value, status: Value },
    /// Refused.
    Rejected {
        code: u16,
        /// `details.causes[].field`, or for strict decoding errors the unknown fields.
        fields: BTreeSet<String>,
        /// `details.causes[].message`, sorted (upstream's order varies).
        causes: Vec<String>,
        message: String,
    },
}

impl Verdict {
    /// The fields named, without upstream's `<nil>` note about unchecked rules.
    fn named_fields(&self) -> Option<BTreeSet<String>> {
        match self {
            Self::Accepted { .. } => None,
            Self::Rejected { fields, .. } => {
                Some(fields.iter().filter(|f| *f != "<nil>").cloned().collect())
            }
        }
    }
}

fn refused(error: kube::Error) -> Verdict {
    let kube::Error::Api(status) = error else {
        panic!("not an API error: {error}");
    };
    let causes_list = status
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    let mut fields: BTreeSet<String> = causes_list.iter().map(|c| c.field.clone()).collect();
    // Strict field validation answers 400 with the unknown fields in the message only.
    for part in status.message.split("unknown field \"").skip(1) {
        if let Some((field, _)) = part.split_once('"') {
            fields.insert(field.to_owned());
        }
    }
    // So does an apply patch naming undeclared fields (`.spec.x: field not declared ...`).
    for part in status.message.split(" .").skip(1) {
        if let Some((field, _)) = part.split_once(": field not declared in schema") {
            fields.insert(field.to_owned());
        }
    }
    let mut causes: Vec<String> = causes_list
        .iter()
        .map(|c| without_quoted_object(&c.message))
        .collect();
    causes.sort();
    Verdict::Rejected {
        code: status.code,
        fields,
        causes,
        message: without_quoted_object(&status.message),
    }
}

/// A refused patch quotes the whole patched object (uid, timestamps, managed fields): the
/// backends agree on everything else.
fn without_quoted_object(message: &str) -> String {
    let Some((before, rest)) = message.split_once("Invalid value: \"{") else {
        return message.to_owned();
    };
    match rest.rsplit_once("}\": ") {
        Some((_, after)) => format!("{before}Invalid value: \"{{object}}\": {after}"),
        None => message.to_owned(),
    }
}

async fn send(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &Value,
) -> Result<Value, kube::Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(serde_json::to_vec(body).unwrap())
        .unwrap();
    client.request::<Value>(request).await
}

/// Runs `case` on one backend, through the same calls for both.
async fn run(client: &kube::Client, case: &Case) -> Verdict {
    let collection = case.path();
    let item = format!("{collection}/{}", case.name());
    let strict = "fieldValidation=Strict";
    let first = send(
        client,
        "POST",
        &format!("{collection}?{strict}"),
        "application/json",
        case.object(),
    )
    .await;
    if case.via == "create" {
        return match first {
            Ok(_) => read_back(client, &item).await,
            Err(e) => refused(e),
        };
    }
    if let Err(e) = first {
        panic!(
            "{}: creating the object before the update failed: {e}",
            case.file
        );
    }
    let change = &case.documents[1];
    let result = match case.via.as_str() {
        "replace" => {
            let current = send(client, "GET", &item, "application/json", &Value::Null)
                .await
                .unwrap();
            let mut replacement = change.clone();
            replacement["metadata"]["resourceVersion"] =
                current["metadata"]["resourceVersion"].clone();
            send(
                client,
                "PUT",
                &format!("{item}?{strict}"),
                "application/json",
                &replacement,
            )
            .await
        }
        "merge" => {
            send(
                client,
                "PATCH",
                &format!("{item}?{strict}"),
                "application/merge-patch+json",
                change,
            )
            .await
        }
        "json" => {
            send(
                client,
                "PATCH",
                &format!("{item}?{strict}"),
                "application/json-patch+json",
                change,
            )
            .await
        }
        "apply" => {
            send(
                client,
                "PATCH",
                &format!("{item}?{strict}&fieldManager=conformance&force=true"),
                "application/apply-patch+yaml",
                change,
            )
            .await
        }
        "status" => {
            send(
                client,
                "PATCH",
                &format!("{item}/status?{strict}"),
                "application/merge-patch+json",
                change,
            )
            .await
        }
        other => panic!("{}: unknown via {other}", case.file),
    };
    match result {
        Ok(_) => read_back(client, &item).await,
        Err(e) => refused(e),
    }
}

async fn read_back(client: &kube::Client, item: &str) -> Verdict {
    let object = send(client, "GET", item, "application/json", &Value::Null)
        .await
        .unwrap();
    Verdict::Accepted {
        spec: object.get("spec").cloned().unwrap_or(Value::Null),
        status: object.get("status").cloned().unwrap_or(Value::Null),
    }
}

fn crds() -> Vec<CustomResourceDefinition> {
    let text = std::fs::read_to_string(repository().join("crds/crds.yaml")).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str(doc).unwrap())
        .collect()
}

/// A real control plane from `scripts/testenv`, taken down on drop (and by the script's
/// watchdog if this process dies first).
struct RealServer {
    dir: tempfile::TempDir,
    kubectl: String,
}

impl RealServer {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("conformance-")
            .tempdir()
            .unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/testenv");
        let output = Command::new(script)
            .arg("up")
            .arg(dir.path())
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("running scripts/testenv up");
        assert!(
            output.status.success(),
            "the real control plane did not start ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let kubectl = env
            .lines()
            .find_map(|l| l.strip_prefix("export TESTENV_KUBECTL="))
            .expect("TESTENV_KUBECTL in the env file")
            .to_owned();
        Self { dir, kubectl }
    }

    fn kubectl(&self, args: &[&str]) {
        let output = Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig().display()))
            .arg(format!(
                "--cache-dir={}",
                self.dir.path().join("kubectl-cache").display()
            ))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/testenv");
        let _ = Command::new(script)
            .arg("down")
            .arg(self.dir.path())
            .output();
    }
}

/// The group version document both servers list in `/openapi/v3`.
async fn openapi_document(client: &kube::Client) -> Value {
    let root = send(
        client,
        "GET",
        "/openapi/v3",
        "application/json",
        &Value::Null,
    )
    .await
    .unwrap();
    let url = root["paths"]["apis/sendconnector.io/v1alpha1"]["serverRelativeURL"]
        .as_str()
        .unwrap_or_else(|| panic!("no sendconnector.io/v1alpha1 in /openapi/v3: {root}"))
        .to_owned();
    send(client, "GET", &url, "application/json", &Value::Null)
        .await
        .unwrap()
}

/// The kinds' schemas (what `kubectl explain` reads) must be the real server's.
async fn openapi_differences(real: &kube::Client, memory: &kube::Client) -> Vec<String> {
    let real = openapi_document(real).await;
    let memory = openapi_document(memory).await;
    let mut problems = Vec::new();
    for name in [
        "io.sendconnector.v1alpha1.SendConnector",
        "io.sendconnector.v1alpha1.SendConnectorList",
        "io.sendconnector.v1alpha1.MailboxBinding",
        "io.sendconnector.v1alpha1.MailboxBindingList",
    ] {
        let real_schema = &real["components"]["schemas"][name];
        let memory_schema = &memory["components"]["schemas"][name];
        if real_schema.is_null() || real_schema != memory_schema {
            problems.push(format!(
                "OpenAPI v3 schema {name} differs:\n  real:   {real_schema}\n  memory: {memory_schema}"
            ));
        }
    }
    problems
}

#[test]
fn the_corpus_holds_enough_cases() {
    let cases = corpus();
    let rejected = cases.iter().filter(|c| c.expect.is_some()).count();
    let accepted = cases.len() - rejected;
    assert!(
        rejected >= 30,
        "{rejected} invalid manifests, want at least 30"
    );
    assert!(
        accepted >= 10,
        "{accepted} valid manifests, want at least 10"
    );
    let updates = cases.iter().filter(|c| c.via != "create").count();
    assert!(updates >= 10, "{updates} update cases, want at least 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_api_gives_the_real_servers_verdict_on_every_manifest() {
    let cases = corpus();
    let real = RealServer::start();
    real.kubectl(&[
        "apply",
        "-f",
        repository().join("crds/crds.yaml").to_str().unwrap(),
    ]);
    real.kubectl(&[
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/sendconnectors.sendconnector.io",
        "crd/mailboxbindings.sendconnector.io",
    ]);
    real.kubectl(&["create", "namespace", NAMESPACE]);
    let real_client = real.client().await;

    let memory = ApiServer::new();
    for crd in crds() {
        memory.register_crd(&crd);
    }
    let memory_client = memory.client();
    send(
        &memory_client,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    .await
    .unwrap();

    let mut problems = Vec::new();
    let mut same_message = 0;
    for case in &cases {
        let on_real = run(&real_client, case).await;
        let on_memory = run(&memory_client, case).await;
        if on_real.named_fields() != case.expect {
            problems.push(format!(
                "{}: the real server's verdict is not the expected one ({:?}):\n  {on_real:?}",
                case.file, case.expect
            ));
        }
        match (&on_real, &on_memory) {
            (Verdict::Accepted { .. }, Verdict::Accepted { .. }) if on_real == on_memory => {}
            (
                Verdict::Rejected {
                    code: c1,
                    fields: f1,
                    causes: m1,
                    message: real_message,
                },
                Verdict::Rejected {
                    code: c2,
                    fields: f2,
                    causes: m2,
                    message: memory_message,
                },
            ) if c1 == c2 && f1 == f2 => {
                if m1 == m2 && (real_message == memory_message || f1.len() > 1) {
                    same_message += 1;
                } else {
                    problems.push(format!(
                        "{}: same fields, different messages:\n  real:   {real_message}\n  memory: {memory_message}",
                        case.file
                    ));
                }
            }
            _ => problems.push(format!(
                "{}: the backends disagree:\n  real:   {on_real:?}\n  memory: {on_memory:?}",
                case.file
            )),
        }
    }
    problems.extend(openapi_differences(&real_client, &memory_client).await);
    let rejected = cases.iter().filter(|c| c.expect.is_some()).count();
    eprintln!(
        "{} manifests ({rejected} invalid), {} disagreements, {same_message} refusals with the same messages",
        cases.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
