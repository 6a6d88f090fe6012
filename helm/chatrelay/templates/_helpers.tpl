{{/* The release's name for its objects, at most 52 characters (StatefulSet pods add suffixes). */}}
{{- define "chatrelay.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chatrelay.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "chatrelay.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chatrelay.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* The etcd URL chatrelay uses: the first external endpoint, or the chart's etcd Service. */}}
{{- define "chatrelay.etcdURL" -}}
{{- if .Values.externalEtcd.endpoints -}}
{{- first .Values.externalEtcd.endpoints -}}
{{- else if and .Values.etcd.enabled .Values.etcdTls.secret -}}
{{- printf "https://%s-etcd:2379" (include "chatrelay.fullname" .) -}}
{{- else if .Values.etcd.enabled -}}
{{- printf "http://%s-etcd:2379" (include "chatrelay.fullname" .) -}}
{{- else -}}
{{- fail "set etcd.enabled or externalEtcd.endpoints: a relay cluster needs etcd" -}}
{{- end -}}
{{- end -}}

{{/* The relay's keys from .Values.relay.keysSecret, one file each into the data dir. */}}
{{- define "chatrelay.keyMounts" -}}
- {name: keys, mountPath: /var/lib/chatrelay/relay-identity.key, subPath: relay-identity.key, readOnly: true}
- {name: keys, mountPath: /var/lib/chatrelay/operator.key, subPath: operator.key, readOnly: true}
- {name: keys, mountPath: /var/lib/chatrelay/tls.key, subPath: tls.key, readOnly: true}
- {name: keys, mountPath: /var/lib/chatrelay/tls.crt, subPath: tls.crt, readOnly: true}
{{- end -}}

{{/* Ray's token authentication for a process that is not started by KubeRay. */}}
{{- define "chatrelay.rayAuthEnv" -}}
- {name: RAY_AUTH_MODE, value: token}
- name: RAY_AUTH_TOKEN
  valueFrom: {secretKeyRef: {name: {{ .Values.ray.authTokenSecret }}, key: auth_token}}
{{- end -}}

{{/* The relay's side of TLS to etcd, from .Values.etcdTls.secret, on every relay node. */}}
{{- define "chatrelay.etcdTlsMount" -}}
- {name: etcd-tls, mountPath: /etc/chatrelay/etcd, readOnly: true}
{{- end -}}

{{/* The store's URL for `chatrelay up` (CHATRELAY_STORE): the CloudNativePG primary, or
the external one's URL from its Secret. */}}
{{- define "chatrelay.storeURL" -}}
{{- if eq .Values.store.mode "cloudnativepg" -}}
- {name: CHATRELAY_STORE, value: {{ printf "postgresql://chatrelay@%s-store-rw:5432/chatrelay" (include "chatrelay.fullname" .) | quote }}}
{{- else -}}
- name: CHATRELAY_STORE
  valueFrom: {secretKeyRef: {name: {{ required "store.external.secret: the Secret with the store's URL" .Values.store.external.secret }}, key: {{ .Values.store.external.urlKey }}}}
{{- end -}}
{{- end -}}

{{/* The store's password, for every process that connects to it (the controller and the
shards on every relay node), as PGPASSWORD: it never travels through Ray. */}}
{{- define "chatrelay.storePassword" -}}
{{- if eq .Values.store.mode "cloudnativepg" -}}
- name: PGPASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "chatrelay.fullname" . }}-store-app, key: password}}
{{- else if .Values.store.external.passwordKey -}}
- name: PGPASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.store.external.secret }}, key: {{ .Values.store.external.passwordKey }}}}
{{- end -}}
{{- end -}}
