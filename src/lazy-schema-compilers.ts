// fastify requires its JSON-schema compilers (ajv and fast-json-stringify) when a server is
// created, though only a route with a schema uses them, and none of layover's routes has one.
// Passed as `schemaController.compilersFactory`, these load each compiler the first time a route
// asks for it, with fastify's own defaults.
import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';

// Resolved from fastify's own place, so its own versions of the compilers load.
const require = createRequire(createRequire(import.meta.url).resolve('fastify'));

type Factories = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;

function lazyBuilder<B extends (...args: never[]) => unknown>(moduleName: string): B {
  let builder: B | undefined;
  const load = (...args: Parameters<B>): unknown => {
    builder ??= (require(moduleName) as () => B)();
    return Reflect.apply(builder, undefined, args);
  };
  return load as unknown as B;
}

/** For `Fastify({ schemaController: { compilersFactory: lazySchemaCompilers() } })`. */
export function lazySchemaCompilers(): Factories {
  return {
    buildValidator: lazyBuilder<NonNullable<Factories['buildValidator']>>('@fastify/ajv-compiler'),
    buildSerializer: lazyBuilder<NonNullable<Factories['buildSerializer']>>('@fastify/fast-json-stringify-compiler'),
  };
}
