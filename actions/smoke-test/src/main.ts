import * as core from "@actions/core";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { S3Client } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SSMClient } from "@aws-sdk/client-ssm";
import {
  connectSftp,
  createCredentialResolver,
  doneDirOf,
  pullDestPrefix,
  pushSourcePrefix,
  sftpTargetFor,
  type CredentialsRef,
  type ResolvedCredentials,
  type SftpSession,
  type StreamConfig,
} from "../../../lambda/bridge";
import { readRegion } from "../../lib/aws";
import { readDeploymentInputs, resolveDeployment } from "../../lib/deployment";
import { loadStream } from "../../lib/stream-config";
import { errorMessage } from "../../lib/errors";
import { Inputs } from "../../lib/inputs";
import { invokeBridge } from "../../lib/lambda";
import { actionsLogger, maskCredentials } from "../../lib/log";
import { runSmokeTest, type Direction, type SmokeTarget } from "./smoke";
import { smokeSummary } from "./summary";

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
const REFERENCE = /^(secretsManager|ssmParameter|s3Object|file):(.+)$/;

export async function run(): Promise<void> {
  const cleanupClients: { destroy(): void }[] = [];
  let sftp: Promise<SftpSession> | undefined;
  try {
    const secrets = ["sftp-private-key", "sftp-password", "sftp-passphrase"].map((n) => core.getInput(n));
    maskCredentials((v) => core.setSecret(v), process.env, secrets);
    const inputs = new Inputs((name) => core.getInput(name));
    const deploymentInputs = readDeploymentInputs(inputs, { needsConfig: true });
    const streamName = inputs.required("stream", "the stream to exercise, as named in the bridge config");
    const which = inputs.choice("directions", ["both", "push", "pull"] as const, "both");
    const pushTrigger = inputs.choice("push-trigger", ["event", "invoke"] as const, "event");
    const timeoutSeconds = inputs.integer("timeout-seconds", { fallback: 180, min: 5, max: 3600 });
    const pollSeconds = inputs.integer("poll-interval-seconds", { fallback: 2, min: 1, max: 60 });
    const sftpHost = inputs.optional("sftp-host");
    const sftpPort = inputs.integer("sftp-port", { fallback: 0, min: 1, max: 65535 });
    const sftpUser = inputs.optional("sftp-username");
    const hostKeys = inputs.list("sftp-host-keys");
    for (const k of hostKeys) {
      if (!FINGERPRINT.test(k)) inputs.fail("sftp-host-keys", `${JSON.stringify(k)} is not a SHA256:... fingerprint`);
    }
    const rawKey = inputs.optional("sftp-private-key");
    const rawPassword = inputs.optional("sftp-password");
    const passphrase = inputs.optional("sftp-passphrase");
    const reference = inputs.optional("sftp-credentials");
    let credentialsRef: CredentialsRef | undefined;
    if (reference) {
      const m = REFERENCE.exec(reference);
      if (!m) {
        inputs.fail(
          "sftp-credentials",
          "must be secretsManager:<id>, ssmParameter:<name>, s3Object:s3://bucket/key or file:<path>",
        );
      } else credentialsRef = { [m[1]!]: m[2]! } as CredentialsRef;
    }
    if (reference && (rawKey || rawPassword)) {
      inputs.fail("sftp-credentials", "give a reference or sftp-private-key/sftp-password, not both");
    }
    const region = readRegion(inputs, process.env);
    inputs.finish();

    const forcePathStyle = Boolean(process.env.AWS_ENDPOINT_URL_S3);
    const s3 = new S3Client({ region, forcePathStyle });
    const ssm = new SSMClient({ region });
    const lambda = new LambdaClient({ region });
    cleanupClients.push(s3, ssm, lambda);
    const deployment = await resolveDeployment(deploymentInputs, () => new CloudFormationClient({ region }));
    if (!deployment.configLocation) {
      throw new Error(`the stack ${deploymentInputs.stackName} has no ConfigLocation output; set the config input`);
    }
    const { stream } = await loadStream(deployment.configLocation, streamName, { s3, ssm });
    const target = smokeTarget(streamName, stream, deployment.functionName, {
      host: sftpHost,
      port: sftpPort || undefined,
    });
    if (deployment.bucket && deployment.bucket !== stream.s3.bucket) {
      core.warning(
        `the stack's bucket ${deployment.bucket} is not stream ${streamName}'s bucket ${stream.s3.bucket}; testing the stream's`,
      );
    }

    const logger = actionsLogger(core);
    const resolver = createCredentialResolver({
      secretsManager: new SecretsManagerClient({ region }),
      ssm,
      s3,
      allowFiles: true,
      ttlMs: 0,
    });
    const credentials: ResolvedCredentials =
      rawKey || rawPassword
        ? { privateKey: rawKey, password: rawPassword, passphrase }
        : await resolver.resolve(credentialsRef ?? stream.sftp.credentials, streamName);
    maskCredentials((v) => core.setSecret(v), {}, [
      credentials.password,
      credentials.passphrase,
      credentials.privateKey,
    ]);
    // The stream's own SFTP settings, with the inputs' overrides on top.
    const configured = sftpTargetFor(streamName, stream.sftp, credentials);
    const sftpTarget = {
      ...configured,
      host: sftpHost ?? configured.host,
      port: sftpPort || configured.port,
      username: sftpUser ?? configured.username ?? credentials.username,
      hostKeys: hostKeys.length ? hostKeys : configured.hostKeys,
    };

    const directions: Direction[] = which === "both" ? ["push", "pull"] : [which];
    core.info(
      `smoke test of stream ${streamName} through ${deployment.functionName}: ${directions.join(" and ")}, ` +
        `verified on sftp://${sftpTarget.host}:${sftpTarget.port}`,
    );
    const result = await runSmokeTest(
      target,
      {
        s3,
        invoke: (event) => invokeBridge(lambda, deployment.functionName, event),
        sftp: () => (sftp ??= connectSftp(sftpTarget, logger)),
        logger,
      },
      { directions, timeoutMs: timeoutSeconds * 1000, pollMs: pollSeconds * 1000, pushTrigger },
    );

    const latency = (d: Direction) => {
      const steps = result.steps.filter((s) => s.direction === d);
      return steps.length && steps.every((s) => s.ok) ? String(steps[steps.length - 1]!.latencyMs) : "";
    };
    core.setOutput("result", result.ok ? "passed" : "failed");
    core.setOutput("run-id", result.runId);
    core.setOutput("push-latency-ms", latency("push"));
    core.setOutput("pull-latency-ms", latency("pull"));
    core.setOutput("steps", JSON.stringify(result.steps));
    if (process.env.GITHUB_STEP_SUMMARY) {
      await core.summary.addRaw(smokeSummary(target, result), true).write();
    }
    const leftovers = result.cleanup.filter((c) => !c.ok);
    if (!result.ok) {
      core.setFailed(
        `smoke test failed: ${result.failure ?? "a step failed"}` +
          (leftovers.length ? `; could not clean up ${leftovers.map((c) => c.what).join(", ")}` : ""),
      );
    } else if (leftovers.length) {
      core.warning(
        `smoke test passed, but could not clean up: ${leftovers.map((c) => `${c.what} (${c.detail})`).join(", ")}`,
      );
    }
  } catch (err) {
    core.setFailed(`smoke test: ${errorMessage(err)}`);
  } finally {
    await sftp?.then((s) => s.close()).catch(() => undefined);
    for (const c of cleanupClients) c.destroy();
  }
}

/** The stream's paths as the bridge computes them, so the test looks exactly where the bridge writes. */
export function smokeTarget(
  name: string,
  stream: StreamConfig,
  functionName: string,
  sftp: { host?: string; port?: number },
): SmokeTarget {
  const pushSource = pushSourcePrefix(stream);
  const pullDest = pullDestPrefix(stream);
  return {
    stream: name,
    bucket: stream.s3.bucket,
    functionName,
    sftpLabel: `sftp://${sftp.host ?? stream.sftp.host}:${sftp.port ?? stream.sftp.port}`,
    push:
      stream.push && pushSource !== undefined
        ? {
            source: pushSource,
            to: stream.push.to,
            patterns: stream.push.patterns,
          }
        : undefined,
    pull:
      stream.pull && pullDest !== undefined
        ? {
            from: stream.pull.from,
            dest: pullDest,
            patterns: stream.pull.patterns,
            doneDir: stream.pull.after === "move" ? doneDirOf(stream.pull) : undefined,
            minAgeSeconds: stream.pull.minAgeSeconds,
          }
        : undefined,
  };
}
