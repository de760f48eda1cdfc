{{/* Names, labels, and the operator's flags as one map: every template reads ports and names from here. */}}

{{/* At most 55 characters: the Services append "-webhook" and "-metrics" within the 63 a name may have. */}}
{{- define "helmrelease-autopilot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "helmrelease-autopilot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "helmrelease-autopilot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "helmrelease-autopilot.webhookService" -}}
{{- printf "%s-webhook" (include "helmrelease-autopilot.fullname" .) -}}
{{- end -}}

{{- define "helmrelease-autopilot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: helmrelease-autopilot
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's pods. */}}
{{- define "helmrelease-autopilot.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The operator's flags: the named values, then .Values.flags (which wins), then what the chart derives from
`tls` (which values.schema.json keeps out of .Values.flags). YAML of a map; read it with
`include "helmrelease-autopilot.flags" . | fromYaml`.
*/}}
{{- define "helmrelease-autopilot.flags" -}}
{{- $flags := dict -}}
{{- with .Values.logLevel }}{{ $_ := set $flags "log-level" . }}{{ end -}}
{{- with .Values.watchNamespace }}{{ $_ := set $flags "watch-namespace" . }}{{ end -}}
{{- /* The reconcilers skip what the webhook configuration skips: passed only when it is not the flag's default. */ -}}
{{- $excluded := concat .Values.webhook.excludeNamespaces (list .Release.Namespace) | uniq -}}
{{- if ne (toJson $excluded) (toJson (list "kube-system" .Release.Namespace)) }}{{ $_ := set $flags "exclude-namespaces" $excluded }}{{ end -}}
{{- range $name, $value := .Values.flags }}
{{- if not (kindIs "invalid" $value) }}{{ $_ := set $flags $name $value }}{{ end }}
{{- end -}}
{{- if eq .Values.tls.mode "self-signed" -}}
{{- $svc := include "helmrelease-autopilot.webhookService" . -}}
{{- $_ := set $flags "tls-mode" "self-signed" -}}
{{- $_ := set $flags "webhook-configuration" (include "helmrelease-autopilot.fullname" .) -}}
{{- $names := list (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- $_ := set $flags "self-signed-dns-names" (concat $names .Values.tls.selfSigned.extraDnsNames) -}}
{{- end -}}
{{- toYaml $flags -}}
{{- end -}}

{{/* A flag value as the operator parses it: YAML numbers arrive as float64, and 1e+06 is not an integer. */}}
{{- define "helmrelease-autopilot.flagValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* Container args from the flags map: `--name=value`, once per item for lists, in name order. */}}
{{- define "helmrelease-autopilot.args" -}}
{{- range $name, $value := . }}
{{- range (kindIs "slice" $value | ternary $value (list $value)) }}
- {{ printf "--%s=%s" $name (include "helmrelease-autopilot.flagValue" .) | toJson }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Whether a boolean flag is on; absent means the operator's default, `true` for the ones asked here. */}}
{{- define "helmrelease-autopilot.on" -}}
{{- $v := get (index . 0) (index . 1) -}}
{{- if not (eq (toString $v) "false") }}true{{ end -}}
{{- end -}}
