{{/* The chart's name, or nameOverride. */}}
{{- define "kube-oidc-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<name>, or the release name when it already contains the name, or fullnameOverride (as the Go chart). */}}
{{- define "kube-oidc-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kube-oidc-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels the Deployment selects its pods by (the Go chart's, so selectors survive an upgrade). */}}
{{- define "kube-oidc-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-oidc-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kube-oidc-proxy.labels" -}}
{{ include "kube-oidc-proxy.selectorLabels" . }}
helm.sh/chart: {{ include "kube-oidc-proxy.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kube-oidc-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kube-oidc-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kube-oidc-proxy.image" -}}
{{- printf "%s:%s" .Values.image.repository (toString (default .Chart.AppVersion .Values.image.tag)) -}}
{{- end -}}

{{/* The Secret holding the serving certificate: tls.secretName, or the one the chart (or cert-manager) fills. */}}
{{- define "kube-oidc-proxy.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "kube-oidc-proxy.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{/* The names the generated or cert-manager certificate is valid for: the Service's, and tls.extraDnsNames. */}}
{{- define "kube-oidc-proxy.dnsNames" -}}
{{- $fullname := include "kube-oidc-proxy.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list (printf "%s.%s.svc.cluster.local" $fullname $ns) (printf "%s.%s.svc" $fullname $ns) (printf "%s.%s" $fullname $ns) $fullname -}}
{{- toJson (uniq (concat $names (default list .Values.tls.extraDnsNames))) -}}
{{- end -}}

{{- define "kube-oidc-proxy.configSecretName" -}}
{{- printf "%s-config" (include "kube-oidc-proxy.fullname" .) -}}
{{- end -}}

{{/* Mount points in the proxy container. The TLS paths are the Go chart's. */}}
{{- define "kube-oidc-proxy.tlsDir" -}}/etc/oidc/tls{{- end -}}
{{- define "kube-oidc-proxy.oidcCADir" -}}/etc/kube-oidc-proxy/oidc{{- end -}}
{{- define "kube-oidc-proxy.auditPolicyDir" -}}/etc/kube-oidc-proxy/audit{{- end -}}
{{- define "kube-oidc-proxy.auditWebhookDir" -}}/etc/kube-oidc-proxy/audit-webhook{{- end -}}

{{/* Container ports: --secure-port (a non-root user cannot bind 443) and --readiness-probe-port. */}}
{{- define "kube-oidc-proxy.securePort" -}}8443{{- end -}}
{{- define "kube-oidc-proxy.probePort" -}}8080{{- end -}}

{{/* The keys of extraImpersonationHeaders.headers ("k1=v,k2=v"), lower-cased as kube-apiserver checks them, as a JSON list. */}}
{{- define "kube-oidc-proxy.headerExtraKeys" -}}
{{- $keys := list -}}
{{- range $pair := splitList "," (toString (default "" .Values.extraImpersonationHeaders.headers)) -}}
{{- $key := trim (first (splitList "=" $pair)) -}}
{{- if $key -}}{{- $keys = append $keys (lower $key) -}}{{- end -}}
{{- end -}}
{{- toJson (uniq $keys) -}}
{{- end -}}

{{/*
A Go duration ("20s", "1m30s", "1.5h", "0") in whole seconds, rounded up. values.schema.json checks the syntax.
*/}}
{{- define "kube-oidc-proxy.durationSeconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range $part := regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $part -}}
{{- $unit := trimPrefix $number $part -}}
{{- $total = addf $total (mulf (float64 $number) (get $units $unit)) -}}
{{- end -}}
{{- ceil $total | int -}}
{{- end -}}

{{- define "kube-oidc-proxy.terminationGracePeriodSeconds" -}}
{{- $grace := include "kube-oidc-proxy.durationSeconds" .Values.shutdownGracePeriod | int -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $grace 10 -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds | int -}}
{{- end -}}
{{- end -}}

{{/* A value given as YAML text (the Go chart's style) or as a map: rendered as YAML. */}}
{{- define "kube-oidc-proxy.yaml" -}}
{{- if kindIs "string" . -}}
{{- trim . -}}
{{- else -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}
