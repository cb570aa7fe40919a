import { z } from "zod";

/**
 * The stream configuration: the user's main contract (DESIGN.md section 2). Every object is strict, so a misspelt field
 * is an error rather than a silently ignored setting. Cross-field rules (overlaps, claims, traversal) live in
 * `validate.ts`; this file says what a well-formed document looks like.
 */

/** Stream names are used in rule names split on dots (gilt style), metric dimensions and S3 receipt keys. */
export const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

const fingerprint = z
  .string()
  .regex(
    /^SHA256:[A-Za-z0-9+/]{43}=?$/,
    'must be an OpenSSH SHA256 fingerprint like "SHA256:abc...xyz" (43 base64 chars)',
  );

const pattern = z.string().min(1, "empty pattern");

export const credentialsSchema = z.union(
  [
    z.strictObject({ secretsManager: z.string().min(1) }),
    z.strictObject({ ssmParameter: z.string().min(1) }),
    z.strictObject({ s3Object: z.string().regex(/^s3:\/\/[^/]+\/.+/, "must be s3://bucket/key") }),
    z.strictObject({ file: z.string().min(1) }),
  ],
  {
    error:
      "credentials must be exactly one reference: { secretsManager: <secret id> }, { ssmParameter: <name> }, " +
      "{ s3Object: s3://bucket/key } or { file: <path> }; secret values never go in the config",
  },
);

const algorithmList = z.array(z.string().min(1)).min(1);

export const sftpSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  /** May also come from the secret (`username` field); the config wins when both are set. */
  username: z.string().min(1).optional(),
  credentials: credentialsSchema,
  hostKeys: z.array(fingerprint).min(1, "pin at least one host key (run `bridge test-connection` to see it)"),
  readyTimeoutMs: z.number().int().positive().default(20_000),
  operationTimeoutMs: z.number().int().positive().default(60_000),
  keepaliveIntervalMs: z.number().int().nonnegative().default(10_000),
  /**
   * The SSH channel window granted to the server: how far ahead of our reading a pull lets the partner send. Reads
   * keep at most 4 MiB outstanding whatever this says; 16 MiB leaves ssh2 room to return credit early. Lower it only
   * for a server that misbehaves with large windows.
   */
  windowBytes: z
    .number()
    .int()
    .min(2 * 1024 * 1024, "at least 2 MiB (2097152), ssh2's own window")
    .max(1024 * 1024 * 1024)
    .default(16 * 1024 * 1024),
  /** Files transferred at once over the stream's single SSH connection. */
  concurrency: z.number().int().min(1).max(32).default(4),
  /** Overrides for legacy servers; each list replaces ssh2's defaults for that category. */
  algorithms: z
    .strictObject({
      kex: algorithmList.optional(),
      cipher: algorithmList.optional(),
      serverHostKey: algorithmList.optional(),
      hmac: algorithmList.optional(),
    })
    .optional(),
});

export const pushSchema = z.strictObject({
  /** Key prefix under the stream's `s3.prefix` whose objects are pushed. */
  from: z.string().default(""),
  /** Remote directory the files land in; the key's path below `from` is kept. */
  to: z.string().min(1),
  patterns: z.array(pattern).min(1).default(["**"]),
  /** Write under a temporary name and rename into place; turn off for servers that forbid rename. */
  atomic: z.boolean().default(true),
  tempSuffix: z.string().min(1).default(".part"),
  /** Keep the S3 object after delivery (default) or delete it once the remote copy is verified. */
  after: z.enum(["keep", "delete"]).default("keep"),
  /**
   * Temporary files of the bridge's own naming (`.<name>.<8 hex><tempSuffix>`) untouched for this long are left-overs
   * of a killed push: the first push to a folder in a batch removes them and reports each. 0 turns this off.
   */
  staleTempSeconds: z.number().int().nonnegative().default(3600),
});

