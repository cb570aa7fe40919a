// A busy port is the local stack's most common start failure (a second `npm start`); these turn it into advice.
import net from "node:net";

export function assertPortFree(port: number, what: string, flag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => reject(portError(what, port, flag, err)));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve()));
  });
}

export function portError(what: string, port: number | undefined, flag: string, err: Error): Error {
  const inUse = (err as NodeJS.ErrnoException).code === "EADDRINUSE" || /EADDRINUSE/.test(err.message);
  if (!inUse) return err;
  return new Error(
    `the ${what} port ${port} is already in use (another local stack?); stop that, or pass ${flag} <port> (0 = any free port)`,
  );
}
