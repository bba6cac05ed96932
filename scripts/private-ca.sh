#!/usr/bin/env bash
# A private CA and a server certificate it signs, for `reproml server
# --tls-cert --tls-key` on a cluster without a PKI of its own.
#
#   scripts/private-ca.sh DIR HOST [HOST...]
#
# HOST: every name and address clients use to reach the server (a login
# node's name, its IP). Writes DIR/ca.pem (give it to clients: --ca-cert,
# REPROML_CA_CERT), DIR/ca.key (keep it; it signs further certificates),
# DIR/server.pem and DIR/server.key (the server's). Needs openssl.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 DIR HOST [HOST...]   (e.g. $0 tls login01 10.1.2.3)" >&2
    exit 2
fi
dir=$1
shift
command -v openssl >/dev/null || { echo "error: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
names=()
for host in "$@"; do
    if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then names+=("IP:$host"); else names+=("DNS:$host"); fi
done
san=$(IFS=,; echo "${names[*]}")
umask 077
curve=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
if [[ ! -f $dir/ca.pem ]]; then
    openssl req -x509 "${curve[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 825 \
        -subj "/CN=ReproduceML private CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
openssl req "${curve[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=$1" 2>/dev/null
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.pem" -days 825 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san") 2>/dev/null
rm -f "$dir/server.csr"
chmod 644 "$dir/ca.pem" "$dir/server.pem"
echo "server: reproml server --tls-cert $dir/server.pem --tls-key $dir/server.key ..."
echo "clients: --ca-cert $dir/ca.pem (or REPROML_CA_CERT=$dir/ca.pem) with https://$1:PORT"
