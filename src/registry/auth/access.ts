// The one interface between the Distribution routes and authentication/authorisation.
// Routes say which repository and actions a request needs; an Access decides.
import type { FastifyRequest } from 'fastify';
import type { Action } from '../../config/config.js';

export type { Action };

export type Principal =
  | { kind: 'user'; name: string; admin: boolean; teams: string[] }
  | { kind: 'namespace'; name: string; admin: false; teams: [] }
  | { kind: 'anonymous'; name: ''; admin: false; teams: [] };

export const ANONYMOUS: Principal = { kind: 'anonymous', name: '', admin: false, teams: [] };

export interface Access {
  /**
   * Authenticates the request and checks that it may do every action on `repository`
   * (undefined: the API root `/v2/` or the catalog, which need only authentication).
   * Throws RegistryError UNAUTHORIZED (with a WWW-Authenticate challenge naming the scope)
   * or DENIED; returns the principal otherwise.
   */
  check(req: FastifyRequest, repository: string | undefined, actions: Action[]): Promise<Principal>;
  /** Whether an already authenticated principal may do `action` on `repository`. */
  allows(principal: Principal, repository: string, action: Action): boolean;
}

/** Authentication switched off (`auth.enabled: false`): everyone may do everything. */
export const openAccess: Access = {
  async check() {
    return ANONYMOUS;
  },
  allows() {
    return true;
  },
};
