"use strict";
// s3rver in its own process, driven by scripts/local/s3-server.ts over IPC.
//
// Why a child process: s3rver's ListObjectsV2 continuation tokens use DES, which Node >= 17 only offers with
// --openssl-legacy-provider; a flag for the whole process, so s3rver gets a process of its own. Plain CommonJS so the
// child needs no TypeScript loader.
//
// Protocol (child -> parent): {type: "ready", port}, {type: "record", record}, {type: "error", message}.
// Parent -> child: {type: "shutdown"}. Options arrive as JSON in argv[2].

const { AsyncLocalStorage } = require("node:async_hooks");
const crypto = require("node:crypto");
const fs = require("node:fs");
const S3rver = require("s3rver");
const bucketController = require("s3rver/lib/controllers/bucket");
const objectController = require("s3rver/lib/controllers/object");
const S3Error = require("s3rver/lib/models/error");

const REGION = "us-east-1";

/**
 * Encodes a key as AWS does in notification records: application/x-www-form-urlencoded per UTF-8 byte (Java's
 * URLEncoder: only A-Z a-z 0-9 . - * _ stay literal, a space becomes "+"), except that "/" stays literal. AWS documents
 * the form encoding ("red flower.jpg" -> "red+flower.jpg", "a@b" -> "a%40b"); the literal "/" is what real events show
 * for keys under prefixes. Consumers decode with: replace "+" by " ", then decodeURIComponent.
 */
function encodeEventKey(key) {
  let out = "";
  for (const byte of Buffer.from(key, "utf8")) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9.\-*_/]/.test(c)) out += c;
    else if (c === " ") out += "+";
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

// AWS sequencers are hex strings that order events for the same key; s3rver's (Date.now() in hex) collide within a
// millisecond, so build a strictly increasing, fixed-width one.
let lastSequence = 0n;
function nextSequencer() {
  const candidate = BigInt(Date.now()) << 16n;
  lastSequence = candidate > lastSequence ? candidate : lastSequence + 1n;
  return lastSequence.toString(16).toUpperCase().padStart(18, "0");
}

const randomId = (bytes) => crypto.randomBytes(bytes).toString("hex").toUpperCase();

function awsRecord({ eventName, bucket, key, size, eTag, sourceIp }) {
  const object = { key: encodeEventKey(key) };
  // AWS sends size and eTag for created objects only; removal records carry key and sequencer.
  if (size !== undefined) object.size = size;
  if (eTag !== undefined) object.eTag = eTag;
  object.sequencer = nextSequencer();
  return {
    eventVersion: "2.1",
    eventSource: "aws:s3",
    awsRegion: REGION,
    eventTime: new Date().toISOString(),
    eventName,
    userIdentity: { principalId: "AWS:" + randomId(10) },
    requestParameters: { sourceIPAddress: (sourceIp || "127.0.0.1").replace(/^::ffff:/, "") },
    responseElements: { "x-amz-request-id": randomId(8), "x-amz-id-2": crypto.randomBytes(48).toString("base64") },
    s3: {
      s3SchemaVersion: "1.0",
      configurationId: "s3-sftp-bridge-local",
      bucket: { name: bucket, ownerIdentity: { principalId: randomId(7) }, arn: "arn:aws:s3:::" + bucket },
      object,
    },
  };
}

// Query parameters by which s3rver's router picks an operation other than Get/Put/DeleteObject on a key path.
const OPERATION_QUERIES = new Set([...bucketController.METHODS, ...objectController.METHODS]);

// The key route s3rver serves: /bucket/key, non-empty segments, an optional trailing slash that stays in the key.
const OBJECT_PATH = /^\/([^/]+)\/([^/]+(?:\/[^/]+)*)(\/?)$/;

// s3rver's router decodes each parameter like this and keeps the raw text when it is not valid percent-encoding; the
// lock and the condition must name the very key s3rver will write.
function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The object a request replaces or removes, so that no two such requests interleave on s3rver's async store, with
 * `conditional` set where S3 honours conditions: If-Match and If-None-Match on the two writes, If-Match on a delete.
 * Undefined for everything else: part uploads and creating or aborting an upload touch only the upload, never the
 * key, so they run freely.
 */
