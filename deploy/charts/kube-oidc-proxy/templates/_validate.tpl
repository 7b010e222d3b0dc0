{{/*
Combinations of values the proxy would refuse at start, or that would silently not do what they say, fail
the render with a message naming the value. Types and enums are in values.schema.json. Included by
deployment.yaml.
*/}}
{{- define "kube-oidc-proxy.validate" -}}
{{- $v := .Values -}}
{{- if and $v.disableImpersonation (or $v.extraImpersonationHeaders.clientIP $v.extraImpersonationHeaders.headers) -}}
{{- fail "disableImpersonation cannot be combined with extraImpersonationHeaders: the extras are sent as Impersonate-Extra-* headers" -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" -}}
{{- end -}}
{{- if has (int $v.metrics.port) (list 8443 8080) -}}
{{- fail (printf "metrics.port %v is taken: the container uses 8443 (HTTPS) and 8080 (probes)" $v.metrics.port) -}}
{{- end -}}
{{- if $v.audit.enabled -}}
{{- if not (or $v.audit.log.enabled $v.audit.webhook.enabled) -}}
{{- fail "audit.enabled needs audit.log.enabled or audit.webhook.enabled: the events must go somewhere" -}}
{{- end -}}
{{- if not $v.audit.policy -}}
{{- fail "audit.enabled needs audit.policy (an audit.k8s.io/v1 Policy)" -}}
{{- end -}}
{{- if and $v.audit.webhook.enabled (not $v.audit.webhook.kubeconfig) -}}
{{- fail "audit.webhook.enabled needs audit.webhook.kubeconfig (a kubeconfig for the webhook)" -}}
{{- end -}}
{{- if and $v.audit.log.enabled (ne (toString $v.audit.log.path) "-") (not (isAbs (toString $v.audit.log.path))) -}}
{{- fail (printf "audit.log.path must be \"-\" (stdout) or an absolute file path, not %q" (toString $v.audit.log.path)) -}}
{{- end -}}
{{- if and $v.audit.log.enabled (eq (dir (toString $v.audit.log.path)) "/") -}}
{{- fail "audit.log.path must be in a directory (the chart mounts audit.log.volume there), not in /" -}}
{{- end -}}
{{- end -}}
{{- if and $v.tls.certManager (not $v.tls.selfSigned) (not $v.tls.issuerName) -}}
{{- fail "tls.certManager with tls.selfSigned false needs tls.issuerName (your cert-manager Issuer)" -}}
{{- end -}}
{{- $grace := include "kube-oidc-proxy.durationSeconds" $v.shutdownGracePeriod | int -}}
{{- if le (include "kube-oidc-proxy.terminationGracePeriodSeconds" . | int) $grace -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than shutdownGracePeriod (%s): the kubelet would kill the proxy before its streams are done" $v.terminationGracePeriodSeconds $v.shutdownGracePeriod) -}}
{{- end -}}
{{- range $name := list "extraVolumes" "extraVolumeMounts" -}}
{{- $value := get $v $name -}}
{{- if and (kindIs "map" $value) $value -}}
{{- fail (printf "%s must be a list" $name) -}}
{{- end -}}
{{- end -}}
{{- /* Values of other Go chart versions for features this proxy does not have: refused, not ignored. */ -}}
{{- if $v.oidc.apiAudiences -}}
{{- fail "oidc.apiAudiences is not supported: the proxy has no --api-audiences flag (for passed-through tokens use tokenPassthrough.audiences)" -}}
{{- end -}}
{{- if $v.oidc.extraProviders -}}
{{- fail "oidc.extraProviders (Tremolo's --oidc-extra-providers-config) is not supported: the proxy trusts one issuer" -}}
{{- end -}}
{{- if $v.oidc.authenticationConfig -}}
{{- fail "oidc.authenticationConfig (--authentication-config) is not supported yet" -}}
{{- end -}}
{{- end -}}
