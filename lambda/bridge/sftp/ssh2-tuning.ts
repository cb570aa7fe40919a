import { createSecretKey, randomFillSync } from "node:crypto";
import type { Socket } from "node:net";
import type { Client, SFTPWrapper } from "ssh2";

/**
 * Every patch of ssh2's private fields, in one place: delete what upstream comes to allow. Each is guarded by class and
 * field names, so on another ssh2 build it changes nothing rather than breaking a transfer.
 */

/**
 * Performance settings for an established ssh2 connection; none changes what goes over the wire, only how fast.
 * - TCP_NODELAY: Nagle's algorithm stalls request/response SFTP traffic (docs/field-notes.md: 1.6 MB/s -> 142 MB/s).
 * - Writes batched per tick: ssh2 hands the socket each packet in 3-4 pieces (length, body, tag), so with NODELAY
 *   every SSH packet cost 3-4 write syscalls and as many TCP segments. Corking until the end of the tick turns the
 *   requests issued together into one writev.
 * - AES-GCM keys as KeyObjects: without ssh2's native binding (not built for this Node) ssh2 creates a node:crypto
 *   cipher per packet from a Buffer key, and Node 24 spends longer converting that key than encrypting 32 KiB. On
 *   the same path, each packet's random padding is taken from a pooled block of CSPRNG output (allocGcmPacket).
 *   Guarded by class and field names: on any other ssh2 build or cipher nothing is changed.
 */
export function tuneTransport(ssh: Client): void {
  const internals = ssh as unknown as { _sock?: Socket; _protocol?: Record<string, unknown> };
  const sock = internals._sock;
  if (sock && typeof sock.setNoDelay === "function") {
    sock.setNoDelay(true);
    corkPerTick(sock);
  }
  const protocol = internals._protocol;
  if (!protocol) return;
  for (const [field, keyField] of [
    ["_cipher", "_encKey"],
    ["_decipher", "_decipherKey"],
  ] as const) {
    // An accessor, so that a cipher installed by a later re-key is converted too.
    let current = protocol[field];
    keyObjectFor(current, keyField);
    Object.defineProperty(protocol, field, {
      configurable: true,
      enumerable: true,
      get: () => current,
      set: (value: unknown) => {
        current = value;
        keyObjectFor(value, keyField);
      },
    });
  }
}

const NODE_CRYPTO_GCM = new Set(["AESGCMCipherNative", "AESGCMDecipherNative"]);

function keyObjectFor(cipher: unknown, keyField: string): void {
  const c = cipher as Record<string, unknown> | undefined;
  if (!c || !NODE_CRYPTO_GCM.has((c.constructor as { name?: string } | undefined)?.name ?? "")) return;
  const key = c[keyField];
  if (Buffer.isBuffer(key)) c[keyField] = createSecretKey(key);
  if (c.constructor?.name === "AESGCMCipherNative" && typeof c.allocPacket === "function")
    c.allocPacket = allocGcmPacket;
}

/**
 * ssh2's AESGCMCipherNative.allocPacket, except that the 4-19 bytes of random padding come from a 64 KiB block of
 * CSPRNG output instead of one randomFillSync call per packet (7% of a push's CPU). Same layout: uint32 length, pad
 * length, payload (written by the caller), random padding to a multiple of the 16-byte block.
 */
function allocGcmPacket(payloadLen: number): Buffer {
  let pktLen = 4 + 1 + payloadLen;
  let padLen = 16 - ((pktLen - 4) & 15);
  if (padLen < 4) padLen += 16;
  pktLen += padLen;
  const packet = Buffer.allocUnsafe(pktLen);
  packet.writeUInt32BE(pktLen - 4, 0);
  packet[4] = padLen;
  randomPadding(packet, 5 + payloadLen, padLen);
  return packet;
}

const padding = { pool: Buffer.alloc(0), at: 0 };

function randomPadding(target: Buffer, offset: number, length: number): void {
  if (padding.at + length > padding.pool.length) {
    padding.pool = randomFillSync(Buffer.allocUnsafe(64 * 1024));
    padding.at = 0;
  }
  padding.pool.copy(target, offset, padding.at, padding.at + length);
  padding.at += length;
}

/** Window credit is returned in steps of at least this much: one WINDOW_ADJUST per step, not per packet. */
const WINDOW_STEP = 1024 * 1024;

/**
 * Grants the server a receive window of `windowBytes` on the SFTP channel and returns credit as soon as a step of it
 * is used, as OpenSSH does in small steps, instead of ssh2's fixed 2 MiB topped up only at half (which holds a pull
 * to about 1 MiB per round trip). The window only says how much the server may send unasked; an SFTP server sends
 * only answers to our READs, and those are bounded by MAX_READ_BYTES_IN_FLIGHT, so memory stays bounded.
 * Guarded by field names: on an ssh2 build without them nothing changes.
 */
export function widenReceiveWindow(sftp: unknown, ssh: Client, windowBytes: number): void {
  const channel = sftp as
    | {
        incoming?: { window?: number };
        outgoing?: { id?: number; state?: string };
        push?: (data: Buffer) => boolean;
      }
    | undefined;
  const protocol = (ssh as unknown as { _protocol?: { channelWindowAdjust?: (id: number, amount: number) => void } })
    ._protocol;
  const incoming = channel?.incoming;
  const outgoing = channel?.outgoing;
  const push = channel?.push;
  if (
    !channel ||
    !incoming ||
    !outgoing ||
    typeof incoming.window !== "number" ||
    typeof outgoing.id !== "number" ||
    typeof push !== "function" ||
    typeof protocol?.channelWindowAdjust !== "function"
  ) {
    return;
  }
  const topUp = () => {
    if (outgoing.state !== "open") return;
    const amount = windowBytes - (incoming.window as number);
    if (amount < WINDOW_STEP) return;
    incoming.window = (incoming.window as number) + amount;
    protocol.channelWindowAdjust!(outgoing.id as number, amount);
  };
  topUp();
  // ssh2 subtracts each CHANNEL_DATA from the window, then hands it to push(): credit goes back right after. Kept
  // above half the window, ssh2's own top-up (at 1 MiB) never fires.
  channel.push = function (this: unknown, data: Buffer) {
    const result = push.call(this, data);
    topUp();
    return result;
  };
}

function corkPerTick(sock: Socket): void {
  const write = sock.write as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  sock.write = function (this: Socket, ...args: unknown[]) {
    if (!corked && !sock.destroyed) {
      corked = true;
      sock.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Socket["write"];
}

export function maxWriteLen(sftp: SFTPWrapper): number {
  return (sftp as unknown as { _maxWriteLen?: number })._maxWriteLen ?? 32 * 1024;
}

export function maxReadLen(sftp: SFTPWrapper): number {
  return (sftp as unknown as { _maxReadLen?: number })._maxReadLen ?? 32 * 1024;
}
