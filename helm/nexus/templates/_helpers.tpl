{{/* (list value default): the value, or the default when the value is unset or null (0 stays 0). */}}
{{- define "nexus.orDefault" -}}
{{- if kindIs "invalid" (index . 0) -}}
{{- index . 1 -}}
{{- else -}}
{{- index . 0 -}}
{{- end -}}
{{- end -}}

{{/* Names and labels. */}}
{{- define "nexus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nexus.fullname" -}}
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

{{- define "nexus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nexus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "nexus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "nexus.selectorLabels" . }}
app.kubernetes.io/version: {{ include "nexus.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nexus
{{- end -}}

{{- define "nexus.configName" -}}
{{- default (printf "%s-config" (include "nexus.fullname" .)) .Values.existingConfig -}}
{{- end -}}

{{- define "nexus.secretName" -}}
{{- default (printf "%s-secret" (include "nexus.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{/* The image: global.imageRegistry, then image.registry; tag: image.tag, then version, then appVersion. */}}
{{- define "nexus.imageTag" -}}
{{- toString (default .Chart.AppVersion (default .Values.version .Values.image.tag)) -}}
{{- end -}}

{{- define "nexus.image" -}}
{{- $registry := default .Values.image.registry .Values.global.imageRegistry -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .Values.image.repository (include "nexus.imageTag" .) -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "nexus.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* NEXUS_SHUTDOWN_GRACE_MS and the pods' grace period, which must be longer. */}}
{{- define "nexus.shutdownGraceMs" -}}
{{- int64 (default 25000 .Values.nexus.shutdownGraceMs) -}}
{{- end -}}

{{- define "nexus.terminationGracePeriodSeconds" -}}
{{- $graceMs := int64 (include "nexus.shutdownGraceMs" .) -}}
{{- $minimum := add1 (div $graceMs 1000) -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- $set := int64 .Values.terminationGracePeriodSeconds -}}
{{- if lt $set $minimum -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than nexus.shutdownGraceMs (%d ms)" $set $graceMs) -}}
{{- end -}}
{{- $set -}}
{{- else -}}
{{- add $minimum 15 -}}
{{- end -}}
{{- end -}}

{{/* NEXUS_PUBLIC_URL from nexus.fqdn and nexus.redirectProtocol. */}}
{{- define "nexus.publicUrl" -}}
{{- $fqdn := default "" .Values.nexus.fqdn | trimSuffix "/" -}}
{{- if and $fqdn (not (contains "://" $fqdn)) -}}
{{- printf "%s%s" (default "http://" .Values.nexus.redirectProtocol) $fqdn -}}
{{- else -}}
{{- $fqdn -}}
{{- end -}}
{{- end -}}

{{/* DB_SSL: the guide's example spells enableSsl, its table enableSSL. */}}
{{- define "nexus.dbSsl" -}}
{{- $db := .Values.nexus.db -}}
{{- if hasKey $db "enableSSL" -}}
{{- ternary "true" "false" (eq (toString $db.enableSSL) "true") -}}
{{- else -}}
{{- ternary "true" "false" (eq (toString $db.enableSsl) "true") -}}
{{- end -}}
{{- end -}}

{{/*
DATABASE_URL from nexus.db. The user and password are percent-encoded (urlquery writes a space as
"+", which a URL's user part does not decode, hence the replace: a literal "+" is already %2B).
*/}}
{{- define "nexus.databaseUrl" -}}
{{- $db := .Values.nexus.db -}}
{{- $user := default "nexus" $db.user | toString | urlquery | replace "+" "%20" -}}
{{- $password := default "" $db.password | toString | urlquery | replace "+" "%20" -}}
{{- $host := default "nexus-postgres-postgresql.default.svc.cluster.local" $db.host -}}
{{- $port := default 5432 $db.port | toString -}}
{{- $name := default "nexus" $db.name -}}
{{- if $password -}}
{{- printf "postgres://%s:%s@%s:%s/%s" $user $password $host $port $name -}}
{{- else -}}
{{- printf "postgres://%s@%s:%s/%s" $user $host $port $name -}}
{{- end -}}
{{- end -}}

{{/* Where the pods that connect to Redis mount nexus.redis.tlsSecret. */}}
{{- define "nexus.redisTlsDir" -}}
/etc/nexus/redis-tls
{{- end -}}

{{/*
TLS to Redis beyond REDIS_TLS, as JSON: {"secret": nexus.redis.tlsSecret.name, "files": [{"key",
"env"}] (the Secret's keys to mount and the variable naming each file), "serverName"}. Fails on
what the hub refuses at start (lib/config.ts): a certificate without its key, or a file or server
name while TLS is off (TLS is on with enableTls or a rediss:// node).
*/}}
{{- define "nexus.redisTls" -}}
{{- $redis := .Values.nexus.redis -}}
{{- $tlsSecret := default dict $redis.tlsSecret -}}
{{- $name := toString (default "" $tlsSecret.name) -}}
{{- $ca := toString (default "" $tlsSecret.ca) -}}
{{- $cert := toString (default "" $tlsSecret.cert) -}}
{{- $key := toString (default "" $tlsSecret.key) -}}
{{- $serverName := toString (default "" $redis.tlsServerName) -}}
{{- $tls := eq (toString $redis.enableTls) "true" -}}
{{- range splitList "," (toString (default "" $redis.nodes)) -}}
{{- if hasPrefix "rediss:" (trim . | lower) -}}
{{- $tls = true -}}
{{- end -}}
{{- end -}}
{{- if ne (empty $cert) (empty $key) -}}
{{- fail "nexus.redis.tlsSecret: cert and key go together (the client certificate and its key): set both or neither" -}}
{{- end -}}
{{- if and (not $name) $cert -}}
{{- fail "nexus.redis.tlsSecret: cert and key name keys of the Secret tlsSecret.name, which is empty" -}}
{{- end -}}
{{- if and $name (not $ca) (not $cert) -}}
{{- fail (printf "nexus.redis.tlsSecret.name (%s) is set but ca, cert and key are empty: name the Secret's keys to mount" $name) -}}
{{- end -}}
{{- if and $name (not $tls) -}}
{{- fail (printf "nexus.redis.tlsSecret.name (%s) is set but TLS to Redis is off: set nexus.redis.enableTls=true (or use rediss:// nodes)" $name) -}}
{{- end -}}
{{- if and $serverName (not $tls) -}}
{{- fail "nexus.redis.tlsServerName is set but TLS to Redis is off: set nexus.redis.enableTls=true (or use rediss:// nodes)" -}}
{{- end -}}
{{- $files := list -}}
{{- if $name -}}
{{- if $ca -}}
{{- $files = append $files (dict "key" $ca "env" "REDIS_TLS_CA_FILE") -}}
{{- end -}}
{{- if $cert -}}
{{- $files = append $files (dict "key" $cert "env" "REDIS_TLS_CERT_FILE") -}}
{{- $files = append $files (dict "key" $key "env" "REDIS_TLS_KEY_FILE") -}}
{{- end -}}
{{- end -}}
{{- dict "secret" $name "files" $files "serverName" $serverName | toJson -}}
{{- end -}}

{{/* The Redis TLS Secret's volume (a list item of volumes; empty without nexus.redis.tlsSecret.name). */}}
{{- define "nexus.redisTlsVolume" -}}
{{- $tls := include "nexus.redisTls" . | fromJson -}}
{{- if $tls.secret }}
- name: redis-tls
  secret:
    secretName: {{ $tls.secret | quote }}
    items:
      {{- range $tls.files }}
      - key: {{ .key | quote }}
        path: {{ .key | quote }}
      {{- end }}
{{- end -}}
{{- end -}}

{{/* Its read-only mount (a list item of volumeMounts; empty without a Secret). */}}
{{- define "nexus.redisTlsMount" -}}
{{- if (include "nexus.redisTls" . | fromJson).secret }}
- name: redis-tls
  mountPath: {{ include "nexus.redisTlsDir" . }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/*
REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE: the mounted files (list items of env).
In the pods' env, not the ConfigMap: the migration Job, which reads the ConfigMap but does not
connect to Redis, mounts no Secret, and the hub reads every file it is given at start.
*/}}
{{- define "nexus.redisTlsEnv" -}}
{{- $dir := include "nexus.redisTlsDir" . -}}
{{- range (include "nexus.redisTls" . | fromJson).files }}
- name: {{ .env }}
  value: {{ printf "%s/%s" $dir .key | quote }}
{{- end -}}
{{- end -}}

{{/* The ConfigMap's data: the hub's non-secret variables. */}}
{{- define "nexus.configData" -}}
{{- $redis := .Values.nexus.redis -}}
{{- $prefix := get (default dict .Values.nexus.config) "NEXUS_QUEUE_PREFIX" | toString -}}
{{- if and (eq (toString $redis.useCluster) "true") $prefix (not (hasPrefix "{" $prefix)) -}}
{{- fail (printf "nexus.config.NEXUS_QUEUE_PREFIX (%s) must be hash-tagged, e.g. {%s}, with nexus.redis.useCluster" $prefix $prefix) -}}
{{- end -}}
NODE_ENV: production
DB_SSL: {{ include "nexus.dbSsl" . | quote }}
REDIS_URL: {{ required "nexus.redis.nodes is required" $redis.nodes | toString | quote }}
REDIS_CLUSTER: {{ ternary "true" "false" (eq (toString $redis.useCluster) "true") | quote }}
REDIS_TLS: {{ ternary "true" "false" (eq (toString $redis.enableTls) "true") | quote }}
{{- with (include "nexus.redisTls" . | fromJson).serverName }}
REDIS_TLS_SERVERNAME: {{ . | quote }}
{{- end }}
NEXUS_SHUTDOWN_GRACE_MS: {{ include "nexus.shutdownGraceMs" . | quote }}
NEXUS_MIGRATE_ON_START: {{ ternary "false" "true" .Values.migration.enabled | quote }}
{{- with include "nexus.publicUrl" . }}
NEXUS_PUBLIC_URL: {{ . | quote }}
{{- end }}
{{- if not (hasKey (default dict .Values.nexus.config) "NEXUS_TRUST_PROXY") }}
{{- /* The ingress controller's pods: their X-Forwarded-For names the client (sign-in throttling). */}}
NEXUS_TRUST_PROXY: "loopback, uniquelocal"
{{- end }}
{{- range $key, $value := .Values.nexus.config }}
{{- if has $key (list "PORT" "METRICS_PORT" "NEXUS_WORKER_QUEUES" "DATABASE_URL" "REDIS_PASSWORD" "REDIS_TLS_CA_FILE" "REDIS_TLS_CERT_FILE" "REDIS_TLS_KEY_FILE" "REDIS_TLS_SERVERNAME" "NEXUS_ADMIN_TOKEN" "NEXUS_SECRET_KEY" "NEXUS_SECRET_KEYS_PREVIOUS" "NEXUS_SHUTDOWN_GRACE_MS" "NEXUS_MIGRATE_ON_START") }}
{{- fail (printf "nexus.config.%s: set it through its own value (docs/kubernetes.md lists them)" $key) }}
{{- end }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end -}}

{{/*
The Secret's data (base64). Generated values are read back from the release's Secret when it
exists, so an upgrade keeps them.
*/}}
{{- define "nexus.secretData" -}}
{{- $existing := dict -}}
{{- with lookup "v1" "Secret" .Release.Namespace (include "nexus.secretName" .) -}}
{{- $existing = default dict .data -}}
{{- end -}}
{{- $adminToken := .Values.nexus.adminToken | default (get $existing "NEXUS_ADMIN_TOKEN" | b64dec) | default (randAlphaNum 40) -}}
{{- $secretKey := .Values.nexus.secretKey | default (get $existing "NEXUS_SECRET_KEY" | b64dec) | default (randAlphaNum 32 | b64enc) -}}
DATABASE_URL: {{ include "nexus.databaseUrl" . | b64enc | quote }}
NEXUS_ADMIN_TOKEN: {{ $adminToken | b64enc | quote }}
NEXUS_SECRET_KEY: {{ $secretKey | b64enc | quote }}
{{- with .Values.nexus.redis.password }}
REDIS_PASSWORD: {{ toString . | b64enc | quote }}
{{- end }}
{{- with .Values.nexus.secretKeysPrevious }}
NEXUS_SECRET_KEYS_PREVIOUS: {{ join "," . | b64enc | quote }}
{{- end }}
{{- end -}}

{{/* imagePullSecrets: names or {name} objects, the global ones first. */}}
{{- define "nexus.imagePullSecrets" -}}
{{- $names := list -}}
{{- range (concat (default list .Values.global.imagePullSecrets) (default list .Values.imagePullSecrets)) -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names (toString .) -}}
{{- end -}}
{{- end -}}
{{- with uniq $names }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
What every pod of the hub shares: scheduling, security, pull secrets, grace period, /tmp. Called
with the root context (the migration Job), or with (dict "root" $ "redis" true) by the pods that
connect to Redis, which also get nexus.redis.tlsSecret's volume.
*/}}
{{- define "nexus.podSpecCommon" -}}
{{- $root := . -}}
{{- $redis := false -}}
{{- if hasKey . "root" -}}
{{- $root = .root -}}
{{- $redis = .redis -}}
{{- end -}}
{{- include "nexus.imagePullSecrets" $root }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ include "nexus.terminationGracePeriodSeconds" $root }}
{{- with $root.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir: {}
{{- with and $redis (include "nexus.redisTlsVolume" $root | trim) }}
{{- . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The container fields every hub container shares (the caller adds args, env, ports, probes,
resources). The same argument as nexus.podSpecCommon: with "redis", the Redis TLS Secret's mount.
*/}}
{{- define "nexus.containerCommon" -}}
{{- $root := . -}}
{{- $redis := false -}}
{{- if hasKey . "root" -}}
{{- $root = .root -}}
{{- $redis = .redis -}}
{{- end -}}
image: {{ include "nexus.image" $root | quote }}
imagePullPolicy: {{ default "IfNotPresent" $root.Values.image.pullPolicy }}
{{- with $root.Values.containerSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
envFrom:
  - configMapRef:
      name: {{ include "nexus.configName" $root | quote }}
  - secretRef:
      name: {{ include "nexus.secretName" $root | quote }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- with and $redis (include "nexus.redisTlsMount" $root | trim) }}
{{- . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod annotations: the user's, plus checksums that roll the pods when the chart's config changes. */}}
{{- define "nexus.podAnnotations" -}}
{{- $annotations := dict -}}
{{- if not .Values.existingConfig -}}
{{- $_ := set $annotations "checksum/config" (include "nexus.configData" . | sha256sum) -}}
{{- end -}}
{{- if not .Values.existingSecret -}}
{{- $_ := set $annotations "checksum/secret" (include "nexus.databaseUrl" . | cat (toString .Values.nexus.redis.password) (toString .Values.nexus.adminToken) (toString .Values.nexus.secretKey) (join "," (default list .Values.nexus.secretKeysPrevious)) | sha256sum) -}}
{{- end -}}
{{- $annotations = merge $annotations (default dict .Values.podAnnotations) -}}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
The queues the hub's workers run: queues/index.ts's but ai-connector, which the AI connector's worker
runs (helm/athena); test/integration/chart.test.ts keeps the lists equal.
*/}}
{{- define "nexus.queues" -}}
inbound,maintenance,outbound-email,outbound-sms,receipts,webhooks
{{- end -}}

{{/*
Autoscaling of one worker group ($ and the group): its settings, the group's own over the
chart's autoscaling.workers ones, as JSON ({"enabled", "minReplicas", "maxReplicas",
"backlogPerReplica", "queues": [...]}; queues is every queue of the hub's workers when the group
names none).
*/}}
{{- define "nexus.workerScaling" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $chart := default dict $root.Values.autoscaling.workers -}}
{{- $own := default dict $group.autoscaling -}}
{{- $enabled := and $chart.enabled (ne (toString (index $own "enabled")) "false") -}}
{{- $queues := $group.queues | default (splitList "," (include "nexus.queues" $root)) -}}
{{- $min := include "nexus.orDefault" (list (index $own "minReplicas") (include "nexus.orDefault" (list $chart.minReplicas 1))) | int -}}
{{- $max := include "nexus.orDefault" (list (index $own "maxReplicas") (include "nexus.orDefault" (list $chart.maxReplicas 10))) | int -}}
{{- $per := include "nexus.orDefault" (list (index $own "backlogPerReplica") (include "nexus.orDefault" (list $chart.backlogPerReplica 500))) | int -}}
{{- if and $enabled (lt $max $min) -}}
{{- fail (printf "workers.groups %q: autoscaling maxReplicas (%d) is below minReplicas (%d)" $group.name $max $min) -}}
{{- end -}}
{{- dict "enabled" $enabled "minReplicas" $min "maxReplicas" $max "backlogPerReplica" $per "queues" $queues | toJson -}}
{{- end -}}

{{/*
The PromQL series selector of the workers' nexus_queue_backlog as the chart's ServiceMonitor
has Prometheus store it: the release's namespace and the metrics Service, or
autoscaling.workers.prometheus.matchers when set ($ and the group's queues).
*/}}
{{- define "nexus.backlogQuery" -}}
{{- $root := index . 0 -}}
{{- $queues := index . 1 -}}
{{- $matchers := $root.Values.autoscaling.workers.prometheus.matchers | default (printf "namespace=%q,service=%q" $root.Release.Namespace (printf "%s-metrics" (include "nexus.fullname" $root))) -}}
{{- printf "sum(max by (queue) (nexus_queue_backlog{%s,queue=~%q}))" $matchers (join "|" $queues) -}}
{{- end -}}
