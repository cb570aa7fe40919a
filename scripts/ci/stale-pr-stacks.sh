#!/usr/bin/env bash
# The bridge-pr-<number> stacks whose pull request is closed: what pr-stack.yml's destroy job should have deleted but
# did not (it failed, was cancelled, or the close came while a deploy was still queued). Writes
# stacks=[{"stack": "bridge-pr-12", "pr": "12"}, ...] (JSON, for a matrix) to $GITHUB_OUTPUT.
#
#   stale-pr-stacks.sh        needs aws (cloudformation:ListStacks) and gh with GH_TOKEN and GH_REPO
set -euo pipefail

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run as a workflow step}"
: "${GH_REPO:?GH_REPO is not set (owner/name)}"

# Every status but DELETE_COMPLETE: a stack that failed to create or delete is stale all the same.
names=$(aws cloudformation list-stacks --output json \
  --query "StackSummaries[?StackStatus!='DELETE_COMPLETE' && starts_with(StackName, 'bridge-pr-')].StackName")
stale=()
for stack in $(jq -r '.[]' <<<"$names" | sort -u); do
  pr=${stack#bridge-pr-}
  case "$pr" in
    '' | *[!0-9]*)
      echo "::warning::$stack does not end in a pull request number; left alone"
      continue
      ;;
  esac
  if ! state=$(gh api "repos/$GH_REPO/pulls/$pr" --jq .state 2>/dev/null); then
    echo "::warning::$stack: pull request #$pr not found in $GH_REPO; left alone"
    continue
  fi
  if [ "$state" = closed ]; then
    echo "$stack: pull request #$pr is closed"
    stale+=("$(jq -cn --arg stack "$stack" --arg pr "$pr" '{stack: $stack, pr: $pr}')")
  else
    echo "$stack: pull request #$pr is $state; kept"
  fi
done
echo "stacks=$(printf '%s\n' "${stale[@]}" | jq -cs 'map(select(. != null))')" >>"$GITHUB_OUTPUT"
