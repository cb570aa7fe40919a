// The three GitHub REST calls deploy-stack makes for its pull-request comment (list, create, update issue comments), and
// the two reads of the deploy guard (a pull request's state and head; how a commit compares with a branch), on
// loopback. A bundled action in another process reaches it through GITHUB_API_URL, exactly as it reaches
// api.github.com or a GitHub Enterprise server, so the real Octokit from @actions/github is what gets tested.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface StoredComment {
  id: number;
  issue: number;
  body: string;
  repo: string;
}

export interface GitHubRequest {
  method: string;
  path: string;
  authorization?: string;
}

export interface LocalGitHub {
  /** For GITHUB_API_URL. */
  url: string;
  comments: StoredComment[];
  requests: GitHubRequest[];
  /** Pull requests by "owner/repo#number". */
  pulls: Map<string, { state: "open" | "closed"; headSha: string }>;
  /** GET repos/{repo}/compare/{base}...{head} answers, by "owner/repo:base...head": identical, behind, ahead, diverged. */
  comparisons: Map<string, string>;
  close(): Promise<void>;
}

/** `pageSize` is small by default so Octokit's pagination (Link headers) is exercised too. */
export async function startLocalGitHub(options: { pageSize?: number; token?: string } = {}): Promise<LocalGitHub> {
  const pageSize = options.pageSize ?? 2;
  const comments: StoredComment[] = [];
  const requests: GitHubRequest[] = [];
  const pulls: LocalGitHub["pulls"] = new Map();
  const comparisons: LocalGitHub["comparisons"] = new Map();
  let nextId = 1000;
  let base = "";

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", base);
      requests.push({
        method: req.method ?? "",
        path: url.pathname + url.search,
        authorization: req.headers.authorization,
      });
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
        res.end(JSON.stringify(body));
      };
      if (options.token && !["token", "Bearer"].some((s) => req.headers.authorization === `${s} ${options.token}`)) {
        return send(401, { message: "Bad credentials" });
      }
      const json = () => JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { body?: string };

      const list = /^\/repos\/([^/]+\/[^/]+)\/issues\/(\d+)\/comments$/.exec(url.pathname);
      const one = /^\/repos\/([^/]+\/[^/]+)\/issues\/comments\/(\d+)$/.exec(url.pathname);
      if (list && req.method === "GET") {
        const all = comments.filter((c) => c.repo === list[1] && c.issue === Number(list[2]));
        const perPage = Math.min(Number(url.searchParams.get("per_page") ?? pageSize), pageSize);
        const page = Number(url.searchParams.get("page") ?? 1);
        const slice = all.slice((page - 1) * perPage, page * perPage);
        const headers: Record<string, string> = {};
        if (page * perPage < all.length) {
          const next = new URL(url);
          next.searchParams.set("page", String(page + 1));
          headers.link = `<${next.toString()}>; rel="next"`;
        }
        return send(200, slice.map(toApi), headers);
      }
      if (list && req.method === "POST") {
        const c = { id: nextId++, issue: Number(list[2]), body: json().body ?? "", repo: list[1]! };
        comments.push(c);
        return send(201, toApi(c));
      }
      if (one && req.method === "PATCH") {
        const c = comments.find((x) => x.repo === one[1] && x.id === Number(one[2]));
        if (!c) return send(404, { message: "Not Found" });
        c.body = json().body ?? c.body;
        return send(200, toApi(c));
      }
      const pull = /^\/repos\/([^/]+\/[^/]+)\/pulls\/(\d+)$/.exec(url.pathname);
      if (pull && req.method === "GET") {
        const p = pulls.get(`${pull[1]}#${pull[2]}`);
        if (!p) return send(404, { message: "Not Found" });
        return send(200, { number: Number(pull[2]), state: p.state, head: { sha: p.headSha } });
      }
      const compare = /^\/repos\/([^/]+\/[^/]+)\/compare\/(.+)$/.exec(url.pathname);
      if (compare && req.method === "GET") {
        const status = comparisons.get(`${compare[1]}:${decodeURIComponent(compare[2]!)}`);
        if (!status) return send(404, { message: "Not Found" });
        return send(200, { status });
      }
      return send(404, { message: `local GitHub does not implement ${req.method} ${url.pathname}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  return {
    url: base,
    comments,
    requests,
    pulls,
    comparisons,
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}

function toApi(c: StoredComment) {
  return { id: c.id, body: c.body, user: { login: "github-actions[bot]", type: "Bot" } };
}
