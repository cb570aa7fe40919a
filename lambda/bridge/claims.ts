import { sleep } from "./concurrency";
import { BridgeError } from "./errors";
import type { Logger } from "./logger";
import { FIRST_STATE, isClaim, type Receipt, type ReceiptStore } from "./receipts";
import type { S3Endpoint } from "./s3";

/**
 * Push claims: at most one delivery of an object version at a time, and none once one has succeeded.
 *
 * S3 delivers events at least once, SQS may hand the same message to two invocations, and a bucket notification can
 * be sent twice: without a claim, each copy of the event pushes the file. The claim lives at the key of the version's
 * first receipt (`<receipts>/<stream>/push/<relative>/<etag>/first.json`) and moves through two states there:
 *
 *   (absent) --PUT If-None-Match: *--> claimed --PUT If-Match--> delivered (the receipt itself)
 *      ^                                   |
 *      +-------- DELETE If-Match ----------+  (the transfer failed: the next attempt may take it)
 *
 * Every transition is a conditional write, so of any number of concurrent attempts exactly one holds the claim. A claim
 * carries a lease: a holder that dies (Lambda timeout, killed process) stops blocking the version once the lease
 * ends, and the next attempt takes the claim over, again by a conditional write against the ETag it saw. The state is
 * in the object's metadata (`bridge-state`), so one HEAD answers "delivered, held or free?"; a receipt written before
 * claims existed has no state and reads as delivered.
 */

const EXPIRES = "bridge-expires";
const OWNER = "bridge-owner";

export type ClaimState =
  { kind: "absent" } | { kind: "delivered" } | { kind: "claimed"; eTag: string; expiresAt: number; owner: string };

export interface ClaimTarget {
  stream: string;
  /** The key's path below the stream's push source. */
  relative: string;
  bucket: string;
  key: string;
  /** The object version's ETag: what is claimed. */
  eTag: string;
  versionId?: string;
}

export interface ClaimTiming {
  /** When the lease ends if the holder never completes or releases it (epoch ms). */
  expiresAt: number;
  /** Wait for a live claim of someone else at most until then; after it, fail with CLAIM_HELD (retryable). */
  waitUntil: number;
}

export type Acquired =
  { kind: "claimed"; claim: PushClaim; waited: boolean; tookOver?: string } | { kind: "delivered"; waited: boolean };

export class ClaimHeldError extends BridgeError {
  constructor(target: ClaimTarget, owner: string, expiresAt: number) {
    super(
      "CLAIM_HELD",
      `push s3://${target.bucket}/${target.key}: version ${target.eTag} is being delivered by another run (${owner}) ` +
        `whose claim lasts until ${new Date(expiresAt).toISOString()}; retry later (the claim is taken over if it lapses)`,
      { context: { bucket: target.bucket, key: target.key, eTag: target.eTag, owner }, retryable: true },
    );
  }
}

const FIRST_POLL_MS = 200;
const MAX_POLL_MS = 2_000;

export class ClaimStore {
  constructor(
    private readonly endpoint: S3Endpoint,
    private readonly receipts: ReceiptStore,
    private readonly clock: () => number,
    private readonly logger: Logger,
    /** Recorded as the holder, so a blocked run can say who holds the claim. */
    private readonly owner: string,
  ) {}

  location(target: ClaimTarget): { bucket: string; key: string } {
    return {
      bucket: this.receipts.bucketFor(target.stream),
      key: this.receipts.firstReceiptKey(target.stream, target.relative, target.eTag),
    };
  }

  async state(target: ClaimTarget): Promise<ClaimState> {
    const { bucket, key } = this.location(target);
    const head = await this.endpoint.head(bucket, key);
    if (!head) return { kind: "absent" };
    const meta = head.metadata ?? {};
    const eTag = head.eTag ?? "";
    if (isClaim(meta)) {
      const expiresAt = Date.parse(meta[EXPIRES] ?? "");
      // An unreadable expiry cannot keep a version blocked: treat the claim as lapsed.
      return { kind: "claimed", eTag, expiresAt: Number.isNaN(expiresAt) ? 0 : expiresAt, owner: meta[OWNER] ?? "?" };
    }
    return { kind: "delivered" };
  }

