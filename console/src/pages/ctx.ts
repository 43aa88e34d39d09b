export interface Ctx {
  role: "admin" | "operator" | "viewer";
  /** operator or admin: deploy, roll back, reset quotas. */
  canOperate: boolean;
  /** admin: tokens, enrollment, labels. */
  isAdmin: boolean;
  onLeave(fn: () => void): void;
  go(hash: string): void;
}
