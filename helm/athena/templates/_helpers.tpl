{{/* (list value default): the value, or the default when the value is unset or null (0 stays 0). */}}
{{- define "athena.orDefault" -}}
{{- if kindIs "invalid" (index . 0) -}}
{{- index . 1 -}}
{{- else -}}
{{- index . 0 -}}
{{- end -}}
{{- end -}}

{{- define "athena.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "athena.fullname" -}}
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

{{- define "athena.selectorLabels" -}}
app.kubernetes.io/name: {{ include "athena.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "athena.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "athena.selectorLabels" . }}
app.kubernetes.io/version: {{ include "athena.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nexus
{{- end -}}

{{- define "athena.configName" -}}
{{- default (printf "%s-config" (include "athena.fullname" .)) .Values.existingConfig -}}
{{- end -}}

{{- define "athena.secretName" -}}
{{- default (printf "%s-secret" (include "athena.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "athena.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "athena.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "athena.imageTag" -}}
{{- toString (default .Chart.AppVersion (default .Values.version .Values.image.tag)) -}}
{{- end -}}

{{- define "athena.image" -}}
{{- if .Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .Values.image.registry) .Values.image.repository (include "athena.imageTag" .) -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "athena.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{- define "athena.port" -}}
{{- include "athena.orDefault" (list .Values.containerPort 4084) -}}
{{- end -}}

{{- define "athena.metricsPort" -}}
{{- include "athena.orDefault" (list .Values.metricsPort 4085) -}}
{{- end -}}

{{- define "athena.shutdownGraceMs" -}}
{{- int64 (default 25000 .Values.athena.shutdownGraceMs) -}}
{{- end -}}

{{- define "athena.terminationGracePeriodSeconds" -}}
{{- $graceMs := int64 (include "athena.shutdownGraceMs" .) -}}
{{- $minimum := add1 (div $graceMs 1000) -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- $set := int64 .Values.terminationGracePeriodSeconds -}}
{{- if lt $set $minimum -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than athena.shutdownGraceMs (%d ms)" $set $graceMs) -}}
{{- end -}}
{{- $set -}}
{{- else -}}
{{- add $minimum 15 -}}
{{- end -}}
{{- end -}}

{{/* The API prefixes (athena.server.apiPrefix), without trailing slashes. */}}
{{- define "athena.apiPrefixes" -}}
{{- $prefixes := list -}}
{{- range splitList "," (toString (default "/athena/v1,/nexus/v3" .Values.athena.server.apiPrefix)) -}}
{{- $prefix := trim . | trimSuffix "/" -}}
{{- if $prefix -}}
{{- $prefixes = append $prefixes $prefix -}}
{{- end -}}
{{- end -}}
{{- join "," $prefixes -}}
{{- end -}}

{{/* DATABASE_URL from athena.db (empty fields: the hub's defaults); user and password percent-encoded. */}}
{{- define "athena.databaseUrl" -}}
{{- $db := .Values.athena.db -}}
{{- $user := default "nexus" $db.user | toString | urlquery | replace "+" "%20" -}}
{{- $password := default "" $db.password | toString | urlquery | replace "+" "%20" -}}
{{- $host := default "nexus-postgres-postgresql.default.svc.cluster.local" $db.host -}}
{{- $port := default 5432 $db.port | toString -}}
{{- $name := default "nexus" $db.database -}}
{{- if $password -}}
{{- printf "postgres://%s:%s@%s:%s/%s" $user $password $host $port $name -}}
{{- else -}}
{{- printf "postgres://%s@%s:%s/%s" $user $host $port $name -}}
{{- end -}}
{{- end -}}

{{/* Where the connector's pods mount athena.redis.tlsSecret (the hub's path: the same image). */}}
{{- define "athena.redisTlsDir" -}}
/etc/nexus/redis-tls
{{- end -}}

{{/*
TLS to Redis beyond REDIS_TLS, as JSON: {"secret": athena.redis.tlsSecret.name, "files": [{"key",
"env"}] (the Secret's keys to mount and the variable naming each file), "serverName"}. Fails on
what the connector refuses at start (lib/config.ts): a certificate without its key, or a file or
server name while TLS is off (TLS is on with athena.redis.tls or a rediss:// node).
*/}}
{{- define "athena.redisTls" -}}
{{- $redis := .Values.athena.redis -}}
{{- $tlsSecret := default dict $redis.tlsSecret -}}
{{- $name := toString (default "" $tlsSecret.name) -}}
{{- $ca := toString (default "" $tlsSecret.ca) -}}
{{- $cert := toString (default "" $tlsSecret.cert) -}}
{{- $key := toString (default "" $tlsSecret.key) -}}
{{- $serverName := toString (default "" $redis.tlsServerName) -}}
{{- $tls := eq (toString $redis.tls) "true" -}}
{{- range splitList "," (toString (default "redis://nexus-redis-master.default.svc.cluster.local:6379" $redis.nodes)) -}}
{{- if hasPrefix "rediss:" (trim . | lower) -}}
{{- $tls = true -}}
{{- end -}}
{{- end -}}
{{- if ne (empty $cert) (empty $key) -}}
{{- fail "athena.redis.tlsSecret: cert and key go together (the client certificate and its key): set both or neither" -}}
{{- end -}}
{{- if and (not $name) $cert -}}
{{- fail "athena.redis.tlsSecret: cert and key name keys of the Secret tlsSecret.name, which is empty" -}}
{{- end -}}
{{- if and $name (not $ca) (not $cert) -}}
{{- fail (printf "athena.redis.tlsSecret.name (%s) is set but ca, cert and key are empty: name the Secret's keys to mount" $name) -}}
{{- end -}}
{{- if and $name (not $tls) -}}
{{- fail (printf "athena.redis.tlsSecret.name (%s) is set but TLS to Redis is off: set athena.redis.tls=true (or use rediss:// nodes)" $name) -}}
{{- end -}}
{{- if and $serverName (not $tls) -}}
{{- fail "athena.redis.tlsServerName is set but TLS to Redis is off: set athena.redis.tls=true (or use rediss:// nodes)" -}}
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

{{/* The ConfigMap's data: the connector's non-secret variables. */}}
{{- define "athena.configData" -}}
{{- $redis := .Values.athena.redis -}}
{{- $nexus := .Values.athena.nexus -}}
{{- $prefix := get (default dict .Values.athena.config) "NEXUS_QUEUE_PREFIX" | toString -}}
{{- if and (eq (toString $redis.cluster) "true") $prefix (not (hasPrefix "{" $prefix)) -}}
{{- fail (printf "athena.config.NEXUS_QUEUE_PREFIX (%s) must be hash-tagged, e.g. {%s}, with athena.redis.cluster" $prefix $prefix) -}}
{{- end -}}
NODE_ENV: production
DB_SSL: {{ ternary "true" "false" (eq (toString .Values.athena.db.ssl) "true") | quote }}
REDIS_URL: {{ default "redis://nexus-redis-master.default.svc.cluster.local:6379" $redis.nodes | toString | quote }}
REDIS_CLUSTER: {{ ternary "true" "false" (eq (toString $redis.cluster) "true") | quote }}
REDIS_TLS: {{ ternary "true" "false" (eq (toString $redis.tls) "true") | quote }}
{{- with (include "athena.redisTls" . | fromJson).serverName }}
REDIS_TLS_SERVERNAME: {{ . | quote }}
{{- end }}
NEXUS_SHUTDOWN_GRACE_MS: {{ include "athena.shutdownGraceMs" . | quote }}
NEXUS_MIGRATE_ON_START: {{ ternary "true" "false" (eq (toString .Values.athena.migrateOnStart) "true") | quote }}
ATHENA_API_PREFIX: {{ include "athena.apiPrefixes" . | quote }}
ATHENA_NEXUS_URL: {{ default "http://nexus.nexus.svc.cluster.local" $nexus.url | toString | quote }}
ATHENA_NEXUS_API_PREFIX: {{ default "/nexus/v3" $nexus.apiPrefix | toString | quote }}
ATHENA_NEXUS_TIMEOUT_MS: {{ include "athena.orDefault" (list $nexus.timeout 10000) | int64 | toString | quote }}
{{- range $key, $value := .Values.athena.config }}
{{- if has $key (list "PORT" "METRICS_PORT" "NODE_ENV" "NEXUS_WORKER_QUEUES" "DATABASE_URL" "DB_SSL" "REDIS_URL" "REDIS_CLUSTER" "REDIS_TLS" "REDIS_TLS_CA_FILE" "REDIS_TLS_CERT_FILE" "REDIS_TLS_KEY_FILE" "REDIS_TLS_SERVERNAME" "REDIS_PASSWORD" "NEXUS_ADMIN_TOKEN" "NEXUS_SECRET_KEY" "NEXUS_SECRET_KEYS_PREVIOUS" "NEXUS_SHUTDOWN_GRACE_MS" "NEXUS_MIGRATE_ON_START" "ATHENA_API_PREFIX" "ATHENA_NEXUS_URL" "ATHENA_NEXUS_API_PREFIX" "ATHENA_NEXUS_API_KEY" "ATHENA_NEXUS_TIMEOUT_MS") }}
{{- fail (printf "athena.config.%s: set it through its own value (docs/kubernetes.md lists them)" $key) }}
{{- end }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end -}}

{{/* The Secret's data (base64); a generated operator token is read back from the release's Secret. */}}
{{- define "athena.secretData" -}}
{{- $existing := dict -}}
{{- with lookup "v1" "Secret" .Release.Namespace (include "athena.secretName" .) -}}
{{- $existing = default dict .data -}}
{{- end -}}
{{- $adminToken := .Values.athena.adminToken | default (get $existing "NEXUS_ADMIN_TOKEN" | b64dec) | default (randAlphaNum 40) -}}
DATABASE_URL: {{ include "athena.databaseUrl" . | b64enc | quote }}
NEXUS_ADMIN_TOKEN: {{ $adminToken | b64enc | quote }}
{{- with .Values.athena.secretKey }}
NEXUS_SECRET_KEY: {{ toString . | b64enc | quote }}
{{- end }}
{{- with .Values.athena.nexus.apiKey }}
ATHENA_NEXUS_API_KEY: {{ toString . | b64enc | quote }}
{{- end }}
{{- with .Values.athena.redis.password }}
REDIS_PASSWORD: {{ toString . | b64enc | quote }}
{{- end }}
{{- end -}}

{{/* imagePullSecrets: names or {name} objects; entries without a name (the guide's "- name:") are skipped. */}}
{{- define "athena.imagePullSecrets" -}}
{{- $names := list -}}
{{- range (default list .Values.image.pullSecrets) -}}
{{- if kindIs "map" . -}}
{{- with .name -}}
{{- $names = append $names (toString .) -}}
{{- end -}}
{{- else if . -}}
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

{{/* Pod annotations: the user's, plus the checksums the guide's configChecksum/secretChecksum ask for. */}}
{{- define "athena.podAnnotations" -}}
{{- $annotations := dict -}}
{{- if and .Values.configChecksum (not .Values.existingConfig) -}}
{{- $_ := set $annotations "checksum/config" (include "athena.configData" . | sha256sum) -}}
{{- end -}}
{{- if and .Values.secretChecksum (not .Values.existingSecret) -}}
{{- $_ := set $annotations "checksum/secret" (include "athena.databaseUrl" . | cat (toString .Values.athena.redis.password) (toString .Values.athena.adminToken) (toString .Values.athena.secretKey) (toString .Values.athena.nexus.apiKey) | sha256sum) -}}
{{- end -}}
{{- $annotations = merge $annotations (default dict .Values.podAnnotations) -}}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
One connector Deployment. (dict "root" $ "component" api|worker|all "replicas" n "resources" r)
*/}}
{{- define "athena.deployment" -}}
{{- $ := .root -}}
{{- $component := .component -}}
{{- $redisTls := include "athena.redisTls" $ | fromJson -}}
{{- $redisTlsDir := include "athena.redisTlsDir" $ -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "athena.fullname" $ }}{{ if ne $component "all" }}-{{ $component }}{{ end }}
  labels:
    {{- include "athena.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
spec:
  replicas: {{ .replicas }}
  selector:
    matchLabels:
      {{- include "athena.selectorLabels" $ | nindent 6 }}
      app.kubernetes.io/component: {{ $component }}
  template:
    metadata:
      {{- with include "athena.podAnnotations" $ | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      labels:
        {{- include "athena.labels" $ | nindent 8 }}
        {{- with $.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        app.kubernetes.io/component: {{ $component }}
        athena.nexus.io/serves-api: {{ ne $component "worker" | quote }}
    spec:
      {{- with include "athena.imagePullSecrets" $ | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with include "athena.serviceAccountName" $ }}
      serviceAccountName: {{ . | quote }}
      {{- end }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ include "athena.terminationGracePeriodSeconds" $ }}
      {{- with $.Values.podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $.Values.priorityClassName }}
      priorityClassName: {{ . | quote }}
      {{- end }}
      {{- with $.Values.dnsPolicy }}
      dnsPolicy: {{ . }}
      {{- end }}
      {{- with $.Values.dnsConfig }}
      dnsConfig:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- with $redisTls.secret }}
        # athena.redis.tlsSecret: the PEM files for TLS to Redis.
        - name: redis-tls
          secret:
            secretName: {{ . | quote }}
            items:
              {{- range $redisTls.files }}
              - key: {{ .key | quote }}
                path: {{ .key | quote }}
              {{- end }}
        {{- end }}
      containers:
        - name: {{ ternary "athena" $component (eq $component "all") }}
          image: {{ include "athena.image" $ | quote }}
          imagePullPolicy: {{ default "IfNotPresent" $.Values.image.pullPolicy }}
          {{- with $.Values.securityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          args: ["athena", "--role={{ $component }}"]
          envFrom:
            - configMapRef:
                name: {{ include "athena.configName" $ | quote }}
            - secretRef:
                name: {{ include "athena.secretName" $ | quote }}
          env:
            {{- if ne $component "worker" }}
            - name: PORT
              value: {{ include "athena.port" $ | quote }}
            {{- end }}
            - name: METRICS_PORT
              value: {{ include "athena.metricsPort" $ | quote }}
            {{- if and (not $.Values.athena.secretKey) (not $.Values.existingSecret) }}
            # The hub's key: the connector decrypts the secrets the hub stores.
            - name: NEXUS_SECRET_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ required "athena.hubSecret (or athena.secretKey) is required" $.Values.athena.hubSecret | quote }}
                  key: NEXUS_SECRET_KEY
            - name: NEXUS_SECRET_KEYS_PREVIOUS
              valueFrom:
                secretKeyRef:
                  name: {{ $.Values.athena.hubSecret | quote }}
                  key: NEXUS_SECRET_KEYS_PREVIOUS
                  optional: true
            {{- end }}
            {{- /* In the pods' env (not the ConfigMap), beside the mount they name. */}}
            {{- range $redisTls.files }}
            - name: {{ .env }}
              value: {{ printf "%s/%s" $redisTlsDir .key | quote }}
            {{- end }}
          ports:
            {{- if ne $component "worker" }}
            - name: http
              containerPort: {{ include "athena.port" $ }}
              protocol: TCP
            {{- end }}
            - name: metrics
              containerPort: {{ include "athena.metricsPort" $ }}
              protocol: TCP
          {{- if ne $component "worker" }}
          startupProbe:
            httpGet:
              path: /health/live
              port: http
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /health/live
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /health/ready
              port: http
            periodSeconds: 5
            timeoutSeconds: 5
            failureThreshold: 2
          {{- else }}
          # The worker serves only /metrics; the port answering is its liveness.
          livenessProbe:
            tcpSocket:
              port: metrics
            initialDelaySeconds: 10
            periodSeconds: 10
            failureThreshold: 3
          {{- end }}
          {{- with .resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $redisTls.secret }}
            - name: redis-tls
              mountPath: {{ $redisTlsDir }}
              readOnly: true
            {{- end }}
{{- end -}}
