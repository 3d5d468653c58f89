{{/* Labels every object carries, as k8s/base's kustomization sets them. */}}
{{- define "modelops.labels" -}}
app.kubernetes.io/part-of: modelops
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* A service's own labels: its name and component. Call with (dict "name" $name "service" $service). */}}
{{- define "modelops.serviceLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .service.component }}
{{- end }}

{{/* A service's image: <registry>modelops/<name>[-gpu]:<tag>. */}}
{{- define "modelops.image" -}}
{{- $image := .root.Values.image -}}
{{ $image.registry }}modelops/{{ .name }}{{ if gt (int .service.gpus) 0 }}{{ $image.gpuSuffix }}{{ end }}:{{ .service.tag | default $image.tag }}
{{- end }}

{{/* The Secret with the database, Redis and S3 credentials: this chart's, or one the operator supplies. */}}
{{- define "modelops.secretName" -}}
{{ .Values.secrets.existingSecret | default "modelops-secrets" }}
{{- end }}
