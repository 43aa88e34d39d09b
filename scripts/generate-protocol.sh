#!/usr/bin/env bash
# Generates the agent protocol's TypeScript types and codecs from
# proto/palisade/v1/agent.proto with protoc (Debian's protobuf-compiler) and ts-proto.
# Usage: scripts/generate-protocol.sh [OUT_DIR]   (default src/protocol/generated)
# The output is committed; test/unit/protocol-generated.test.ts regenerates it into a
# temporary directory and fails when the committed copy differs.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-src/protocol/generated}"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
mkdir -p "$out"
# forceLong=string: uint64/int64 as decimal strings (no precision loss, JSON-safe for the
# agent's spool); enumsAsLiterals+stringEnums: enum values are their proto names as
# string literal types; fromPartial fills defaults for senders (src/protocol/agent.ts,
# which also names the service's methods Enroll and Connect as in the .proto); no version stamp, so the same input always gives the same output.
protoc \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,forceLong=string,stringEnums=true,enumsAsLiterals=true,esModuleInterop=true,outputJsonMethods=false,outputPartialMethods=true,annotateFilesWithVersion=false \
  -I proto proto/palisade/v1/agent.proto
