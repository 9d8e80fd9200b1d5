/** api.v1.authentication.Service: sign-up, login, tokens, verification and password reset. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/authentication/service_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { checkCode, CodePurpose, issueCode, liveCode } from "../auth/codes";
import { identifierOf } from "../auth/identifiers";
import { sha256Hex, timingSafeEqual } from "../core/encoding";
import { checkPasswordPolicy } from "../core/password-policy";
import { hashPassword, type StoredHash, verifyAgainstNothing, verifyPassword } from "../core/passwords";
import { newSession, refreshSession, tokensForNewSession } from "../auth/sessions";
import { countLoginAttempt } from "../auth/throttle";
import { mintPurposeToken, verifyPurposeToken } from "../core/tokens";
import { defaults } from "../core/config";
import { installationHmacKey } from "../d1/installation-keys";
import { findClientCredentials } from "../d1/service-accounts";
import { insertLoginSession, revokeSession } from "../d1/sessions";
import {
  deleteUser,
  findUser,
  getUser,
  groupsOf,
  type Identifier,
  registerUser,
  resetPasswordWithCode,
  setPasswordHash,
  type UserRow,
  verifyEmailWithCode,
} from "../d1/users";
import { LoginType, loadSettingsForSignUp, loadUserSettings, renderTemplate, type UserSettings } from "../d1/settings";
import type { Env } from "../env";
import { afterResponse, envOf, kRequest, principalOf } from "./context";
import { failedPrecondition, invalidArgument, notFound, permissionDenied, unauthenticated } from "../core/errors";
import { enqueueEmail } from "../outbox/outbox";
import { defineService } from "./registry";
import { userInfo } from "./user-messages";

const loginTypeOf: Record<Identifier["kind"], number> = {
  email: LoginType.EMAIL_PASSWORD,
  username: LoginType.USERNAME_PASSWORD,
  phone_number: LoginType.PHONE_PASSWORD,
};

const mechanismName: Record<number, string> = {
  [LoginType.EMAIL_PASSWORD]: "email and password",
  [LoginType.USERNAME_PASSWORD]: "username and password",
  [LoginType.PHONE_PASSWORD]: "phone number and password",
};

function requireMechanism(s: UserSettings, loginType: number) {
  if (!s.loginMechanisms.includes(loginType)) {
    throw failedPrecondition(`login with ${mechanismName[loginType]} is disabled on this installation`);
  }
}

/** Sends a code by email through the outbox; the purpose token ties the answer to this code. */
async function sendCode(env: Env, ctx: Parameters<typeof afterResponse>[0], s: UserSettings, u: UserRow, purpose: CodePurpose) {
  if (!u.email) throw failedPrecondition("this user has no email address to send a code to");
  const { id, code } = await issueCode(env, u.id, purpose, s.verificationCodeTtlMs);
  const template = purpose === CodePurpose.EMAIL ? "verifyEmail" : "resetPasswordEmail";
  const mail = renderTemplate(s, template, {
    Name: env.PUBLIC_NAME ?? defaults.publicName,
    Identifier: u.email,
    Code: code,
    Minutes: String(Math.round(s.verificationCodeTtlMs / 60_000)),
  });
  const { delivery } = await enqueueEmail(env, { to: u.email, ...mail }, s);
  if (delivery) afterResponse(ctx, delivery);
  return mintPurposeToken(await installationHmacKey(env), `code:${purpose}`, id, s.verificationCodeTtlMs);
}

/** Login's answer to an unknown identifier and to a wrong password alike. */
const wrongCredentials = () => unauthenticated("the identifier or the password is wrong");

/** Finds the pending code either from the purpose token or from the user the request names. */
async function codeOwner(env: Env, purpose: CodePurpose, token: string, identifier?: Identifier) {
  if (token) return { codeId: await verifyPurposeToken(await installationHmacKey(env), token, `code:${purpose}`) };
  if (!identifier) throw invalidArgument("token", "send the token returned when the code was sent, or the user's identifier");
  const u = await findUser(env, identifier);
  // An unknown user is one without a pending code: the answer must not tell them apart.
  return { userId: u?.id ?? crypto.randomUUID() };
}

