import { createServer, connect, type Server, type Socket } from "node:net";

/**
 * A TCP proxy on loopback that forwards to a target and misbehaves on request: drop every connection after N bytes in
 * one direction, stall (stop forwarding without closing), or slow a direction to a byte rate. Rules apply to
 * connections opened after they are set, so a test can arm a fault, run one transfer, disarm, and run the retry.
 */
export interface FaultRules {
  /** Destroy the connection once this many client->server bytes were forwarded. */
  dropUpstreamAfter?: number;
  /** Destroy the connection once this many server->client bytes were forwarded. */
  dropDownstreamAfter?: number;
  /** Stop forwarding (but keep the sockets open) after this many client->server bytes. */
  stallUpstreamAfter?: number;
  /** Stop forwarding (but keep the sockets open) after this many server->client bytes. */
  stallDownstreamAfter?: number;
  /** Forward at most this many bytes per second in each direction. */
  bytesPerSecond?: number;
}

export interface FaultProxy {
  host: string;
  port: number;
  rules: FaultRules;
  /** Connections accepted so far, and how many the proxy cut on purpose. */
  stats: { connections: number; dropped: number };
  close(): Promise<void>;
}

export async function startFaultProxy(targetHost: string, targetPort: number): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const proxy: FaultProxy = {
    host: "127.0.0.1",
    port: 0,
    rules: {},
    stats: { connections: 0, dropped: 0 },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };

  const server: Server = createServer((client) => {
    proxy.stats.connections++;
    const rules = { ...proxy.rules };
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    const cut = () => {
      proxy.stats.dropped++;
      client.destroy();
      upstream.destroy();
    };
    pipe(client, upstream, rules.dropUpstreamAfter, rules.stallUpstreamAfter, rules.bytesPerSecond, cut);
    pipe(upstream, client, rules.dropDownstreamAfter, rules.stallDownstreamAfter, rules.bytesPerSecond, cut);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = (server.address() as { port: number }).port;
  return proxy;
}

function pipe(
  from: Socket,
  to: Socket,
  dropAfter: number | undefined,
  stallAfter: number | undefined,
  bytesPerSecond: number | undefined,
  cut: () => void,
): void {
  let forwarded = 0;
  let stalled = false;
  from.on("data", (chunk: Buffer) => {
    if (stalled) return;
    let data = chunk;
    if (dropAfter !== undefined && forwarded + data.length >= dropAfter) {
      const keep = Math.max(0, dropAfter - forwarded);
      if (keep) to.write(data.subarray(0, keep));
      forwarded += keep;
      // Let the partial bytes leave before the cut, as a real mid-transfer failure would.
      setImmediate(cut);
      stalled = true;
      return;
    }
    if (stallAfter !== undefined && forwarded + data.length >= stallAfter) {
      data = data.subarray(0, Math.max(0, stallAfter - forwarded));
      stalled = true;
    }
    forwarded += data.length;
    if (data.length) to.write(data);
    if (bytesPerSecond) {
      from.pause();
      setTimeout(() => from.resume(), (data.length / bytesPerSecond) * 1000);
    }
  });
  from.on("end", () => to.end());
}