export const pullSchema = z.strictObject({
  from: z.string().min(1),
  /** Key prefix under the stream's `s3.prefix` that pulled files are written to. */
  to: z.string().default(""),
  patterns: z.array(pattern).min(1).default(["**"]),
  recursive: z.boolean().default(false),
  /**
   * What happens to a file on the server once its S3 copy is verified: `move` to doneDir, `delete`, or `leave` it in
   * place (partners that allow neither): the bridge then remembers each file by path, size and mtime (next to the
   * receipts) and pulls it again only when it changes.
   */
  after: z.enum(["move", "delete", "leave"]).default("move"),
  /** Archived files in doneDir older than this many days (since archiving) are deleted; 0 keeps them forever. */
  doneRetentionDays: z.number().int().nonnegative().default(0),
  /** Relative to `from` (or absolute); skipped when listing. */
  doneDir: z.string().min(1).default(".done"),
  /**
   * Files modified more recently than this are left for the next run: a partner that writes a file in place (no temp
   * name) may still be writing it. 0 takes files as soon as they are listed.
   */
  minAgeSeconds: z.number().int().nonnegative().default(30),
  /**
   * A file must keep the size and mtime it was listed with for at least this many ms, and until it has been read;
   * one that changes is skipped as still being written, whatever its mtime says (a partner's clock may be behind
   * ours), and nothing of it reaches S3. Applies to files modified within minAgeSeconds + 5 minutes (by our clock);
   * older ones are checked once read, without waiting. 0 = only the look once read.
   */
  stableCheckMs: z.number().int().nonnegative().default(2000),
  /**
   * When the S3 key a pulled file maps to already holds an earlier delivery (a partner reusing a file name):
   * `rename` keeps both, the new one as `name.<UTC time>.ext` (as the done dir does); `overwrite` replaces it (a
   * versioned bucket keeps the old version); `skip` leaves the file on the partner and reports it; `fail` reports it
   * as a failure. The same file pulled again after an interrupted run is not a conflict: it replaces its own copy.
   */
  onConflict: z.enum(["rename", "overwrite", "skip", "fail"]).default("rename"),
  /** Remote names skipped as in-progress uploads by the partner. */
  ignore: z.array(pattern).default([".*", "*.part", "*.tmp", "*.filepart"]),
  /** At most this many files per run; the next run carries on. */
  maxFiles: z.number().int().positive().default(1000),
});

export const streamSchema = z.strictObject({
  s3: z.strictObject({
    bucket: z.string().min(3).max(63),
    prefix: z.string().default(""),
  }),
  sftp: sftpSchema,
  push: pushSchema.optional(),
  pull: pullSchema.optional(),
  /**
   * Publish an event per file moved or failed (source s3-sftp-bridge, detail-type File Delivered / File Pulled /
   * File Failed, detail: the receipt) to the adapter's event bus. Publishing never fails a transfer.
   */
  events: z.boolean().default(false),
  /** EventBridge schedule expression for pull, e.g. `rate(30 minutes)`; in the local stack, seconds. */
  schedule: z
    .string()
    .regex(
      /^(rate\(\d+ (second|seconds|minute|minutes|hour|hours|day|days)\)|cron\(.+\))$/,
      "must be rate(N unit) or cron(...)",
    )
    .optional(),
});

export const configSchema = z.strictObject({
  version: z.literal(1).default(1),
  receipts: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Bucket for receipts; defaults to each stream's own bucket. */
      bucket: z.string().min(3).max(63).optional(),
      prefix: z.string().min(1).default("_bridge/receipts/"),
      /**
       * How long a push claims an object version when the run's end is not known (CLI, local stack); a Lambda claims
       * until its own timeout. A claim whose holder died is taken over once this has passed.
       */
      claimLeaseSeconds: z.number().int().positive().default(900),
      /** How long a push waits for another run that holds the claim of the same version before failing (retryable). */
      claimWaitSeconds: z.number().int().nonnegative().default(30),
    })
    .prefault({}),
  streams: z.record(z.string().regex(STREAM_NAME, "stream names are letters, digits, - and _ (max 64)"), streamSchema),
});

export type BridgeConfig = z.output<typeof configSchema>;
export type BridgeConfigInput = z.input<typeof configSchema>;
export type StreamConfig = z.output<typeof streamSchema>;
export type SftpConfig = z.output<typeof sftpSchema>;
export type PushConfig = z.output<typeof pushSchema>;
export type PullConfig = z.output<typeof pullSchema>;
export type CredentialsRef = z.output<typeof credentialsSchema>;
