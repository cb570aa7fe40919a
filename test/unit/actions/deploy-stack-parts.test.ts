import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  commentMarker,
  upsertComment,
  type CommentsApi,
  type IssueComment,
} from "../../../actions/deploy-stack/src/comment";
import { loadEnvironmentFile, ParameterFileError } from "../../../actions/deploy-stack/src/parameters";

/** An in-memory issue thread: what GitHub stores, so "not duplicated" is checked on the thread, not on call counts. */
function thread(initial: IssueComment[] = []): CommentsApi & { comments: IssueComment[] } {
  const comments = [...initial];
  let nextId = 100;
  return {
    comments,
    list: async () => comments.map((c) => ({ ...c })),
    create: async (body) => {
      const c = { id: nextId++, body };
      comments.push(c);
      return c;
    },
    update: async (id, body) => {
      const c = comments.find((x) => x.id === id);
      if (!c) throw new Error(`no comment ${id}`);
      c.body = body;
      return c;
    },
  };
}

describe("PR comment", () => {
  it("is created once, then updated in place on later runs", async () => {
    const api = thread([{ id: 1, body: "LGTM" }]);
    const marker = commentMarker("bridge-pr-7");

    expect(await upsertComment(api, marker, "plan: 2 changes")).toEqual({ action: "created", id: 100 });
    expect(await upsertComment(api, marker, "deployed")).toEqual({ action: "updated", id: 100 });

    expect(api.comments).toEqual([
      { id: 1, body: "LGTM" },
      { id: 100, body: `${marker}\ndeployed` },
    ]);
  });

  it("keeps one comment per stack, and ignores people quoting the bot", async () => {
    const quoted = `> ${commentMarker("bridge-pr-7")}\n> plan: 2 changes\n\nwhy 2?`;
    const api = thread([{ id: 5, body: quoted }]);

    await upsertComment(api, commentMarker("bridge-pr-7"), "bridge");
    await upsertComment(api, commentMarker("bridge-pr-7-sftp"), "sftp");

    expect(api.comments.map((c) => c.id)).toEqual([5, 100, 101]);
    expect(api.comments[0]!.body).toBe(quoted);
  });
});

describe("environment parameter files", () => {
  const dir = mkdtempSync(join(tmpdir(), "env-file-"));
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it("reads parameters and tags as the strings written, lists comma-joined", async () => {
    const file = write(
      "ok.yaml",
      "parameters:\n  AlarmAccount: 012345678901\n  MemorySize: 1024\n  Ratio: 1.50\n  Subnets: [subnet-a, subnet-b]\n  Empty: ''\ntags:\n  environment: staging\n",
    );
    expect(await loadEnvironmentFile(file)).toEqual({
      parameters: {
        AlarmAccount: "012345678901",
        MemorySize: "1024",
        Ratio: "1.50",
        Subnets: "subnet-a,subnet-b",
        Empty: "",
      },
      tags: { environment: "staging" },
    });
  });

  it("reports every problem by its path", async () => {
    const file = write(
      "bad.yaml",
      "parameters:\n  Bad-Name: x\n  Nested: {a: b}\n  Commas: [a, 'b,c']\ntags:\n  aws:reserved: x\nextra: 1\n",
    );
    const err = (await loadEnvironmentFile(file).catch((e: unknown) => e)) as ParameterFileError;
    expect(err).toBeInstanceOf(ParameterFileError);
    expect(err.message.split("\n").slice(1)).toEqual([
      "  extra: unknown key (expected parameters or tags)",
      "  parameters.Bad-Name: not a valid parameter name (letters and digits)",
      '  parameters.Nested: must be a string, number or boolean (or a list of them); use "" for an empty value',
      '  parameters.Commas: must be a string, number or boolean (or a list of them); use "" for an empty value',
      "  tags.aws:reserved: not a valid tag key",
    ]);
  });

  it("names a missing file", async () => {
    await expect(loadEnvironmentFile(join(dir, "nope.yaml"))).rejects.toThrow(/nope\.yaml:\n {2}no such file/);
  });
});
