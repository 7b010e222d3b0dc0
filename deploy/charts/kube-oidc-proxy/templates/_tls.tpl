{{/*
The self-signed serving certificate (no tls.secretName, no cert-manager): a CA of 10 years and a
certificate of 365 days it signs for the Service's names, in the Secret <fullname>-tls with the CA's key,
so that a renewal is signed by the same CA and clients keep trusting ca.crt.

On every render the Secret in the cluster (Helm's lookup; empty under `helm template`, `--dry-run` and
`helm lint`, which therefore always show a new one) is kept as it is, unless one of these holds, and then
the certificate is signed again:

- it expires in under 30 days (or its expiry cannot be read);
- it is not valid for one of the names (the Service's, tls.extraDnsNames): the Go chart's certificate
  had none in subjectAltName, and a name added to tls.extraDnsNames must be in it;
- the Secret has no ca.crt (the Go chart's): clients would have nothing to trust.

The same CA signs it when the Secret holds ca.crt and ca.key and the CA outlives the new certificate;
otherwise a new CA is made (ca.crt changes: clients must be given the new one).

Helm templates cannot parse X.509, so the DER is read for the two facts needed: the validity's notAfter
(the second UTCTime, tag 0x17, or GeneralizedTime, 0x18, of the TBSCertificate; RFC 5280 4.1.2.5) and the
subjectAltName dNSName entries (context tag [2], 0x82, then the length and the name; 4.2.1.6).
*/}}

{{- define "kube-oidc-proxy.tlsRenewDays" -}}30{{- end -}}
{{- define "kube-oidc-proxy.tlsCertDays" -}}365{{- end -}}
{{- define "kube-oidc-proxy.tlsCADays" -}}3650{{- end -}}

{{/* The DER of the first certificate in a base64-encoded PEM (a Secret's data value), or "". */}}
{{- define "kube-oidc-proxy.certDER" -}}
{{- $block := regexFind "-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\\s]+-----END CERTIFICATE-----" (b64dec (toString .)) -}}
{{- if $block -}}
{{- $block | trimPrefix "-----BEGIN CERTIFICATE-----" | trimSuffix "-----END CERTIFICATE-----" | nospace | b64dec -}}
{{- end -}}
{{- end -}}

{{/* A certificate's notAfter in seconds since the epoch, from its DER; 0 when it cannot be read. */}}
{{- define "kube-oidc-proxy.certNotAfter" -}}
{{- $times := regexFindAll "\x17\x0d[0-9]{12}Z|\x18\x0f[0-9]{14}Z" . 2 -}}
{{- if eq (len $times) 2 -}}
{{- $digits := index $times 1 | substr 2 -1 | trimSuffix "Z" -}}
{{- /* UTCTime's two-digit year is 1950-2049 in RFC 5280; Go's "06" reads 00-68 as 20xx: the same here. */ -}}
{{- $layout := ternary "060102150405Z0700" "20060102150405Z0700" (eq (len $digits) 12) -}}
{{- (toDate $layout (printf "%sZ" $digits)).Unix -}}
{{- else -}}
0
{{- end -}}
{{- end -}}

{{/* The names of .names missing from the subjectAltName dNSName entries of the DER .der, as JSON. */}}
{{- define "kube-oidc-proxy.certMissingNames" -}}
{{- $der := .der -}}
{{- $missing := list -}}
{{- range $name := .names -}}
{{- /* a length over 127 takes two bytes (0x81, n), which printf cannot write as one byte: the name alone then */ -}}
{{- $entry := ternary (printf "\x82%c%s" (len $name) $name) $name (lt (len $name) 128) -}}
{{- if not (contains $entry $der) -}}{{- $missing = append $missing $name -}}{{- end -}}
{{- end -}}
{{- toJson $missing -}}
{{- end -}}

