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
{{- define "kube-oidc-proxy.authenticationConfigDir" -}}/etc/kube-oidc-proxy/authentication{{- end -}}
{{- define "kube-oidc-proxy.authenticationConfigPath" -}}{{ include "kube-oidc-proxy.authenticationConfigDir" . }}/authentication-config.yaml{{- end -}}
{{- define "kube-oidc-proxy.loginDir" -}}/etc/kube-oidc-proxy/login{{- end -}}

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
{{- $delay := include "kube-oidc-proxy.durationSeconds" .Values.shutdownDelayDuration | int -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $delay $grace 10 -}}
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

{{/*
The AuthenticationConfiguration document of authenticationConfig as YAML text, or "" when it is not set.
A map is rendered with toYaml, text is kept as written (comments included). The RafPe chart's
{content: <text>} is read as its content: a real AuthenticationConfiguration has no content field.
*/}}
{{- define "kube-oidc-proxy.authenticationConfig" -}}
{{- $value := .Values.authenticationConfig -}}
{{- if and (kindIs "map" $value) (hasKey $value "content") -}}
{{- $value = $value.content -}}
{{- end -}}
{{- if $value -}}
{{- include "kube-oidc-proxy.yaml" $value -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the proxy reads its issuers from an AuthenticationConfiguration file: authenticationConfig, or
your own file passed as extraArgs.authentication-config. Then no --oidc-* flag is rendered (the proxy
refuses them with the file) and the Secret <fullname>-config is not created.
*/}}
{{- define "kube-oidc-proxy.authenticationConfigFile" -}}
{{- if or (include "kube-oidc-proxy.authenticationConfig" .) (get (default dict .Values.extraArgs) "authentication-config") -}}
true
{{- end -}}
{{- end -}}

{{/*
The parsed authenticationConfig document, as JSON: {} when it is not set, {"Error": ...} when it is not a
YAML mapping.
*/}}
{{- define "kube-oidc-proxy.authenticationDocument" -}}
{{- $text := include "kube-oidc-proxy.authenticationConfig" . -}}
{{- if $text -}}
{{- toJson (fromYaml $text) -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/* The keys of the document's claimMappings.extra, as JSON: the proxy impersonates them as user extras. */}}
{{- define "kube-oidc-proxy.authenticationExtraKeys" -}}
{{- $keys := list -}}
{{- $document := include "kube-oidc-proxy.authenticationDocument" . | fromJson -}}
{{- if not (hasKey $document "Error") -}}
{{- $jwts := get $document "jwt" -}}
{{- if kindIs "slice" $jwts -}}
{{- range $jwt := $jwts -}}
{{- if and (kindIs "map" $jwt) (kindIs "map" (get $jwt "claimMappings")) -}}
{{- $extras := get $jwt.claimMappings "extra" -}}
{{- if kindIs "slice" $extras -}}
{{- range $extra := $extras -}}
{{- if and (kindIs "map" $extra) (get $extra "key") -}}
{{- $keys = append $keys (lower (toString $extra.key)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $keys) -}}
{{- end -}}

