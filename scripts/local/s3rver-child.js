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
