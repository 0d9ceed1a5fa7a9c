#!/usr/bin/env bash
# Makes a CA and a serving certificate for the layover webhook with openssl, and prints the CA
# as a caBundle (base64, one line) on stdout for the MutatingWebhookConfiguration.
#
#   certs/make-webhook-cert.sh [--service layover-webhook] [--namespace layover] [--out DIR]
#                              [--days 365] [--dns NAME]... [--ip ADDR]... [--ca-dir DIR]
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/tls.crt, DIR/tls.key (keys mode 0600). With --ca-dir an
# existing CA (ca.crt, ca.key) signs the new certificate instead of a new CA, so a rotation keeps
# the caBundle. Load them into the cluster with:
#   kubectl -n layover create secret tls layover-webhook-tls --cert DIR/tls.crt --key DIR/tls.key
set -euo pipefail

service=layover-webhook
namespace=layover
out=./webhook-certs
days=365
ca_dir=""
extra_dns=()
extra_ip=()
while (($#)); do
  case "$1" in
    --service) service="$2"; shift 2 ;;
    --namespace) namespace="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --dns) extra_dns+=("$2"); shift 2 ;;
    --ip) extra_ip+=("$2"); shift 2 ;;
    --ca-dir) ca_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "make-webhook-cert.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$service" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "not a Service name: $service" >&2; exit 2; }
[[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || { echo "not a namespace name: $namespace" >&2; exit 2; }
[[ "$days" =~ ^[0-9]+$ ]] || { echo "not a number of days: $days" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl is not installed (apt-get install -y openssl)" >&2; exit 1; }

mkdir -p "$out"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# kube-apiserver calls https://<service>.<namespace>.svc; the other names cover tools in-cluster.
sans="DNS:${service}.${namespace}.svc,DNS:${service}.${namespace}.svc.cluster.local,DNS:${service}.${namespace},DNS:${service}"
for d in "${extra_dns[@]}"; do sans+=",DNS:${d}"; done
for i in "${extra_ip[@]}"; do sans+=",IP:${i}"; done

if [[ -n "$ca_dir" ]]; then
  cp "$ca_dir/ca.crt" "$work/ca.crt"
  cp "$ca_dir/ca.key" "$work/ca.key"
else
  openssl req -x509 -new -sha256 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$work/ca.key" -out "$work/ca.crt" -days $((days * 10)) \
    -subj "/CN=layover webhook CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

openssl req -new -sha256 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$work/tls.key" -out "$work/tls.csr" -subj "/CN=${service}.${namespace}.svc" 2>/dev/null
cat > "$work/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=${sans}
EXT
openssl x509 -req -sha256 -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -out "$work/tls.crt" -days "$days" -extfile "$work/ext.cnf" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null

# Move into place last, so a reader never sees a key without its certificate.
for f in ca.crt ca.key tls.key tls.crt; do cp "$work/$f" "$out/$f.tmp" && mv -f "$out/$f.tmp" "$out/$f"; done
chmod 600 "$out/ca.key" "$out/tls.key"
chmod 644 "$out/ca.crt" "$out/tls.crt"
echo "wrote $out/{ca.crt,ca.key,tls.crt,tls.key} for ${service}.${namespace}.svc" >&2
base64 -w0 < "$out/ca.crt"
echo
