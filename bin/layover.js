#!/usr/bin/env node
// In a checkout the TypeScript sources run through tsx, so `npx layover` works right after
// `npm ci` with no build step; the container image ships only the compiled dist/.
import { existsSync } from 'node:fs';

const src = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(src.href);
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
