{{- define "sendconnector-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sendconnector-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sendconnector-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sendconnector-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "sendconnector-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sendconnector-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sendconnector-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sendconnector-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: the value when set, else more than one replica. */}}
{{- define "sendconnector-operator.leaderElection" -}}
{{- if kindIs "invalid" .Values.leaderElection.enabled }}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- else if .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/* The default credentials Secret as a dict with namespace and name, or empty. */}}
{{- define "sendconnector-operator.defaultSecret" -}}
{{- with .Values.defaultCredentials.secret }}
{{- $parts := splitList "/" . }}
{{- if ne (len $parts) 2 }}
{{- fail (printf "defaultCredentials.secret must be NAMESPACE/NAME, got %q" .) }}
{{- end }}
namespace: {{ index $parts 0 }}
name: {{ index $parts 1 }}
{{- end }}
{{- end }}

{{/* The rules of the operator's own work (the same in a ClusterRole or in each Role). */}}
{{- define "sendconnector-operator.rules" -}}
# Its own kinds: watched (list + watch), finalizers added and removed (patch), read afresh
# when a finalizer write finds the object newer than the watch's copy (get).
- apiGroups: [sendconnector.io]
  resources: [sendconnectors, mailboxbindings]
  verbs: [get, list, watch, patch]
# Status written by server-side apply.
- apiGroups: [sendconnector.io]
  resources: [sendconnectors/status, mailboxbindings/status]
  verbs: [patch]
# Secrets: list and watch are the metadata-only watch (PartialObjectMetadata: no Secret data
# is cached); get reads the OVH credentials and relay passwords when needed.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
# Events: created, then patched when the same Event repeats (a series).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
