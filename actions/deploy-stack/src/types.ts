import { ActionError } from "../../lib/errors";

export type Mode = "deploy" | "plan" | "delete";

export type Outcome =
  /** Stack created by executing a CREATE change set. */
  | "created"
  | "updated"
  /** CloudFormation found nothing to change; the empty change set was deleted. */
  | "no-changes"
  /** plan mode: the change set exists and was not executed. */
  | "planned"
  | "deleted"
  /** delete mode on a stack that does not exist: nothing to do. */
  | "absent";

export interface ChangeRow {
  action: string;
  logicalId: string;
  resourceType: string;
  physicalId?: string;
  /** True, False or Conditional, for Modify only. */
  replacement?: string;
  /** What about the resource changes (Properties, Tags, Metadata...). */
  scope: string[];
}

export interface ChangeSetInfo {
  name: string;
  id?: string;
  type: "CREATE" | "UPDATE";
  changes: ChangeRow[];
}

export interface EventRow {
  id: string;
  timestamp: Date;
  logicalId: string;
  resourceType: string;
  status: string;
  reason?: string;
}

export interface StackResult {
  mode: Mode;
  outcome: Outcome;
  stackName: string;
  stackId?: string;
  status?: string;
  changeSet?: ChangeSetInfo;
  /** The stack was in ROLLBACK_COMPLETE and was deleted before being created again (or would be, in plan mode). */
  recreated: boolean;
  outputs: Record<string, string>;
  /** The stack's parameter values when the step ended, as CloudFormation reports them (NoEcho ones masked). */
  parameters: Record<string, string>;
  durationMs: number;
  notes: string[];
}

export type DeployErrorCode =
  | "TEMPLATE_INVALID"
  | "PARAMETERS_INVALID"
  | "CHANGE_SET_FAILED"
  | "STACK_OPERATION_FAILED"
  | "STACK_STATE"
  | "TIMEOUT"
  | "AWS_CALL_FAILED";

/**
 * A deploy that did not reach its goal. It carries what was learnt on the way (the change set, the failed resources,
 * the status) so the summary and the PR comment can show them, not just the message.
 */
export class DeployError extends ActionError {
  readonly stackName: string;
  readonly status?: string;
  readonly failures: EventRow[];
  readonly changeSet?: ChangeSetInfo;

  constructor(
    code: DeployErrorCode,
    message: string,
    details: { stackName: string; status?: string; failures?: EventRow[]; changeSet?: ChangeSetInfo; cause?: unknown },
  ) {
    super(code, message, { cause: details.cause });
    this.stackName = details.stackName;
    this.status = details.status;
    this.failures = details.failures ?? [];
    this.changeSet = details.changeSet;
  }
}
