/** D1 user rows as the API's messages (model.UserInfo, model.UserEntry, api.v1.user.User). */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { UserInfoSchema, UserEntrySchema, RegisterInfoSchema } from "../../proto/gen/model/user_pb";
import type { UserSchema } from "../../proto/gen/api/v1/user/user_pb";
import { printableName, type UserRow } from "../db/users";
import { unb64 } from "../auth/passwords";

export const userInfo = (u: UserRow, groupIds: string[]): MessageInitShape<typeof UserInfoSchema> => ({
  email: u.email ?? "",
  username: u.username ?? "",
  phoneNumber: u.phone_number ?? "",
  createdAt: timestampFromMs(u.created_at),
  groupIds,
});

const registerInfo = (u: UserRow): MessageInitShape<typeof RegisterInfoSchema> => ({
  createrId: u.created_by,
  method:
    u.register_method === "signup"
      ? { method: { case: "signup", value: { loginType: u.register_login_type } } }
      : { method: { case: "system", value: {} } },
});

export const userEntry = (u: UserRow, groupIds: string[]): MessageInitShape<typeof UserEntrySchema> => ({
  userId: u.id,
  printableName: printableName(u),
  registerInfo: registerInfo(u),
  verified: Boolean(u.email_verified || u.phone_verified),
  groupIds,
  createdAt: timestampFromMs(u.created_at),
});

export const user = (u: UserRow, groupIds: string[]): MessageInitShape<typeof UserSchema> => ({
  userId: u.id,
  userInfo: userInfo(u, groupIds),
  profile: { firstName: u.first_name, lastName: u.last_name },
  updatedAt: timestampFromMs(u.updated_at),
  registerInfo: registerInfo(u),
  isPhoneVerified: Boolean(u.phone_verified),
  isEmailVerified: Boolean(u.email_verified),
  newSessionsSince: timestampFromMs(u.new_sessions_since),
  metadata: Object.fromEntries(Object.entries(JSON.parse(u.metadata) as Record<string, string>).map(([k, v]) => [k, unb64(v)])),
});