function objectWrite(ctx) {
  const match = OBJECT_PATH.exec(ctx.path);
  if (!match) return undefined;
  const bucket = safeDecode(match[1]);
  const key = safeDecode(match[2]) + match[3];
  const query = ctx.query;
  const operations = Object.keys(query).filter((name) => OPERATION_QUERIES.has(name));
  switch (ctx.method) {
    case "PUT":
      if ("uploadId" in query || "partNumber" in query) return undefined;
      return {
        bucket,
        key,
        conditional: operations.length === 0 && ctx.get("x-amz-copy-source") === "",
      };
    case "POST":
      if (operations.length !== 1 || operations[0] !== "uploadId") return undefined;
      return { bucket, key, conditional: true };
    case "DELETE":
      if ("uploadId" in query) return undefined;
      // DeleteObject honours If-Match (S3's conditional delete); a versioned delete targets a version, not the key.
      return { bucket, key, conditional: operations.length === 0, deleting: true };
    default:
      return undefined;
  }
}

/** The key's ETag without quotes, or undefined when there is no such object. */
async function currentETag(store, bucket, key) {
  try {
    const metadata = await store.getMetadata(bucket, key);
    return JSON.parse(metadata.etag);
  } catch (error) {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return undefined;
    throw error;
  }
}

/** An If-Match value (one ETag or a list, quoted or not, or "*") against the object's ETag. */
function eTagMatches(header, eTag) {
  return header
    .split(",")
    .map((candidate) => candidate.trim().replace(/^W\//, "").replace(/"/g, ""))
    .some((candidate) => candidate === "*" || candidate === eTag);
}

const preconditionFailed = (header) =>
  new S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", {
    Condition: header,
  });

/** Throws the error S3 answers with when the request's conditions do not hold for the object as it is now. */
async function checkConditions(store, ctx, bucket, key, deleting) {
  const ifMatch = ctx.get("if-match");
  const ifNoneMatch = deleting ? "" : ctx.get("if-none-match");
  if (!ifMatch && !ifNoneMatch) return;
  // A missing bucket is s3rver's NoSuchBucket to report, not a missing key.
  if (!(await store.getBucket(bucket))) return;
  const eTag = await currentETag(store, bucket, key);
  if (ifMatch) {
    if (eTag === undefined) throw new S3Error("NoSuchKey", "The specified key does not exist.", { Key: key });
    if (!eTagMatches(ifMatch, eTag)) throw preconditionFailed("If-Match");
  }
  if (ifNoneMatch) {
    // S3 takes only "*" on writes; an ETag here would be a read-style condition it does not offer.
    if (ifNoneMatch.trim() !== "*") {
      throw new S3Error("NotImplemented", "A header you provided implies functionality that is not implemented", {
        Header: "If-None-Match",
      });
    }
    if (eTag !== undefined) throw preconditionFailed("If-None-Match");
  }
}

/**
 * s3rver ignores If-Match and If-None-Match on writes, and its store interleaves concurrent writes of one key. This
 * middleware holds a per-key lock from the condition check until s3rver has finished the write, so a condition is
 * judged against the last completed write and two conditional writers of one key can never both win. Different keys
 * never wait for each other. DeleteObjects is not serialised: its keys are in a body s3rver has not parsed yet.
 * A refused request never reaches s3rver's handler, so it stores nothing and emits no notification.
 */
function conditionalWrites(store) {
  const tails = new Map();
  return async function conditionalWrites(ctx, next) {
    const write = objectWrite(ctx);
    if (!write) return next();
    const lockName = `${write.bucket}/${write.key}`;
    const previous = tails.get(lockName) ?? Promise.resolve();
    let release;
    const held = new Promise((resolve) => (release = resolve));
    const tail = previous.then(() => held);
    tails.set(lockName, tail);
    await previous;
    try {
      if (write.conditional) await checkConditions(store, ctx, write.bucket, write.key, write.deleting === true);
      await next();
    } finally {
      release();
      // The map holds only keys with a writer in flight, or it would grow with every key ever written.
      if (tails.get(lockName) === tail) tails.delete(lockName);
    }
  };
}

