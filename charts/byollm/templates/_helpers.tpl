{{/* Object names: fixed "byollm-operator" so the operator's defaults (Lease, RBAC) and the
kustomize base agree; fullnameOverride changes them all. */}}
{{- define "byollm.fullname" -}}
{{- default "byollm-operator" .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "byollm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: immutable on the Deployment, so minimal. */}}
{{- define "byollm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "byollm.fullname" . }}
app.kubernetes.io/part-of: byollm
{{- end -}}

{{- define "byollm.labels" -}}
{{ include "byollm.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "byollm.chart" . }}
{{- end -}}

{{- define "byollm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "byollm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "byollm.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}
