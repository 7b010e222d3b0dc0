{{/*
The proxy's command line (the image's ENTRYPOINT is the proxy), one flag per value; docs/flags.md describes
each flag. The OIDC settings come from the Secret <fullname>-config through environment variables, as in
the Go chart; with authenticationConfig, the file in the ConfigMap <fullname>-authentication replaces them.
*/}}
{{- define "kube-oidc-proxy.args" -}}
{{- $v := .Values -}}
{{- $args := list -}}
{{- $args = append $args (printf "--secure-port=%s" (include "kube-oidc-proxy.securePort" .)) -}}
{{- $args = append $args (printf "--tls-cert-file=%s/crt.pem" (include "kube-oidc-proxy.tlsDir" .)) -}}
{{- $args = append $args (printf "--tls-private-key-file=%s/key.pem" (include "kube-oidc-proxy.tlsDir" .)) -}}
{{- $args = append $args (printf "--readiness-probe-port=%s" (include "kube-oidc-proxy.probePort" .)) -}}
{{- /* Who may log in: the AuthenticationConfiguration file, or the --oidc-* flags (never both). */ -}}
{{- if include "kube-oidc-proxy.authenticationConfig" . -}}
{{- $args = append $args (printf "--authentication-config=%s" (include "kube-oidc-proxy.authenticationConfigPath" .)) -}}
{{- else if not (include "kube-oidc-proxy.authenticationConfigFile" .) -}}
{{- range $flag := include "kube-oidc-proxy.oidcEnv" . | fromJsonArray -}}
{{- $args = append $args (printf "--%s=$(%s)" (index $flag 0) (index $flag 1)) -}}
{{- end -}}
{{- if $v.oidc.caPEM -}}
{{- $args = append $args (printf "--oidc-ca-file=%s/ca.pem" (include "kube-oidc-proxy.oidcCADir" .)) -}}
{{- end -}}
{{- /* One flag per claim (the Go chart rendered them all as one --oidc-signing-algs). */ -}}
{{- range $claim, $value := $v.oidc.requiredClaims -}}
{{- $args = append $args (printf "--oidc-required-claim=%s=%v" $claim $value) -}}
{{- end -}}
{{- end -}}
{{- /* Browser login: the client secret is a mounted file, never a flag value or a variable. */ -}}
{{- $login := default dict $v.login -}}
{{- if $login.enabled -}}
{{- $args = append $args (printf "--login-client-id=%s" (toString $login.clientId)) -}}
{{- if include "kube-oidc-proxy.loginSecretName" . -}}
{{- $args = append $args (printf "--login-client-secret-file=%s/client-secret" (include "kube-oidc-proxy.loginDir" .)) -}}
{{- end -}}
{{- with $login.redirectUrl -}}
{{- $args = append $args (printf "--login-redirect-url=%s" .) -}}
{{- end -}}
{{- with $login.scopes -}}
{{- $args = append $args (printf "--login-scopes=%s" (join "," .)) -}}
{{- end -}}
{{- end -}}
{{- /* Kube-OIDC-Proxy */ -}}
{{- if $v.tokenPassthrough.enabled -}}
{{- $args = append $args "--token-passthrough" -}}
{{- with $v.tokenPassthrough.audiences -}}
{{- $args = append $args (printf "--token-passthrough-audiences=%s" (join "," .)) -}}
{{- end -}}
{{- end -}}
{{- if $v.disableImpersonation -}}
{{- $args = append $args "--disable-impersonation" -}}
{{- end -}}
{{- if $v.extraImpersonationHeaders.clientIP -}}
{{- $args = append $args "--extra-user-header-client-ip" -}}
{{- end -}}
{{- with $v.extraImpersonationHeaders.headers -}}
{{- $args = append $args (printf "--extra-user-headers=%s" .) -}}
{{- end -}}
{{- $args = append $args (printf "--workers=%d" (int $v.workers)) -}}
{{- $args = append $args (printf "--shutdown-grace-period=%s" $v.shutdownGracePeriod) -}}
{{- $args = append $args (printf "--shutdown-delay-duration=%s" $v.shutdownDelayDuration) -}}
{{- /* Logs, metrics, the proxy's own API client */ -}}
{{- $args = append $args (printf "--log-format=%s" $v.logFormat) -}}
{{- $args = append $args (printf "--v=%d" (int $v.verbosity)) -}}
{{- if $v.metrics.enabled -}}
{{- $args = append $args (printf "--metrics-bind-address=:%d" (int $v.metrics.port)) -}}
{{- end -}}
{{- if not (kindIs "invalid" $v.kubeClient.qps) -}}
{{- $args = append $args (printf "--kube-client-qps=%v" $v.kubeClient.qps) -}}
{{- end -}}
{{- if not (kindIs "invalid" $v.kubeClient.burst) -}}
{{- $args = append $args (printf "--kube-client-burst=%d" (int $v.kubeClient.burst)) -}}
{{- end -}}
{{- /* Audit */ -}}
{{- $audit := $v.audit -}}
{{- if $audit.enabled -}}
{{- $args = append $args (printf "--audit-policy-file=%s/policy.yaml" (include "kube-oidc-proxy.auditPolicyDir" .)) -}}
{{- if $audit.log.enabled -}}
{{- $log := $audit.log -}}
{{- $args = append $args (printf "--audit-log-path=%s" (toString $log.path)) -}}
{{- $args = append $args (printf "--audit-log-format=%s" $log.format) -}}
{{- $args = append $args (printf "--audit-log-mode=%s" $log.mode) -}}
{{- if ne (toString $log.path) "-" -}}
{{- $args = append $args (printf "--audit-log-maxage=%d" (int $log.maxAge)) -}}
{{- $args = append $args (printf "--audit-log-maxbackup=%d" (int $log.maxBackup)) -}}
{{- $args = append $args (printf "--audit-log-maxsize=%d" (int $log.maxSize)) -}}
{{- end -}}
{{- end -}}
{{- if $audit.webhook.enabled -}}
{{- $hook := $audit.webhook -}}
{{- $args = append $args (printf "--audit-webhook-config-file=%s/kubeconfig" (include "kube-oidc-proxy.auditWebhookDir" .)) -}}
{{- $args = append $args (printf "--audit-webhook-mode=%s" $hook.mode) -}}
{{- $args = append $args (printf "--audit-webhook-initial-backoff=%s" $hook.initialBackoff) -}}
{{- $args = append $args (printf "--audit-webhook-batch-buffer-size=%d" (int $hook.batchBufferSize)) -}}
{{- $args = append $args (printf "--audit-webhook-batch-max-size=%d" (int $hook.batchMaxSize)) -}}
{{- $args = append $args (printf "--audit-webhook-batch-max-wait=%s" $hook.batchMaxWait) -}}
{{- $args = append $args (printf "--audit-webhook-batch-throttle-enable=%t" $hook.batchThrottleEnable) -}}
{{- $args = append $args (printf "--audit-webhook-batch-throttle-qps=%v" $hook.batchThrottleQPS) -}}
{{- $args = append $args (printf "--audit-webhook-batch-throttle-burst=%d" (int $hook.batchThrottleBurst)) -}}
{{- end -}}
{{- end -}}
{{- /* extraArgs last, in name order; a list repeats the flag */ -}}
{{- range $name, $value := $v.extraArgs -}}
{{- if kindIs "slice" $value -}}
{{- range $item := $value -}}
{{- $args = append $args (printf "--%s=%v" $name $item) -}}
{{- end -}}
{{- else -}}
{{- $args = append $args (printf "--%s=%v" $name $value) -}}
{{- end -}}
{{- end -}}
{{- range $args }}
- {{ . | quote }}
{{- end -}}
{{- end -}}

