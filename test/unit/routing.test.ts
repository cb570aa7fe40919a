import { validateConfig } from "../../lambda/bridge/config";
import type { BridgeConfig } from "../../lambda/bridge/config/schema";
import { InvalidKeyError, UnknownStreamError } from "../../lambda/bridge/errors";
import {
  prefixClaims,
  pullDestPrefix,
  pushSourcePrefix,
  receiptsLocation,
  requireStream,
  routeObject,
} from "../../lambda/bridge/routing";

const KEY = "SHA256:pUlCyONl83hPOLjUN/nXCCkNtgc4sAzc+5NMMtG+l/M";
const sftp = { host: "sftp.example", credentials: { secretsManager: "s" }, hostKeys: [KEY] };

const config: BridgeConfig = validateConfig(
  {
    streams: {
      psp: {
        s3: { bucket: "payments", prefix: "psp" },
        sftp,
        push: { from: "outbound", to: "/IN" },
        pull: { from: "/OUT", to: "inbound" },
      },
      bank: { s3: { bucket: "payments", prefix: "bank/" }, sftp, push: { to: "/upload" } },
      other: { s3: { bucket: "elsewhere", prefix: "other/" }, sftp, push: { from: "drop/", to: "/in" } },
      pullonly: { s3: { bucket: "elsewhere", prefix: "feeds/" }, sftp, pull: { from: "/feeds" } },
    },
  },
  "routing-test",
);

describe("prefixes", () => {
  it("joins the stream prefix with the direction's prefix", () => {
    expect(pushSourcePrefix(config.streams.psp!)).toBe("psp/outbound/");
    expect(pullDestPrefix(config.streams.psp!)).toBe("psp/inbound/");
    expect(pushSourcePrefix(config.streams.bank!)).toBe("bank/");
    expect(pullDestPrefix(config.streams.bank!)).toBeUndefined();
    expect(pushSourcePrefix(config.streams.pullonly!)).toBeUndefined();
    expect(pullDestPrefix(config.streams.pullonly!)).toBe("feeds/");
  });

  it("normalises even a config that skipped the validator", () => {
    const raw = { ...config.streams.psp!, s3: { bucket: "payments", prefix: "/psp" } };
    raw.push = { ...raw.push!, from: "outbound" };
    expect(pushSourcePrefix(raw)).toBe("psp/outbound/");
  });

  it("puts receipts in receipts.bucket or the stream's bucket", () => {
    expect(receiptsLocation(config, config.streams.other!)).toEqual({
      bucket: "elsewhere",
      prefix: "_bridge/receipts/",
    });
    const central = { ...config, receipts: { ...config.receipts, bucket: "audit" } };
    expect(receiptsLocation(central, config.streams.other!)).toEqual({ bucket: "audit", prefix: "_bridge/receipts/" });
  });

  it("lists every claim", () => {
    const claims = prefixClaims(config).map((c) => `${c.kind}:${c.stream}:${c.bucket}/${c.prefix}`);
    expect(claims).toEqual(
      expect.arrayContaining([
        "push:psp:payments/psp/outbound/",
        "pull:psp:payments/psp/inbound/",
        "receipts:psp:payments/_bridge/receipts/",
        "push:other:elsewhere/other/drop/",
      ]),
    );
  });
});

describe("routeObject", () => {
  it.each([
    ["payments", "psp/outbound/a.xml", { stream: "psp", relative: "a.xml" }],
    ["payments", "psp/outbound/2026/11/a b.xml", { stream: "psp", relative: "2026/11/a b.xml" }],
    ["payments", "bank/PAY_1.txt", { stream: "bank", relative: "PAY_1.txt" }],
    ["elsewhere", "other/drop/x.csv", { stream: "other", relative: "x.csv" }],
  ])("%s/%s -> %j", (bucket, key, expected) => {
    expect(routeObject(config, bucket, key)).toEqual(expected);
  });

  it.each([
    ["payments", "psp/inbound/pulled.xml", "a pull destination"],
    ["payments", "psp/other/a.xml", "no stream's push source"],
    ["payments", "_bridge/receipts/psp/push/a.json", "the receipts prefix"],
    ["elsewhere", "feeds/x.csv", "a pull-only stream's destination"],
    ["unknown-bucket", "psp/outbound/a.xml", "another bucket"],
    ["payments", "psp/outboundx/a.xml", "a sibling prefix"],
  ])("%s/%s is not routed (%s)", (bucket, key) => {
    expect(routeObject(config, bucket, key)).toBeUndefined();
  });

  it("refuses unsafe keys a stream claims instead of routing them", () => {
    expect(() => routeObject(config, "payments", "psp/outbound/../../etc/passwd")).toThrow(InvalidKeyError);
    expect(() => routeObject(config, "payments", "psp/outbound//abs")).toThrow(/starts with \//);
    expect(() => routeObject(config, "payments", "psp/outbound/sub/")).toThrow(InvalidKeyError);
  });

  it("never routes pulled files even if a config bypassed the validator", () => {
    const unsafe: BridgeConfig = {
      ...config,
      streams: { loop: { ...config.streams.psp!, push: { ...config.streams.psp!.push!, from: "" } } },
    };
    expect(routeObject(unsafe, "payments", "psp/inbound/pulled.xml")).toBeUndefined();
    expect(routeObject(unsafe, "payments", "psp/new.xml")).toEqual({ stream: "loop", relative: "new.xml" });
  });

  it("routes receipts-prefixed keys when receipts are disabled", () => {
    const wide: BridgeConfig = {
      ...config,
      receipts: { ...config.receipts, enabled: false },
      streams: { all: { ...config.streams.bank!, s3: { bucket: "payments", prefix: "" } } },
    };
    expect(routeObject(wide, "payments", "_bridge/receipts/a.json")).toEqual({
      stream: "all",
      relative: "_bridge/receipts/a.json",
    });
  });
});

describe("requireStream", () => {
  it("returns the stream", () => {
    expect(requireStream(config, "psp")).toBe(config.streams.psp);
  });

  it("lists the known streams when the name is unknown", () => {
    expect(() => requireStream(config, "nope")).toThrow(UnknownStreamError);
    expect(() => requireStream(config, "nope")).toThrow(
      'unknown stream "nope"; the config defines: bank, other, psp, pullonly',
    );
    expect(() => requireStream(config, "toString")).toThrow(UnknownStreamError);
  });
});
