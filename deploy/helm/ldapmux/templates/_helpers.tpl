{{- define "ldapmux.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ldapmux.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "ldapmux.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "ldapmux.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "ldapmux.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ldapmux.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ldapmux.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ldapmux.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ldapmux.secretName" -}}
{{- default (include "ldapmux.fullname" .) .Values.servicePassword.existingSecret }}
{{- end }}

{{/* Where the service account's password is mounted. */}}
{{- define "ldapmux.passwordDir" -}}/etc/ldapmux/secret{{- end }}

{{/*
ldapmux.yaml: .Values.config with the keys the chart owns set from their
values: listen, admin.address, the service account's password-file and
shutdown-grace-period.
*/}}
{{- define "ldapmux.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $listener := merge (dict "address" (printf ":%d" (int .Values.listener.containerPort))) (deepCopy .Values.listener.settings) -}}
{{- $_ := set $cfg "listen" (list $listener) -}}
{{- $admin := merge (dict "address" (printf ":%d" (int .Values.admin.containerPort))) (deepCopy (default (dict) (get $cfg "admin"))) -}}
{{- $_ = set $cfg "admin" $admin -}}
{{- $sa := omit (default (dict) (get $cfg "service-account")) "password" "password-env" "password-file" -}}
{{- $_ = set $sa "password-file" (printf "%s/%s" (include "ldapmux.passwordDir" .) .Values.servicePassword.key) -}}
{{- $_ = set $cfg "service-account" $sa -}}
{{- $_ = set $cfg "shutdown-grace-period" (printf "%ds" (int .Values.shutdownGracePeriodSeconds)) -}}
{{- toYaml $cfg -}}
{{- end }}
