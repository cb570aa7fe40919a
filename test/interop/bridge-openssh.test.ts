import { startSshd } from "../../scripts/interop/sshd";
import { describeBridgeInterop } from "./scenarios";

/**
 * The bridge's push and pull scenarios (./scenarios.ts) against OpenSSH's own SFTP server: internal-sftp, key auth,
 * chrooted user, ed25519 host key. OpenSSH is the reference the quirks of other servers are described against.
 */
describeBridgeInterop("OpenSSH sshd", startSshd, {
  // OpenSSH invented the extension; the engine replaces files atomically with it.
  advertisesPosixRename: true,
  // Raises the request size to 255 KiB.
  advertisesLimits: true,
  // A plain rename onto an existing name: the generic SSH_FX_FAILURE.
  renameOntoExisting: { status: 4, message: /^Failure$/ },
  mkdirExisting: { status: 4, message: /^Failure$/ },
});