{{/*
The Secret holding browser login's client secret, or "" for a public client: login.existingSecret, or the
chart's <fullname>-login made from login.clientSecret. Only when login is enabled.
*/}}
{{- define "kube-oidc-proxy.loginSecretName" -}}
{{- $login := default dict .Values.login -}}
{{- if $login.enabled -}}
{{- if $login.existingSecret -}}
{{- $login.existingSecret -}}
{{- else if $login.clientSecret -}}
{{- printf "%s-login" (include "kube-oidc-proxy.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The key in that Secret: login.existingSecretKey for your Secret, client-secret in the chart's. */}}
{{- define "kube-oidc-proxy.loginSecretKey" -}}
{{- if .Values.login.existingSecret -}}
{{- default "client-secret" .Values.login.existingSecretKey -}}
{{- else -}}
client-secret
{{- end -}}
{{- end -}}

{{/* values.yaml's image.repository, for messages that tell what to set instead. */}}
{{- define "kube-oidc-proxy.defaultRepository" -}}ghcr.io/kube-oidc-proxy/kube-oidc-proxy-python{{- end -}}

{{/*
Which Go kube-oidc-proxy image.repository is, or "" when it is none: quay.io/jetstack/kube-oidc-proxy,
(docker.io|ghcr.io)/tremolosecurity/kube-oidc-proxy, ghcr.io/rafpe/kube-oidc-proxy, also through a mirror
registry that keeps the path (harbor.example.com/proxy/jetstack/kube-oidc-proxy).
*/}}
{{- define "kube-oidc-proxy.goProxyImage" -}}
{{- $repository := lower (toString .Values.image.repository) -}}
{{- $lines := dict "jetstack" "jetstack, archived" "tremolosecurity" "Tremolo Security's fork" "rafpe" "RafPe's fork" -}}
{{- range $owner, $line := $lines -}}
{{- if regexMatch (printf "(^|/)%s/kube-oidc-proxy([:@].*)?$" $owner) $repository -}}{{ $line }}{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when an issuer of authenticationConfig maps a uid (claimMappings.uid): the proxy sends Impersonate-Uid. */}}
{{- define "kube-oidc-proxy.authenticationMapsUid" -}}
{{- $document := include "kube-oidc-proxy.authenticationDocument" . | fromJson -}}
{{- $jwts := get $document "jwt" -}}
{{- if and (not (hasKey $document "Error")) (kindIs "slice" $jwts) -}}
{{- range $jwt := $jwts -}}
{{- if and (kindIs "map" $jwt) (kindIs "map" (get $jwt "claimMappings")) (get $jwt.claimMappings "uid") -}}true{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The ClusterRole's rules for the features that are on, as JSON (a list; empty when the proxy needs no
rights: disableImpersonation without tokenPassthrough), each with a "why" for the comment above it. With
every feature on, deploy/rbac.yaml's.
*/}}
{{- define "kube-oidc-proxy.rbacRules" -}}
{{- $v := .Values -}}
{{- $rules := list -}}
{{- $impersonating := not $v.disableImpersonation -}}
{{- $as := and $impersonating $v.rbac.kubectlAs -}}
{{- if $impersonating -}}
{{- $principals := list "users" "groups" -}}
{{- if $as -}}{{- $principals = append $principals "serviceaccounts" -}}{{- end -}}
{{- $why := ternary "Impersonate-User and -Group for every authenticated caller, and service-account targets of kubectl --as" "Impersonate-User and -Group for every authenticated caller" $as -}}
{{- $rules = append $rules (dict "why" $why "apiGroups" (list "") "resources" $principals "verbs" (list "impersonate")) -}}
{{- if or $as (include "kube-oidc-proxy.authenticationMapsUid" .) -}}
{{- $why = ternary "Impersonate-Uid, for kubectl --as-uid (and the uids authenticationConfig maps)" "Impersonate-Uid, for the uids authenticationConfig maps" $as -}}
{{- $rules = append $rules (dict "why" $why "apiGroups" (list "authentication.k8s.io") "resources" (list "uids") "verbs" (list "impersonate")) -}}
{{- end -}}
{{- $builtin := list "authentication.kubernetes.io/credential-id" -}}
{{- if $v.extraImpersonationHeaders.clientIP -}}{{- $builtin = append $builtin "remote-client-ip" -}}{{- end -}}
{{- if $as -}}
{{- $builtin = concat $builtin (list "originaluser.jetstack.io-user" "originaluser.jetstack.io-groups" "originaluser.jetstack.io-uid" "originaluser.jetstack.io-extra") -}}
{{- end -}}
{{- $extras := include "kube-oidc-proxy.headerExtraKeys" . | fromJsonArray -}}
{{- $extras = concat $extras (include "kube-oidc-proxy.authenticationExtraKeys" . | fromJsonArray) -}}
{{- range $key := default list $v.rbac.extraUserExtras -}}{{- $extras = append $extras (lower $key) -}}{{- end -}}
{{- $resources := list -}}
{{- range $key := concat $builtin $extras | uniq -}}{{- $resources = append $resources (printf "userextras/%s" $key) -}}{{- end -}}
{{- $rules = append $rules (dict "why" "Impersonate-Extra-*, one entry per extra key the proxy sends" "apiGroups" (list "authentication.k8s.io") "resources" $resources "verbs" (list "impersonate")) -}}
{{- if $as -}}
{{- $rules = append $rules (dict "why" "kubectl --as: each requested value is checked with a SubjectAccessReview about the caller" "apiGroups" (list "authorization.k8s.io") "resources" (list "subjectaccessreviews") "verbs" (list "create")) -}}
{{- end -}}
{{- end -}}
{{- if $v.tokenPassthrough.enabled -}}
{{- $rules = append $rules (dict "why" "tokenPassthrough: who a token that is not an id token belongs to" "apiGroups" (list "authentication.k8s.io") "resources" (list "tokenreviews") "verbs" (list "create")) -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}
