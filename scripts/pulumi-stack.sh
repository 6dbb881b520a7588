#!/usr/bin/env bash
# `make up|preview|down`: run one Pulumi operation on one stack (STACK, default local).
#   1. The Pulumi CLI must be on PATH (https://www.pulumi.com/docs/iac/download-install/).
#   2. No backend configured (PULUMI_BACKEND_URL unset and `pulumi whoami` fails): log in to the
#      local file backend (`pulumi login --local`, state in ~/.pulumi) -- nothing leaves the
#      machine. Set PULUMI_BACKEND_URL (https://api.pulumi.com, gs://bucket...) to use another.
#   3. Select the stack, creating it on first use (its settings come from Pulumi.<stack>.yaml).
#   4. Run the operation; PULUMI_ARGS adds flags (e.g. PULUMI_ARGS=--yes). `up` and `preview`
#      run the mandatory policy pack in policy/ (POLICY_PACK=<dir> picks another, POLICY_PACK=
#      empty runs none), so the guardrails hold for `make` users as they do in CI.
#   5. `up` only: Secret Manager IAM bindings take a while to propagate, and the first Cloud Run
#      revision of a fresh deploy can fail with "Permission denied on secret". Then the update
#      is retried once after SECRET_IAM_WAIT seconds (default 60); anything else fails at once.
set -euo pipefail

operation="${1:-}"
stack="${STACK:-local}"
case "$operation" in
  up) command=(up) ;;
  preview) command=(preview) ;;
  down) command=(destroy) ;;
  *)
    echo "usage: $0 up|preview|down  (STACK=<name>, default local)" >&2
    exit 2
    ;;
esac

if ! command -v pulumi >/dev/null 2>&1; then
  echo "pulumi-stack: the Pulumi CLI is not on PATH; install it from" \
    "https://www.pulumi.com/docs/iac/download-install/ and retry" >&2
  exit 127
fi

if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! pulumi whoami >/dev/null 2>&1; then
  echo "pulumi-stack: no Pulumi backend configured; using the local file backend (pulumi login --local)"
  pulumi login --local
fi

policy_pack="${POLICY_PACK-policy}"
if [ "$operation" != "down" ] && [ -n "$policy_pack" ]; then
  command+=(--stack "$stack" --policy-pack "$policy_pack")
else
  command+=(--stack "$stack")
fi

pulumi stack select --create "$stack"
if [ "$operation" != "up" ]; then
  # shellcheck disable=SC2086 # PULUMI_ARGS is a list of flags on purpose
  exec pulumi "${command[@]}" ${PULUMI_ARGS:-}
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086
if pulumi "${command[@]}" ${PULUMI_ARGS:-} 2>&1 | tee "$log"; then
  exit 0
fi
if ! grep -q "Permission denied on secret" "$log"; then
  exit 1
fi
wait_seconds="${SECRET_IAM_WAIT:-60}"
echo "pulumi-stack: the new secret bindings have not propagated yet; retrying in ${wait_seconds}s"
sleep "$wait_seconds"
# shellcheck disable=SC2086
exec pulumi "${command[@]}" ${PULUMI_ARGS:-}
