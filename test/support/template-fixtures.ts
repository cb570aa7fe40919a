import { join } from "node:path";
import { loadCfnTemplate } from "./cfn-yaml";
import { evaluateTemplate, type ResolvedTemplate } from "./template-eval";

/** The repository's templates, parsed once per test file, and the parameters they need to evaluate. */

const TEMPLATES = join(__dirname, "../../templates");
export const bridge = loadCfnTemplate(join(TEMPLATES, "bridge.yaml"));
export const sftpServer = loadCfnTemplate(join(TEMPLATES, "sftp-server.yaml"));
export const deployRoles = loadCfnTemplate(join(TEMPLATES, "deploy-roles.yaml"));

/**
 * What every test deploy of the bridge gives: the parameters without a default, and a non-production Environment
 * (Environment defaults to production, which refuses to deploy without an alarm topic).
 */
export const BRIDGE_PARAMS = { DeployBucket: "deploys", CodeKey: "lambda/0123abcd.zip", Environment: "staging" };
/** The SFTP server template's parameters without a default. */
export const SFTP_PARAMS = { UserPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests smoke@test" };

/** The deploy roles template's parameters without a default, for the staging environment. */
export const DEPLOY_ROLES_PARAMS = {
  Environment: "staging",
  GitHubRepository: "acme/s3-sftp-bridge",
  DeployBucket: "acme-deploys",
  DeployPrefix: "release/",
  SecretsPrefix: "bridge-staging/",
  SsmParameterPath: "/bridge-staging/",
};

export function evalBridge(parameters: Record<string, string> = {}): ResolvedTemplate {
  return evaluateTemplate(bridge, { parameters: { ...BRIDGE_PARAMS, ...parameters } });
}

export function evalSftpServer(parameters: Record<string, string> = {}): ResolvedTemplate {
  return evaluateTemplate(sftpServer, { parameters: { ...SFTP_PARAMS, ...parameters } });
}

export function evalDeployRoles(parameters: Record<string, string> = {}): ResolvedTemplate {
  return evaluateTemplate(deployRoles, { parameters: { ...DEPLOY_ROLES_PARAMS, ...parameters } });
}
