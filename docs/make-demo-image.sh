#!/bin/sh
# Builds a tiny OCI image layout at DIR (default ./img), tagged 1: one layer holding /hello.txt
# with TEXT (default "hello from layover"), for the README's quickstart to push
# (`skopeo copy oci:./img:1 docker://…`). Needs only sh, tar, gzip and sha256sum; the same
# arguments give the same bytes on every run.
set -eu
dir=${1:-./img}
text=${2:-hello from layover}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$dir/blobs/sha256"
printf '%s\n' "$text" > "$work/rootfs/hello.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" .
gzip -n -c "$work/layer.tar" > "$work/layer.tar.gz"

# Stores a file as a blob; prints its hex digest.
blob() { d=$(sha256sum < "$1" | cut -d' ' -f1); cp "$1" "$dir/blobs/sha256/$d"; echo "$d"; }
size() { wc -c < "$1" | tr -d ' '; }

diff_id=$(sha256sum < "$work/layer.tar" | cut -d' ' -f1)
layer=$(blob "$work/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["cat","/hello.txt"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diff_id" > "$work/config.json"
config=$(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$config" "$(size "$work/config.json")" "$layer" "$(size "$work/layer.tar.gz")" > "$work/manifest.json"
manifest=$(blob "$work/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' > "$dir/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' \
  "$manifest" "$(size "$work/manifest.json")" > "$dir/index.json"
echo "OCI image layout in $dir, tag 1 (sha256:$manifest)"
