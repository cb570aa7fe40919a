/**
 * One comment per stack per pull request, edited in place on every run, so a busy PR shows the latest plan or result
 * instead of a growing column of bot comments.
 */
export interface IssueComment {
  id: number;
  body?: string | null;
}

/** The few GitHub calls needed, so tests can stand in for Octokit. */
export interface CommentsApi {
  list(): Promise<IssueComment[]>;
  create(body: string): Promise<IssueComment>;
  update(id: number, body: string): Promise<IssueComment>;
}

/**
 * Hidden in the rendered comment; names the stack so two deploy-stack steps in one PR (say, two stacks) keep separate
 * comments. Put first in the body: a person quoting the comment starts the line with "> ", which does not match.
 */
export function commentMarker(stackName: string): string {
  return `<!-- s3-sftp-bridge/deploy-stack stack=${stackName} -->`;
}

export async function upsertComment(
  api: CommentsApi,
  marker: string,
  markdown: string,
): Promise<{ action: "created" | "updated"; id: number }> {
  const body = `${marker}\n${markdown}`;
  const existing = (await api.list()).find((c) => (c.body ?? "").startsWith(marker));
  if (existing) {
    await api.update(existing.id, body);
    return { action: "updated", id: existing.id };
  }
  const created = await api.create(body);
  return { action: "created", id: created.id };
}
