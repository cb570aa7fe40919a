import { join } from "node:path";
import { loadCfnTemplate } from "./cfn-yaml";
import { evaluateTemplate, type ResolvedTemplate } from "./template-eval";

/** The repository's templates, parsed once per test file, and the parameters they need to evaluate. */

const TEMPLATES = join(__dirname, "../../templates");
export const bridge = loadCfnTemplate(join(TEMPLATES, "bridge.yaml"));
export const sftpServer = loadCfnTemplate(join(TEMPLATES, "sftp-server.yaml"));

/**
 * What every test deploy of the bridge gives: the parameters without a default, and a non-production Environment
 * (Environment defaults to production, which refuses to deploy without an alarm topic).
 */
export const BRIDGE_PARAMS = { DeployBucket: "deploys", CodeKey: "lambda/0123abcd.zip", Environment: "staging" };
/** The SFTP server template's parameters without a default. */
export const SFTP_PARAMS = { UserPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests smoke@test" };

export function evalBridge(parameters: Record<string, string> = {}): ResolvedTemplate {
  return evaluateTemplate(bridge, { parameters: { ...BRIDGE_PARAMS, ...parameters } });
}

export function evalSftpServer(parameters: Record<string, string> = {}): ResolvedTemplate {
  return evaluateTemplate(sftpServer, { parameters: { ...SFTP_PARAMS, ...parameters } });
}
