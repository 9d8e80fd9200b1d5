/** Login sessions in D1. */

/** A row of `sessions`, the columns ListSessions shows. */
export interface SessionRow {
  id: string;
  login_type: number;
  created_at: number;
  expires_at: number;
  renewed_at: number | null;
  revoked_at: number | null;
  country: string;
  postal_code: number;
}