{{/*
The OIDC settings in the Secret <fullname>-config: [flag, variable, key] for each one that is set, as JSON.
None with an AuthenticationConfiguration file.
*/}}
{{- define "kube-oidc-proxy.oidcEnv" -}}
{{- if include "kube-oidc-proxy.authenticationConfigFile" . -}}
[]
{{- else -}}
{{- $oidc := .Values.oidc -}}
{{- $env := list (list "oidc-issuer-url" "OIDC_ISSUER_URL" "oidc.issuer-url") (list "oidc-client-id" "OIDC_CLIENT_ID" "oidc.client-id") -}}
{{- if $oidc.usernameClaim }}{{ $env = append $env (list "oidc-username-claim" "OIDC_USERNAME_CLAIM" "oidc.username-claim") }}{{ end -}}
{{- if $oidc.usernamePrefix }}{{ $env = append $env (list "oidc-username-prefix" "OIDC_USERNAME_PREFIX" "oidc.username-prefix") }}{{ end -}}
{{- if $oidc.groupsClaim }}{{ $env = append $env (list "oidc-groups-claim" "OIDC_GROUPS_CLAIM" "oidc.groups-claim") }}{{ end -}}
{{- if $oidc.groupsPrefix }}{{ $env = append $env (list "oidc-groups-prefix" "OIDC_GROUPS_PREFIX" "oidc.groups-prefix") }}{{ end -}}
{{- if $oidc.signingAlgs }}{{ $env = append $env (list "oidc-signing-algs" "OIDC_SIGNING_ALGS" "oidc.signing-algs") }}{{ end -}}
{{- toJson $env -}}
{{- end -}}
{{- end -}}

{{- define "kube-oidc-proxy.env" -}}
{{- $secret := include "kube-oidc-proxy.configSecretName" . -}}
{{- range $flag := include "kube-oidc-proxy.oidcEnv" . | fromJsonArray }}
- name: {{ index $flag 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ index $flag 2 }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Replicas on different nodes when affinity is not set: podAntiAffinity soft (preferred) or hard (required). */}}
{{- define "kube-oidc-proxy.podAntiAffinity" -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "kube-oidc-proxy.selectorLabels" . | fromYaml)) -}}
podAntiAffinity:
{{- if eq .Values.podAntiAffinity "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list $term) | nindent 4 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list (dict "weight" 100 "podAffinityTerm" $term)) | nindent 4 }}
{{- end }}
{{- end -}}
