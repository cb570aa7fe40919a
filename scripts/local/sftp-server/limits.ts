// The sizes this server promises clients in its limits@openssh.com reply, and keeps to when answering READs.

/** OpenSSH's limits: 256 KiB packets, reads and writes up to 1 KiB less. ssh2's server accepts packets this large. */
export const MAX_PACKET_LENGTH = 256 * 1024;
export const MAX_READ_LENGTH = MAX_PACKET_LENGTH - 1024;
export const MAX_WRITE_LENGTH = MAX_PACKET_LENGTH - 1024;
