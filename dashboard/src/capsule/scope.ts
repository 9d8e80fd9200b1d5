/** The capsule and environment a panel of the capsule page works on. */
export interface CapsuleScope {
  project: string;
  capsule: string;
  environment: string;
}
