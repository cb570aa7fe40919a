// Advertising extensions. ssh2 1.17's server answers the client's INIT itself with a fixed VERSION packet (version 3,
// no extension pairs: SERVER_VERSION_BUFFER in lib/protocol/SFTP.js) and has no option or event to add pairs, while
// its client (like OpenSSH's sftp) only sends posix-rename@openssh.com, fsync@openssh.com or limits@openssh.com when
// the server's VERSION listed them. EXTENDED requests themselves reach us as a public "EXTENDED" event.
//
// The least invasive fix found: SFTP writes every packet through its connection's Protocol.channelData(channelId,
// bytes) (lib/protocol/SFTP.js tryWritePayload). While a channel's VERSION is pending, the connection's channelData is
// wrapped to swap that one 9-byte packet for the same packet plus extension pairs, and the extra bytes are charged to
// the channel's flow-control window exactly as ssh2 charges its own. Nothing else passes through differently, the
// wrapper is installed once per connection, and if ssh2 ever writes VERSION differently the swap simply does not
// happen (logged) and clients see a server without extensions. The alternative, re-implementing INIT by intercepting
// the incoming packet, would have to set more of SFTP's private state (_version, _extensions, the 'ready' event).
//
// The limits@openssh.com reply (EXTENDED_REPLY) likewise has no public writer; sendRawPacket writes it the same way.
import type { SFTPWrapper } from "ssh2";

// Extensions advertised in the VERSION packet; each is implemented in extended-requests.ts.
const EXTENSIONS: ReadonlyArray<readonly [string, string]> = [
  ["posix-rename@openssh.com", "1"],
  ["fsync@openssh.com", "1"],
  ["limits@openssh.com", "1"],
];

const SFTP_VERSION = 2;

/** The private parts of ssh2 1.17's SFTP channel that the two functions below rely on. */
interface Ssh2SftpInternals {
  _protocol: ChannelDataWriter;
  outgoing: { id: number; window: number; packetSize: number; state: string };
}

interface ChannelDataWriter {
  channelData(channelId: number, data: Buffer): void;
}

interface PendingVersion {
  packet: Buffer;
  outgoing: Ssh2SftpInternals["outgoing"];
}

const pendingVersions = new WeakMap<ChannelDataWriter, Map<number, PendingVersion>>();

const VERSION_PACKET = ((): Buffer => {
  const pairs = EXTENSIONS.flatMap(([name, value]) => [sshString(name), sshString(value)]);
  const body = Buffer.concat([Buffer.from([SFTP_VERSION, 0, 0, 0, 3]), ...pairs]);
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(body.length, 0);
  return Buffer.concat([length, body]);
})();

function sshString(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([length, bytes]);
}

/** ssh2's own VERSION packet: length 5, type VERSION, version 3, nothing else. */
function isBareVersion(data: Buffer): boolean {
  return data.length === 9 && data.readUInt32BE(0) === 5 && data[4] === SFTP_VERSION && data.readUInt32BE(5) === 3;
}

export function advertiseExtensions(sftp: SFTPWrapper, log: (line: string) => void): void {
  const inner = sftp as unknown as Ssh2SftpInternals;
  const protocol = inner._protocol;
  if (typeof protocol?.channelData !== "function" || typeof inner.outgoing?.id !== "number") {
    log("sftp: this ssh2 version's internals differ; extensions (posix-rename) are not advertised");
    return;
  }
  let pending = pendingVersions.get(protocol);
  if (pending === undefined) {
    const waiting = new Map<number, PendingVersion>();
    pending = waiting;
    pendingVersions.set(protocol, waiting);
    const original = protocol.channelData;
    protocol.channelData = function (this: ChannelDataWriter, channelId: number, data: Buffer): void {
      const swap = waiting.size === 0 ? undefined : waiting.get(channelId);
      if (swap === undefined) return original.call(this, channelId, data);
      waiting.delete(channelId);
      const extra = swap.packet.length - data.length;
      if (!isBareVersion(data) || swap.outgoing.window < extra || swap.packet.length > swap.outgoing.packetSize) {
        log("sftp: could not add extensions to the VERSION packet; clients will see none");
        return original.call(this, channelId, data);
      }
      swap.outgoing.window -= extra;
      return original.call(this, channelId, swap.packet);
    };
  }
  const channelId = inner.outgoing.id;
  pending.set(channelId, { packet: VERSION_PACKET, outgoing: inner.outgoing });
  const forget = (): void => void pending.delete(channelId);
  sftp.once("ready", forget);
  sftp.once("close", forget);
}

/** Writes a complete SFTP packet on the channel, as ssh2's own writers do; false when the window has no room now. */
export function sendRawPacket(sftp: SFTPWrapper, packet: Buffer): boolean {
  const inner = sftp as unknown as Ssh2SftpInternals;
  const outgoing = inner.outgoing;
  if (outgoing.state !== "open" || outgoing.window < packet.length || packet.length > outgoing.packetSize) return false;
  outgoing.window -= packet.length;
  inner._protocol.channelData(outgoing.id, packet);
  return true;
}