function send(message) {
  if (process.connected) process.send(message);
}

async function main() {
  const options = JSON.parse(process.argv[2] || "{}");
  fs.mkdirSync(options.directory, { recursive: true });
  const server = new S3rver({
    address: "127.0.0.1",
    port: options.port || 0,
    directory: options.directory,
    silent: options.silent !== false,
    configureBuckets: (options.buckets || []).map((name) => ({ name })),
  });

  // After vhost, which turns virtual-host requests into the /bucket/key path this middleware reads; before the router.
  const vhostIndex = server.middleware.findIndex((middleware) => middleware.name === "vhost");
  if (vhostIndex < 0) throw new Error("s3rver's vhost middleware was not found; cannot place the conditional writes");
  server.middleware.splice(vhostIndex + 1, 0, conditionalWrites(server.store));

  // s3rver's `event` carries no request, yet the request decides the AWS event name (multipart completion and browser
  // POST uploads are both "ObjectCreated:Post" in s3rver). The emit happens synchronously inside the request's async
  // context, so an AsyncLocalStorage set by a first middleware hands the listener its Koa context.
  const requests = new AsyncLocalStorage();
  // Records leave in the order their requests emitted them, even when one needs an async metadata lookup first.
  let queue = Promise.resolve();
  const enqueue = (build) => {
    queue = queue
      .then(build)
      .then((record) => record && send({ type: "record", record }))
      .catch((error) => send({ type: "error", message: `event conversion failed: ${error.stack || error}` }));
  };

  server.middleware.unshift(async (ctx, next) => {
    await requests.run(ctx, next);
    // s3rver emits nothing for DeleteObjects; AWS emits one ObjectRemoved:Delete per requested key (even absent ones).
    if (ctx.method === "POST" && "delete" in ctx.query && ctx.status === 200 && ctx.request.body?.Delete?.Object) {
      const bucket = ctx.params?.bucket ?? ctx.path.split("/")[1];
      for (const entry of [].concat(ctx.request.body.Delete.Object)) {
        const key = String(entry.Key);
        enqueue(() => awsRecord({ eventName: "ObjectRemoved:Delete", bucket, key, sourceIp: ctx.ip }));
      }
    }
  });

  server.on("event", (event) => {
    const ctx = requests.getStore();
    for (const raw of event.Records) {
      const bucket = raw.s3.bucket.name;
      const key = raw.s3.object.key;
      const sourceIp = ctx?.ip;
      let eventName = raw.eventName;
      if (eventName === "ObjectCreated:Post" && (!ctx || ctx.query.uploadId !== undefined)) {
        eventName = "ObjectCreated:CompleteMultipartUpload";
      }
      if (eventName === "ObjectCreated:Copy") {
        // s3rver omits the copy's ETag; read it from the store as AWS would report it.
        enqueue(async () => {
          const metadata = await server.store.getMetadata(bucket, key);
          const eTag = metadata?.etag ? JSON.parse(metadata.etag) : undefined;
          return awsRecord({ eventName, bucket, key, size: raw.s3.object.size, eTag, sourceIp });
        });
      } else {
        const { size, eTag } = raw.s3.object;
        enqueue(() => awsRecord({ eventName, bucket, key, size, eTag, sourceIp }));
      }
    }
  });

  const address = await server.run();
  send({ type: "ready", port: address.port });

  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    // Give queued records a moment to leave, then go; open keep-alive sockets must not hold the process.
    queue.finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on("message", (message) => message && message.type === "shutdown" && shutdown());
  // The parent died or closed the channel: an orphaned S3 server is never wanted.
  process.on("disconnect", () => process.exit(0));
  process.on("SIGTERM", shutdown);
}

if (require.main === module) {
  if (!process.send) {
    console.error("s3rver-child.js must be started with an IPC channel (child_process.fork/spawn with 'ipc')");
    process.exit(2);
  }
  main().catch((error) => {
    send({ type: "error", message: String(error && error.stack ? error.stack : error) });
    process.exit(1);
  });
}

module.exports = { encodeEventKey };
