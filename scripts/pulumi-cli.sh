#!/usr/bin/env bash
# Print the directory holding the pinned Pulumi CLI (bin/pulumi) and the docker-build provider
# (plugins/pulumi-resource-docker-build), getting them first if needed:
#   - `pulumi` from PATH when it is exactly the pinned version (users who have Pulumi);
#   - else both are built from the Go module proxy into a cache OUTSIDE the repository,
#     ${AIOPS_PULUMI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aiops-platform/pulumi}/v<VERSION>,
#     once per machine (about 10-15 minutes of compiling on 2 cores when the Go caches are
#     cold; docs/ci.md has the measurement). Needs Go 1.26+.
# The versions below are the only pins of these binaries in the repository.
# Usage: scripts/pulumi-cli.sh [--version]   (--version prints the pinned CLI version only)
set -euo pipefail

PULUMI_VERSION=3.274.1
DOCKER_BUILD_VERSION=0.0.22

if [[ "${1:-}" == "--version" ]]; then
	echo "$PULUMI_VERSION"
	exit 0
fi

cache="${AIOPS_PULUMI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aiops-platform/pulumi}/v$PULUMI_VERSION"
bin="$cache/bin"
# Apart from bin/: the engine prefers plugins next to its own executable over PATH, and the
# tests put a stand-in docker-build on PATH for `up` (building needs Docker).
plugins="$cache/plugins"
mkdir -p "$bin" "$plugins"

log() { echo "pulumi-cli: $*" >&2; }

# One builder at a time per machine; the others wait and then find the binaries.
exec 9>"$cache/.lock"
flock 9

if [[ ! -x "$bin/pulumi" ]]; then
	found="$(command -v pulumi || true)"
	if [[ -n "$found" && "$("$found" version 2>/dev/null || true)" == "v$PULUMI_VERSION" ]]; then
		log "using $found (v$PULUMI_VERSION)"
		ln -sf "$found" "$bin/pulumi"
	fi
fi

need_go() {
	command -v go >/dev/null || {
		log "Go is needed to build Pulumi v$PULUMI_VERSION (or put pulumi v$PULUMI_VERSION on PATH)"
		exit 1
	}
}

if [[ ! -x "$bin/pulumi" ]]; then
	need_go
	log "building the Pulumi CLI v$PULUMI_VERSION from the Go module proxy into $bin (first time only)"
	src="$cache/src"
	mkdir -p "$src"
	cd "$src"
	# A helper module: `go install pkg@version` refuses the pulumi module (replace directives).
	# Never `go mod tidy` here: the module has no .go files and tidy would drop everything.
	[[ -f go.mod ]] || go mod init aiops-pulumi-cli >/dev/null 2>&1
	go get "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$PULUMI_VERSION" \
		"github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION" >&2
	go build -o "$bin/pulumi.partial" \
		-ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
		github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2
	mv "$bin/pulumi.partial" "$bin/pulumi"
fi

# docker-build imports pulumi-java and pulumi-dotnet only for one struct type each, the Java and
# .NET settings of the schema it serves to SDK generators. The Go module proxy reachable here
# does not serve those two modules (403), so a helper module replaces them with those two types
# alone; what the provider does to resources is unchanged.
build_docker_build() {
	local src="$cache/docker-build-src"
	mkdir -p "$src/stubs/java/pkg/codegen/java" "$src/stubs/dotnet/codegen"
	cd "$src"
	printf 'module github.com/pulumi/pulumi-java\n\ngo 1.22\n' >stubs/java/go.mod
	cat >stubs/java/pkg/codegen/java/package_info.go <<'GO'
package java

type PackageInfo struct {
	BuildFiles                      string            `json:"buildFiles,omitempty"`
	GradleNexusPublishPluginVersion string            `json:"gradleNexusPublishPluginVersion,omitempty"`
	Dependencies                    map[string]string `json:"dependencies,omitempty"`
}
GO
	printf 'module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3\n\ngo 1.22\n' \
		>stubs/dotnet/go.mod
	cat >stubs/dotnet/codegen/package_info.go <<'GO'
package codegen

type CSharpPackageInfo struct {
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
}
GO
	[[ -f go.mod ]] || go mod init aiops-docker-build >/dev/null 2>&1
	go mod edit -replace github.com/pulumi/pulumi-java=./stubs/java \
		-replace github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3=./stubs/dotnet
	local package=github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build
	go get "$package@v$DOCKER_BUILD_VERSION" >&2
	go build -o "$plugins/pulumi-resource-docker-build.partial" \
		-ldflags "-X github.com/pulumi/pulumi-docker-build/provider.Version=$DOCKER_BUILD_VERSION" \
		"$package" >&2
	mv "$plugins/pulumi-resource-docker-build.partial" "$plugins/pulumi-resource-docker-build"
}

if [[ ! -x "$plugins/pulumi-resource-docker-build" ]]; then
	installed="$HOME/.pulumi/plugins/resource-docker-build-v$DOCKER_BUILD_VERSION/pulumi-resource-docker-build"
	if [[ -x "$installed" ]]; then
		ln -sf "$installed" "$plugins/pulumi-resource-docker-build"
	else
		need_go
		log "building pulumi-resource-docker-build v$DOCKER_BUILD_VERSION (first time only)"
		build_docker_build
	fi
fi

echo "$cache"
