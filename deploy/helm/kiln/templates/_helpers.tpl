{{/* The chart's name, shortened to what a label takes. */}}
{{- define "kiln.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's resource name. */}}
{{- define "kiln.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "kiln.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kiln.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kiln.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kiln.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kiln.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kiln.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kiln.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "kiln.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kiln.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the docker config.json, "" when there is none. */}}
{{- define "kiln.registrySecret" -}}
{{- if .Values.registryAuth.existingSecret -}}
{{- .Values.registryAuth.existingSecret -}}
{{- else if .Values.registryAuth.dockerConfigJson -}}
{{- printf "%s-registry" (include "kiln.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "kiln.checkIsolation" -}}
{{- if not (has . (list "inplace" "chroot")) -}}
{{- fail (printf "isolation %q: want inplace or chroot" .) -}}
{{- end -}}
{{- end -}}

{{/*
Pod-level security for an isolation mode. Called with (dict "isolation" MODE "root" $).
inplace: uid 0 inside the container (a RUN writes the container's own /), no privileges;
the seccomp profile of .Values.inplace (Unconfined lets kiln give RUN its namespaces).
chroot: non-root; kiln makes its own user namespace (docs/security.md).
*/}}
{{- define "kiln.podSecurity" -}}
{{- include "kiln.checkIsolation" .isolation -}}
{{- if eq .isolation "chroot" }}
hostUsers: {{ .root.Values.chroot.hostUsers }}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .root.Values.chroot.runAsUser }}
  runAsGroup: {{ .root.Values.chroot.runAsGroup }}
  fsGroup: {{ .root.Values.chroot.runAsGroup }}
  seccompProfile:
    {{- toYaml .root.Values.chroot.seccompProfile | nindent 4 }}
{{- else }}
securityContext:
  runAsUser: 0
  runAsGroup: 0
  seccompProfile:
    {{- toYaml .root.Values.inplace.seccompProfile | nindent 4 }}
{{- end }}
{{- end -}}

{{/* Container-level security: never privileged, no added capabilities. */}}
{{- define "kiln.containerSecurity" -}}
securityContext:
  privileged: false
  {{- if eq .isolation "chroot" }}
  runAsNonRoot: true
  procMount: {{ .root.Values.chroot.procMount }}
  {{- end }}
{{- end -}}
