//! Finding a SendConnector's smart host in YAML manifests (files or a directory of them).
use crate::crd::SendConnector;
use std::path::{Path, PathBuf};

/// The manifest files under a path: the file itself, or the `.yaml`, `.yml` and `.json` files
/// of a directory (not recursive, like `kubectl apply -f DIR`), sorted.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The `spec.smartHost` of the SendConnector `namespace/name` in the manifests under `path`
/// (multi-document YAML; a manifest without a namespace is in `default`).
pub fn smart_host_from_manifests(
    path: &Path,
    namespace: &str,
    name: &str,
) -> Result<String, String> {
    let mut seen = Vec::new();
    for file in manifest_files(path)? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
        for document in documents {
            let is_connector = document["kind"] == "SendConnector"
                && document["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("sendconnector.io/"));
            if !is_connector {
                continue;
            }
            let doc_name = document["metadata"]["name"].as_str().unwrap_or_default();
            let doc_namespace = document["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            if doc_name != name || doc_namespace != namespace {
                seen.push(format!("{doc_namespace}/{doc_name}"));
                continue;
            }
            let connector: SendConnector = serde_json::from_value(document).map_err(|e| {
                format!(
                    "{}: SendConnector {namespace}/{name} is not valid: {e}",
                    file.display()
                )
            })?;
            return Ok(connector.spec.smart_host);
        }
    }
    let others = if seen.is_empty() {
        "no SendConnector there".to_owned()
    } else {
        format!("found {}", seen.join(", "))
    };
    Err(format!(
        "no SendConnector {namespace}/{name} in {} ({others})",
        path.display()
    ))
}
