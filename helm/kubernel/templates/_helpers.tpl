{{/* Names, labels and the values derived from others; one definition each. */}}

{{- define "kubernel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubernel.fullname" -}}
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

{{- define "kubernel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; pass (dict "ctx" $ "component" "api"). */}}
{{- define "kubernel.labels" -}}
helm.sh/chart: {{ include "kubernel.chart" .ctx }}
{{ include "kubernel.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kubernel
{{- end }}

{{- define "kubernel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubernel.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kubernel.sessionNamespace" -}}
{{- default .Release.Namespace .Values.sessions.namespace }}
{{- end }}

{{- define "kubernel.keypairNamespace" -}}
{{- default (printf "%s-keypairs" .Release.Namespace | trunc 63 | trimSuffix "-") .Values.keypairs.namespace }}
{{- end }}

{{- define "kubernel.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "kubernel.apiServiceAccount" -}}
{{- default (printf "%s-api" (include "kubernel.fullname" .)) .Values.api.serviceAccount.name }}
{{- end }}

{{- define "kubernel.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "kubernel.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "kubernel.peeringName" -}}
{{- default (include "kubernel.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/* The image table file, the same for operator and API. */}}
{{- define "kubernel.imagesFile" -}}
{{- dict "allowedRegistries" .Values.images.allowedRegistries "aliases" .Values.images.aliases "defaultCommand" .Values.images.defaultCommand | toYaml }}
{{- end }}

{{/* Volumes every Pod of ours has: the config and a writable /tmp (the root is read-only). */}}
{{- define "kubernel.volumes" -}}
- name: config
  configMap:
    name: {{ include "kubernel.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: runner-key
  secret:
    secretName: {{ include "kubernel.fullname" . }}-runner-key
    defaultMode: 0400
{{- end }}

{{- define "kubernel.volumeMounts" -}}
- name: config
  mountPath: /etc/kubernel
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: runner-key
  mountPath: /var/run/kubernel/runner-key
  readOnly: true
{{- end }}

{{- define "kubernel.runnerKeyEnv" -}}
- {name: KUBERNEL_RUNNER_KEY_FILE, value: /var/run/kubernel/runner-key/key}
{{- end }}

{{- /* The namespaces where a cluster-wide operator may run sessions' Pods (JSON list). */}}
{{- define "kubernel.operatorNamespaces" -}}
{{- $listed := .Values.scope.sessionNamespaces | default (list (include "kubernel.sessionNamespace" .)) }}
{{- toJson (uniq $listed) }}
{{- end }}
