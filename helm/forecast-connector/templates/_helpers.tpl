{{- define "forecast-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "forecast-connector.fullname" -}}
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

{{- define "forecast-connector.labels" -}}
app.kubernetes.io/name: {{ include "forecast-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "forecast-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forecast-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "forecast-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "forecast-connector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
FC_SHUTDOWN_TIMEOUT_MS as the connector will read it (30000 when unset, as in src/config/schema.ts).
*/}}
{{- define "forecast-connector.shutdownTimeoutMs" -}}
{{- $value := .Values.config.FC_SHUTDOWN_TIMEOUT_MS -}}
{{- if or (kindIs "invalid" $value) (eq (toString $value) "") -}}30000{{- else -}}{{ int64 $value }}{{- end -}}
{{- end -}}

{{/*
The shortest grace period that lets the connector finish: FC_SHUTDOWN_TIMEOUT_MS rounded up to seconds, plus
the margin for committing, leaving the group and disconnecting (cli.ts exits by itself 15 s after the timeout).
*/}}
{{- define "forecast-connector.minGracePeriodSeconds" -}}
{{- $ms := include "forecast-connector.shutdownTimeoutMs" . | int64 -}}
{{- add (div (add $ms 999) 1000) .Values.shutdownGraceMarginSeconds -}}
{{- end -}}

{{- define "forecast-connector.terminationGracePeriodSeconds" -}}
{{- $min := include "forecast-connector.minGracePeriodSeconds" . | int64 -}}
{{- $set := .Values.terminationGracePeriodSeconds -}}
{{- if kindIs "invalid" $set -}}
{{- $min -}}
{{- else if lt (int64 $set) $min -}}
{{- fail (printf "terminationGracePeriodSeconds %d is shorter than FC_SHUTDOWN_TIMEOUT_MS (%s ms) + shutdownGraceMarginSeconds (%d s) = %d s: the pod would be killed before the connector commits what it settled. Raise it, or leave it empty to derive it." (int64 $set) (include "forecast-connector.shutdownTimeoutMs" .) (int64 .Values.shutdownGraceMarginSeconds) $min) -}}
{{- else -}}
{{- int64 $set -}}
{{- end -}}
{{- end -}}

{{/*
A Kubernetes memory quantity in MiB (whole), e.g. 1Gi -> 1024, 512Mi -> 512, 1G -> 953.
*/}}
{{- define "forecast-connector.memoryMiB" -}}
{{- $quantity := toString . -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $quantity -}}
{{- $unit := trimPrefix $number $quantity -}}
{{- $factors := dict "" 1.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 -}}
{{- if or (eq $number "") (not (hasKey $factors $unit)) -}}
{{- fail (printf "resources.limits.memory %q is not a memory quantity this chart understands (a number with k, M, G, T, Ki, Mi, Gi or Ti)" $quantity) -}}
{{- end -}}
{{- floor (divf (mulf (float64 $number) (get $factors $unit)) 1048576.0) | int64 -}}
{{- end -}}

{{/*
V8's old-space limit: heap.percentOfMemoryLimit of resources.limits.memory, in MiB; empty without a limit.
*/}}
{{- define "forecast-connector.maxOldSpaceMiB" -}}
{{- $limits := (.Values.resources | default dict).limits | default dict -}}
{{- if and .Values.heap.enabled $limits.memory -}}
{{- $mib := include "forecast-connector.memoryMiB" $limits.memory | int64 -}}
{{- div (mul $mib (int64 .Values.heap.percentOfMemoryLimit)) 100 -}}
{{- end -}}
{{- end -}}

{{/*
The PromQL label matchers that pick this release's series: namespace and job (both monitors set the job label
to the release name through jobLabel), unless metrics.prometheusRule.selector says otherwise.
*/}}
{{- define "forecast-connector.seriesSelector" -}}
{{- if .Values.metrics.prometheusRule.selector -}}
{{- .Values.metrics.prometheusRule.selector -}}
{{- else -}}
{{- printf "namespace=%q, job=%q" .Release.Namespace .Release.Name -}}
{{- end -}}
{{- end -}}

{{/*
Checks across values that the schema cannot express; each failure says what to change.
*/}}
{{- define "forecast-connector.validate" -}}
{{- /* Secret settings of the connector (the `secret: true` ones of each stage's settings.ts). */ -}}
{{- $secretSettings := list "FC_KAFKA_SASL_PASSWORD" "FC_KAFKA_SSL_KEY_PASSWORD" "FC_SCHEMA_REGISTRY_PASSWORD" "FC_INPUT_STORAGE_CONNECTION_STRING" "FC_OUTPUT_STORAGE_CONNECTION_STRING" -}}
{{- range $name := $secretSettings -}}
{{- if hasKey $.Values.config $name -}}
{{- fail (printf "config.%s is a secret: it must not go into the ConfigMap. Use secretEnv.%s (a key of an existing Secret) or existingSecret." $name $name) -}}
{{- end -}}
{{- end -}}
{{- $managed := dict "FC_HTTP_PORT" "httpPort" "FC_KAFKA_SSL" "kafka.tls.enabled" "FC_KAFKA_SASL_MECHANISM" "kafka.sasl" "FC_KAFKA_SASL_USERNAME" "kafka.sasl" -}}
{{- range $name, $value := $managed -}}
{{- if hasKey $.Values.config $name -}}
{{- fail (printf "config.%s is set by the chart from %s: set that instead." $name $value) -}}
{{- end -}}
{{- if hasKey $.Values.secretEnv $name -}}
{{- fail (printf "secretEnv.%s is set by the chart from %s: set that instead." $name $value) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.kafka.sasl.enabled (hasKey .Values.secretEnv "FC_KAFKA_SASL_PASSWORD") -}}
{{- fail "secretEnv.FC_KAFKA_SASL_PASSWORD and kafka.sasl.enabled both set the SASL password: keep one." -}}
{{- end -}}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.existingSecret) -}}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret: the Secret holding the SASL user name and password." -}}
{{- end -}}
{{- $partitions := int64 .Values.inputPartitions -}}
{{- if .Values.keda.enabled -}}
{{- if gt (int64 .Values.keda.maxReplicaCount) $partitions -}}
{{- fail (printf "keda.maxReplicaCount %d is above inputPartitions %d: members beyond the partition count get no partition and sit idle." (int64 .Values.keda.maxReplicaCount) $partitions) -}}
{{- end -}}
{{- if gt (int64 .Values.keda.minReplicaCount) (int64 .Values.keda.maxReplicaCount) -}}
{{- fail (printf "keda.minReplicaCount %d is above keda.maxReplicaCount %d." (int64 .Values.keda.minReplicaCount) (int64 .Values.keda.maxReplicaCount)) -}}
{{- end -}}
{{- else if gt (int64 .Values.replicaCount) $partitions -}}
{{- fail (printf "replicaCount %d is above inputPartitions %d: members beyond the partition count get no partition and sit idle." (int64 .Values.replicaCount) $partitions) -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled -}}
{{- fail "metrics.serviceMonitor and metrics.podMonitor both scrape the same pods (every series twice): enable one." -}}
{{- end -}}
{{- $_ := include "forecast-connector.terminationGracePeriodSeconds" . -}}
{{- end -}}

{{/*
The container's env entries: secrets by key, the heap limit, the Kafka CA, extraEnv.
*/}}
{{- define "forecast-connector.env" -}}
{{- $maxOldSpace := include "forecast-connector.maxOldSpaceMiB" . -}}
{{- $tls := .Values.kafka.tls -}}
{{- if .Values.kafka.sasl.enabled -}}
- name: FC_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.usernameKey }}
- name: FC_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- range $name, $ref := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretName }}
      key: {{ $ref.key }}
{{- end }}
{{- if $maxOldSpace }}
# {{ .Values.heap.percentOfMemoryLimit }}% of resources.limits.memory ({{ .Values.resources.limits.memory }}).
- name: NODE_OPTIONS
  value: "--max-old-space-size={{ $maxOldSpace }}"
{{- end }}
{{- if and $tls.enabled $tls.existingSecret $tls.caAsNodeExtraCaCerts }}
# The brokers' CA, trusted besides the system's (the connector has no CA setting of its own yet).
- name: NODE_EXTRA_CA_CERTS
  value: "{{ $tls.mountPath }}/{{ $tls.caKey }}"
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
