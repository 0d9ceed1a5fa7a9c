// Remembers who each request was authenticated as, for the access log and the audit trail, which
// run after the answer (access-log.ts): the Access the routes call is wrapped once, so no route
// has to pass the principal on.
import type { FastifyRequest } from 'fastify';
import type { Access, Principal } from './access.js';

const principals = new WeakMap<FastifyRequest, Principal>();

/** The principal the request was authenticated as; undefined before (or without) a successful check. */
export function principalOf(req: FastifyRequest): Principal | undefined {
  return principals.get(req);
}

export function notingPrincipals(access: Access): Access {
  return {
    async check(req, repository, actions) {
      const principal = await access.check(req, repository, actions);
      principals.set(req, principal);
      return principal;
    },
    allows: (principal, repository, action) => access.allows(principal, repository, action),
  };
}
