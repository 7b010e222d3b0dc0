{{/*
Combinations of values the proxy would refuse at start, or that would silently not do what they say, fail
the render with a message naming the value. Types and enums are in values.schema.json. Included by
deployment.yaml.
*/}}
{{- define "kube-oidc-proxy.validate" -}}
{{- $v := .Values -}}
{{- /* First: with a Go proxy's image nothing else matters, the pod would crash-loop on our flags. */ -}}
{{- with include "kube-oidc-proxy.goProxyImage" . -}}
{{- fail (printf "image.repository %q is the Go kube-oidc-proxy (%s), which this chart cannot run: it passes flags only the Python proxy has (--workers, --shutdown-grace-period, --log-format) and the pod would crash-loop. Remove image.repository and image.tag from your values to use the chart's image, %s:%s (or set image.repository to your own copy of it); docs/migrating.md lists what else changes" (toString $v.image.repository) . (include "kube-oidc-proxy.defaultRepository" $) $.Chart.AppVersion) -}}
{{- end -}}
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
{{- $delay := include "kube-oidc-proxy.durationSeconds" $v.shutdownDelayDuration | int -}}
{{- if le (include "kube-oidc-proxy.terminationGracePeriodSeconds" . | int) (add $delay $grace) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than shutdownDelayDuration (%s) + shutdownGracePeriod (%s): the kubelet would kill the proxy before its streams are done" $v.terminationGracePeriodSeconds $v.shutdownDelayDuration $v.shutdownGracePeriod) -}}
{{- end -}}
{{- range $name := list "extraVolumes" "extraVolumeMounts" -}}
{{- $value := get $v $name -}}
{{- if and (kindIs "map" $value) $value -}}
{{- fail (printf "%s must be a list" $name) -}}
{{- end -}}
{{- end -}}
{{- /* An AuthenticationConfiguration file replaces the --oidc-* flags: the proxy refuses both, as kube-apiserver does. */ -}}
{{- $authentication := include "kube-oidc-proxy.authenticationConfig" . -}}
{{- $extraArgs := default dict $v.extraArgs -}}
{{- if and $authentication (get $extraArgs "authentication-config") -}}
{{- fail "authenticationConfig and extraArgs.authentication-config both give an AuthenticationConfiguration: set one" -}}
{{- end -}}
{{- if and (kindIs "map" $v.authenticationConfig) (hasKey $v.authenticationConfig "content") -}}
{{- range $key, $value := $v.authenticationConfig -}}
{{- if and (ne $key "content") $value -}}
{{- fail (printf "authenticationConfig.%s is not supported: put the AuthenticationConfiguration in authenticationConfig (or authenticationConfig.content), or mount your own file with extraVolumes and extraVolumeMounts and pass it as extraArgs.authentication-config" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $authentication -}}
{{- $document := include "kube-oidc-proxy.authenticationDocument" . | fromJson -}}
{{- if hasKey $document "Error" -}}
{{- fail (printf "authenticationConfig is not a YAML mapping (an AuthenticationConfiguration): %s" (get $document "Error")) -}}
{{- end -}}
{{- $apiVersion := toString (default "" (get $document "apiVersion")) -}}
{{- $kind := toString (default "" (get $document "kind")) -}}
{{- if or (ne $kind "AuthenticationConfiguration") (not (has $apiVersion (list "apiserver.config.k8s.io/v1" "apiserver.config.k8s.io/v1beta1" "apiserver.config.k8s.io/v1alpha1"))) -}}
{{- fail (printf "authenticationConfig must be a whole AuthenticationConfiguration, with apiVersion: apiserver.config.k8s.io/v1 (or v1beta1) and kind: AuthenticationConfiguration (found apiVersion %q, kind %q)" $apiVersion $kind) -}}
{{- end -}}
{{- end -}}
{{- if include "kube-oidc-proxy.authenticationConfigFile" . -}}
{{- $oidc := default dict $v.oidc -}}
{{- $set := list -}}
{{- range $name := list "issuerUrl" "clientId" "caPEM" "usernameClaim" "usernamePrefix" "groupsClaim" "groupsPrefix" "requiredClaims" -}}
{{- if get $oidc $name -}}{{- $set = append $set (printf "oidc.%s" $name) -}}{{- end -}}
{{- end -}}
{{- /* The default [RS256] cannot be told from a value set on purpose: only another list is refused. */ -}}
{{- if and (get $oidc "signingAlgs") (ne (toJson (get $oidc "signingAlgs")) (toJson (list "RS256"))) -}}
{{- $set = append $set "oidc.signingAlgs" -}}
{{- end -}}
{{- range $flag := list "oidc-issuer-url" "oidc-client-id" "oidc-ca-file" "oidc-username-claim" "oidc-username-prefix" "oidc-groups-claim" "oidc-groups-prefix" "oidc-required-claim" "oidc-signing-algs" -}}
{{- if hasKey $extraArgs $flag -}}{{- $set = append $set (printf "extraArgs.%s" $flag) -}}{{- end -}}
{{- end -}}
{{- if $set -}}
{{- $file := ternary "authenticationConfig" "extraArgs.authentication-config" (not (empty $authentication)) -}}
{{- fail (printf "%s cannot be combined with %s: the AuthenticationConfiguration lists the issuers and their claim mappings, and the proxy refuses the --oidc-* flags with it (as kube-apiserver does). Put these settings in the file's jwt entries (issuer.url, issuer.audiences, issuer.certificateAuthority, claimMappings, claimValidationRules) and unset them" $file (join ", " $set)) -}}
{{- end -}}
{{- end -}}
{{- /* Who may log in: the proxy refuses to start without an issuer, so the install fails instead. */ -}}
{{- if not (include "kube-oidc-proxy.authenticationConfigFile" .) -}}
{{- $oidc := default dict $v.oidc -}}
{{- $missing := list -}}
{{- if not (or (get $oidc "issuerUrl") (hasKey $extraArgs "oidc-issuer-url")) -}}{{- $missing = append $missing "oidc.issuerUrl" -}}{{- end -}}
{{- if not (or (get $oidc "clientId") (hasKey $extraArgs "oidc-client-id")) -}}{{- $missing = append $missing "oidc.clientId" -}}{{- end -}}
{{- if $missing -}}
{{- fail (printf "no issuer is configured (%s not set): set oidc.issuerUrl to your OIDC provider's issuer URL and oidc.clientId to the client its id tokens are issued for (their aud), e.g. --set oidc.issuerUrl=https://issuer.example.com --set oidc.clientId=kubernetes; or set authenticationConfig (an AuthenticationConfiguration) for one or more issuers" (join " and " $missing)) -}}
{{- end -}}
{{- end -}}
{{- if and $v.metrics.prometheusRule.enabled (not $v.metrics.enabled) -}}
{{- fail "metrics.prometheusRule.enabled needs metrics.enabled: its alerts read the proxy's metrics" -}}
{{- end -}}
{{- /* Browser login: a client to log in with, one place for its secret, and its flags only through login.*. */ -}}
{{- $login := default dict $v.login -}}
{{- if $login.enabled -}}
{{- if not $login.clientId -}}
{{- fail "login.enabled needs login.clientId: the client registered at the issuer for browser login (--login-client-id); see docs/login.md" -}}
{{- end -}}
{{- if and $login.clientSecret $login.existingSecret -}}
{{- fail "login.clientSecret and login.existingSecret both give the login client's secret: set one (or neither, for a public client with PKCE alone)" -}}
{{- end -}}
{{- if and $login.existingSecret (not $login.existingSecretKey) -}}
{{- fail "login.existingSecret needs login.existingSecretKey: the key in that Secret that holds the client secret" -}}
{{- end -}}
{{- if and $login.scopes (not (has "openid" $login.scopes)) -}}
{{- fail (printf "login.scopes must include openid (an OpenID Connect login returns no id_token without it): %s" (join "," $login.scopes)) -}}
{{- end -}}
{{- $set := list -}}
{{- range $flag := list "login-client-id" "login-client-secret-file" "login-redirect-url" "login-scopes" -}}
{{- if hasKey $extraArgs $flag -}}{{- $set = append $set (printf "extraArgs.%s" $flag) -}}{{- end -}}
{{- end -}}
{{- if $set -}}
{{- fail (printf "login.enabled cannot be combined with %s: set browser login with the login values (login.clientId, clientSecret or existingSecret, redirectUrl, scopes)" (join ", " $set)) -}}
{{- end -}}
{{- end -}}
{{- /* Values of other Go chart versions for features this proxy does not have: refused, not ignored. */ -}}
{{- if $v.oidc.apiAudiences -}}
{{- fail "oidc.apiAudiences is not supported: the proxy has no --api-audiences flag (for passed-through tokens use tokenPassthrough.audiences)" -}}
{{- end -}}
{{- if $v.oidc.extraProviders -}}
{{- fail "oidc.extraProviders (Tremolo's --oidc-extra-providers-config) is not supported: for several issuers use authenticationConfig (an AuthenticationConfiguration)" -}}
{{- end -}}
{{- if $v.readinessRequireAllIssuers -}}
{{- fail "readinessRequireAllIssuers (the RafPe chart's) is not supported: the proxy is ready while at least one issuer's keys are loaded" -}}
{{- end -}}
{{- /* Tremolo's proposed oidc.authenticationConfig is not authenticationConfig: it holds only a jwt list and adds
those issuers to that of oidc.issuerUrl, which the proxy does not do (the file replaces the flags). */ -}}
{{- if $v.oidc.authenticationConfig -}}
{{- fail "oidc.authenticationConfig (issuers in addition to oidc.issuerUrl) is not supported: use authenticationConfig, a whole AuthenticationConfiguration (apiVersion, kind, jwt) listing every issuer, that of oidc.issuerUrl included, and unset the oidc.* values" -}}
{{- end -}}
{{- end -}}
