// Assembles authentication for one registry process: users (config + reloaded file), signing
// keys, token service, policy, login limiter, the Access the routes call and the /token routes.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config/config.js';
import type { AuditSink } from '../../audit/audit-log.js';
import type { Logger } from '../../log.js';
import type { Access } from './access.js';
import { AccessControl } from './access-control.js';
import { BoundedQueue } from '../../bounded-queue.js';
import { Authenticator } from './authenticate.js';
import { createFirstAdmin } from './first-admin.js';
import type { Database } from '../../database/database.js';
import { FileAccountsStore, type AccountsStore } from './accounts-store.js';
import { PostgresAccountsStore } from './accounts-postgres.js';
import { KeyRing } from './keys.js';
import { PostgresKeyStorage } from './keys-postgres.js';
import { Policy } from './policy.js';
import { LoginLimiter } from './rate-limit.js';
import { tokenRoutes } from './token-route.js';
import { TokenService, type IssuedToken } from './tokens.js';
import { UserStore } from './users.js';

export interface Auth {
  access: Access;
  policy: Policy;
  users: UserStore;
  tokens: TokenService;
  /** For the pull-secret controller. */
  mintNamespaceToken(namespace: string): Promise<IssuedToken>;
  currentKeyId(): string;
  /** Registers `GET /token` and `POST /token`. */
  routes(app: FastifyInstance): Promise<void>;
  close(): void;
}

export interface AuthOptions {
  logger: Logger;
  /** Where the first admin's password is shown once (default: stderr, not the log). */
  announce?: (message: string) => void;
  /** How often the users file (or the database's change counter) is polled for changes. */
  reloadIntervalMs?: number;
  /** Set when database.url is: users, teams and signing keys are kept there, shared by replicas. */
  database?: Database;
  /** The audit trail: logins, and the first admin's creation. */
  audit?: AuditSink;
}

/** The signing keys: in the database when there is one, else in auth.keysDir. */
export function openKeyRing(config: Config, database?: Database): Promise<KeyRing> {
  return database ? KeyRing.openStorage(new PostgresKeyStorage(database)) : KeyRing.open(config.auth.keysDir);
}

/** Users and teams: in the database when there is one, else in the users file auth.usersFile. */
export function accountsStore(config: Config, database?: Database): AccountsStore {
  return database ? new PostgresAccountsStore(database) : new FileAccountsStore(config.auth.usersFile);
}

export function tokenService(config: Config, keys: KeyRing): TokenService {
  return new TokenService(keys, {
    issuer: config.auth.issuer,
    service: config.auth.service,
    accessTTLMs: config.auth.tokenTTLMs,
    refreshTTLMs: config.auth.refreshTokenTTLMs,
    namespaceTTLMs: config.controller.tokenTTLMs,
  });
}

/** The token service alone, for processes that mint namespace tokens without serving HTTP. */
export async function openTokenService(config: Config, database?: Database): Promise<TokenService> {
  return tokenService(config, await openKeyRing(config, database));
}

export async function createAuth(config: Config, options: AuthOptions): Promise<Auth> {
  const log = options.logger.child({ module: 'auth' });
  const users = new UserStore(config.auth.users, accountsStore(config, options.database));
  await users.load();
  if (users.size === 0) {
    const admin = await createFirstAdmin(users.store, config.storage.root);
    if (admin) {
      const announce = options.announce ?? ((m: string) => process.stderr.write(m));
      announce(
        `\nlayover: no users were configured, so user "${admin.name}" was created with password\n\n    ${admin.password}\n\n`
          + `It is not shown again, and is kept in ${admin.passwordFile} (mode 0600): read it from there.\n`
          + `Change it with: layover user passwd ${admin.name}\n\n`,
      );
      log.warn({ user: admin.name, passwordFile: admin.passwordFile }, 'created the first admin user');
      options.audit?.({ actor: 'layover', action: 'user.add', target: admin.name, outcome: 'ok', detail: { admin: true, firstAdmin: true } });
    }
    await users.load();
  }
  users.watch((err) => {
    if (err) log.error({ accounts: users.store.location, problem: err.message }, 'users not reloaded; previous users stay in force');
    else log.info({ accounts: users.store.location, users: users.size }, 'users reloaded');
  }, options.reloadIntervalMs);

  const keys = await openKeyRing(config, options.database);
  keys.watch((err) => log.error({ problem: err.message }, 'signing keys not reloaded'));
  const tokens = tokenService(config, keys);
  const policy = new Policy(config);
  const limiter = new LoginLimiter(config.auth.rateLimit);
  const hashing = new BoundedQueue({ concurrency: config.auth.passwordChecks.concurrency, maxWaiting: config.auth.passwordChecks.queue });
  const authn = new Authenticator(users, tokens, limiter, hashing);
  const access = new AccessControl(config, policy, authn);

  return {
    access,
    policy,
    users,
    tokens,
    mintNamespaceToken: (namespace) => tokens.mintNamespaceToken(namespace),
    currentKeyId: () => tokens.currentKeyId(),
    async routes(app) {
      await app.register(tokenRoutes, { config, policy, authn, ...(options.audit ? { audit: options.audit } : {}) });
    },
    close() {
      users.close();
      keys.close();
    },
  };
}
