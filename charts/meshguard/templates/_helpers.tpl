{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "meshguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects. Kept to 40 characters so that every derived name
("-webhook-metrics" is the longest suffix) stays a valid 63-character DNS label.
*/}}
{{- define "meshguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "meshguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "meshguard.labels" -}}
helm.sh/chart: {{ include "meshguard.chart" . }}
app.kubernetes.io/name: {{ include "meshguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component: (dict "ctx" $ "component" "webhook"). */}}
{{- define "meshguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshguard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a component's objects: (dict "ctx" $ "component" "webhook"). */}}
{{- define "meshguard.componentLabels" -}}
{{ include "meshguard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "meshguard.webhook.fullname" -}}
{{- printf "%s-webhook" (include "meshguard.fullname" .) -}}
{{- end -}}

{{- define "meshguard.checker.fullname" -}}
{{- printf "%s-checker" (include "meshguard.fullname" .) -}}
{{- end -}}

{{/* The webhook Service the API server calls; the serving certificate is issued for its names. */}}
{{- define "meshguard.webhook.serviceName" -}}
{{- include "meshguard.webhook.fullname" . -}}
{{- end -}}

{{/* Secret holding tls.crt, tls.key and ca.crt of the webhook. */}}
{{- define "meshguard.webhook.tlsSecretName" -}}
{{- printf "%s-tls" (include "meshguard.webhook.fullname" .) -}}
{{- end -}}

{{- define "meshguard.configMapName" -}}
{{- printf "%s-config" (include "meshguard.fullname" .) -}}
{{- end -}}

{{- define "meshguard.webhook.serviceAccountName" -}}
{{- if .Values.webhook.serviceAccount.create -}}
{{- default (include "meshguard.webhook.fullname" .) .Values.webhook.serviceAccount.name -}}
{{- else -}}
{{- required "webhook.serviceAccount.name is required when webhook.serviceAccount.create is false" .Values.webhook.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "meshguard.checker.serviceAccountName" -}}
{{- if .Values.checker.serviceAccount.create -}}
{{- default (include "meshguard.checker.fullname" .) .Values.checker.serviceAccount.name -}}
{{- else -}}
{{- required "checker.serviceAccount.name is required when checker.serviceAccount.create is false" .Values.checker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The DNS names of the webhook Service, in the order the certificate lists them. */}}
{{- define "meshguard.webhook.dnsNames" -}}
{{- $svc := include "meshguard.webhook.serviceName" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) | toJson -}}
{{- end -}}

{{- define "meshguard.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Labels and annotations that keep Istio away from meshguard's pods. The API server has no sidecar:
behind a sidecar with a STRICT PeerAuthentication the webhook would refuse the API server's plain
TLS, and with failurePolicy Fail every Istio change would then fail. The ambient label does the same
for ztunnel in ambient mode.
*/}}
{{- define "meshguard.meshOptOutLabels" -}}
sidecar.istio.io/inject: "false"
istio.io/dataplane-mode: none
{{- end -}}

{{- define "meshguard.meshOptOutAnnotations" -}}
sidecar.istio.io/inject: "false"
{{- end -}}

{{/*
The rendered config.yaml: the chart's defaults (meshguard's own, see internal/config.Default) with
.Values.config merged over them.
*/}}
{{/* The checker's leader-election Lease: config.check.leaderElection.leaseName, else the checker's name. */}}
{{- define "meshguard.checker.leaseName" -}}
{{ dig "check" "leaderElection" "leaseName" (include "meshguard.checker.fullname" .) (.Values.config | default dict) }}
{{- end -}}

{{- define "meshguard.config" -}}
{{- $timeout := max 1 (sub (int .Values.webhook.timeoutSeconds) 2) -}}
{{- $defaults := dict
  "rootNamespace" "istio-system"
  "meshDomain" .Values.clusterDomain
  "webhook" (dict
    "enforcement" "deny"
    "failurePolicy" "allow"
    "timeout" (printf "%ds" $timeout)
    "maxRequestBytes" 3145728
    "maxConcurrentReviews" 64)
  "check" (dict
    "prometheus" (dict "url" "http://prometheus.istio-system.svc:9090")
    "interval" "30s"
    "window" "5m"
    "thresholds" (dict "retryRatio" 0.05 "upstreamTimeoutRatio" 0.01 "retryAmplification" 10)
    "graph" (dict "enabled" .Values.checker.graph.enabled)
    "leaderElection" (dict "enabled" .Values.checker.leaderElection.enabled
      "leaseName" (include "meshguard.checker.leaseName" .) "leaseNamespace" .Release.Namespace)
    "runbookBaseURL" "https://github.com/meshguard/meshguard/blob/main/docs/runbooks.md")
-}}
{{- toYaml (mergeOverwrite $defaults (deepCopy .Values.config)) -}}
{{- end -}}

{{/* Egress rules of a component's NetworkPolicy: (dict "ctx" $ "component" "checker"). */}}
{{- define "meshguard.networkPolicy.egress" -}}
{{- $np := .ctx.Values.networkPolicy -}}
# DNS, in any namespace (kube-dns, node-local caches).
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
# The Kubernetes API. Its address is not a pod, so only the port is pinned.
- ports:
    {{- range $np.egress.apiServerPorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- if eq .component "checker" }}
# Prometheus and Alertmanager.
- ports:
    {{- range $np.egress.checkerPorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- with $np.egress.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end -}}
