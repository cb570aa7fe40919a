#!/usr/bin/env bash
# Right before a deploy step: should this run still deploy? A deploy job can start long after what triggered it (queued
# behind a concurrency group, waiting for a reviewer's approval), and by then the pull request may be closed (its
# stack deleted) or have moved on to a newer commit, or main may have moved on (a newer release deploys that), or the
# commit may no longer be on main at all.
#
#   deploy-guard.sh pr        PR_NUMBER, HEAD_SHA: the pull request must be open and still at HEAD_SHA
#   deploy-guard.sh release   SHA, REF (refs/heads/... or refs/tags/...), BRANCH (default main): SHA must be on
#                             BRANCH; a branch push must also still be its head (a tag is deployed as tagged)
#
# Writes deploy=true or deploy=false (with reason=...) to $GITHUB_OUTPUT; a run that should not deploy is skipped with
# a notice, not failed, except a commit that left main, which someone has to look at. Needs gh with GH_TOKEN and
# GH_REPO (owner/name).
set -euo pipefail

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run as a workflow step}"
: "${GH_REPO:?GH_REPO is not set (owner/name)}"

skip() {
  echo "::notice title=Deploy skipped::$*"
  {
    echo "deploy=false"
    echo "reason=$*"
  } >>"$GITHUB_OUTPUT"
  exit 0
}

refuse() {
  echo "::error title=Deploy refused::$*" >&2
  exit 1
}

case "${1:-}" in
  pr)
    : "${PR_NUMBER:?PR_NUMBER is not set}" "${HEAD_SHA:?HEAD_SHA is not set}"
    info=$(gh api "repos/$GH_REPO/pulls/$PR_NUMBER" --jq '[.state, .head.sha] | @tsv')
    read -r state head <<<"$info"
    [ "$state" = open ] || skip "pull request #$PR_NUMBER is $state; its stack is not deployed again"
    [ "$head" = "$HEAD_SHA" ] || skip "pull request #$PR_NUMBER is at ${head:0:12} now, not ${HEAD_SHA:0:12}; the run for ${head:0:12} deploys it"
    ;;
  release)
    : "${SHA:?SHA is not set}" "${REF:?REF is not set}"
    branch=${BRANCH:-main}
    # base...head: "behind" means head is an ancestor of base, i.e. base contains it.
    status=$(gh api "repos/$GH_REPO/compare/$branch...$SHA" --jq .status)
    case "$status" in
      identical) ;;
      behind)
        case "$REF" in
          refs/heads/*) skip "$branch has moved on from ${SHA:0:12}; the release run of its newer commit deploys that" ;;
        esac
        ;;
      *) refuse "${SHA:0:12} is not on $branch (compare: $status): history was rewritten under this release" ;;
    esac
    ;;
  *)
    echo "usage: deploy-guard.sh pr|release" >&2
    exit 2
    ;;
esac
echo "deploy=true" >>"$GITHUB_OUTPUT"
