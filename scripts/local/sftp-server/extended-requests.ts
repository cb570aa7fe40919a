// EXTENDED requests: the OpenSSH extensions this server advertises (see ssh2-internals.ts), parsed from their raw data.
import { utils } from "ssh2";
import { fsync } from "./file-requests";
import { MAX_PACKET_LENGTH, MAX_READ_LENGTH, MAX_WRITE_LENGTH } from "./limits";
import { posixRename } from "./rename-requests";
import type { RequestHandlers, RequestScope } from "./request-scope";
import { sendRawPacket } from "./ssh2-internals";
import { SftpStatusError } from "./status";

const { STATUS_CODE } = utils.sftp;

const SFTP_EXTENDED_REPLY = 201;

async function extended(s: RequestScope, reqid: number, name: string, data: Buffer | undefined): Promise<void> {
  const fields = readSshStrings(data ?? Buffer.alloc(0));
  switch (name) {
    case "posix-rename@openssh.com": {
      const [fromPath, toPath] = fields;
      if (fromPath === undefined || toPath === undefined) throw badMessage(name);
      return posixRename(s, reqid, name, fromPath.toString(), toPath.toString());
    }
    case "fsync@openssh.com": {
      const [handle] = fields;
      if (handle === undefined) throw badMessage(name);
      return fsync(s, reqid, handle);
    }
    case "limits@openssh.com": {
      const reply = Buffer.alloc(4 + 1 + 4 + 32);
      reply.writeUInt32BE(reply.length - 4, 0);
      reply[4] = SFTP_EXTENDED_REPLY;
      reply.writeUInt32BE(reqid, 5);
      reply.writeBigUInt64BE(BigInt(MAX_PACKET_LENGTH), 9);
      reply.writeBigUInt64BE(BigInt(MAX_READ_LENGTH), 17);
      reply.writeBigUInt64BE(BigInt(MAX_WRITE_LENGTH), 25);
      reply.writeBigUInt64BE(0n, 33); // open handles: no limit
      if (!sendRawPacket(s.sftp, reply)) {
        // The client then keeps its default sizes.
        throw new SftpStatusError(STATUS_CODE.FAILURE, `${name}: reply could not be sent`);
      }
      return;
    }
    default:
      throw new SftpStatusError(STATUS_CODE.OP_UNSUPPORTED, `${name}: extension not supported`);
  }
}

function badMessage(extension: string): SftpStatusError {
  return new SftpStatusError(STATUS_CODE.BAD_MESSAGE, `${extension}: malformed request`);
}

/** The SSH "string" fields (uint32 length + bytes) of an extended request's data. */
function readSshStrings(data: Buffer): Buffer[] {
  const fields: Buffer[] = [];
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = data.readUInt32BE(offset);
    if (offset + 4 + length > data.length) break;
    fields.push(data.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return fields;
}

export const extendedRequests: RequestHandlers = {
  EXTENDED: extended,
};
