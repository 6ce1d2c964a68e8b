{{/* Common names and labels. */}}
{{- define "cityhelp.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "cityhelp.labels" -}}
app.kubernetes.io/name: cityhelp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* Selector of one stage: (dict "root" $ "stage" "intake") */}}
{{- define "cityhelp.selector" -}}
app.kubernetes.io/name: cityhelp
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .stage }}
{{- end -}}

{{- define "cityhelp.keysSecret" -}}
{{- .Values.keys.existingSecret | default (printf "%s-keys" .Release.Name) -}}
{{- end -}}

{{/* The config/ files as ConfigMap keys: a path's slashes become "__". */}}
{{- define "cityhelp.configKey" -}}
{{- trimPrefix "files/config/" . | replace "/" "__" -}}
{{- end -}}
