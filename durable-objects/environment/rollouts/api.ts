/** What the Worker calls for Deploy and rollouts (api.v1.capsule.Service) on an environment's object: `EnvironmentDO.rollouts()`. */
import { RpcTarget } from "cloudflare:workers";
import { attempt, type Outcome } from "../../../workers/core/outcome";
import type { Author } from "../../contract";
import type { CapsuleRollouts, DeployedCapsule, DeployInput, DeployResult } from "./rollouts";

/** Messages cross as they are (structured clone); refusals as Outcomes, since a thrown ConnectError would lose its code. */
export class RolloutsApi extends RpcTarget {
  constructor(private readonly rollouts: CapsuleRollouts) {
    super();
  }

  /** Deploy: the capsule's next rollout, from its current configuration and the request's changes. */
  deploy(input: DeployInput): Promise<Outcome<DeployResult>> {
    return attempt(() => this.rollouts.deploy(input));
  }

  /** AbortRollout of a rollout of this environment. */
  abort(projectId: string, capsuleId: string, rolloutId: number, createdBy: Author): Promise<Outcome<void>> {
    return attempt(() => this.rollouts.abort(projectId, capsuleId, rolloutId, createdBy));
  }

  /** StopRollout: the runner removes the rollout's resources, and the capsule no longer runs it. */
  stop(projectId: string, capsuleId: string, rolloutId: number, createdBy: Author): Promise<Outcome<void>> {
    return attempt(() => this.rollouts.stop(projectId, capsuleId, rolloutId, createdBy));
  }

  /** A capsule's rollout ids in this environment, newest first unless `ascending`, and how many there are. */
  list(projectId: string, capsuleId: string, offset: number, limit: number, ascending: boolean): { ids: number[]; total: number } {
    return this.rollouts.list(projectId, capsuleId, offset, limit, ascending);
  }

  /** The capsule's current rollout here (what new deploys build on), or null before the first. */
  current(projectId: string, capsuleId: string): number | null {
    return this.rollouts.capsuleState(projectId, capsuleId).current_rollout_id;
  }

  /** Capsules with a rollout the runner should run here, by project then capsule. */
  deployed(): DeployedCapsule[] {
    return this.rollouts.deployed();
  }
}
