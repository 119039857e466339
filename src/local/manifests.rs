//! Reading a directory of manifests: Kubernetes objects (multi-document YAML or JSON), and a
//! simulator seed if one lies among them.
use ovh_simulator::Seed;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a directory holds.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Objects to apply, in the order they must go (namespaces, Secrets, connectors, bindings).
    pub objects: Vec<Value>,
    /// A simulator seed found among the files (a document with `services` or `credentials`
    /// and no `kind`).
    pub seed: Option<(PathBuf, Seed)>,
    /// Documents left out, with the reason, for the report.
    pub skipped: Vec<String>,
}

/// The kinds `local` applies, in apply order.
const KINDS: [(&str, &str); 4] = [
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("sendconnector.io/v1alpha1", "SendConnector"),
    ("sendconnector.io/v1alpha1", "MailboxBinding"),
];

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Seed { path: String, message: String },
    #[error("{0} holds no manifests (*.yaml, *.yml, *.json)")]
    Empty(String),
}

fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// Reads every manifest file of `dir` (or the one file `dir` names), in file-name order.
pub fn load(dir: &Path) -> Result<Manifests, ManifestError> {
    let mut files: Vec<PathBuf> = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        std::fs::read_dir(dir)
            .map_err(|source| ManifestError::Read {
                path: dir.display().to_string(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_manifest(p))
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(ManifestError::Empty(dir.display().to_string()));
    }
    let mut out = Manifests::default();
    let mut found: Vec<Value> = Vec::new();
    for path in files {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: shown.clone(),
            source,
        })?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| ManifestError::Parse {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        for doc in docs {
            if doc.is_null() {
                continue;
            }
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
            if kind.is_empty()
                && (doc.get("services").is_some() || doc.get("credentials").is_some())
            {
                let seed = Seed::from_yaml(&text).map_err(|e| ManifestError::Seed {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
                out.seed = Some((path.clone(), seed));
                continue;
            }
            if kind == "List" {
                found.extend(doc["items"].as_array().cloned().unwrap_or_default());
                continue;
            }
            if KINDS.iter().any(|(v, k)| *v == api_version && *k == kind) {
                found.push(doc);
            } else {
                let name = doc["metadata"]["name"].as_str().unwrap_or("?");
                let what = if kind.is_empty() {
                    "a document without a kind".to_owned()
                } else {
                    format!("{api_version} {kind} {name}")
                };
                out.skipped
                    .push(format!("{shown}: {what}: not a kind local mode applies"));
            }
        }
    }
    for (v, k) in KINDS {
        out.objects.extend(
            found
                .iter()
                .filter(|d| d["apiVersion"] == v && d["kind"] == k)
                .cloned(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multi_document_files_in_apply_order_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: sendconnector.io/v1alpha1\nkind: MailboxBinding\nmetadata: {name: b, namespace: n}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: n}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "services: [{organization: o}]\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let m = load(dir.path()).unwrap();
        let kinds: Vec<&str> = m
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Secret", "MailboxBinding"]);
        assert_eq!(m.seed.as_ref().unwrap().1.services[0].organization, "o");
        assert_eq!(m.skipped.len(), 1);
        assert!(m.skipped[0].contains("ConfigMap c"), "{:?}", m.skipped);
    }

    #[test]
    fn bad_yaml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: [unclosed\n").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("bad.yaml"), "{e}");
        assert!(matches!(
            load(&dir.path().join("nothing")),
            Err(ManifestError::Read { .. })
        ));
    }
}
