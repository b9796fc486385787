#!/usr/bin/env bash
# Install the Go toolchain and libraries the Go client is generated, built and tested with, from
# Debian's packages, when they are missing (as deploy/image.sh does for Docker). Nothing comes
# from the Go module proxy: `make go-test` builds offline in GOPATH mode against
# /usr/share/gocode, where Debian's Go library packages put their source.
#
#   go/toolchain.sh        # what `make proto` and `make go-test` run first
#
# golang-goprotobuf-dev is NOT installed: it conflicts with protoc-gen-go (both ship
# /usr/bin/protoc-gen-go); golang-github-golang-protobuf-1-5-dev is its library half.
set -euo pipefail

PACKAGES=(
    golang-go                              # the go command (Debian 12: Go 1.19)
    protobuf-compiler                      # protoc and the well-known .proto files
    protoc-gen-go                          # google.golang.org/protobuf's generator
    protoc-gen-go-grpc                     # grpc-go's service generator
    golang-google-protobuf-dev             # google.golang.org/protobuf
    golang-google-grpc-dev                 # google.golang.org/grpc
    golang-google-genproto-dev             # google.golang.org/genproto (google.rpc.*)
    golang-github-golang-protobuf-1-5-dev  # github.com/golang/protobuf, which grpc-go imports
)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done

if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "go/toolchain.sh: need root to install the Debian package(s) ${missing[*]};" \
             "install them yourself (apt-get install ${missing[*]})" >&2
        exit 1
    fi
    echo "go/toolchain.sh: installing Debian package(s): ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null
fi