  /**
   * Takes the claim of `target`'s version, waiting (polling) while another run holds a live one. Resolves
   * `delivered` when the version was delivered meanwhile, or before.
   */
  async acquire(target: ClaimTarget, timing: ClaimTiming): Promise<Acquired> {
    let waited = false;
    let poll = FIRST_POLL_MS;
    for (;;) {
      // Look before writing: a duplicate costs one HEAD, and a store that ignored the write's condition could not
      // replace a receipt by a claim.
      const state = await this.state(target);
      if (state.kind === "absent") {
        const created = await this.write(target, timing, { ifAbsent: true });
        if (created) return { kind: "claimed", claim: created, waited };
        continue;
      }
      if (state.kind === "delivered") return { kind: "delivered", waited };
      const now = this.clock();
      if (state.expiresAt <= now) {
        const taken = await this.write(target, timing, { ifMatch: state.eTag });
        if (taken) {
          this.logger.warn("push claim lapsed; taken over", {
            stream: target.stream,
            source: `s3://${target.bucket}/${target.key}`,
            previousOwner: state.owner,
          });
          return { kind: "claimed", claim: taken, waited, tookOver: state.owner };
        }
        continue;
      }
      // Held by a live run: wait for it to deliver, release or lapse, but not past our own limit.
      if (now >= timing.waitUntil) throw new ClaimHeldError(target, state.owner, state.expiresAt);
      waited = true;
      await sleep(Math.max(1, Math.min(poll, Math.min(timing.waitUntil, state.expiresAt) - now)));
      poll = Math.min(MAX_POLL_MS, Math.round(poll * 1.5));
    }
  }

  private async write(
    target: ClaimTarget,
    timing: ClaimTiming,
    condition: { ifAbsent: true } | { ifMatch: string },
  ): Promise<PushClaim | undefined> {
    const { bucket, key } = this.location(target);
    const claimedAt = new Date(this.clock()).toISOString();
    const expires = new Date(timing.expiresAt).toISOString();
    const body = JSON.stringify(
      {
        claim: {
          state: "claimed",
          stream: target.stream,
          source: { bucket: target.bucket, key: target.key, eTag: target.eTag, versionId: target.versionId },
          owner: this.owner,
          claimedAt,
          expiresAt: expires,
        },
      },
      null,
      2,
    );
    const put = await this.endpoint.putConditional(bucket, key, body, {
      ...condition,
      metadata: { [FIRST_STATE]: "claimed", [EXPIRES]: expires, [OWNER]: this.owner },
    });
    if (!put.written) return undefined;
    return new PushClaim(this.endpoint, this.receipts, bucket, key, put.eTag ?? "", target);
  }
}

/** A claim this run holds: complete it with the receipt once the file is verified on the partner, or release it. */
export class PushClaim {
  private settled = false;

  constructor(
    private readonly endpoint: S3Endpoint,
    private readonly receipts: ReceiptStore,
    readonly bucket: string,
    readonly key: string,
    private readonly eTag: string,
    readonly target: ClaimTarget,
  ) {}

  /**
   * Replaces the claim by the delivery's receipt. If the lease lapsed and another run took the claim over meanwhile,
   * the receipt is still kept (as a later delivery) and `lost` says so: the partner may get the file twice.
   */
  async complete(receipt: Receipt): Promise<{ uri: string; lost: boolean }> {
    this.settled = true;
    const put = await this.endpoint.putConditional(this.bucket, this.key, JSON.stringify(receipt, null, 2), {
      ifMatch: this.eTag,
      metadata: { [FIRST_STATE]: "delivered" },
    });
    if (put.written) return { uri: `s3://${this.bucket}/${this.key}`, lost: false };
    const uri = await this.receipts.write(receipt, this.target.relative, { first: false });
    return { uri: uri ?? "", lost: true };
  }

  /**
   * Gives the version back after a failed transfer, so a retry need not wait for the lease: the claim is deleted, only
   * if it is still ours (If-Match), so a run that took a lapsed claim over keeps it. Never throws.
   */
  async release(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    // A failed release only means the next attempt waits for the lease to lapse.
    await this.endpoint.delete(this.bucket, this.key, undefined, { ifMatch: this.eTag }).catch(() => undefined);
  }
}