export const authentication = defineService(
  Service,
  {
    login: { public: true },
    register: { public: true },
    refreshToken: { public: true },
    getAuthConfig: { public: true },
    sendVerificationEmail: { public: true },
    verifyEmail: { public: true },
    verifyPhoneNumber: { public: true },
    sendPasswordReset: { public: true },
    resetPassword: { public: true },
    logout: { authenticated: true },
    get: { authenticated: true },
    delete: { authenticated: true },
  },
  {
    async login(req, ctx) {
      const env = envOf(ctx);
      const s = await loadUserSettings(env);
      const request = ctx.values.get(kRequest);
      if (req.method.case === "clientCredentials") {
        const { clientId, clientSecret } = req.method.value;
        if (!clientId) throw invalidArgument("client_credentials.client_id", "is required");
        await countLoginAttempt(env, `client:${clientId}`);
        const sa = await findClientCredentials(env, clientId);
        if (!sa || !timingSafeEqual(await sha256Hex(clientSecret), sa.secret_hash)) {
          throw unauthenticated("client id or secret is wrong");
        }
        const subject = { type: "service_account" as const, id: sa.id };
        const session = newSession(subject, 0, s, request);
        await insertLoginSession(env, session, `client:${clientId}`);
        return { token: await tokensForNewSession(env, subject, session.id, s), userId: sa.id };
      }
      if (req.method.case !== "userPassword") throw invalidArgument("method", "set user_password or client_credentials");
      const identifier = identifierOf(req.method.value.identifier?.identifier, "user_password.identifier");
      const loginType = loginTypeOf[identifier.kind];
      requireMechanism(s, loginType);
      const throttleKey = `${identifier.kind}:${identifier.value}`;
      await countLoginAttempt(env, throttleKey);
      const u = await findUser(env, identifier);
      const stored = u?.password_hash ? (JSON.parse(u.password_hash) as StoredHash) : undefined;
      // An unknown identifier costs a hash and gets the answer a wrong password gets, so that
      // Login cannot tell anyone which accounts exist.
      if (!u || !stored) {
        await verifyAgainstNothing(req.method.value.password, s.passwordHashing);
        throw wrongCredentials();
      }
      if (!(await verifyPassword(req.method.value.password, stored))) throw wrongCredentials();
      if (s.isVerifiedEmailRequired && u.email && !u.email_verified) {
        throw failedPrecondition("the email address is not verified yet: verify it with the code sent by SendVerificationEmail");
      }
      const subject = { type: "user" as const, id: u.id };
      const session = newSession(subject, loginType, s, request);
      await insertLoginSession(env, session, throttleKey);
      if (stored.alg !== ("bcrypt" in s.passwordHashing ? "bcrypt" : "scrypt")) {
        // New hashes use the configured algorithm: move this user over now that we know the password.
        afterResponse(ctx, rehash(env, u.id, req.method.value.password, s));
      }
      return { token: await tokensForNewSession(env, subject, session.id, s), userId: u.id, userInfo: userInfo(u) };
    },

    async register(req, ctx) {
      const env = envOf(ctx);
      const s = await loadUserSettings(env);
      if (req.method.case !== "userPassword") throw invalidArgument("user_password", "is required");
      const { password } = req.method.value;
      const identifier = identifierOf(req.method.value.identifier?.identifier, "user_password.identifier");
      const loginType = loginTypeOf[identifier.kind];
      requireMechanism(s, loginType);
      checkPasswordPolicy(password, "user_password.password");
      const hash = JSON.stringify(await hashPassword(password, s.passwordHashing));
      const id = crypto.randomUUID();
      const now = Date.now();
      const subject = { type: "user" as const, id };
      const session = newSession(subject, loginType, s, ctx.values.get(kRequest));
      const needsVerification = s.isVerifiedEmailRequired && identifier.kind === "email";
      const registered = await registerUser(
        env,
        { id, identifier, passwordHash: hash, loginType, now, open: s.allowRegister },
        needsVerification ? undefined : session,
      );
      if (!registered) {
        throw permissionDenied("self-registration is disabled: ask an administrator to create your account");
      }
      const u = (await getUser(env, id))!;
      if (needsVerification) afterResponse(ctx, sendCode(env, ctx, s, u, CodePurpose.EMAIL).catch((e) => console.error(e)));
      if (s.sendWelcomeMail && u.email) {
        const mail = renderTemplate(s, "welcomeEmail", { Name: env.PUBLIC_NAME ?? defaults.publicName, Identifier: u.email });
        const { delivery } = await enqueueEmail(env, { to: u.email, ...mail }, s);
        if (delivery) afterResponse(ctx, delivery);
      }
      return {
        // With verification required, tokens come from Login once the email is verified.
        token: needsVerification ? undefined : await tokensForNewSession(env, subject, session.id, s),
        userId: id,
        userInfo: userInfo(u),
      };
    },

    async logout(_req, ctx) {
      const p = principalOf(ctx);
      await revokeSession(envOf(ctx), p.sessionId);
      return {};
    },

    async get(_req, ctx) {
      const { subject } = principalOf(ctx);
      if (subject.type === "service_account") {
        const sa = subject.row;
        return { userId: sa.id, userInfo: { username: sa.name, createdAt: timestampFromMs(sa.created_at), groupIds: groupsOf(sa) } };
      }
      return { userId: subject.row.id, userInfo: userInfo(subject.row) };
    },

    async delete(_req, ctx) {
      const env = envOf(ctx);
      const p = principalOf(ctx);
      if (p.subjectType !== "user") throw failedPrecondition("a service account cannot delete itself; delete it with service_account.Delete");
      await deleteUser(env, p.subjectId);
      return {};
    },

    async refreshToken(req, ctx) {
      const env = envOf(ctx);
      if (!req.refreshToken) throw invalidArgument("refresh_token", "is required");
      return { token: await refreshSession(env, req.refreshToken, await loadUserSettings(env)) };
    },

    async getAuthConfig(_req, ctx) {
      const env = envOf(ctx);
      const { settings: s, anyUser } = await loadSettingsForSignUp(env);
      return {
        name: env.PUBLIC_NAME ?? defaults.publicName,
        logoUrl: env.PUBLIC_LOGO_URL ?? "",
        validatePassword: true,
        loginTypes: s.loginMechanisms,
        allowsRegister: s.allowRegister || !anyUser,
        ssoOptions: [],
      };
    },

    async sendVerificationEmail(req, ctx) {
      const env = envOf(ctx);
      const u = await findUser(env, identifierOf(req.identifier?.identifier));
      if (!u) throw notFound("user");
      if (u.email_verified) throw failedPrecondition("the email address is already verified");
      return { token: await sendCode(env, ctx, await loadUserSettings(env), u, CodePurpose.EMAIL) };
    },

    async verifyEmail(req, ctx) {
      const env = envOf(ctx);
      const identifier = req.email ? identifierOf({ case: "email", value: req.email }) : undefined;
      const owner = await codeOwner(env, CodePurpose.EMAIL, req.token, identifier);
      const checked = await checkCode(env, owner, CodePurpose.EMAIL, req.code);
      const u = await getUser(env, checked.userId);
      if (!u) throw notFound("user");
      if (identifier && u.email !== identifier.value) throw permissionDenied("the code was not sent to this email address");
      if (!(await verifyEmailWithCode(env, checked.codeId, u.id))) throw failedPrecondition("the code was already used");
      return {};
    },

    async verifyPhoneNumber(req, ctx) {
      const env = envOf(ctx);
      const u = await findUser(env, identifierOf({ case: "phoneNumber", value: req.phoneNumber }));
      if (!u) throw notFound("user");
      throw failedPrecondition("phone numbers cannot be verified: edgeplane sends no text messages (text is deprecated in this API)");
    },

    async sendPasswordReset(req, ctx) {
      const env = envOf(ctx);
      const identifier = identifierOf(req.identifier?.identifier);
      const [u, s] = await Promise.all([findUser(env, identifier), loadUserSettings(env)]);
      // Whether the account exists or not, the answer is a token. An unknown identifier (or an
      // account without an email address) gets one for a code that does not exist, and nothing is sent.
      const purpose = `code:${CodePurpose.RESET_PASSWORD}`;
      if (!u?.email) return { token: await mintPurposeToken(await installationHmacKey(env), purpose, crypto.randomUUID(), s.verificationCodeTtlMs) };
      // Asked again within the resend interval: the code sent moments ago stays the one to use.
      const live = await liveCode(env, u.id, CodePurpose.RESET_PASSWORD);
      if (live && live.fresh) return { token: await mintPurposeToken(await installationHmacKey(env), purpose, live.id, s.verificationCodeTtlMs) };
      return { token: await sendCode(env, ctx, s, u, CodePurpose.RESET_PASSWORD) };
    },

    async resetPassword(req, ctx) {
      const env = envOf(ctx);
      checkPasswordPolicy(req.newPassword, "new_password");
      const identifier = req.identifier?.identifier?.case ? identifierOf(req.identifier.identifier) : undefined;
      const owner = await codeOwner(env, CodePurpose.RESET_PASSWORD, req.token, identifier);
      // No code, a wrong, expired or burnt one: one answer, which says nothing about the account.
      const checked = await checkCode(env, owner, CodePurpose.RESET_PASSWORD, req.code).catch((err: unknown) => {
        throw ConnectError.from(err).code === Code.Internal ? err : permissionDenied("the code is wrong or no longer valid: ask for a new one");
      });
      const s = await loadUserSettings(env);
      const hash = JSON.stringify(await hashPassword(req.newPassword, s.passwordHashing));
      // The password changes only if this request consumed the code; every session ends with it.
      if (!(await resetPasswordWithCode(env, checked.codeId, checked.userId, hash))) throw failedPrecondition("the code was already used");
      return {};
    },
  },
);

async function rehash(env: Env, userId: string, password: string, s: UserSettings) {
  const hash = JSON.stringify(await hashPassword(password, s.passwordHashing));
  await setPasswordHash(env, userId, hash);
}
