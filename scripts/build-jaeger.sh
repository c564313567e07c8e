#!/usr/bin/env bash
# build-jaeger.sh builds the Jaeger v2 binary (./cmd/jaeger of
# github.com/jaegertracing/jaeger) at a pinned version, for the end-to-end
# test in e2e/. It prints the binary's path on stdout, and nothing else.
#
#   scripts/build-jaeger.sh            # the pinned version below
#   scripts/build-jaeger.sh v1.76.0    # another version
#   JAEGER_VERSION=v1.76.0 scripts/build-jaeger.sh
#
# The binary goes to $CACHE/jaeger-$VERSION, where CACHE is
# ${TRACEDB_CACHE:-$HOME/.cache/tracedb}; if it is there already, nothing is
# built. The source comes from the Go module proxy (GOPROXY applies).
# `go install module@version` refuses Jaeger's module because its go.mod has
# replace directives, so the module is copied out of the read-only module
# cache and built in place with its own go.mod and go.sum.
set -euo pipefail

readonly DEFAULT_VERSION=v1.76.0
readonly MODULE=github.com/jaegertracing/jaeger

version=${1:-${JAEGER_VERSION:-$DEFAULT_VERSION}}
cache=${TRACEDB_CACHE:-$HOME/.cache/tracedb}
bin=$cache/jaeger-$version

if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build-jaeger.sh: go is not on PATH" >&2; exit 1; }
mkdir -p "$cache"

echo "build-jaeger.sh: downloading $MODULE@$version" >&2
# -json prints the module's directory in the module cache as "Dir".
dir=$(go mod download -json "$MODULE@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [[ -z $dir || ! -d $dir ]]; then
	echo "build-jaeger.sh: go mod download did not report the module's directory" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/build-jaeger.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work" "$bin.tmp.$$"' EXIT
cp -R "$dir" "$work/jaeger"
chmod -R u+w "$work/jaeger"

echo "build-jaeger.sh: building ./cmd/jaeger (a few minutes on a fresh machine)" >&2
# GOFLAGS=-mod=mod lets go fetch what Jaeger's go.sum lists but the module
# cache lacks; GOWORK=off keeps an enclosing go.work out of it.
tmp=$bin.tmp.$$
(cd "$work/jaeger" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
	go build -trimpath -o "$tmp" ./cmd/jaeger)
# Rename within the cache directory, so that a half-written binary never
# looks built.
mv "$tmp" "$bin"
echo "$bin"
