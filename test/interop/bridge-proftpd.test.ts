import { startProftpd } from "../../scripts/interop/proftpd";
import { describeBridgeInterop } from "./scenarios";

/**
 * The same scenarios (./scenarios.ts) against a second, independent SFTP server implementation: ProFTPD 1.3.8's
 * mod_sftp from Debian (proftpd-core + proftpd-mod-crypto), key auth with an RFC 4716 user key, chrooted user, ECDSA
 * PEM host key. Differences from OpenSSH found here (the first two asserted by the dialect scenario):
 * - a plain rename onto an existing file answers status 11 (SSH_FX_FILE_ALREADY_EXISTS, a code from SFTP v5+ sent in
 *   a v3 session; OpenSSH sends 4, SSH_FX_FAILURE), and mkdir on an existing directory answers 4 with the message
 *   "File already exists" (OpenSSH: "Failure");
 * - it does not advertise limits@openssh.com, so ssh2 falls back to ~32 KiB READ/WRITE requests (OpenSSH: 255 KiB);
 *   the engine's pipelined reader and writer follow the negotiated size, and the multi-MiB push and pull cover it;
 * - it accepts public key logins for a locked ("!") account; sshd needs "*";
 * - the standalone daemon pauses its accept loop for 200 ms after each session process exits, so back-to-back
 *   connections wait up to ~400 ms for the banner: a connect costs ~0.7 s here against ~0.35 s on sshd, which is
 *   why this file takes about three times as long as the OpenSSH one.
 * None needs an engine change: the engine branches on whether the old copy exists, not on the status number.
 */
describeBridgeInterop("ProFTPD mod_sftp", startProftpd, {
  // Advertised by default (ProFTPD's SFTPExtensions include posixRename), so re-pushes replace atomically.
  advertisesPosixRename: true,
  advertisesLimits: false,
  renameOntoExisting: { status: 11, message: /^File already exists$/ },
  mkdirExisting: { status: 4, message: /^File already exists$/ },
});

/**
 * A partner running ProFTPD with `SFTPExtensions -posixRename` leaves the engine only plain SFTP rename, which refuses
 * to replace (status 11): re-pushing a file must still end with the new bytes, through the engine's fallback of
 * removing the old copy and renaming again. Same scenarios, so push, pull and host keys are covered on it too.
 */
describeBridgeInterop("ProFTPD mod_sftp without posix-rename", () => startProftpd({ posixRename: false }), {
  advertisesPosixRename: false,
  advertisesLimits: false,
  renameOntoExisting: { status: 11, message: /^File already exists$/ },
  mkdirExisting: { status: 4, message: /^File already exists$/ },
  // mod_sftp's SFTPLog line for the refused plain rename of the engine's temporary name onto the old copy.
  fallbackLogEvidence:
    /denying RENAME of '\/upload\/IN\/\.a\.xml\.[0-9a-f]+\.part' to '\/upload\/IN\/a\.xml': '\/upload\/IN\/a\.xml' already exists/,
});
