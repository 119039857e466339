//! The kinds this server knows: a fixed set of built-ins plus whatever CRDs are registered.
//!
//! A [`ResourceKind`] carries everything the generic write path needs to behave like the real
//! API server for that kind: where it lives (group/version/plural, scope), whether `status` is a
//! separate subresource, whether `metadata.generation` is maintained, and the OpenAPI schema used
//! for pruning and strict field validation.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::table::PrinterColumn;

/// Identity of a stored collection: the same objects whatever version they are read through.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// API group (`""` for core).
    pub group: String,
    /// Lower-case plural resource name.
    pub plural: String,
}

/// One servable resource at one version.
// The flags are independent capabilities of a kind, not states of one machine.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone)]
pub struct ResourceKind {
    /// API group (`""` for core).
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Lower-case plural (the URL segment).
    pub plural: String,
    /// Lower-case singular, for discovery.
    pub singular: String,
    /// CamelCase kind.
    pub kind: String,
    /// Namespaced (`true`) or cluster-scoped.
    pub namespaced: bool,
    /// `status` is only writable through `/status` and ignored on the main resource.
    pub status_subresource: bool,
    /// The server maintains `metadata.generation` (custom resources do; configmaps do not).
    pub tracks_generation: bool,
    /// Registered from a CRD (strategic merge patch is refused for these, like upstream).
    pub custom: bool,
    /// `openAPIV3Schema` of this version, when known.
    pub schema: Option<Value>,
    /// Writes are defaulted and validated against `schema` and its CEL rules (only pruned
    /// when `false`, as under a CRD without validation).
    pub validates: bool,
    /// Short names, for discovery.
    pub short_names: Vec<String>,
    /// Categories (`kubectl get all`-style aliases), for discovery.
    pub categories: Vec<String>,
    /// Columns of `Table` answers after `Name`.
    pub printer_columns: Vec<PrinterColumn>,
}

impl ResourceKind {
    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            namespaced,
            status_subresource: false,
            tracks_generation: false,
            custom: false,
            schema: None,
            validates: false,
            short_names: Vec::new(),
            categories: Vec::new(),
            printer_columns: PrinterColumn::for_builtin(group, kind),
        }
    }

    /// `apiVersion` as written in objects: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` for core), as upstream error messages spell resources.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage identity of this kind.
    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Whether this is the core `namespaces` resource (deletion cascades).
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    /// Whether this is the core `secrets` resource (`stringData` folding).
    pub fn is_secret(&self) -> bool {
        self.group.is_empty() && self.plural == "secrets"
    }

    /// Whether this is the CRD resource itself (writes register kinds).
    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }
}

/// All kinds currently served.
#[derive(Debug, Clone)]
pub struct Registry {
    kinds: Vec<ResourceKind>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut namespaces = ResourceKind::builtin("", "v1", "namespaces", "Namespace", false);
        namespaces.status_subresource = true;
        namespaces.short_names = vec!["ns".to_owned()];
        let mut configmaps = ResourceKind::builtin("", "v1", "configmaps", "ConfigMap", true);
        configmaps.short_names = vec!["cm".to_owned()];
        let mut core_events = ResourceKind::builtin("", "v1", "events", "Event", true);
        core_events.short_names = vec!["ev".to_owned()];
        let mut events = ResourceKind::builtin("events.k8s.io", "v1", "events", "Event", true);
        events.short_names = vec!["ev".to_owned()];
        let mut crds = ResourceKind::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        );
        crds.status_subresource = true;
        crds.tracks_generation = true;
        crds.short_names = vec!["crd".to_owned(), "crds".to_owned()];
        Self {
            kinds: vec![
                namespaces,
                ResourceKind::builtin("", "v1", "secrets", "Secret", true),
                configmaps,
                core_events,
                events,
                ResourceKind::builtin("coordination.k8s.io", "v1", "leases", "Lease", true),
                crds,
            ],
        }
    }
}

impl Registry {
    /// The kind served at `group/version/plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
    }

    /// Any served version of a stored collection (used when only group and plural are known).
    pub fn lookup_key(&self, key: &ResourceKey) -> Option<&ResourceKind> {
        self.kinds
            .iter()
            .find(|k| k.group == key.group && k.plural == key.plural)
    }

    /// Every served kind, built-ins first.
    pub fn kinds(&self) -> &[ResourceKind] {
        &self.kinds
    }

    /// Serves every `served` version of `crd`, replacing earlier registrations of the same
    /// group and plural; `validates` says whether writes are checked against the schema.
    /// Returns the number of versions now served.
    pub fn register_crd(&mut self, crd: &CustomResourceDefinition, validates: bool) -> usize {
        let spec = &crd.spec;
        let names = &spec.names;
        self.kinds
            .retain(|k| !(k.group == spec.group && k.plural == names.plural));
        let mut added = 0;
        for version in spec.versions.iter().filter(|v| v.served) {
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok());
            self.kinds.push(ResourceKind {
                group: spec.group.clone(),
                version: version.name.clone(),
                plural: names.plural.clone(),
                singular: names
                    .singular
                    .clone()
                    .unwrap_or_else(|| names.kind.to_lowercase()),
                kind: names.kind.clone(),
                namespaced: spec.scope == "Namespaced",
                status_subresource: version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some()),
                tracks_generation: true,
                custom: true,
                schema,
                validates,
                short_names: names.short_names.clone().unwrap_or_default(),
                categories: names.categories.clone().unwrap_or_default(),
                printer_columns: PrinterColumn::for_crd_version(
                    version.additional_printer_columns.as_deref(),
                ),
            });
            added += 1;
        }
        added
    }
}
