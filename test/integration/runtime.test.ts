import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { ConfigError } from "../../lambda/bridge/errors";
import { createBridgeRuntime } from "../../lambda/bridge-runtime";
import { runtimeOptions, type HandlerEnv } from "../../lambda/env";

const KEY = "SHA256:pUlCyONl83hPOLjUN/nXCCkNtgc4sAzc+5NMMtG+l/M";

/** The Lambda's runtime loading a config file with BRIDGE_RECEIPTS_PREFIX set: the override meets the file's rules. */
describe("createBridgeRuntime(runtimeOptions(env)): the BRIDGE_RECEIPTS_PREFIX override", () => {
  let dir: string;
  let configLocation: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "bridge-runtime-"));
    configLocation = path.join(dir, "bridge.config.yaml");
    await writeFile(
      configLocation,
      stringify({
        streams: {
          psp: {
            s3: { bucket: "acme-sftp", prefix: "psp/" },
            sftp: { host: "sftp.example", credentials: { secretsManager: "bridge/psp" }, hostKeys: [KEY] },
            push: { from: "outbound/", to: "/IN" },
            pull: { from: "/OUT", to: "inbound/" },
          },
        },
      }),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const runtime = (receiptsPrefix?: string) => {
    const env: HandlerEnv = {
      configLocation,
      cacheTtlMs: 0,
      deadlineMarginMs: 0,
      allowFileCredentials: false,
      receiptsPrefix,
    };
    return createBridgeRuntime(runtimeOptions(env));
  };

  async function configError(receiptsPrefix: string): Promise<ConfigError> {
    const err = await runtime(receiptsPrefix)
      .config()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }

  it("applies a sound override, normalised like the file's own prefix", async () => {
    expect((await runtime("audit/receipts").config()).receipts.prefix).toBe("audit/receipts/");
    expect((await runtime().config()).receipts.prefix).toBe("_bridge/receipts/");
  });

  it("refuses an override inside a push source, naming the variable", async () => {
    const err = await configError("psp/outbound/receipts/");
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.issues).toEqual([
      {
        path: "receipts.prefix",
        message: expect.stringMatching(
          /overlaps streams\.psp\.push\.from.*; receipts\.prefix is "psp\/outbound\/receipts\/" from BRIDGE_RECEIPTS_PREFIX, which overrides the config's$/,
        ),
      },
    ]);
    expect(err.message).toContain(`config ${configLocation} has 1 problem(s)`);
  });

  it("refuses an override inside a pull destination or a stream's prefix, and an unsafe one", async () => {
    expect((await configError("psp/inbound/")).message).toMatch(
      /overlaps streams\.psp\.pull\.to.*BRIDGE_RECEIPTS_PREFIX/,
    );
    expect((await configError("psp/_receipts/")).message).toMatch(
      /lies inside streams\.psp\.s3\.prefix.*BRIDGE_RECEIPTS_PREFIX/,
    );
    expect((await configError("../receipts")).message).toMatch(/"\.\." path segment.*BRIDGE_RECEIPTS_PREFIX/);
  });
});
