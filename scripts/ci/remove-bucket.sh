#!/usr/bin/env bash
# Removes a PR stack's bucket: every object version and delete marker, then the bucket. The bridge bucket has
# DeletionPolicy Retain (a production bucket must outlive its stack), so deleting a PR stack leaves it behind, holding
# only test files.
#
#   remove-bucket.sh <bucket>      needs aws with s3:ListBucketVersions, s3:DeleteObjectVersion, s3:DeleteBucket
set -euo pipefail

bucket=${1:?usage: remove-bucket.sh <bucket>}
case "$bucket" in
  *[!a-z0-9.-]*) echo "::error::not a bucket name: $bucket" >&2; exit 2 ;;
esac
while :; do
  page=$(aws s3api list-object-versions --bucket "$bucket" --max-items 1000 --output json)
  [ -n "$page" ] || page='{}'
  batch=$(jq -c '{Objects: [(.Versions // [])[], (.DeleteMarkers // [])[] | {Key, VersionId}], Quiet: true}' <<<"$page")
  [ "$(jq '.Objects | length' <<<"$batch")" -gt 0 ] || break
  aws s3api delete-objects --bucket "$bucket" --delete "$batch" >/dev/null
done
aws s3api delete-bucket --bucket "$bucket"
echo "deleted bucket $bucket"
