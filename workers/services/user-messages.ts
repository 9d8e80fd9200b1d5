/** D1 rows of users and callers as the API's messages (model.UserInfo, UserEntry, Author; api.v1.user.User). */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { UserInfoSchema, UserEntrySchema, RegisterInfoSchema } from "../../proto/gen/model/user_pb";
import type { UserSchema } from "../../proto/gen/api/v1/user/user_pb";
import type { Principal } from "../auth/principal";
import type { ServiceAccountRow } from "../d1/service-accounts";
import { groupsOf, printableName, type UserRow } from "../d1/users";
import { metadataMap } from "../d1/metadata";

export const userInfo = (u: UserRow): MessageInitShape<typeof UserInfoSchema> => ({
  email: u.email ?? "",
  username: u.username ?? "",
  phoneNumber: u.phone_number ?? "",
  createdAt: timestampFromMs(u.created_at),
  groupIds: groupsOf(u),
});

const registerInfo = (u: UserRow): MessageInitShape<typeof RegisterInfoSchema> => ({
  createrId: u.created_by,
  method:
    u.register_method === "signup"
      ? { method: { case: "signup", value: { loginType: u.register_login_type } } }
      : { method: { case: "system", value: {} } },
});

export const userEntry = (u: UserRow): MessageInitShape<typeof UserEntrySchema> => ({
  userId: u.id,
  printableName: printableName(u),
  registerInfo: registerInfo(u),
  verified: Boolean(u.email_verified || u.phone_verified),
  groupIds: groupsOf(u),
  createdAt: timestampFromMs(u.created_at),
});

export const user = (u: UserRow): MessageInitShape<typeof UserSchema> => ({
  userId: u.id,
  userInfo: userInfo(u),
  profile: { firstName: u.first_name, lastName: u.last_name },
  updatedAt: timestampFromMs(u.updated_at),
  registerInfo: registerInfo(u),
  isPhoneVerified: Boolean(u.phone_verified),
  isEmailVerified: Boolean(u.email_verified),
  newSessionsSince: timestampFromMs(u.new_sessions_since),
  metadata: metadataMap(u.metadata),
});

/** model.Author of whoever makes a change, with names cached as they are now. */
export function authorOf(p: Principal) {
  const s = p.subject;
  if (s.type === "user") {
    const u = s.row;
    return { identifier: u.email ?? u.username ?? u.phone_number ?? "", printableName: printableName(u), account: { case: "userId" as const, value: u.id } };
  }
  return { identifier: s.row.name, printableName: s.row.name, account: { case: "serviceAccountId" as const, value: s.row.id } };
}


/** model.ServiceAccountEntry of a service account row. */
export const serviceAccountEntry = (s: ServiceAccountRow) => ({
  serviceAccountId: s.id,
  name: s.name,
  clientId: s.client_id,
  groupIds: groupsOf(s),
  createdAt: timestampFromMs(s.created_at),
  createdBy: JSON.parse(s.created_by) as ReturnType<typeof authorOf>,
});