{{/*
What this render does with the Secret .existing (a lookup result, or empty) for the chart .root, as
JSON: {"action": "create" | "keep" | "renew", "reasons": [...], "sameCA": bool, "notAfter": seconds,
"caKey": bool}. notAfter is the certificate's after this render (for a new one, 365 days from now); caKey
whether the Secret holds the CA's key after it (one kept from chart 0.1.0 does not: its renewal makes a
new CA).
*/}}
{{- define "kube-oidc-proxy.tlsPlan" -}}
{{- $root := .root -}}
{{- $data := default dict (get (default dict .existing) "data") -}}
{{- $now := now | unixEpoch | int64 -}}
{{- $renewBefore := mul (include "kube-oidc-proxy.tlsRenewDays" $root | int64) 86400 -}}
{{- $lifetime := mul (include "kube-oidc-proxy.tlsCertDays" $root | int64) 86400 -}}
{{- $plan := dict "action" "create" "reasons" list "sameCA" false "notAfter" (add $now $lifetime) "caKey" true -}}
{{- if and (get $data "tls.crt") (get $data "tls.key") -}}
{{- $der := include "kube-oidc-proxy.certDER" (get $data "tls.crt") -}}
{{- $notAfter := include "kube-oidc-proxy.certNotAfter" $der | int64 -}}
{{- $reasons := list -}}
{{- if lt $notAfter (add $now $renewBefore) -}}
{{- if eq $notAfter 0 -}}
{{- $reasons = append $reasons "its expiry cannot be read" -}}
{{- else -}}
{{- $reasons = append $reasons (printf "it expires on %s, in under %s days" (dateInZone "2006-01-02" $notAfter "UTC") (include "kube-oidc-proxy.tlsRenewDays" $root)) -}}
{{- end -}}
{{- end -}}
{{- $names := include "kube-oidc-proxy.dnsNames" $root | fromJsonArray -}}
{{- $missing := include "kube-oidc-proxy.certMissingNames" (dict "der" $der "names" $names) | fromJsonArray -}}
{{- if eq (len $missing) (len $names) -}}
{{- $reasons = append $reasons "it is valid for none of the Service's names (no subjectAltName, as the Go chart's)" -}}
{{- else if $missing -}}
{{- $reasons = append $reasons (printf "it is not valid for %s" (join ", " $missing)) -}}
{{- end -}}
{{- if not (get $data "ca.crt") -}}
{{- $reasons = append $reasons "the Secret has no ca.crt for clients to trust" -}}
{{- end -}}
{{- if $reasons -}}
{{- $caNotAfter := 0 | int64 -}}
{{- if and (get $data "ca.crt") (get $data "ca.key") -}}
{{- $caNotAfter = include "kube-oidc-proxy.certNotAfter" (include "kube-oidc-proxy.certDER" (get $data "ca.crt")) | int64 -}}
{{- end -}}
{{- $_ := set $plan "action" "renew" -}}
{{- $_ = set $plan "reasons" $reasons -}}
{{- $_ = set $plan "sameCA" (gt $caNotAfter (add $now $lifetime)) -}}
{{- else -}}
{{- $_ := set $plan "action" "keep" -}}
{{- $_ = set $plan "notAfter" $notAfter -}}
{{- $_ = set $plan "caKey" (and (hasKey $data "ca.key") (hasKey $data "ca.crt")) -}}
{{- end -}}
{{- end -}}
{{- toJson $plan -}}
{{- end -}}

{{/*
The Secret's data (base64 values) after this render, as JSON, for the chart .root and the Secret .existing.
Creates keys: include it once per render (secret-tls.yaml).
*/}}
{{- define "kube-oidc-proxy.tlsData" -}}
{{- $root := .root -}}
{{- $existing := default dict (get (default dict .existing) "data") -}}
{{- $plan := include "kube-oidc-proxy.tlsPlan" . | fromJson -}}
{{- if eq $plan.action "keep" -}}
{{- toJson $existing -}}
{{- else -}}
{{- $ca := dict -}}
{{- $data := dict -}}
{{- if $plan.sameCA -}}
{{- $ca = buildCustomCert (get $existing "ca.crt") (get $existing "ca.key") -}}
{{- $data = dict "ca.crt" (get $existing "ca.crt") "ca.key" (get $existing "ca.key") -}}
{{- else -}}
{{- $ca = genCA (printf "%s-ca" (include "kube-oidc-proxy.fullname" $root)) (include "kube-oidc-proxy.tlsCADays" $root | int) -}}
{{- $data = dict "ca.crt" ($ca.Cert | b64enc) "ca.key" ($ca.Key | b64enc) -}}
{{- end -}}
{{- $dnsNames := include "kube-oidc-proxy.dnsNames" $root | fromJsonArray -}}
{{- $cert := genSignedCert (first $dnsNames) nil $dnsNames (include "kube-oidc-proxy.tlsCertDays" $root | int) $ca -}}
{{- $_ := set $data "tls.crt" ($cert.Cert | b64enc) -}}
{{- $_ = set $data "tls.key" ($cert.Key | b64enc) -}}
{{- toJson $data -}}
{{- end -}}
{{- end -}}

{{/* The Secret <fullname>-tls as the cluster holds it now, as JSON: {} when there is none, and always under
`helm template` and `--dry-run`. The only lookup of it (secret-tls.yaml and NOTES.txt read it here). */}}
{{- define "kube-oidc-proxy.tlsExisting" -}}
{{- toJson (lookup "v1" "Secret" .Release.Namespace (include "kube-oidc-proxy.tlsSecretName" .)) -}}
{{- end -}}

{{/* The Secret <fullname>-tls for the chart .root, given the Secret .existing in the cluster (or empty). */}}
{{- define "kube-oidc-proxy.tlsSecret" -}}
{{- $root := .root -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "kube-oidc-proxy.tlsSecretName" $root }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kube-oidc-proxy.labels" $root | nindent 4 }}
type: kubernetes.io/tls
data:
  {{- include "kube-oidc-proxy.tlsData" . | fromJson | toYaml | nindent 2 }}
{{- end -}}
